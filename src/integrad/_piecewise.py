"""Tolerance mode's ladder for piecewise (ReLU-like) models: nested trapezoid rungs, jumped.

Along a path through a ReLU network the gradient is piecewise constant, so every rule
converges only as O(1/n) with an error that changes sign at random from rule to rule.
The rule is the trapezoid rule in ``t`` after the substitution ``α = t²(3 − 2t)``, which
clusters nodes near both ends and gives the end nodes weight 0: the rung of ``m`` cells
costs ``m − 1`` evaluations, at ``t = j/m``.

A rung's points contain those of every rung whose cells divide ``m``, so each rung is
judged from its own sub-grids, at no extra evaluation: the estimate of its relative L2
error is ``κ · max(d(m/2, m), d(m/4, m/2) / 2)``, ``d(a, b)`` the relative difference
between the rules of ``a`` and ``b`` cells (``m/4 < 2`` cells: no second term). With
doubling rungs this is the rule tolerance mode always had (the difference to the rung
before, and the one before that halved as O(1/n) says, as a floor when one difference is
small by chance); rungs are kept multiples of 4 cells so that both sub-grids exist.

Because the sub-grids come free, an example need not climb rung by rung: from its first
rung of ``FIRST_CELLS`` it jumps to the multiple of its cells that its own estimate
predicts, ``k = ⌈AIM · s⌉`` times its cells (2 ≤ k ≤ ``MAX_FACTOR``), ``s`` the larger of
estimate / tolerance and completeness gap / its allowance (both fall as O(1/n)),
reusing every evaluation (the new rung's points include the old ones). An example short
of the tolerance there jumps again from the new rung the same way. Examples of a batch
take different rungs in one pass of the engine. ``AIM`` trades rungs that fall short (a
second jump, at least doubling the cells) against overshoot; ``KAPPA`` alone decides what
is certified. How both were chosen: :mod:`integrad.tolerance`'s docstring.
"""

from __future__ import annotations

import math

import torch

from ._engine import Engine
from ._inputs import flat_rows
from ._memory import Accumulator

__all__ = ["AIM", "FIRST_CELLS", "HISTORY", "KAPPA", "MAX_FACTOR", "SCOUT", "Piecewise"]

KAPPA = 0.8
"""Error of a piecewise rung as a fraction of its difference to its half-cells sub-grid."""

HISTORY = 0.5
"""The sub-grids' own difference, times this, is a floor under the estimate."""

FIRST_CELLS = 8
"""Cells of the first piecewise rung (7 evaluations); every later rung is a multiple."""

AIM = 0.7
"""The next rung has ``⌈AIM · shortfall⌉`` times the cells (at least 2)."""

MAX_FACTOR = 8
"""The largest jump, in multiples of the cells, taken at once."""

SCOUT = 4
"""Beyond ``MAX_FACTOR``, the jump goes about a ``SCOUT``-th of the predicted way."""


class Piecewise:
    """Per example, nested trapezoid rungs in ``t`` (``α = t²(3 − 2t)``), jumped by multiples.

    Three running sums per example: the current rung of ``m`` cells and its sub-grids of
    ``m/2`` and ``m/4`` cells, each ``Σ w(t) ∇F`` with its total weight ``Σ w(t)``.
    """

    def __init__(self, engine: Engine, tolerance: float) -> None:
        self.engine, self.tolerance = engine, tolerance
        batch = engine.problem.batch
        self.cells = torch.ones(batch, dtype=torch.long)
        """Per example, the cells of its current rung (1: nothing evaluated yet)."""
        self.sums = [Accumulator(engine.problem.inputs) for _ in range(3)]
        self.mass = torch.zeros(3, batch, dtype=torch.float64)
        self.shortfall = torch.full((batch,), math.inf, dtype=torch.float64)
        """Per example, how far its rung fell short: the larger of estimate / tolerance and
        completeness gap / its allowance (both fall as O(1/n) with the cells)."""

    def first(self, active: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Nothing yet: the first rung is the first :meth:`next` (and is judged too)."""
        return self.result()

    def result(self) -> tuple[torch.Tensor, ...]:
        """Per example, the integrated gradient of its current rung."""
        scale = 1 / self.mass[0].clamp_min(1e-300)
        return tuple(
            (s * scale.to(s.device).view(-1, *[1] * (s.dim() - 1))).to(x.dtype)
            for s, x in zip(self.sums[0].sums, self.engine.problem.inputs, strict=True)
        )

    def points_of(self, rows: torch.Tensor) -> torch.Tensor:
        return self.cells[rows] - 1

    def factors(self, rows: torch.Tensor, limit: int) -> torch.Tensor:
        """Per row, the multiple of its cells that its next rung takes (0: none fits)."""
        cells = self.cells[rows]
        room = torch.div(limit + 1, cells, rounding_mode="floor")
        wanted = (AIM * self.shortfall[rows]).nan_to_num(posinf=math.inf)
        # Far off: a scout rung about a SCOUT-th of the way, whose estimate predicts better.
        wanted = torch.where(wanted > MAX_FACTOR, wanted / SCOUT, wanted)
        wanted = wanted.clamp(2, 1e9).ceil().long()
        k = torch.where(cells == 1, torch.full_like(cells, FIRST_CELLS), wanted.minimum(room))
        return torch.where((k >= 2) & (k <= room), k, torch.zeros_like(k))

    def next(
        self, pending: torch.Tensor, limit: int
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor] | None:
        """Evaluate the next rung of each pending example whose rung fits in ``limit``
        evaluations; None when none fits. Returns the gradients and the rows advanced."""
        rows = pending.nonzero().squeeze(1)
        k = self.factors(rows, limit)
        rows, k = rows[k > 0], k[k > 0]
        if not rows.numel():
            return None
        old = self.cells[rows]
        new = old * k
        point_rows, ts, period = [], [], []
        for m, f in torch.stack([new, k], 1).unique(dim=0).tolist():
            group = rows[(new == m) & (k == f)]
            j = torch.arange(1, m)
            j = j[j % f != 0]  # the old rung's points are in the sums already
            point_rows.append(group.repeat(len(j)))
            ts.append((j.double() / m).repeat_interleave(len(group)))
            period.append(j.repeat_interleave(len(group)))
        point_rows_t, t, j = torch.cat(point_rows), torch.cat(ts), torch.cat(period)
        density = 6 * t * (1 - t)
        half, quarter = density * (j % 2 == 0), density * (j % 4 == 0)
        add = [Accumulator(self.engine.problem.inputs) for _ in range(2)]
        done = 0

        def spread(grads: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            nonlocal done
            part = slice(done, done + int(grads[0].shape[0]))
            done = part.stop
            add[0].add(point_rows_t[part], grads, half[part])
            add[1].add(point_rows_t[part], grads, quarter[part])
            return grads

        main = self.engine.gradients(
            point_rows_t, t * t * (3 - 2 * t), density, transform=spread
        ).sums
        batch = self.engine.problem.batch
        masses = [
            torch.zeros(batch, dtype=torch.float64).index_add_(0, point_rows_t, w)
            for w in (density, half, quarter)
        ]
        # Which old sum each new sub-grid inherits: a point i/m of the old rung lies on
        # the new m'/2 grid iff k·i is even, on the m'/4 grid iff 4 divides k·i.
        from_half = [0 if f % 2 == 0 else 1 for f in k.tolist()]
        from_quarter = [0 if f % 4 == 0 else 1 if f % 2 == 0 else 2 for f in k.tolist()]
        self._advance(rows, main, add, masses, from_half, from_quarter)
        self.cells[rows] = new
        return self.result(), rows

    def _advance(
        self,
        rows: torch.Tensor,
        main: tuple[torch.Tensor, ...],
        add: list[Accumulator],
        masses: list[torch.Tensor],
        from_half: list[int],
        from_quarter: list[int],
    ) -> None:
        level_half, level_quarter = torch.tensor(from_half), torch.tensor(from_quarter)
        for i, (s0, s1, s2) in enumerate(zip(*(a.sums for a in self.sums), strict=True)):
            stacked = torch.stack([s0[rows], s1[rows], s2[rows]])
            pick = torch.arange(len(rows), device=stacked.device)
            new_half = stacked[level_half.to(stacked.device), pick] + add[0].sums[i][rows]
            new_quarter = stacked[level_quarter.to(stacked.device), pick] + add[1].sums[i][rows]
            s0[rows] = s0[rows] + main[i][rows].to(s0.dtype)
            s1[rows], s2[rows] = new_half, new_quarter
        mass = self.mass[:, rows]
        pick = torch.arange(len(rows))
        self.mass[1, rows] = mass[level_half, pick] + masses[1][rows]
        self.mass[2, rows] = mass[level_quarter, pick] + masses[2][rows]
        self.mass[0, rows] = mass[0] + masses[0][rows]

    def judge(
        self, diffs: tuple[torch.Tensor, ...], rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Estimated relative error of rows' current rungs, and their attributions."""
        attrs = []
        for level in range(3):
            scale = 1 / self.mass[level, rows].clamp_min(1e-300)
            grads = tuple(
                s[rows] * scale.to(s.device, s.dtype).view(-1, *[1] * (s.dim() - 1))
                for s in self.sums[level].sums
            )
            attrs.append(flat_rows(tuple(g * d[rows] for g, d in zip(grads, diffs, strict=True))))
        full, half, quarter = attrs
        tiny = torch.finfo(full.dtype).tiny
        step = ((full - half).norm(dim=1) / full.norm(dim=1).clamp_min(tiny)).cpu()
        before = ((half - quarter).norm(dim=1) / half.norm(dim=1).clamp_min(tiny)).cpu()
        before = torch.where(self.mass[2, rows] > 0, before, torch.zeros_like(before))
        return KAPPA * torch.maximum(step, HISTORY * before), full
