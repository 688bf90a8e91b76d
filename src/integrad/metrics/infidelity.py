"""Infidelity (Yeh et al., NeurIPS 2019), a drop-in for ``captum.metrics.infidelity``.

``infidelity = E_I[(Iᵀ·a − (F(x) − F(x − I)))²]`` over perturbations ``I`` drawn by
``perturb_func``: how far the attributions ``a``, read as a linear model of the
output, are from the output's actual change. Same signature, argument forms and
numbers as Captum 0.9 for the same perturbation function and random state; the
perturbation factories of :mod:`integrad.metrics.perturbations` draw from a
``torch.Generator`` instead of the global random state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import torch

from .._inputs import TargetType, TensorOrTuple, as_inputs, check_callable, check_flag
from ._common import (
    as_tuple,
    check_matching,
    expanded,
    extra_args,
    form,
    repeated,
    sample_chunks,
    target_output,
)

__all__ = ["infidelity", "infidelity_perturb_func_decorator"]

PerturbFunc = Callable[..., Any]


def infidelity_perturb_func_decorator(
    multiply_by_inputs: bool = True,
) -> Callable[[PerturbFunc], PerturbFunc]:
    """Turn a function returning perturbed inputs into one returning (perturbations, them).

    As Captum's decorator: the perturbation is ``(x − x̃) / (x − x')`` (``x' = 0`` without
    baselines; a zero denominator counts as 1) when ``multiply_by_inputs``, else ``x − x̃``.

    >>> import torch
    >>> @infidelity_perturb_func_decorator(False)
    ... def halve(inputs):
    ...     return inputs / 2
    >>> perturbation, perturbed = halve(torch.tensor([[2.0, 4.0]]))
    >>> perturbation[0].tolist(), perturbed[0].tolist()
    ([[1.0, 2.0]], [[1.0, 2.0]])
    """
    check_flag(multiply_by_inputs, "multiply_by_inputs")

    def decorate(perturb_func: PerturbFunc) -> PerturbFunc:
        check_callable_named(perturb_func, "perturb_func")

        def perturb(
            inputs: TensorOrTuple, baselines: Any = None
        ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
            moved = perturb_func(inputs) if baselines is None else perturb_func(inputs, baselines)
            xs = as_tuple(inputs, "inputs")
            perturbed = as_tuple(moved, "perturb_func's perturbed inputs")
            check_matching(perturbed, xs, "perturb_func's perturbed inputs")
            refs = (0.0,) * len(xs) if baselines is None else _baseline_tuple(baselines, len(xs))
            changes = []
            for x, moved_x, ref in zip(xs, perturbed, refs, strict=True):
                change = x - moved_x
                if multiply_by_inputs:
                    span = x - ref
                    change = change / torch.where(span != 0, span, torch.ones_like(span))
                changes.append(change)
            return tuple(changes), perturbed

        return perturb

    return decorate


def infidelity(
    forward_func: Callable[..., Any],
    perturb_func: PerturbFunc,
    inputs: TensorOrTuple,
    attributions: Any,
    baselines: Any = None,
    additional_forward_args: Any = None,
    target: TargetType = None,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    normalize: bool = False,
) -> torch.Tensor:
    """Infidelity of ``attributions`` per example, shape ``(batch,)``; lower is better.

    ``perturb_func(inputs[, baselines])`` gets every example repeated (consecutively)
    as many times as the chunk holds samples and returns ``(perturbations,
    perturbed_inputs)``, each a tensor or a tuple shaped like the inputs (decorate a
    function returning only perturbed inputs with
    :func:`infidelity_perturb_func_decorator`). ``max_examples_per_batch`` bounds the
    rows per model call, in Captum's chunks. ``normalize`` rescales the attributions
    by the least-squares factor ``β = E[Iᵀa·ΔF] / E[(Iᵀa)²]`` first, so the score
    ignores their scale. ``attributions`` may be an :class:`~integrad.Explanation`.

    >>> import torch
    >>> from integrad.metrics import infidelity, perturbations
    >>> model = torch.nn.Linear(3, 1)
    >>> x = torch.randn(2, 3)
    >>> gradients = model.weight.detach().expand(2, 3)  # exact for a linear model
    >>> noise = perturbations.gaussian(0.1, generator=torch.Generator().manual_seed(0))
    >>> bool(infidelity(model, noise, x, gradients).max() < 1e-10)
    True
    """
    check_callable(forward_func)
    check_callable_named(perturb_func, "perturb_func")
    check_flag(normalize, "normalize")
    xs, _ = as_inputs(inputs, integer_ok=True)
    attrs = as_tuple(attributions, "attributions")
    check_matching(attrs, xs, "attributions")
    batch = xs[0].shape[0]
    sizes = sample_chunks(batch, n_perturb_samples, max_examples_per_batch)
    refs = None if baselines is None else _baseline_tuple(baselines, len(xs))
    args = extra_args(additional_forward_args)

    squares = cross = changes = errors = torch.zeros(batch, dtype=torch.float64)
    dtype = torch.float64
    with torch.no_grad():
        reference = target_output(forward_func, xs, target, args)
        for k in sizes:
            perturbation, perturbed = _perturb(perturb_func, xs, refs, k)
            output = target_output(
                forward_func, perturbed, repeated(target, batch, k), repeated(args, batch, k)
            )
            change = (reference.repeat_interleave(k) - output).reshape(batch, k)
            dot = reduce(
                torch.add,
                [
                    (a.repeat_interleave(k, dim=0) * p).reshape(batch * k, -1).sum(1)
                    for a, p in zip(attrs, perturbation, strict=True)
                ],
            ).reshape(batch, k)
            dtype = torch.promote_types(dot.dtype, change.dtype)
            dot64, change64 = dot.double().cpu(), change.double().cpu()
            if normalize:
                squares = squares + dot64.square().sum(1)
                cross = cross + (dot64 * change64).sum(1)
                changes = changes + change64.square().sum(1)
            else:
                errors = errors + (dot64 - change64).square().sum(1)
    if normalize:
        beta = cross / torch.where(squares != 0, squares, torch.ones_like(squares))
        errors = beta.square() * squares - 2 * beta * cross + changes
    return (errors / n_perturb_samples).to(device=reference.device, dtype=dtype)


def check_callable_named(func: object, name: str) -> None:
    if not callable(func):
        raise TypeError(f"{name} must be callable, got {type(func).__name__}")


def _baseline_tuple(baselines: Any, n_inputs: int) -> tuple[Any, ...]:
    refs = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(refs) != n_inputs:
        raise ValueError(f"baselines has {len(refs)} entries but the inputs have {n_inputs}")
    for i, ref in enumerate(refs):
        if isinstance(ref, bool) or not isinstance(ref, (int, float, torch.Tensor)):
            name = f"baselines[{i}]" if n_inputs > 1 else "baselines"
            raise TypeError(f"{name} must be a number or a tensor, got {type(ref).__name__}")
    return refs


def _perturb(
    perturb_func: PerturbFunc,
    xs: tuple[torch.Tensor, ...],
    refs: tuple[Any, ...] | None,
    k: int,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """``perturb_func`` on ``k`` copies of each example, checked: (perturbations, inputs)."""
    batch = xs[0].shape[0]
    many = expanded(xs, k)
    if refs is None:
        result = perturb_func(form(many))
    else:
        # Captum repeats a baseline only when it has one row per example (and more than one).
        spread = tuple(
            r.repeat_interleave(k, dim=0)
            if isinstance(r, torch.Tensor) and r.dim() > 0 and r.shape[0] == batch > 1
            else r
            for r in refs
        )
        result = perturb_func(form(many), spread[0] if len(spread) == 1 else spread)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(
            "perturb_func must return (perturbations, perturbed_inputs), got "
            f"{type(result).__name__}; decorate a function that returns only perturbed "
            "inputs with infidelity_perturb_func_decorator"
        )
    perturbation = as_tuple(result[0], "perturb_func's perturbations")
    perturbed = as_tuple(result[1], "perturb_func's perturbed inputs")
    check_matching(perturbation, many, "perturb_func's perturbations")
    check_matching(perturbed, many, "perturb_func's perturbed inputs")
    return perturbation, perturbed
