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

Two ladders, tried in the order the model's modules suggest:

``piecewise`` (a ReLU-like, ELU-like or max-pooling module, or ``F.relu``, ``clamp`` and
the like called in a ``forward``: :func:`ladder_of`): the integrand is piecewise
constant along the path and every rule converges only as O(1/n). The rule is the
trapezoid rule in ``t`` after the substitution ``α = t²(3 − 2t)``, which clusters nodes
near both ends (where the gradient of a network changes fastest, as Gauss–Legendre's
nodes do) and gives the end nodes weight 0, so the rung with ``m`` cells costs ``m − 1``
evaluations. Rungs double ``m`` (6, 12, 24, …) and reuse every evaluation of the rung
before. The error estimate of rung ``m`` is ``κ · max(d_m, d_{m/2}/2)`` with
``d_m = ‖A_m − A_{m/2}‖`` (relative) and ``κ = 0.8``: with O(1/n) convergence and weakly
correlated errors the true error is about ``1/√5 ≈ 0.45`` to ``1`` times the difference.
κ was chosen on the calibration set only (``bench/calibrate.py``: 192 test
digits of the digits CNN trained with seed 0), from rung-by-rung logs of the estimate and
the true error: the smallest of 0.5, 0.6, …, 1.4 that leaves at most 1% of the examples
beyond the tolerance at both 1e-2 and 1e-3 (0.5% and 0%; 0.7 left 2.1% at both), so that
a set of 24 rarely has two beyond it. A jump's error changes sign at random as the cells
halve, so one difference can be small by chance (seen out of sample: an estimate 3.5×
below the error); the previous difference, halved as O(1/n) predicts, is a floor under it
(``bench/certificate.py``).

``smooth`` (analytic nonlinearities only; also models that cannot be inspected, labelled
``unknown``): the rungs are the nested Gauss–Kronrod–Patterson rules of 1, 3, 7,
15, …, 255 nodes (in the private ``_patterson`` module). Each rung adds new nodes to the
previous rung's, so no evaluation is discarded: rung ``m`` costs ``m`` evaluations in all,
and integrates polynomials of degree ``(3m + 1)/2`` exactly (Gauss–Legendre: ``2m − 1``).
The error of a rung is estimated from its relative difference ``d`` to the rung before and
the ratio ``r`` of ``d`` to the difference before it, as ``d · min(1, c · r)²``: where the
integrand is analytic the error falls geometrically in the degree, which doubles from rung
to rung, so the new rung's error is about ``d · r²``; where convergence is slow (``c · r ≥
1``) the estimate is ``d`` itself. The rung before the 1-node rung is the zero rule (no
nodes, integral 0), whose relative difference to the 1-node rung is exactly 1, so the 3-node
rung is judged too: ``r = d``, estimate ``d · min(1, c₀ · d)²``, and a smooth example can be
certified at 3 nodes. ``c = SMOOTH_SAFETY = 2`` and ``c₀ = FIRST_SAFETY = 4`` were chosen on
calibration sets only (``bench/calibrate.py``: a random GELU/tanh MLP and two MiniLM
sentences), from rung-by-rung logs of the difference and the true error: on the grid c ∈
{1.5, 2, 2.5}, c₀ ∈ {3, 4, 6} every pair kept every calibration example within the tolerance
at 1e-2, 1e-3, 1e-6 and 1e-9; c = 2 makes the estimate 1.8× that of 1.5, and c₀ = 4 (the
first rung compares against no rule at all) leaves the worst calibration error at 1e-2 at
0.1 tolerance where 3 leaves 0.7. A model whose modules show neither a kink nor a smooth
nonlinearity (``unknown``: ``F.relu`` or ``torch.tanh`` in ``forward``, a module type
integrad does not know) is probed: up to ``PROBE_POINTS`` nodes the estimate is ``d``
itself, as safe as the piecewise one; then the examples whose differences still shrink no
faster than O(1/n) (``r > KINKED_RATIO``) go on along the piecewise ladder, the others along
the smooth one. So the modules only decide which ladder is tried first, and no model is
certified by a rule that assumes the wrong kind of integrand; a probed example judged smooth
but still short of the tolerance at the smooth ladder's last rung goes on along the
piecewise ladder too. The smooth ladder ends at 255 nodes: an example of a smooth model
still short of the tolerance there is flagged, not certified. ``max_steps`` defaults to
``max(1024, 16 / tolerance)`` (:func:`default_max_steps`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import user_stacklevel
from ._engine import Engine
from ._inputs import check_positive_int, flat_rows
from ._memory import Accumulator
from ._modules import calls_kinks, is_kinked_module, is_sharp_module, is_smooth_module, owner
from ._patterson import nested_rungs
from .exact import TooManyRegions, check_model, exact
from .quadrature import METHODS

__all__ = [
    "DEFAULT_MAX_STEPS",
    "FIRST_SAFETY",
    "KAPPA",
    "SMOOTH_SAFETY",
    "STEPS_TIMES_TOLERANCE",
    "Tolerated",
    "check_tolerance",
    "default_max_steps",
    "integrate_to_tolerance",
    "is_smooth",
    "ladder_of",
]

DEFAULT_MAX_STEPS = 1024
"""The least default cap on evaluations per example (:func:`default_max_steps`)."""

STEPS_TIMES_TOLERANCE = 16
"""The default cap is at least this over the tolerance: piecewise errors fall as ``c/n``, and a
path whose output barely changes needs ``c`` up to ~16 for its completeness gap."""

KAPPA = 0.8
"""Error of a piecewise rung as a fraction of its difference to the rung before."""

HISTORY = 0.5
"""Piecewise ladder: the previous difference, times this, is a floor under the estimate."""

FIRST_CELLS = 6
"""Cells of the first piecewise rung (5 evaluations); rungs double it."""

SMOOTH_SAFETY = 2.0
"""Factor on the convergence ratio in the smooth ladder's estimate ``d · min(1, c · r)²``."""

FIRST_SAFETY = 4.0
"""The same factor at the 3-node rung, whose ratio is taken against the zero rule."""


EXACT_MIN_REGIONS = 100
EXACT_REGIONS_TIMES_TOLERANCE = 0.5
"""Piecewise-linear models are integrated exactly when no example crosses more than
``max(100, 0.5 / tolerance)`` regions, about what the piecewise ladder spends there."""

PROBE_POINTS = 15
"""Smooth-ladder nodes after which a model of unknown modules is judged by its convergence."""

KINKED_RATIO = 0.25
"""A difference above this fraction of the one before, at the probe: O(1/n), a hidden kink."""


def default_max_steps(tolerance: float) -> int:
    """Tolerance mode's cap on evaluations per example when ``max_steps`` is not given.

    ``max(DEFAULT_MAX_STEPS, ⌈STEPS_TIMES_TOLERANCE / tolerance⌉)``; only examples that need
    the steps spend them.

    >>> default_max_steps(1e-2), default_max_steps(1e-3)
    (1600, 16000)
    """
    return max(DEFAULT_MAX_STEPS, math.ceil(STEPS_TIMES_TOLERANCE / tolerance - 1e-9))


def ladder_of(forward_func: object) -> str:
    """``"piecewise"``, ``"smooth"`` or ``"unknown"``: what the modules of ``forward_func`` say.

    ``piecewise``: a ReLU-like, ELU-like or max-pooling module (or an ``nn.RNN`` or a
    transformer layer with ReLU), or a ``forward`` — of ``forward_func`` itself or of a
    module class from outside PyTorch — that calls a kinked function such as ``F.relu``,
    ``clamp`` or ``abs`` (read from its source). ``smooth``: analytic nonlinearities only
    (GELU, tanh, LSTM, LayerNorm, …). ``unknown``: neither is visible (affine modules only,
    or a function without source), or a softplus steeper than ``beta = 20`` (whose bend the
    first rungs can miss together), so it is probed.
    """
    if not isinstance(forward_func, nn.Module) and calls_kinks(forward_func):
        return "piecewise"
    model = owner(forward_func)
    if model is None:
        return "unknown"
    modules = list(model.modules())
    if any(is_kinked_module(m) for m in modules):
        return "piecewise"
    if any(is_sharp_module(m) for m in modules):
        return "unknown"  # smooth, but its first rungs can agree on a wrong value: probed
    return "smooth" if any(is_smooth_module(m) for m in modules) else "unknown"


def is_smooth(forward_func: object) -> bool:
    """True unless ``forward_func``'s modules show a kink: the nested smooth ladder applies."""
    return ladder_of(forward_func) != "piecewise"


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
    engine: Engine, tolerance: float, max_steps: int | None = None
) -> Tolerated:
    """Integrate every example of ``engine``'s problem until it meets ``tolerance``.

    ``max_steps`` defaults to :func:`default_max_steps`. The ladder is read from the
    problem's model (``PathProblem.owner``: for layer IG the caller's model, not the
    wrapper).
    """
    if max_steps is None:
        max_steps = default_max_steps(tolerance)
    problem = engine.problem
    kind = ladder_of(problem.model if problem.model is not None else problem.forward_func)
    least = 3 if kind != "piecewise" else 2 * FIRST_CELLS - 1
    if max_steps < least:
        raise ValueError(
            f"max_steps must be at least {least} (two rungs, to estimate the error) for "
            f"this model, got {max_steps}"
        )
    ends: tuple[torch.Tensor, torch.Tensor] | None = None
    if kind == "piecewise":
        answer = _exact_if_cheaper(engine, tolerance, max_steps)
        if isinstance(answer, Tolerated):
            return answer
        ends = answer  # F at both ends if the region search evaluated them
    output, baseline_output = ends or engine.ends()
    batch = engine.problem.batch
    # Per-example bookkeeping stays on the CPU, whatever the model's device.
    change = (output - baseline_output).double().cpu()
    allowed = _allowed_gap(tolerance, output, baseline_output)
    climb = _Climb(engine, tolerance, max_steps, change, allowed)
    everyone = torch.ones(batch, dtype=torch.bool)
    if kind == "piecewise":
        climb.run(_Piecewise(engine), everyone)
    elif kind == "smooth":
        climb.run(_Smooth(engine), everyone)
    else:
        # Probe: the smooth ladder up to PROBE_POINTS nodes. Examples whose differences
        # still shrink no faster than O(1/n) there have a kink on their path that the
        # modules did not show: they go on along the piecewise ladder, the rest smooth.
        # Until then its estimate is the difference itself, as safe as the piecewise one.
        probe = _Smooth(engine, trusted=False)
        climb.run(probe, everyone, until=PROBE_POINTS)
        kinked = climb.pending & (probe.ratio > KINKED_RATIO)
        spent = probe.points
        probe.trusted = True
        climb.run(probe, climb.pending & ~kinked, resume=True)
        climb.run(_Piecewise(engine), kinked, spent=spent)
        # Judged smooth at the probe, yet short of the tolerance at the smooth ladder's end:
        # a kink further along. The piecewise ladder takes them on if max_steps leaves room.
        if probe.points + 2 * FIRST_CELLS - 1 <= max_steps:
            climb.run(_Piecewise(engine), climb.pending & ~kinked, spent=probe.points)
    pending, estimate = climb.pending, climb.estimate
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
        climb.grads, output, baseline_output, estimate, climb.converged, climb.points, kind
    )


def _allowed_gap(
    tolerance: float, output: torch.Tensor, baseline_output: torch.Tensor
) -> torch.Tensor:
    """Per example, the completeness gap tolerance mode accepts (float64, on the CPU)."""
    change = (output - baseline_output).double().cpu()
    floor = tolerance * 1e-3 * torch.maximum(output.abs(), baseline_output.abs()).double().cpu()
    return tolerance * change.abs() + floor


def _exact_if_cheaper(
    engine: Engine, tolerance: float, max_steps: int
) -> Tolerated | tuple[torch.Tensor, torch.Tensor] | None:
    """Exact IG when the model is piecewise-linear and its paths cross few regions.

    The region search stops (after forward passes only) once an example crosses more
    than about what the piecewise ladder would spend at ``tolerance``: then F at the
    ends it evaluated; None where exact IG does not apply. An exact answer is checked
    like any rung: if a completeness gap exceeds what the tolerance allows (a model
    exact mode misjudged), F at the ends goes to the ladder instead.
    """
    model = engine.problem.owner
    if model is None or engine.problem.forward_func is not model:
        return None  # layer and neuron IG run wrappers whose regions are not the model's
    try:
        check_model(model)
    except ValueError:
        return None
    cap = min(max_steps, max(EXACT_MIN_REGIONS, round(EXACT_REGIONS_TIMES_TOLERANCE / tolerance)))
    try:
        found = exact(engine, max_regions=cap)
    except ValueError:  # a nonlinearity the hooks cannot see: the ladder copes with it
        return None
    if isinstance(found, TooManyRegions):
        return found.output, found.baseline_output
    grads, output, baseline_output, regions = found
    batch = engine.problem.batch
    sums = flat_rows(tuple(g * d for g, d in zip(grads, engine.diffs, strict=True))).sum(1)
    gap = (sums.cpu() - (output - baseline_output).double().cpu()).abs()
    if bool((gap > _allowed_gap(tolerance, output, baseline_output)).any()):
        return output, baseline_output
    return Tolerated(
        grads,
        output,
        baseline_output,
        torch.zeros(batch, dtype=torch.float64),
        torch.ones(batch, dtype=torch.bool),
        regions,
        "exact",
    )


class _Climb:
    """Per-example state of tolerance mode, climbed along one ladder or, per example, two."""

    def __init__(
        self,
        engine: Engine,
        tolerance: float,
        max_steps: int,
        change: torch.Tensor,
        allowed_gap: torch.Tensor,
    ) -> None:
        problem = engine.problem
        batch = problem.batch
        self.tolerance, self.max_steps = tolerance, max_steps
        self.change, self.allowed_gap = change, allowed_gap
        self.diffs = engine.diffs
        self.grads = tuple(torch.zeros_like(x) for x in problem.inputs)
        self.pending = torch.zeros(batch, dtype=torch.bool)
        self.estimate = torch.full((batch,), math.inf, dtype=torch.float64)
        self.converged = torch.zeros(batch, dtype=torch.bool)
        self.points = torch.zeros(batch, dtype=torch.long)

    def run(
        self,
        ladder: _Piecewise | _Smooth,
        active: torch.Tensor,
        until: int | None = None,
        resume: bool = False,
        spent: int = 0,
    ) -> None:
        """Climb ``ladder`` with examples ``active`` until each converges, the ladder or
        ``max_steps`` (less ``spent`` before) ends, or the next rung would pass ``until``."""
        if not bool(active.any()):
            return
        self.pending = self.pending | active
        if resume and isinstance(ladder, _Smooth):
            grads = ladder.current
        else:
            grads = ladder.first(active)
            rows = active.nonzero().squeeze(1)
            for g, n in zip(self.grads, grads, strict=True):
                g[rows] = n[rows]
        limit = self.max_steps - spent if until is None else min(until, self.max_steps)
        mine = active.clone()
        while mine.any() and ladder.evaluations_next() <= limit:
            new = ladder.next(mine)
            rows = mine.nonzero().squeeze(1)
            attr_new = _attributions(new, self.diffs, rows)
            attr_old = _attributions(grads, self.diffs, rows)
            size = attr_new.norm(dim=1).clamp_min(torch.finfo(attr_new.dtype).tiny)
            rel = ((attr_new - attr_old).norm(dim=1) / size).cpu()
            self.estimate[rows] = ladder.estimate(rel, rows)
            gap = (attr_new.sum(dim=1).cpu() - self.change[rows]).abs()
            for g, n, own in zip(self.grads, new, grads, strict=True):
                g[rows] = n[rows]
                own[rows] = n[rows]
            self.points[rows] = ladder.points
            ok = (self.estimate[rows] <= self.tolerance) & (gap <= self.allowed_gap[rows])
            self.converged[rows[ok]] = True
            self.pending[rows[ok]] = False
            mine[rows[ok]] = False


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
        self.mass = torch.zeros(engine.problem.batch, dtype=torch.float64)
        self.previous = torch.full((engine.problem.batch,), math.nan, dtype=torch.float64)
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

    def first(self, active: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ts = torch.arange(1, self.cells, dtype=torch.float64) / self.cells
        return self._add(active, ts)

    def evaluations_next(self) -> int:
        return 2 * self.cells - 1

    def next(self, pending: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.cells *= 2
        ts = torch.arange(1, self.cells, 2, dtype=torch.float64) / self.cells
        return self._add(pending, ts)

    def estimate(self, rel: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        # A jump's error changes sign at random as the cells halve, so one difference can
        # be small by chance: the one before, halved as O(1/n) says, bounds it from below.
        before = self.previous[rows]
        self.previous[rows] = rel
        return KAPPA * torch.maximum(rel, HISTORY * before.nan_to_num(0.0))


_RUNGS = nested_rungs()


class _Smooth:
    """Nested Gauss–Kronrod–Patterson rungs of 1, 3, 7, …, 255 nodes: nothing is evaluated twice.

    The gradients at a rung's new nodes go, with their weight in each rule, into the sums
    of this rung and of every later one, so each rung's integral is complete when reached.
    """

    def __init__(self, engine: Engine, trusted: bool = True) -> None:
        self.engine = engine
        self.trusted = trusted
        """Whether the integrand is known to be smooth: else the estimate is ``d`` itself."""
        self.level = -1
        self.sums = [Accumulator(engine.problem.inputs) for _ in _RUNGS]
        # The zero rule before the 1-node rung: its relative difference to that rung is 1.
        self.previous = torch.ones(engine.problem.batch, dtype=torch.float64)
        self.ratio = torch.ones(engine.problem.batch, dtype=torch.float64)
        """Per example, its last difference over the one before (the zero rule's 1 at first)."""
        self.points = 0
        self.current: tuple[torch.Tensor, ...] = ()

    def _rung(self, pending: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.level += 1
        new, weights = _RUNGS[self.level]
        rows = pending.nonzero().squeeze(1)
        m = int(rows.numel())
        point_rows = rows.repeat(len(new))
        later = [w.repeat_interleave(m) for w in weights]
        done = 0

        def spread(grads: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            nonlocal done
            n = int(grads[0].shape[0])
            part = slice(done, done + n)
            done += n
            for acc, w in zip(self.sums[self.level + 1 :], later[1:], strict=True):
                acc.add(point_rows[part], grads, w[part])
            return grads

        sums = self.engine.gradients(
            point_rows, new.repeat_interleave(m), later[0], transform=spread
        ).sums
        for acc, s in zip(self.sums[self.level].sums, sums, strict=True):
            acc.add_(s.to(acc.dtype))
        self.points = len(new) + (self.points if self.level else 0)
        self.current = tuple(
            s.to(x.dtype, copy=True)
            for s, x in zip(self.sums[self.level].sums, self.engine.problem.inputs, strict=True)
        )
        return self.current

    def first(self, active: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._rung(active)

    def evaluations_next(self) -> int:
        if self.level + 1 >= len(_RUNGS):
            return math.inf  # type: ignore[return-value]
        return self.points + len(_RUNGS[self.level + 1][0])

    def next(self, pending: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._rung(pending)

    def estimate(self, rel: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ratio = (rel / self.previous[rows]).nan_to_num(1.0, posinf=1.0)
        self.previous[rows] = rel
        self.ratio[rows] = ratio
        if not self.trusted:
            return rel
        safety = FIRST_SAFETY if self.level == 1 else SMOOTH_SAFETY
        return rel * (safety * ratio).clamp(max=1.0) ** 2


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
