"""Expected Gradients and deterministic multi-baseline IG.

Expected Gradients (Erion et al., 2021) replaces IG's single baseline by a
distribution: the attribution is E over references x' and α ~ U(0, 1) of
``(x - x') ⊙ ∇F(x' + α(x - x'))``, so its sum approaches F(x) − E[F(x')]. Each sample
draws one reference (the same row of every reference set, for tuple inputs) and an α
from a ``torch.Generator`` only (``stdevs > 0`` also perturbs the input). With
``n_steps`` the expectation over references is taken exactly instead: quadrature IG
from every reference, averaged. :class:`~integrad.GradientShap` is the same sampler
with Captum's signature, draws and delta convention (``_sampling.py`` holds both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._captum import Futureless, GradientAttribution
from ._checks import completeness_delta
from ._engine import Engine, PathProblem
from ._inputs import (
    ExtraArgs,
    Target,
    TargetType,
    TensorOrTuple,
    as_inputs,
    check_callable,
    check_positive_int,
    repeat_per_example,
    same_form,
)
from ._sampling import GeneratorDraws, check_stdevs, reference_sets, sample_attributions
from .quadrature import check_method, rule

__all__ = ["ExpectedGradients"]


class ExpectedGradients(Futureless, GradientAttribution):
    """Expected Gradients over a reference set (integrad's own; see also GradientShap).

    >>> import torch, integrad
    >>> model = torch.nn.Linear(3, 1)
    >>> refs = torch.randn(20, 3)
    >>> eg = integrad.ExpectedGradients(model)
    >>> eg.attribute(torch.ones(2, 3), baselines=refs, n_samples=16).shape
    torch.Size([2, 3])
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_callable(forward_func)
        self.forward_func = forward_func

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_samples: int = 50,
        stdevs: float | tuple[float, ...] = 0.0,
        generator: torch.Generator | None = None,
        n_steps: int | None = None,
        method: str = "gausslegendre",
        samples_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        max_memory: int | None = None,
    ) -> TensorOrTuple | tuple[TensorOrTuple, torch.Tensor]:
        """Attributions shaped like ``inputs``.

        ``baselines`` is the reference set: a tensor ``(K, *features)`` (a tuple of them
        for tuple inputs, same K). Random mode (default) uses ``n_samples`` draws per
        example from ``generator`` (default: seeded 0, so calls repeat); ``n_steps``
        switches to the deterministic average of ``method`` quadrature IG over all K
        references. Samples are evaluated in groups sized to ``max_memory``;
        ``samples_batch_size`` caps a group at that many samples per example and
        changes nothing but memory. The delta, on request, is per example: sum of
        attributions − (F(x) − mean over the reference set of F(x')).
        """
        xs, was_tuple = as_inputs(inputs)
        refs = reference_sets(baselines, xs, was_tuple, same_size=True)
        n_refs = int(refs[0].shape[0])
        batch = int(xs[0].shape[0])
        goal = Target(target, batch)  # validates the form before any work
        sigmas = check_stdevs(stdevs, len(xs))
        if samples_batch_size is not None:
            check_positive_int(samples_batch_size, "samples_batch_size")
        gen = generator if generator is not None else torch.Generator(xs[0].device).manual_seed(0)
        if n_steps is None:
            check_positive_int(n_samples, "n_samples")
            slots, quadrature, references = n_samples, None, "joint"
        else:
            check_method(method, n_steps)
            slots, quadrature, references = n_refs, rule(method, n_steps), "cycle"
        draws = GeneratorDraws(gen, xs, (n_refs,) * len(xs), sigmas, references)
        attributions, _ = sample_attributions(
            self.forward_func,
            xs,
            refs,
            goal,
            ExtraArgs.of(additional_forward_args, batch),
            slots,
            draws,
            quadrature=quadrature,
            max_memory=max_memory,
            group_limit=None if samples_batch_size is None else samples_batch_size * batch,
        )
        result = same_form(attributions, was_tuple)
        if not return_convergence_delta:
            return result
        return result, self._delta(attributions, xs, refs, target, additional_forward_args)

    def _delta(
        self,
        attributions: tuple[torch.Tensor, ...],
        xs: tuple[torch.Tensor, ...],
        refs: tuple[torch.Tensor, ...],
        target: TargetType,
        additional_forward_args: Any,
    ) -> torch.Tensor:
        """sum(attributions) − (F(x) − mean_k F(ref_k)), forward passes only."""
        batch, n_refs = int(xs[0].shape[0]), int(refs[0].shape[0])
        goal = Target(target, batch)
        extra = ExtraArgs.of(additional_forward_args, batch)
        f_x = _at(self.forward_func, xs, goal, extra)
        shared = not any(extra.batched) and (
            goal.per_example is None or len(set(goal.per_example)) == 1
        )
        if shared:  # every example sees the same F on the references: evaluate them once
            ref_goal = Target(None if goal.per_example is None else goal.per_example[0], n_refs)
            f_refs = _at(self.forward_func, refs, ref_goal, extra).mean().expand(batch)
        else:
            f_refs = (
                _at(
                    self.forward_func,
                    tuple(r.repeat(batch, *[1] * (r.dim() - 1)) for r in refs),
                    Target(repeat_per_example(target, batch, n_refs), batch * n_refs),
                    ExtraArgs.of(
                        repeat_per_example(additional_forward_args, batch, n_refs), batch * n_refs
                    ),
                )
                .reshape(batch, n_refs)
                .mean(dim=1)
            )
        return completeness_delta(attributions, f_x, f_refs)


def _at(
    forward_func: Callable[..., Any], xs: tuple[torch.Tensor, ...], target: Target, extra: ExtraArgs
) -> torch.Tensor:
    """The target output at ``xs`` (one value per row), forward passes only."""
    rows = int(xs[0].shape[0])
    engine = Engine(PathProblem(forward_func, xs, xs, target, extra))
    device = xs[0].device
    return engine.outputs(
        torch.arange(rows, device=device), torch.ones(rows, dtype=torch.float64, device=device)
    )
