"""The part of Captum's class surface that every gradient method shares.

Captum's gradient classes all offer ``get_name``, ``multiplies_by_inputs``,
``has_convergence_delta`` and ``compute_convergence_delta`` besides ``attribute``.
They live here once, on a shallow base class, so that each method's module holds
only what is its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._inputs import (
    ExtraArgs,
    Target,
    TargetType,
    TensorOrTuple,
    as_inputs,
    broadcast_baseline,
)

__all__ = ["Futureless", "GradientAttribution", "check_device_ids", "convergence_delta"]


class GradientAttribution:
    """Captum's ``GradientAttribution`` surface, minus ``attribute``."""

    forward_func: Callable[..., Any]

    @classmethod
    def get_name(cls) -> str:
        """A readable name, as Captum's: ``"Integrated Gradients"`` for IntegratedGradients."""
        return "".join(c if c.islower() or i == 0 else " " + c for i, c in enumerate(cls.__name__))

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether attributions are multiplied by ``inputs - baselines`` (global attribution)."""
        return False

    def has_convergence_delta(self) -> bool:
        """Whether ``attribute`` can return a convergence delta."""
        return False

    def compute_convergence_delta(
        self,
        attributions: TensorOrTuple,
        start_point: object,
        end_point: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> torch.Tensor:
        """Per example, ``Σ attributions − (F(end_point) − F(start_point))``, as in Captum.

        See :func:`convergence_delta`.

        >>> import torch, integrad
        >>> model = torch.nn.Linear(3, 1)
        >>> ig = integrad.IntegratedGradients(model)
        >>> x = torch.ones(2, 3)
        >>> delta = ig.compute_convergence_delta(ig.attribute(x), 0.0, x)
        >>> bool(delta.abs().max() < 1e-5)
        True
        """
        return convergence_delta(
            self.forward_func, attributions, start_point, end_point, target, additional_forward_args
        )


class Futureless:
    """``attribute_future`` of the Captum classes that declare it (not LayerIG or NeuronIG):
    not implemented, as in Captum."""

    def attribute_future(self) -> Callable[..., Any]:
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}")


def convergence_delta(
    forward_func: Callable[..., Any],
    attributions: TensorOrTuple | list[TensorOrTuple],
    start_point: object,
    end_point: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
) -> torch.Tensor:
    """Per example, the sum of ``attributions`` minus ``F(end_point) − F(start_point)``.

    ``start_point`` is ``None`` (zeros), a number, a tensor (or one with a leading 1),
    or a tuple of these for tuple ``end_point``. ``attributions`` may have any shapes
    (layer attributions, a list for several layers) with the batch first. As in Captum,
    ``target=None`` sums each example's outputs.
    """
    ends, was_tuple = as_inputs(end_point, integer_ok=True)
    batch = int(ends[0].shape[0])
    specs = start_point if isinstance(start_point, tuple) else (start_point,) * len(ends)
    if len(specs) != len(ends):
        raise ValueError(
            f"start_point has {len(specs)} entries but end_point has {len(ends)}; give one each"
        )
    starts = tuple(
        broadcast_baseline(
            0 if s is None else s, x, f"start_point[{i}]" if was_tuple else "start_point"
        )
        for i, (s, x) in enumerate(zip(specs, ends, strict=True))
    )
    parts = _flat(attributions)
    for i, a in enumerate(parts):
        if a.dim() == 0 or a.shape[0] != batch:
            raise ValueError(
                f"attributions[{i}] has shape {tuple(a.shape)}; its first dimension must be the "
                f"batch of end_point ({batch})"
            )
    target_ = Target(target, batch)
    extra = ExtraArgs.of(additional_forward_args, batch)
    with torch.no_grad():
        f_end = target_.select(forward_func(*ends, *extra.args), sum_rows=True)
        f_start = target_.select(forward_func(*starts, *extra.args), sum_rows=True)
    total = torch.stack([a.detach().reshape(batch, -1).sum(1) for a in parts]).sum(0)
    return total - (f_end - f_start)


def check_device_ids(device_ids: object) -> None:
    """Captum's ``device_ids`` gathers DataParallel replicas' activations: refuse a list."""
    if device_ids is not None:
        raise ValueError(
            f"device_ids={device_ids!r} is not supported: integrad does not gather "
            "activations across DataParallel replicas; pass device_ids=None and the "
            "unwrapped model (model.module)"
        )


def _flat(attributions: object) -> list[torch.Tensor]:
    items = attributions if isinstance(attributions, (tuple, list)) else (attributions,)
    out: list[torch.Tensor] = []
    for item in items:
        if isinstance(item, (tuple, list)):
            out.extend(_flat(item))
        elif isinstance(item, torch.Tensor):
            out.append(item)
        else:
            raise TypeError(
                f"attributions must be tensors (or tuples of them), got {type(item).__name__}"
            )
    if not out:
        raise ValueError("attributions is empty; pass the tensors attribute returned")
    return out
