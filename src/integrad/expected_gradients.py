"""Expected Gradients (GradientSHAP) and deterministic multi-baseline IG.

Expected Gradients (Erion et al., 2021) replaces IG's single baseline by a
distribution: the attribution is E over references x' and α ~ U(0, 1) of
``(x - x') ⊙ ∇F(x' + α(x - x'))``, so its sum approaches F(x) − E[F(x')]. Each sample
draws a reference from the set and an α, from a ``torch.Generator`` only
(GradientSHAP when ``stdevs > 0`` also perturbs the input). With ``n_steps`` the
expectation over references is taken exactly instead: quadrature IG from every
reference, averaged. Both run on the shared engine, so path points are chunked to
the memory budget; samples are formed ``samples_batch_size`` copies at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._engine import Engine, PathProblem, completeness_delta
from ._inputs import (
    ExtraArgs,
    Target,
    TargetType,
    TensorOrTuple,
    as_inputs,
    broadcast_baseline,
    check_callable,
    check_positive_int,
    repeat_per_example,
    same_form,
)
from .quadrature import check_method, rule

__all__ = ["ExpectedGradients"]


class ExpectedGradients:
    """Expected Gradients / GradientSHAP over a reference set.

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

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_samples: int = 50,
        stdevs: float = 0.0,
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
        example; ``n_steps`` switches to the deterministic average of ``method``
        quadrature IG over all K references. The delta, on request, is per example:
        sum of attributions − (F(x) − mean over the reference set of F(x')).
        """
        xs, was_tuple = as_inputs(inputs)
        refs = self._references(baselines, xs, was_tuple)
        n_refs = int(refs[0].shape[0])
        batch = int(xs[0].shape[0])
        Target(target, batch)  # validate the form before any work
        if isinstance(stdevs, bool) or not isinstance(stdevs, (int, float)) or not stdevs >= 0:
            raise ValueError(f"stdevs must be a number >= 0, got {stdevs!r}")
        gen = generator if generator is not None else torch.Generator(xs[0].device).manual_seed(0)
        if n_steps is None:
            check_positive_int(n_samples, "n_samples")
            slots = n_samples
        else:
            check_method(method, n_steps)
            slots = n_refs
        group = samples_batch_size or slots
        totals = [torch.zeros_like(x) for x in xs]
        for start in range(0, slots, group):
            k = min(group, slots - start)
            if n_steps is None:
                chosen = torch.randint(n_refs, (batch * k,), generator=gen, device=xs[0].device)
            else:  # every reference once, example-major like the copies
                chosen = torch.arange(start, start + k, device=xs[0].device).repeat(batch)
            copies = tuple(x.repeat_interleave(k, dim=0) for x in xs)
            if stdevs > 0:
                copies = tuple(
                    c + stdevs * torch.randn(c.shape, generator=gen, device=c.device, dtype=c.dtype)
                    for c in copies
                )
            starts = tuple(r.index_select(0, chosen) for r in refs)
            problem = PathProblem(
                self.forward_func,
                copies,
                starts,
                Target(repeat_per_example(target, batch, k), batch * k),
                ExtraArgs.of(repeat_per_example(additional_forward_args, batch, k), batch * k),
            )
            engine = Engine(problem, max_memory=max_memory)
            if n_steps is None:
                alphas = torch.rand(
                    batch * k, generator=gen, device=xs[0].device, dtype=torch.float64
                )
                ones = torch.ones(batch * k, dtype=torch.float64)
                sums = engine.gradients(torch.arange(batch * k), alphas, ones).sums
            else:
                sums = engine.integrate(rule(method, n_steps))
            for total, g, c, s in zip(totals, sums, copies, starts, strict=True):
                total += (g * (c - s)).reshape(batch, k, *c.shape[1:]).sum(dim=1)
        attributions = tuple(t / slots for t in totals)
        result = same_form(attributions, was_tuple)
        if not return_convergence_delta:
            return result
        return result, self._delta(attributions, xs, refs, target, additional_forward_args)

    @staticmethod
    def _references(
        baselines: object, xs: tuple[torch.Tensor, ...], was_tuple: bool
    ) -> tuple[torch.Tensor, ...]:
        items = baselines if isinstance(baselines, tuple) else (baselines,)
        if len(items) != len(xs):
            raise ValueError(
                f"baselines has {len(items)} reference sets but inputs has {len(xs)} tensors"
            )
        refs = []
        for i, (r, x) in enumerate(zip(items, xs, strict=True)):
            where = f"baselines[{i}]" if was_tuple else "baselines"
            if not isinstance(r, torch.Tensor) or r.dim() != x.dim() or r.shape[0] < 1:
                raise ValueError(
                    f"{where} must be a reference set: a tensor of shape (K, *features) with "
                    f"features {tuple(x.shape[1:])}"
                )
            shape = (r.shape[0], *x.shape[1:])
            refs.append(
                broadcast_baseline(r, torch.empty(shape, dtype=x.dtype, device=x.device), where)
            )
        if len({int(r.shape[0]) for r in refs}) != 1:
            raise ValueError(
                f"the reference sets differ in size: {[int(r.shape[0]) for r in refs]}"
            )
        return tuple(refs)

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
    return engine.outputs(torch.arange(rows), torch.ones(rows, dtype=torch.float64))
