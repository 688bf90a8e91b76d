"""Error-controlled Integrated Gradients: ask for an accuracy, get it per example.

``explain(..., tolerance=0.01)`` integrates every example on a ladder of nested rules
and stops each one, independently, as soon as both

* its estimated relative L2 error of the attribution vector is ≤ ``tolerance``, and
* its completeness gap ``|delta| ≤ tolerance · |F(x) − F(x')|`` (plus a floor of
  ``tolerance × 1e-3 × max(|F(x)|, |F(x')|)`` so that a near-zero output change does
  not demand an exact zero).

The completeness gap alone understates the per-feature error 3–6× (cancellation
across features), so the first condition compares two rules per example. Pending
examples of a batch go through the engine together, rung after rung, within its
memory budget. An example still failing at ``max_steps`` evaluations is returned with
``converged = False`` and a warning, never as if it had converged.

Two ladders, chosen from the model's modules:

``piecewise`` (any ReLU-like or max-pooling module, or a model that cannot be
inspected): the integrand is piecewise constant along the path and every rule
converges only as O(1/n). The rule is the trapezoid rule in ``t`` after the
substitution ``α = t²(3 − 2t)``, which clusters nodes near both ends (where the
gradient of a network changes fastest, as Gauss–Legendre's nodes do) and gives the
end nodes weight 0, so the rung with ``m`` cells costs ``m − 1`` evaluations. Rungs
double ``m`` (6, 12, 24, …) and reuse every evaluation of the rung before. The error
estimate of rung ``m`` is ``κ·‖A_m − A_{m/2}‖`` with ``κ = 0.7``: with O(1/n)
convergence and weakly correlated errors the true error is about ``1/√5 ≈ 0.45`` to
``1`` times the difference; 0.7 is the value measured on a trained digits CNN to be
exceeded by fewer than 5% of examples (``bench/tolerance.py``).

``smooth`` (a module with only smooth nonlinearities: GELU, tanh, sigmoid, softmax …):
Gauss–Legendre converges exponentially, so the rungs are Gauss–Legendre rules of
4, 8, 16, … nodes (not nested: each rung costs its nodes again) and the error of
rung ``n`` is estimated from the relative difference ``d`` to rung ``n/2`` as
``min(d, (200 d)^{1.5})``, QUADPACK's rule for rules that converge this fast (``d``
itself is about the error of the coarser rung).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from ._checks import user_stacklevel
from ._engine import Engine
from ._inputs import check_positive_int, flat_rows
from ._modules import KINKED, is_smooth_module, owner
from .quadrature import METHODS, rule

__all__ = [
    "DEFAULT_MAX_STEPS",
    "KAPPA",
    "Tolerated",
    "check_tolerance",
    "integrate_to_tolerance",
    "is_smooth",
]

DEFAULT_MAX_STEPS = 1024
"""Default cap on forward+backward evaluations per example in tolerance mode."""

KAPPA = 0.7
"""Error of a piecewise rung as a fraction of its difference to the rung before."""

FIRST_CELLS = 6
"""Cells of the first piecewise rung (5 evaluations); rungs double it."""

FIRST_NODES = 4
"""Nodes of the first smooth (Gauss–Legendre) rung; rungs double it."""


def is_smooth(forward_func: object) -> bool:
    """True if ``forward_func`` is a module whose nonlinearities are all smooth.

    Needs at least one known smooth nonlinearity and no piecewise-linear one; plain
    functions and models built only from affine modules (whose forward may call
    ``F.relu``, invisible here) count as piecewise, the safe choice.
    """
    model = owner(forward_func)
    if model is None:
        return False
    modules = list(model.modules())
    if any(isinstance(m, KINKED) for m in modules):
        return False
    return any(is_smooth_module(m) for m in modules)


@dataclass(frozen=True)
class Tolerated:
    """What tolerance mode hands back to :func:`integrad.explain`."""

    grads: tuple[torch.Tensor, ...]
    """Per example, the integrated gradient (not yet multiplied by inputs − baselines)."""
    output: torch.Tensor
    baseline_output: torch.Tensor
    error_estimate: torch.Tensor
    converged: torch.Tensor
    points: torch.Tensor
    """Path points in each example's final rule."""
    ladder: str


def integrate_to_tolerance(
    engine: Engine, tolerance: float, max_steps: int, smooth: bool | None = None
) -> Tolerated:
    """Integrate every example of ``engine``'s problem until it meets ``tolerance``.

    ``smooth`` picks the ladder; by default it is read from the problem's forward_func
    (layer IG passes its model's, since its engine runs a wrapper).
    """
    if smooth is None:
        smooth = is_smooth(engine.problem.forward_func)
    least = 2 * FIRST_NODES + FIRST_NODES if smooth else 2 * FIRST_CELLS - 1
    if max_steps < least:
        raise ValueError(
            f"max_steps must be at least {least} (two rungs, to estimate the error) for "
            f"this model, got {max_steps}"
        )
    output, baseline_output = engine.ends()
    ladder = _Smooth(engine) if smooth else _Piecewise(engine)
    batch = engine.problem.batch
    problem = engine.problem
    diffs = tuple(x - b for x, b in zip(problem.inputs, problem.baselines, strict=True))
    # Per-example bookkeeping lives on the inputs' device, as the outputs do.
    device = output.device
    change = (output - baseline_output).double()
    floor = tolerance * 1e-3 * torch.maximum(output.abs(), baseline_output.abs()).double()
    allowed_gap = tolerance * change.abs() + floor

    grads = ladder.first()
    pending = torch.ones(batch, dtype=torch.bool, device=device)
    estimate = torch.full((batch,), math.inf, dtype=torch.float64, device=device)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    points = torch.zeros(batch, dtype=torch.long, device=device)
    while pending.any() and ladder.evaluations_next() <= max_steps:
        new = ladder.next(pending)
        rows = pending.nonzero().squeeze(1)
        attr_new = _attributions(new, diffs, rows)
        attr_old = _attributions(grads, diffs, rows)
        size = attr_new.norm(dim=1).clamp_min(torch.finfo(attr_new.dtype).tiny)
        rel = (attr_new - attr_old).norm(dim=1) / size
        estimate[rows] = ladder.estimate(rel)
        gap = (attr_new.sum(dim=1) - change[rows]).abs()
        for g, n in zip(grads, new, strict=True):
            g[rows] = n[rows]
        points[rows] = ladder.points
        ok = (estimate[rows] <= tolerance) & (gap <= allowed_gap[rows])
        converged[rows[ok]] = True
        pending[rows[ok]] = False
    if pending.any():
        worst = int(pending.sum())
        warnings.warn(
            f"tolerance={tolerance:g} was not met for {worst} of {batch} examples within "
            f"max_steps={max_steps} evaluations (estimated errors up to "
            f"{float(estimate[pending].max()):.3g}); they are flagged in "
            "Explanation.converged. Raise max_steps, or compute in float64 if the "
            "tolerance is near the inputs' precision.",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )
    return Tolerated(
        grads,
        output,
        baseline_output,
        estimate,
        converged,
        points,
        "smooth" if smooth else "piecewise",
    )


def _attributions(
    grads: tuple[torch.Tensor, ...], diffs: tuple[torch.Tensor, ...], rows: torch.Tensor
) -> torch.Tensor:
    """Attributions ``g ⊙ (x − x')`` of examples ``rows``, one float64 row each."""
    return flat_rows(tuple(g[rows] * d[rows] for g, d in zip(grads, diffs, strict=True)))


class _Piecewise:
    """Nested trapezoid rungs in ``t`` with ``α = t²(3 − 2t)``: rung ``m`` has m − 1 points."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cells = FIRST_CELLS
        self.raw = tuple(torch.zeros_like(x) for x in engine.problem.inputs)
        self.mass = torch.zeros(
            engine.problem.batch, dtype=torch.float64, device=engine.evals.device
        )
        self.points = 0

    def _add(self, pending: torch.Tensor, ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rows = pending.nonzero().squeeze(1)
        alphas = ts * ts * (3 - 2 * ts)
        density = 6 * ts * (1 - ts)
        sums = self.engine.gradients(
            rows.repeat(len(ts)),
            alphas.repeat_interleave(len(rows)),
            density.repeat_interleave(len(rows)),
        ).sums
        for acc, s in zip(self.raw, sums, strict=True):
            acc.add_(s)
        self.mass[rows] += density.sum()
        self.points = self.cells - 1
        return tuple(
            acc
            / self.mass.clamp_min(1e-300)
            .to(device=acc.device, dtype=acc.dtype)
            .view(-1, *[1] * (acc.dim() - 1))
            for acc in self.raw
        )

    def first(self) -> tuple[torch.Tensor, ...]:
        device = self.engine.evals.device
        ts = torch.arange(1, self.cells, dtype=torch.float64, device=device) / self.cells
        return self._add(torch.ones(self.engine.problem.batch, dtype=torch.bool, device=device), ts)

    def evaluations_next(self) -> int:
        return 2 * self.cells - 1

    def next(self, pending: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.cells *= 2
        ts = torch.arange(1, self.cells, 2, dtype=torch.float64, device=pending.device) / self.cells
        return self._add(pending, ts)

    @staticmethod
    def estimate(rel: torch.Tensor) -> torch.Tensor:
        return KAPPA * rel


class _Smooth:
    """Gauss–Legendre rungs of 4, 8, 16, … nodes; each rung is evaluated afresh."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.nodes = FIRST_NODES
        self.spent = 0
        self.points = 0

    def _rung(self, pending: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.spent += self.nodes
        self.points = self.nodes
        rows = pending.nonzero().squeeze(1)
        return self.engine.integrate(rule("gausslegendre", self.nodes), rows)

    def first(self) -> tuple[torch.Tensor, ...]:
        batch, device = self.engine.problem.batch, self.engine.evals.device
        return self._rung(torch.ones(batch, dtype=torch.bool, device=device))

    def evaluations_next(self) -> int:
        return self.spent + 2 * self.nodes

    def next(self, pending: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.nodes *= 2
        return self._rung(pending)

    @staticmethod
    def estimate(rel: torch.Tensor) -> torch.Tensor:
        return torch.minimum(rel, (200 * rel) ** 1.5)


def check_tolerance(tolerance: object, max_steps: object, method: str) -> None:
    """Validate tolerance-mode arguments at the public boundary."""
    if max_steps is not None and tolerance is None:
        raise ValueError("max_steps is for tolerance mode; give tolerance= too, or use n_steps")
    if tolerance is None:
        return
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not math.isfinite(tolerance)
        or tolerance <= 0
    ):
        raise ValueError(f"tolerance must be a positive finite number, got {tolerance!r}")
    if max_steps is not None:
        check_positive_int(max_steps, "max_steps")
    if method not in METHODS:  # idgi, exact: their own integration
        raise ValueError(
            f"tolerance mode chooses its own rules per example; method={method!r} cannot be "
            "combined with tolerance"
        )
