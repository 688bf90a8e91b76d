"""Integrated Gradients: :func:`explain` and the Captum-compatible class."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

from . import baselines as _baselines
from ._captum import Futureless, GradientAttribution
from ._checks import completeness_delta, completeness_silenced, copies, warn_if_incomplete
from ._engine import Engine, PathProblem
from ._inputs import (
    TargetType,
    TensorOrTuple,
    as_inputs,
    check_callable,
    check_flag,
    check_kind,
    check_output_kind,
    same_form,
)
from .exact import TooManyRegions, check_model, exact
from .explanation import Explanation
from .idgi import idgi
from .quadrature import METHODS, check_method, rule
from .tolerance import Tolerated, check_tolerance, integrate_to_tolerance

__all__ = ["IntegratedGradients", "explain"]


def explain(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    *,
    baselines: object = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
    n_steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
    max_memory: int | None = None,
    multiply_by_inputs: bool = True,
    tolerance: float | None = None,
    max_steps: int | None = None,
    kind: str | None = None,
    output_kind: str | None = None,
) -> Explanation:
    """Integrated Gradients of ``forward_func`` at ``inputs``, with the completeness check.

    ``IG_i = (x_i - x'_i) ∫₀¹ ∂F(x' + α(x - x'))/∂x_i dα``, integrated with the
    ``n_steps``-node rule ``method`` (see :mod:`integrad.quadrature`). Path points are
    evaluated in chunks that fit ``max_memory`` bytes (default 1 GiB); give
    ``internal_batch_size`` to use Captum's chunking instead. ``method="idgi"`` uses
    IDGI (:mod:`integrad.idgi`) with ``n_steps`` intervals. ``method="exact"`` integrates
    exactly, region by region, for models of affine layers and ReLU-like activations or
    MaxPool (:mod:`integrad.exact`): ``n_steps`` is ignored, ``Explanation.n_steps`` holds
    the most regions any example crossed and ``extras["regions"]`` each one's. The
    argument forms are Captum's; ``baselines`` also takes the names and strategies of
    :mod:`integrad.baselines`.

    With ``tolerance``, each example is integrated until its estimated relative L2
    error and its relative completeness gap are both within ``tolerance``, or until
    ``max_steps`` evaluations (default ``max(1024, 16 / tolerance)``); ``n_steps`` and
    ``method`` are then chosen per example (:mod:`integrad.tolerance`), and the result carries
    ``error_estimate`` and ``converged`` per example.

    ``kind`` says what the inputs are (``"image"``, ``"text"``, ``"table"``,
    ``"timeseries"``): it picks the view of ``plot`` and ``to_html``. ``output_kind``
    (``"logits"`` or ``"probabilities"``) says what the outputs are, so the result can
    carry the probabilities of the target and of the predicted class; the predicted class
    (``Explanation.predicted``) is kept whenever the outputs are rows of classes.

    >>> import torch, integrad
    >>> model = torch.nn.Linear(3, 2)
    >>> x = torch.tensor([[1.0, 2.0, 3.0]])
    >>> exp = integrad.explain(model, x, target=1)
    >>> exp.attributions.shape
    torch.Size([1, 3])
    >>> bool(exp.delta.abs().max() < 1e-5)
    True
    """
    check_flag(multiply_by_inputs, "multiply_by_inputs")
    check_output_kind(output_kind)
    check_kind(kind, as_inputs(inputs)[0])
    run = _Run(
        forward_func,
        inputs,
        baselines,
        target,
        additional_forward_args,
        n_steps,
        method,
        internal_batch_size,
        max_memory,
        tolerance,
        max_steps,
    )
    output, baseline_output, delta = run.completeness()
    tol = run.tolerated
    return Explanation(
        attributions=run.attributions(multiply_by_inputs),
        delta=delta,
        output=output,
        baseline_output=baseline_output,
        n_evals=run.engine.evals.clone(),
        method=method if tol is None else f"tolerance:{tol.ladder}",
        n_steps=run.n_steps if tol is None else int(tol.points.max()),
        inputs=same_form(copies(run.problem.inputs), run.was_tuple),
        baselines=same_form(copies(run.problem.baselines), run.was_tuple),
        target=target,
        baseline=_baselines.describe(baselines),
        multiply_by_inputs=multiply_by_inputs,
        n_forward=run.engine.forwards.clone(),
        error_estimate=None if tol is None else tol.error_estimate,
        converged=None if tol is None else tol.converged,
        tolerance=tolerance,
        kind=kind,
        **run.engine.predictions(output_kind),
        extras={
            "chunks": run.engine.chunks_run,
            "bytes_per_point": run.engine.bytes_per_point,
            **({} if tol is None else {"points": tol.points}),
            **run.extras,
        },
    )


class _Run:
    """One validated IG computation: the integrated gradients, and F at the ends on demand."""

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: TensorOrTuple,
        baselines: object,
        target: TargetType,
        additional_forward_args: Any,
        n_steps: int,
        method: str,
        internal_batch_size: int | None,
        max_memory: int | None,
        tolerance: float | None = None,
        max_steps: int | None = None,
        *,
        model: nn.Module | None = None,
        remembered_as: tuple[Callable[..., Any], Hashable] | None = None,
    ) -> None:
        check_tolerance(tolerance, max_steps, method)
        if method == "exact":
            check_model(forward_func)
        elif method != "idgi":
            if method not in METHODS:
                raise ValueError(
                    f"method={method!r} is not known; choose one of {[*METHODS, 'idgi', 'exact']}"
                )
            check_method(method, n_steps)
        self.problem, self.was_tuple = PathProblem.build(
            forward_func, inputs, baselines, target, additional_forward_args, model, remembered_as
        )
        xs = self.problem.inputs
        self.engine = Engine(
            self.problem, max_memory=max_memory, internal_batch_size=internal_batch_size
        )
        self._ends: tuple[torch.Tensor, torch.Tensor] | None = None
        self._delta: torch.Tensor | None = None
        # Tolerance mode reports its own certificate; IDGI is complete by construction.
        self.guarded = tolerance is None and method != "idgi"
        self.tolerated: Tolerated | None = None
        self.n_steps = n_steps
        self.extras: dict[str, Any] = {}
        if tolerance is not None:
            self.tolerated = integrate_to_tolerance(self.engine, tolerance, max_steps)
            self.grads = self.tolerated.grads
            self._ends = (self.tolerated.output, self.tolerated.baseline_output)
        elif method == "exact":
            # Exact up to rounding: n_steps is replaced by the regions crossed.
            found = exact(self.engine)
            assert not isinstance(found, TooManyRegions)  # no region cap: always an answer
            self.grads, output, baseline_output, regions = found
            self._ends = (output, baseline_output)
            self.n_steps = int(regions.max())
            self.extras["regions"] = regions
        elif method == "idgi":
            # IDGI's attributions already carry the output change: nothing to multiply.
            self.integrated, *ends = idgi(self.engine, n_steps)
            self.grads = self.integrated
            self._ends = (ends[0], ends[1])
            return
        else:
            self.grads = self.engine.integrate(rule(method, n_steps))
        self.integrated = tuple(
            g * (x - b) for g, x, b in zip(self.grads, xs, self.problem.baselines, strict=True)
        )

    def attributions(self, multiply_by_inputs: bool) -> TensorOrTuple:
        return same_form(self.integrated if multiply_by_inputs else self.grads, self.was_tuple)

    def completeness(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F(x), F(x') (forward passes only, unless known) and the signed delta, per example.

        The first call warns (:class:`CompletenessWarning`) if a gap exceeds 5%.
        """
        if self._ends is None:
            self._ends = self.engine.ends()
        output, baseline_output = self._ends
        if self._delta is None:
            self._delta = completeness_delta(self.integrated, output, baseline_output)
            if self.guarded:
                warn_if_incomplete(self._delta, output, baseline_output, self.n_steps)
        return output, baseline_output, self._delta


class IntegratedGradients(Futureless, GradientAttribution):
    """A drop-in for ``captum.attr.IntegratedGradients``, computed by :func:`explain`.

    Same arguments, results, return types and shapes as Captum 0.9, except that
    ``riemann_trapezoid`` is the correct trapezoid rule (Captum's weights sum to
    ``(n - 1)/n``) and weights stay in the inputs' precision (Captum casts them to
    float32). Path points are chunked to a memory budget unless
    ``internal_batch_size`` is given.

    >>> import torch, integrad
    >>> ig = integrad.IntegratedGradients(torch.nn.Linear(4, 3))
    >>> attr, delta = ig.attribute(torch.ones(2, 4), target=0, return_convergence_delta=True)
    >>> attr.shape, delta.shape
    (torch.Size([2, 4]), torch.Size([2]))
    """

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = True) -> None:
        check_callable(forward_func)
        check_flag(multiply_by_inputs, "multiply_by_inputs")
        self.forward_func = forward_func
        self.multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: object = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        *,
        max_memory: int | None = None,
        tolerance: float | None = None,
        max_steps: int | None = None,
    ) -> TensorOrTuple | tuple[TensorOrTuple, torch.Tensor]:
        """Attributions shaped like ``inputs``; with ``(attributions, delta)`` on request.

        ``tolerance`` and ``max_steps`` select tolerance mode, as in :func:`explain`
        (use :func:`explain` to also get the error estimates and converged flags).
        """
        check_flag(return_convergence_delta, "return_convergence_delta")
        run = _Run(
            self.forward_func,
            inputs,
            baselines,
            target,
            additional_forward_args,
            n_steps,
            method,
            internal_batch_size,
            max_memory,
            tolerance,
            max_steps,
        )
        attributions = run.attributions(self.multiply_by_inputs)
        if return_convergence_delta:
            return attributions, run.completeness()[2]
        if run.guarded and not completeness_silenced():
            run.completeness()  # F(x), F(x') for the completeness guard
        return attributions
