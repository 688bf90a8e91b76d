"""Blur Integrated Gradients (Xu et al., CVPR 2020), batched over examples.

Blur IG needs no baseline: its path runs through ever stronger Gaussian blurs of the
image, ``γ(σ) = blur(x, σ)`` for σ from ``max_sigma`` down to 0, and attributes by the
path integral ``−Σ_i Δσ_i · ∂γ/∂σ(σ_i) ⊙ ∇F(γ(σ_i))`` over ``σ_i = i · max_sigma /
n_steps`` (i = 0..n−1), with ``∂γ/∂σ`` a forward difference of step ``grad_step``. Its
sum approaches F(x) − F(blur(x, max_sigma)) as ``n_steps`` grows and ``grad_step``
shrinks; that blurred image is reported as the baseline.

This follows PAIR's ``saliency.core.blur_ig`` (the blur is scipy's
``gaussian_filter`` with zeros outside the image, per channel over height and width),
with inputs ``(batch, channels, height, width)`` or ``(batch, height, width)``. The
``n_steps × batch`` blurred images are built chunk by chunk inside the shared engine,
so the memory stays bounded; every example is evaluated at once.

``sqrt=True`` spaces the sigmas as ``sqrt(i · max_sigma / n_steps)``, as PAIR does: the
path then starts at ``σ = sqrt(max_sigma)``. ``idgi=True`` replaces the step
attributions by IDGI's (Yang et al., 2023): the observed output change between
consecutive blurs shared by the squared gradient, complete by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._checks import completeness_delta, copies
from ._engine import Engine, PathProblem
from ._inputs import (
    TargetType,
    TensorOrTuple,
    as_inputs,
    check_callable,
    check_flag,
    check_kind,
    check_output_kind,
    check_positive_int,
    same_form,
)
from .baselines import gaussian_blur
from .explanation import Explanation
from .idgi import _share_of_squares

__all__ = ["BlurIntegratedGradients", "explain_blur"]


def explain_blur(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    *,
    target: TargetType = None,
    additional_forward_args: Any = None,
    n_steps: int = 100,
    max_sigma: float = 50.0,
    grad_step: float = 0.01,
    sqrt: bool = False,
    idgi: bool = False,
    internal_batch_size: int | None = None,
    max_memory: int | None = None,
    kind: str | None = None,
    output_kind: str | None = None,
) -> Explanation:
    """Blur IG of ``forward_func`` at image ``inputs``, with the completeness check.

    ``baseline_output`` is F at the most blurred image (``baselines`` in the result).
    ``kind`` and ``output_kind`` as in :func:`integrad.explain`.

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    >>> exp = integrad.explain_blur(model, torch.rand(2, 3, 4, 4), target=1, n_steps=20)
    >>> exp.attributions.shape, exp.method
    (torch.Size([2, 3, 4, 4]), 'blur')
    """
    check_output_kind(output_kind)
    check_kind(kind, as_inputs(inputs)[0])
    run = _Run(
        forward_func,
        inputs,
        target,
        additional_forward_args,
        n_steps,
        max_sigma,
        grad_step,
        sqrt,
        internal_batch_size,
        max_memory,
    )
    attributions = run.attribute(idgi)
    output, baseline_output, delta = run.completeness(attributions)
    return Explanation(
        attributions=same_form(attributions, run.was_tuple),
        delta=delta,
        output=output,
        baseline_output=baseline_output,
        n_evals=run.engine.evals.clone(),
        method="blur",
        n_steps=n_steps,
        inputs=same_form(copies(run.problem.inputs), run.was_tuple),
        baselines=same_form(copies(run.problem.baselines), run.was_tuple),
        target=target,
        baseline=f"blur(sigma={run.sigmas[-1]:g})",
        n_forward=run.engine.forwards.clone(),
        kind=kind,
        **run.engine.predictions(output_kind),
        extras={
            "max_sigma": max_sigma,
            "grad_step": grad_step,
            "sqrt": sqrt,
            "idgi": idgi,
            "chunks": run.engine.chunks_run,
            "bytes_per_point": run.engine.bytes_per_point,
        },
    )


class BlurIntegratedGradients:
    """Blur IG with a Captum-style ``attribute``; see :func:`explain_blur`.

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> big = integrad.BlurIntegratedGradients(model)
    >>> attr, delta = big.attribute(torch.rand(2, 1, 4, 4), target=0, n_steps=10,
    ...                             return_convergence_delta=True)
    >>> attr.shape, delta.shape
    (torch.Size([2, 1, 4, 4]), torch.Size([2]))
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_callable(forward_func)
        self.forward_func = forward_func

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 100,
        max_sigma: float = 50.0,
        grad_step: float = 0.01,
        sqrt: bool = False,
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        *,
        idgi: bool = False,
        max_memory: int | None = None,
    ) -> TensorOrTuple | tuple[TensorOrTuple, torch.Tensor]:
        """Attributions shaped like ``inputs``; with ``(attributions, delta)`` on request.

        The delta is ``sum(attributions) − (F(x) − F(blur(x, max_sigma)))``.
        """
        check_flag(return_convergence_delta, "return_convergence_delta")
        run = _Run(
            self.forward_func,
            inputs,
            target,
            additional_forward_args,
            n_steps,
            max_sigma,
            grad_step,
            sqrt,
            internal_batch_size,
            max_memory,
        )
        attributions = run.attribute(idgi)
        result = same_form(attributions, run.was_tuple)
        if not return_convergence_delta:
            return result
        return result, run.completeness(attributions)[2]


def sigmas(n_steps: int, max_sigma: float, sqrt: bool = False) -> list[float]:
    """PAIR's blur levels ``σ_0 = 0 … σ_n``: linear in i, or the square root of that."""
    levels = [float(i) * max_sigma / float(n_steps) for i in range(n_steps + 1)]
    return [math.sqrt(s) for s in levels] if sqrt else levels


class _Run:
    """One validated Blur IG computation on the engine."""

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: TensorOrTuple,
        target: TargetType,
        additional_forward_args: Any,
        n_steps: int,
        max_sigma: float,
        grad_step: float,
        sqrt: bool,
        internal_batch_size: int | None,
        max_memory: int | None,
    ) -> None:
        check_positive_int(n_steps, "n_steps")
        for name, value in (("max_sigma", max_sigma), ("grad_step", grad_step)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(sqrt, bool):
            raise TypeError(f"sqrt must be a bool, got {type(sqrt).__name__}")
        xs, was_tuple = as_inputs(inputs)
        for i, x in enumerate(xs):
            if x.dim() not in (3, 4):
                where = f"inputs[{i}]" if was_tuple else "inputs"
                raise ValueError(
                    f"{where} has shape {tuple(x.shape)}; Blur IG needs images of shape "
                    "(batch, channels, height, width) or (batch, height, width)"
                )
        self.sigmas = sigmas(n_steps, float(max_sigma), sqrt)
        self.grad_step = float(grad_step)
        blurred = tuple(gaussian_blur(x, self.sigmas[-1], "constant") for x in xs)
        self.problem, self.was_tuple = PathProblem.build(
            forward_func, inputs, same_form(blurred, was_tuple), target, additional_forward_args
        )
        self.engine = Engine(
            self.problem, max_memory=max_memory, internal_batch_size=internal_batch_size
        )

    def attribute(self, idgi: bool) -> tuple[torch.Tensor, ...]:
        check_flag(idgi, "idgi")
        batch, n = self.problem.batch, len(self.sigmas) - 1
        if idgi:
            # Forward values at every level first: each step's weight is the change of
            # the output from σ_{i+1} to σ_i (towards the input).
            rows = torch.arange(batch, device=self.engine.evals.device).repeat(n + 1)
            values = self.engine.outputs_at(rows, self._blurred).double()
            values = values.reshape(n + 1, batch)
            change = (values[:-1] - values[1:]).reshape(-1)
            return self.engine.gradients_at(
                rows[: n * batch],
                self._blurred,
                change,
                lambda part, points, grads: _share_of_squares(grads),
            ).sums
        device = self.engine.evals.device
        steps = torch.tensor(self.sigmas, dtype=torch.float64, device=device).diff()
        return self.engine.gradients_at(
            torch.arange(batch, device=device).repeat(n),
            self._blurred,
            (-steps).repeat_interleave(batch),
            self._along_path,
        ).sums

    def _blurred(
        self, part: slice, extra_sigma: float = 0.0, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The points ``part`` (level-major: every example at σ_0, then at σ_1, ...)."""
        batch = self.problem.batch
        start, stop = int(part.start or 0), int(part.stop)
        levels = []
        while start < stop:
            level, row = divmod(start, batch)
            end = min(stop, (level + 1) * batch)
            rows = torch.arange(row, row + end - start, device=self.engine.evals.device)
            levels.append((self.sigmas[level] + extra_sigma, rows))
            start = end
        return tuple(
            torch.cat(
                [gaussian_blur(x[rows].to(dtype or x.dtype), s, "constant") for s, rows in levels]
            )
            for x in self.problem.inputs
        )

    def _along_path(
        self, part: slice, points: tuple[torch.Tensor, ...], grads: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        """Gradients times ∂blur/∂σ at each point (PAIR's forward difference).

        The difference of two close blurs is taken in float64 whatever the inputs'
        dtype: in float32 it would lose about five of its seven digits at large σ.
        """
        here = self._blurred(part, 0.0, torch.float64)
        ahead = self._blurred(part, self.grad_step, torch.float64)
        return tuple(
            g * ((q - p) / self.grad_step).to(g.dtype)
            for g, p, q in zip(grads, here, ahead, strict=True)
        )

    def completeness(
        self, attributions: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F(x), F(most blurred) and the signed delta, per example."""
        output, baseline_output = self.engine.ends()
        return output, baseline_output, completeness_delta(attributions, output, baseline_output)
