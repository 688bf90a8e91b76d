"""Diagnostics: how fast do the rules converge here, and are these attributions complete?

:func:`convergence` runs every rule at every step count on the same inputs and reports
the completeness error and the per-feature error against the finest result;
:func:`check_completeness` checks given attributions against ``F(x) − F(x')``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._checks import CompletenessWarning
from ._engine import Engine, PathProblem
from ._inputs import TargetType, TensorOrTuple, check_positive_int, flat_rows
from .integrated_gradients import explain
from .quadrature import METHODS

__all__ = ["CompletenessReport", "ConvergenceTable", "check_completeness", "convergence"]

DEFAULT_STEPS: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class ConvergenceRow:
    """One rule at one step count, summarised over the batch."""

    method: str
    n_steps: int
    completeness_median: float
    """Median over examples of ``|delta| / |F(x) − F(x')|``."""
    completeness_max: float
    error_median: float
    """Median over examples of the relative L2 error against the reference."""
    error_max: float


@dataclass(frozen=True)
class ConvergenceTable:
    """The result of :func:`convergence`: one row per (method, n_steps)."""

    rows: tuple[ConvergenceRow, ...]
    reference: str
    """How the reference attributions were computed."""

    def select(self, method: str) -> tuple[ConvergenceRow, ...]:
        return tuple(r for r in self.rows if r.method == method)

    def __str__(self) -> str:
        head = (
            f"{'method':<18}{'n_steps':>8}{'|delta| med':>13}{'|delta| max':>13}"
            f"{'error med':>12}{'error max':>12}"
        )
        lines = [f"reference: {self.reference}", head]
        lines += [
            f"{r.method:<18}{r.n_steps:>8}{r.completeness_median:>13.3g}"
            f"{r.completeness_max:>13.3g}{r.error_median:>12.3g}{r.error_max:>12.3g}"
            for r in self.rows
        ]
        return "\n".join(lines)

    def plot(self, ax: Any = None, *, kind: str = "error") -> Any:
        """Log-log plot of the median (line) and max (dashed) error against n_steps.

        ``kind`` is ``"error"`` (per-feature, against the reference) or
        ``"completeness"``. Needs matplotlib; returns the axes.
        """
        if kind not in ("error", "completeness"):
            raise ValueError(f"kind must be 'error' or 'completeness', got {kind!r}")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for method in dict.fromkeys(r.method for r in self.rows):
            rows = [r for r in self.select(method) if r.n_steps]
            steps = [r.n_steps for r in rows]
            med = [getattr(r, f"{kind}_median") for r in rows]
            top = [getattr(r, f"{kind}_max") for r in rows]
            (line,) = ax.loglog(steps, _positive(med), marker="o", label=method)
            ax.loglog(steps, _positive(top), linestyle="--", color=line.get_color())
        ax.set_xlabel("n_steps")
        ax.set_ylabel(
            "relative L2 error (median, max dashed)"
            if kind == "error"
            else "|delta| / |F(x) − F(x')| (median, max dashed)"
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        return ax


def _positive(values: Sequence[float]) -> list[float]:
    # Exact zeros (a row equal to the reference) have no place on a log axis.
    return [v if v > 0 else math.nan for v in values]


def convergence(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    *,
    baselines: object = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
    steps: Sequence[int] = DEFAULT_STEPS,
    methods: Sequence[str] = ("gausslegendre", "riemann_middle", "riemann_trapezoid"),
    reference_steps: int | None = None,
    max_memory: int | None = None,
) -> ConvergenceTable:
    """Completeness and per-feature error of each rule in ``methods`` at each of ``steps``.

    The reference is Gauss–Legendre with ``reference_steps`` nodes (default: twice the
    largest of ``steps``), computed in the inputs' precision; errors are relative L2
    norms over all features of an example.

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> x = torch.ones(2, 4)
    >>> table = integrad.convergence(model, x, steps=(2, 4), methods=("gausslegendre",))
    >>> [r.n_steps for r in table.rows]
    [2, 4]
    """
    steps = tuple(steps)
    if not steps or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in steps):
        raise ValueError(f"steps must be a non-empty sequence of positive ints, got {steps!r}")
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ValueError(f"methods must name rules of {list(METHODS)}, got {list(methods)!r}")
    if reference_steps is not None:
        check_positive_int(reference_steps, "reference_steps")
    n_ref = 2 * max(steps) if reference_steps is None else reference_steps
    common = dict(
        baselines=baselines,
        target=target,
        additional_forward_args=additional_forward_args,
        max_memory=max_memory,
    )
    ref = explain(forward_func, inputs, n_steps=n_ref, **common)
    ref_flat = flat_rows(ref.attributions)
    scale = ref_flat.norm(dim=1).clamp_min(torch.finfo(ref_flat.dtype).tiny)
    rows = []
    for method in methods:
        for n in steps:
            if method == "riemann_trapezoid" and n < 2:
                continue
            with warnings.catch_warnings():
                # The table reports every gap: coarse rules are there to be seen missing.
                warnings.simplefilter("ignore", CompletenessWarning)
                exp = explain(forward_func, inputs, n_steps=n, method=method, **common)
            error = (flat_rows(exp.attributions) - ref_flat).norm(dim=1) / scale
            gap = exp.relative_delta.double()
            rows.append(
                ConvergenceRow(
                    method,
                    n,
                    float(gap.median()),
                    float(gap.max()),
                    float(error.median()),
                    float(error.max()),
                )
            )
    return ConvergenceTable(tuple(rows), f"gausslegendre, n_steps={n_ref}")


@dataclass(frozen=True)
class CompletenessReport:
    """Per example: ``F(x)``, ``F(x')``, their difference, the attributions' sum, errors."""

    output: torch.Tensor
    baseline_output: torch.Tensor
    change: torch.Tensor
    total: torch.Tensor
    abs_error: torch.Tensor
    rel_error: torch.Tensor
    """``abs_error / |change|`` (inf where the change is 0 and the sum is not)."""
    within_tolerance: torch.Tensor
    """Per example (bool): the sum is within ``tolerance`` of the change."""
    tolerance: float

    @property
    def passed(self) -> bool:
        """Every example is within ``tolerance``: a plain bool, so ``assert report.passed``."""
        return bool(self.within_tolerance.all())

    @property
    def all_passed(self) -> bool:
        """The same as :attr:`passed` (its name before ``passed`` became a bool)."""
        return self.passed

    def __str__(self) -> str:
        head = f"{'':>4}{'F(x)':>12}{'F(x′)':>12}{'change':>12}{'sum':>12}{'rel err':>10}  pass"
        lines = [f"completeness within {self.tolerance:g}:", head]
        for i in range(int(self.output.numel())):
            lines.append(
                f"{i:>4}{float(self.output[i]):>12.5g}{float(self.baseline_output[i]):>12.5g}"
                f"{float(self.change[i]):>12.5g}{float(self.total[i]):>12.5g}"
                f"{float(self.rel_error[i]):>10.3g}  {'yes' if self.within_tolerance[i] else 'NO'}"
            )
        return "\n".join(lines)


def check_completeness(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    *,
    baselines: object = None,
    target: TargetType = None,
    additional_forward_args: Any = None,
    tolerance: float = 0.01,
) -> CompletenessReport:
    """Check ``sum(attributions) ≈ F(x) − F(x')`` per example, from forward passes.

    An example passes when ``|sum − change| ≤ tolerance · |change|``, or, for a
    change that is exactly 0, when the sum is within ``tolerance`` times the larger
    of ``|F(x)|`` and ``|F(x')|`` of it. Works for attributions from any library.

    >>> import torch, integrad
    >>> model = torch.nn.Linear(3, 1)
    >>> x = torch.ones(2, 3)
    >>> attr = integrad.explain(model, x).attributions
    >>> report = integrad.check_completeness(model, x, attr, tolerance=1e-4)
    >>> report.passed, report.within_tolerance.tolist()
    (True, [True, True])
    """
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not tolerance >= 0
        or not math.isfinite(tolerance)
    ):
        raise ValueError(f"tolerance must be a non-negative finite number, got {tolerance!r}")
    problem, _ = PathProblem.build(forward_func, inputs, baselines, target, additional_forward_args)
    parts = attributions if isinstance(attributions, tuple) else (attributions,)
    if (
        len(parts) != len(problem.inputs)
        or not all(isinstance(a, torch.Tensor) for a in parts)
        or any(a.shape != x.shape for a, x in zip(parts, problem.inputs, strict=False))
    ):
        raise ValueError(
            f"attributions must have the inputs' shapes {[tuple(x.shape) for x in problem.inputs]}"
            f", got {[tuple(getattr(a, 'shape', ())) or type(a).__name__ for a in parts]}"
        )
    output, baseline_output = (v.double() for v in Engine(problem).ends())
    change = output - baseline_output
    total = flat_rows(parts).sum(dim=1)
    abs_error = (total - change).abs()
    # An exact sum for a zero change has no error (0/0 would report NaN).
    rel_error = torch.where(abs_error == 0, 0.0, abs_error / change.abs())
    scale = torch.where(
        change != 0, change.abs(), torch.maximum(output.abs(), baseline_output.abs())
    )
    return CompletenessReport(
        output,
        baseline_output,
        change,
        total,
        abs_error,
        rel_error,
        within_tolerance=abs_error <= tolerance * scale,
        tolerance=float(tolerance),
    )
