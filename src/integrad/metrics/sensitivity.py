"""Max-sensitivity (Yeh et al., NeurIPS 2019), a drop-in for ``captum.metrics.sensitivity_max``.

``max over perturbations x̃ of ‖a(x̃) − a(x)‖ / ‖a(x)‖``: how much the explanation
moves when the input moves a little. Same signature, kwargs handling and numbers as
Captum 0.9 for the same perturbation function and random state.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import signature
from typing import Any

import torch

from .._inputs import TensorOrTuple, as_inputs
from ._common import as_tuple, check_matching, expanded, form, repeated, sample_chunks
from .infidelity import check_callable_named

__all__ = ["default_perturb_func", "sensitivity_max"]

# The keyword arguments of an explanation function that hold one entry per example.
_PER_EXAMPLE_KWARGS = ("additional_forward_args", "target", "baselines")


def default_perturb_func(inputs: TensorOrTuple, perturb_radius: float = 0.02) -> TensorOrTuple:
    """Captum's default: ``x + U(−r, r)``, float32 noise from torch's global random state.

    Seeded alike (``torch.manual_seed``), it draws what Captum's draws. For a
    perturbation that leaves the global state alone, use
    :func:`integrad.metrics.perturbations.uniform` with a ``torch.Generator``.
    """
    xs = as_tuple(inputs, "inputs")
    moved = tuple(
        x
        + torch.empty(tuple(x.shape), dtype=torch.float32)
        .uniform_(-perturb_radius, perturb_radius)
        .to(x.device)
        for x in xs
    )
    return moved if isinstance(inputs, tuple) else moved[0]


def sensitivity_max(
    explanation_func: Callable[..., Any],
    inputs: TensorOrTuple,
    perturb_func: Callable[..., TensorOrTuple] = default_perturb_func,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: str = "fro",
    max_examples_per_batch: int | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Max-sensitivity of ``explanation_func`` per example, shape ``(batch,)``; lower is better.

    ``explanation_func(inputs, **kwargs)`` returns attributions: a tensor, a tuple or
    an :class:`~integrad.Explanation`. It is called once on ``inputs`` and once per
    chunk on every example repeated (consecutively) as many times as the chunk holds
    samples, perturbed by ``perturb_func(inputs, perturb_radius)`` (or
    ``perturb_func(inputs)`` if it takes one argument); the per-example kwargs
    ``target``, ``additional_forward_args`` and ``baselines`` are repeated alike, the
    others passed as they are. ``norm_ord`` is ``"fro"`` (L2 of all features) or a
    vector norm order (``1``, ``2``, ``float("inf")``, ...); an explanation of norm 0
    is divided by 1. ``max_examples_per_batch`` bounds the rows per call, in Captum's
    chunks.

    >>> import torch, integrad
    >>> from integrad.metrics import perturbations, sensitivity_max
    >>> model = torch.nn.Linear(3, 1)
    >>> explain = lambda x: integrad.explain(model, x)  # IG of a linear model: w · x
    >>> noise = perturbations.uniform(torch.Generator().manual_seed(0))
    >>> sensitivity_max(explain, torch.ones(2, 3), noise, perturb_radius=0.1).shape
    torch.Size([2])
    """
    check_callable_named(explanation_func, "explanation_func")
    check_callable_named(perturb_func, "perturb_func")
    if isinstance(perturb_radius, bool) or not isinstance(perturb_radius, (int, float)):
        raise TypeError(f"perturb_radius must be a number, got {type(perturb_radius).__name__}")
    order = _norm_order(norm_ord)
    xs, _ = as_inputs(inputs)
    batch = xs[0].shape[0]
    sizes = sample_chunks(batch, n_perturb_samples, max_examples_per_batch)
    takes_radius = len(signature(perturb_func).parameters) > 1

    # The caller's form for the first call (Captum passes a tuple; both work for attribute).
    original = as_tuple(explanation_func(inputs, **kwargs), "explanation_func's result")
    check_matching(original, xs, "explanation_func's result")
    original = tuple(a.detach() for a in original)
    scale = _norms(original, order)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    worst = torch.zeros_like(scale)  # ratios are >= 0: max with 0 changes nothing
    for k in sizes:
        many = form(expanded(xs, k))
        moved = perturb_func(many, perturb_radius) if takes_radius else perturb_func(many)
        check_matching(
            as_tuple(moved, "perturb_func's result"), expanded(xs, k), "perturb_func's result"
        )
        options = {
            key: repeated(value, batch, k) if key in _PER_EXAMPLE_KWARGS else value
            for key, value in kwargs.items()
        }
        result = as_tuple(explanation_func(moved, **options), "explanation_func's result")
        check_matching(result, expanded(xs, k), "explanation_func's result")
        with torch.no_grad():
            change = tuple(
                a.repeat_interleave(k, dim=0) - r.detach()
                for a, r in zip(original, result, strict=True)
            )
            ratio = (_norms(change, order) / scale.repeat_interleave(k)).reshape(batch, k)
            worst = torch.maximum(worst, ratio.amax(dim=1))
    return worst


def _norm_order(norm_ord: object) -> float:
    if norm_ord == "fro":
        return 2.0
    if isinstance(norm_ord, (int, float)) and not isinstance(norm_ord, bool) and norm_ord != 0:
        return float(norm_ord)
    raise ValueError(
        f"norm_ord must be 'fro' or a nonzero vector norm order (1, 2, inf, ...), got {norm_ord!r}"
    )


def _norms(tensors: tuple[torch.Tensor, ...], order: float) -> torch.Tensor:
    """The ``order``-norm of each row, over the features of all tensors together."""
    flat = torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)
    return torch.linalg.vector_norm(flat, ord=order, dim=1)
