"""How layer IG runs the model at path points: the layer's activation swapped for them.

Upstream reuse. Captum re-runs the whole model on every path point to reach the
layer, although nothing upstream of the layer changes along the path. Here each
example's path is evaluated in chunks of its own points, and the model is run on
that example's single row of ``inputs`` (``additional_forward_args`` keep one row
per point): the hook then returns the chunk's path points in place of the one-row
activation, so everything upstream runs once per chunk instead of once per point.
The path is evaluated as in Captum (several examples per chunk, upstream recomputed)
when there is nothing to save (no module with weights other than an embedding runs
before the layer, as at a transformer's word embeddings) or when ``n_steps`` is under
half the engine's chunk size (per-example chunks would then run at a poorer rate than
the upstream saves).

Downstream code that mixes a one-row upstream tensor with the path
points broadcasts it, which is what a per-point run computes. A model whose
downstream computation depends on the batch shape seen upstream (a reshape with a
batch size read from the inputs, say) is caught before it matters: the first chunk
is checked against the plain per-point run (forward only), and any mismatch or
error in the one-row run switches the whole call to the plain recompute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ._hooks import scoped

__all__ = ["Evaluate", "NotReusable", "attributable", "swap"]


class NotReusable(Exception):
    """The one-row upstream run differs from the plain run: recompute instead."""


class Evaluate:
    """The model at path points ``(*points, row_ids, *model_args)`` with the points swapped in.

    With ``reuse``, a chunk whose points all belong to one example gets that example's
    row of the inputs only (``additional_forward_args``, such as an attention mask
    used downstream, keep one row per point); the first such chunk is checked against
    the plain run.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        swapped: Callable[[Sequence[torch.Tensor]], Any],
        n_points: int,
        n_inputs: int,
        reuse: bool,
    ) -> None:
        self.forward_func = forward_func
        self.swapped = swapped
        self.n_points = n_points
        self.n_inputs = n_inputs
        self.reuse = reuse
        self.checked = False
        self.reused = False
        """Whether any chunk ran the upstream on one row."""

    def __call__(self, *args: Any) -> Any:
        points, row_ids, model_args = (
            args[: self.n_points],
            args[self.n_points],
            args[self.n_points + 1 :],
        )
        n = int(row_ids.shape[0])
        if not self.reuse or n == 1 or bool((row_ids != row_ids[0]).any()):
            with self.swapped(points):
                return self.forward_func(*model_args)
        one = tuple(a[:1] for a in model_args[: self.n_inputs]) + model_args[self.n_inputs :]
        try:
            with self.swapped(points):
                out = self.forward_func(*one)
        except Exception as error:
            self._plain(points, model_args)  # the model's own error propagates from here
            raise NotReusable from error
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != n:
            raise NotReusable
        if not self.checked:
            reference = self._plain(points, model_args)
            if not isinstance(reference, torch.Tensor) or not _close(out.detach(), reference):
                raise NotReusable
            self.checked = True
        self.reused = True
        return out

    def _plain(self, points: Sequence[torch.Tensor], model_args: tuple[Any, ...]) -> Any:
        with torch.no_grad(), self.swapped([p.detach() for p in points]):
            return self.forward_func(*model_args)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    # Per-row results can differ in the last bits with the batch size (kernel blocking);
    # a run that mixes examples or path points differs at the level of the values.
    rtol = 1e-9 if a.dtype == torch.float64 else 1e-4
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool(torch.allclose(a, b, rtol=rtol, atol=rtol * max(scale, 1e-30), equal_nan=True))


@contextmanager
def swap(
    layers: list[nn.Module], points: Sequence[torch.Tensor], spans: list[int], layer_input: bool
) -> Iterator[None]:
    """Hooks that replace each layer's output (or positional inputs) by its path points."""
    handles = []

    def replacement(i: int, original: Any) -> Any:
        mine = iter(points[spans[i] : spans[i + 1]])
        if not isinstance(original, (tuple, list)):
            return next(mine)
        swapped = [next(mine) if attributable(t) else t for t in original]
        return swapped if isinstance(original, list) else tuple(swapped)

    try:
        for i, m in enumerate(layers):
            if layer_input:
                handles.append(
                    m.register_forward_pre_hook(
                        scoped(lambda _m, args, i=i: replacement(i, tuple(args)))
                    )
                )
            else:
                handles.append(
                    m.register_forward_hook(scoped(lambda _m, _args, out, i=i: replacement(i, out)))
                )
        yield
    finally:
        for h in handles:
            h.remove()


def attributable(t: object) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point()
