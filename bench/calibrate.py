"""How tolerance mode's constants were chosen, on the calibration sets only.

``bench/certificate.py`` names the calibration sets (``CALIBRATION``,
``MINILM_CALIBRATION``); every other set there is out of sample. This script climbs each
ladder on the calibration sets far past any tolerance, logs every rung's relative
difference ``d`` to the rung before and its true error (against ``certificate.truth_of``'s
references), and replays the stopping rule offline for a grid of constants:

* piecewise (``KAPPA``): the digits CNN trained with seed 0, ``--digits`` test digits
  (the first 24 are the certificate's in-sample set). Estimate ``κ · max(d_m, d_{m/2}/2)``;
  an example stops at its first rung with estimate ≤ tol and completeness gap ≤ tol.
* smooth (``SMOOTH_SAFETY`` = c, ``FIRST_SAFETY`` = c₀): the random GELU/tanh MLP (64
  examples) and the two MiniLM calibration sentences. Estimate ``d · min(1, c · r)²`` with
  ``r`` the ratio of ``d`` to the difference before (1 before the 3-node rung: the zero
  rule), c₀ in place of c at the 3-node rung. The gap is left out of the replay, which can
  only stop an example earlier than tolerance mode does (a pessimistic check).

Per constant and tolerance: the share of examples within tol, the worst error / tol and
the mean evaluations. The rule applied (see ``integrad.tolerance``'s docstring): κ the
smallest value with at most 1% beyond tol at 1e-2 and 1e-3; (c, c₀) every calibration
example within tol at 1e-2 … 1e-9.

``--parts ladders`` asks what any ladder of nested trapezoid rungs could save with this
estimate, at 1e-2 on the same calibration digits: it computes the rule of every ``m``
multiple of 4 up to 160 cells (and of 6·2^k) directly, and prints the spread of
error / (estimate ÷ κ), the least rung per example whose estimate passes (a lower bound for
any ladder whose rungs are multiples of 4, 8 or 12 cells: it must stop at or beyond that
rung), the doubling ladder's cost, and the replay of a ladder whose examples jump from a
first rung to the multiple of their cells that their estimate predicts (tried on commit
5264b9a in the real code and not adopted: see docs/benchmarks.md).

    python bench/calibrate.py [--digits 192] [--threads 1] [--parts piecewise smooth ladders]
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import certificate
import torch

import integrad
import integrad.tolerance as tm
from integrad import demo

Log = list[dict[str, Any]]


@contextmanager
def rung_log(ladder: type) -> Iterator[Log]:
    """Record, per rung of ``ladder``, the examples climbing, their attributions and ``d``.

    Instrumentation for this script only: it wraps two private helpers of
    ``integrad.tolerance`` for the duration, and bypasses exact integration.
    """
    log: Log = []
    attributions, estimate, exact = tm._attributions, ladder.estimate, tm._exact_if_cheaper
    calls = [0]

    def attrs(grads: Any, diffs: Any, rows: torch.Tensor) -> torch.Tensor:
        a = attributions(grads, diffs, rows)
        if calls[0] % 2 == 0:  # the new rung's (the rung before's comes second)
            log.append({"rows": rows.clone(), "attr": a.clone()})
        calls[0] += 1
        return a

    def logged(self: Any, rel: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        log[-1]["d"], log[-1]["points"] = rel.clone().double(), self.points
        return estimate(self, rel, rows)

    tm._attributions, ladder.estimate = attrs, logged  # type: ignore[method-assign]
    tm._exact_if_cheaper = lambda *args: None  # type: ignore[assignment]
    try:
        yield log
    finally:
        tm._attributions, ladder.estimate = attributions, estimate  # type: ignore[method-assign]
        tm._exact_if_cheaper = exact


def tables(log: Log, truth: torch.Tensor, scale: torch.Tensor | None, batch: int) -> dict:
    """Per example × rung: d, the true error, the gap / its allowance, the points."""
    shape = (batch, len(log))
    d, err, gap = (torch.full(shape, math.nan, dtype=torch.float64) for _ in range(3))
    flat = truth.flatten(1)
    for k, rung in enumerate(log):
        rows, a = rung["rows"], rung["attr"]
        d[rows, k] = rung["d"]
        err[rows, k] = (a - flat[rows]).norm(dim=1) / flat[rows].norm(dim=1)
        if scale is not None:
            gap[rows, k] = (a.sum(1) - scale[0][rows]).abs() / scale[1][rows]
    points = torch.tensor([float(r["points"]) for r in log])
    return {"d": d, "err": err, "gap": gap, "points": points}


def replay(t: dict, estimate: torch.Tensor, tol: float, use_gap: bool) -> tuple[float, ...]:
    ok = (estimate <= tol) & ~t["d"].isnan()
    if use_gap:
        ok &= t["gap"] <= tol
    last = t["d"].shape[1] - 1
    first = torch.where(ok.any(1), ok.double().argmax(1), torch.full((len(ok),), last))
    err = t["err"][torch.arange(len(first)), first]
    return (
        float((err <= tol).double().mean()),
        float(err.max()) / tol,
        float(t["points"][first].mean()),
    )


def piecewise(examples: int) -> None:
    model = demo.train_digits_cnn(seed=0, epochs=8).double()
    x = demo.digits_data(0)[2][:examples].double()
    target = certificate.predicted(model, x)
    truth = integrad.explain(model, x, target=target, n_steps=4096).attributions
    with rung_log(tm._Piecewise) as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = integrad.explain(model, x, target=target, tolerance=1e-12, max_steps=6143)
    change = (exp.output - exp.baseline_output).double()
    allowed = change.abs() + 1e-3 * torch.maximum(exp.output.abs(), exp.baseline_output.abs())
    t = tables(log, truth, (change, allowed), len(x))
    d = t["d"]
    before = torch.cat([torch.zeros(len(x), 1, dtype=torch.float64), d[:, :-1]], 1).nan_to_num(0)
    raw = torch.maximum(d, tm.HISTORY * before)
    print(f"\npiecewise: digits 8px seed 0, {len(x)} examples; within tol / max err÷tol / cost")
    for tol in certificate.TOLERANCES:
        print(f"  tol {tol:g}:")
        for kappa in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4):
            within, worst, cost = replay(t, kappa * raw, tol, True)
            print(
                f"    κ={kappa:.1f}: {within:6.1%} within, worst {worst:.2f} tol, cost {cost:.0f}"
            )


def smooth_logs() -> list[tuple[str, dict]]:
    found = []
    case = next(c for c in certificate.table_cases(64) if c.name in certificate.CALIBRATION)
    truth = certificate.truth_of(case)
    with rung_log(tm._Smooth) as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1e-15 is below rounding: flagged, as it should be
        integrad.explain(case.model, case.x, target=case.target, tolerance=1e-15, max_steps=300)
    found.append((case.name, tables(log, truth, None, len(case.x))))
    run, truth, batch = minilm(certificate.MINILM_CALIBRATION)
    with rung_log(tm._Smooth) as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()
    found.append(("MiniLM calibration", tables(log, truth, None, batch)))
    return found


def minilm(sentences: tuple[str, ...]) -> tuple[Callable[[], object], torch.Tensor, int]:
    case = certificate.minilm_case(sentences)
    lig, ids, base, mask, truth = case.lig, case.ids, case.base, case.mask, case.truth

    def run() -> object:
        return lig.attribute(
            ids, base, additional_forward_args=(mask,), tolerance=1e-15, max_steps=300
        )

    return run, truth, len(ids)


def smooth() -> None:
    print("\nsmooth: within tol / max err÷tol / cost (gap left out: a pessimistic replay)")
    for name, t in smooth_logs():
        d = t["d"]
        ratio = d / torch.cat([torch.ones(len(d), 1, dtype=torch.float64), d[:, :-1]], 1)
        print(f"  {name}")
        for c0 in (3.0, 4.0, 6.0):
            for c in (1.5, 2.0, 2.5):
                safety = torch.full((1, d.shape[1]), c, dtype=torch.float64)
                safety[0, 0] = c0
                estimate = d * (safety * ratio).clamp(max=1.0) ** 2
                cells = [
                    "{:g}: {:.1%} {:.2f} {:.1f}".format(tol, *replay(t, estimate, tol, False))
                    for tol in (1e-2, 1e-3, 1e-6, 1e-9)
                ]
                print(f"    c₀={c0:g} c={c:g}  " + "  ".join(cells))


def trapezoid_rules(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, cells: list[int]
                    ) -> dict[int, torch.Tensor]:  # fmt: skip
    """Attributions of the m-cell trapezoid rule in t (α = t²(3 − 2t)), per m, flat rows."""
    rules = {}
    for m in cells:
        t = torch.arange(1, m, dtype=torch.float64) / m
        alpha, density = t * t * (3 - 2 * t), 6 * t * (1 - t)
        rows = []
        for xi, ti in zip(x, target.tolist(), strict=True):
            points = (alpha.view(-1, *[1] * xi.dim()) * xi).requires_grad_(True)
            (grads,) = torch.autograd.grad(model(points)[:, ti].sum(), points)
            weighted = (grads.flatten(1) * density.unsqueeze(1)).sum(0) / density.sum()
            rows.append(weighted * xi.flatten())
        rules[m] = torch.stack(rows)
    return rules


def ladders(examples: int, tol: float = 1e-2) -> None:
    model = demo.train_digits_cnn(seed=0, epochs=8).double()
    x = demo.digits_data(0)[2][:examples].double()
    target = certificate.predicted(model, x)
    truth = integrad.explain(model, x, target=target, n_steps=4096).attributions.flatten(1)
    rungs = list(range(4, 161, 4))
    doubling = [6 * 2**k for k in range(5)]
    cells = sorted({c for m in rungs + doubling for c in (m, m // 2, m // 4)} - {1})
    rules = trapezoid_rules(model, x, target, cells)

    def diff(a: int, b: int) -> torch.Tensor:
        return (rules[b] - rules[a]).norm(dim=1) / rules[b].norm(dim=1)

    def raw(m: int) -> torch.Tensor:  # the estimate without κ; no m/4 rule below 2 cells
        before = diff(m // 4, m // 2) if m // 4 >= 2 else torch.zeros(len(x))
        return torch.maximum(diff(m // 2, m), tm.HISTORY * before)

    def err(m: int) -> torch.Tensor:
        return (rules[m] - truth).norm(dim=1) / truth.norm(dim=1)

    print(f"\nladders: digits 8px seed 0, {len(x)} examples, tol {tol:g}, κ = {tm.KAPPA}")
    ratio = torch.cat([err(m) / raw(m) for m in (24, 32, 48, 64, 96)])
    q = ratio.quantile(torch.tensor([0.5, 0.99], dtype=torch.float64)).tolist()
    print(
        f"  error / (estimate ÷ κ) at 24–96 cells: median {q[0]:.2f}, 99th percentile "
        f"{q[1]:.2f} ({q[1] / q[0]:.2f}× the median: what a certificate pays for the spread)"
    )
    passes = {m: tm.KAPPA * raw(m) <= tol for m in rungs}
    for step in (4, 8, 12):
        least = torch.full((len(x),), math.inf, dtype=torch.float64)
        for m in reversed([m for m in rungs if m % step == 0]):
            least = torch.where(passes[m], torch.full_like(least, m), least)
        print(f"  least passing rung, multiples of {step:2d} cells: mean {least.mean():.1f} cells")
    within = torch.stack([err(m) <= tol for m in rungs], 1)
    tail = within.flip(1).cumprod(1).flip(1).bool()  # within tol at this rung and every later
    first_stable = torch.tensor([rungs[int(r.double().argmax())] if r.any() else math.inf
                                 for r in tail], dtype=torch.float64)  # fmt: skip
    print(f"  per-example need (error ≤ tol from there on, to 160): mean {first_stable.mean():.1f}")
    climbed = torch.full((len(x),), float(doubling[-1]), dtype=torch.float64)
    for m in reversed(doubling[1:]):
        climbed = torch.where(tm.KAPPA * raw(m) <= tol, torch.full_like(climbed, m), climbed)
    print(f"  doubling ladder 6, 12, 24, … (gap left out): mean {climbed.mean() - 1:.1f} points")
    for first in (8, 12, 16):
        for aim in (0.5, 0.7, 0.9):
            spent = []
            for i in range(len(x)):
                m = first
                while m <= 160 and float(tm.KAPPA * raw(m)[i]) > tol:
                    m *= max(2, math.ceil(aim * float(tm.KAPPA * raw(m)[i]) / tol))
                spent.append(min(m, 161) - 1)
            mean = sum(spent) / len(spent)
            print(f"  jumps from {first:2d} cells, aim {aim}: mean {mean:.1f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--parts", nargs="+", default=["piecewise", "smooth"],
        choices=["piecewise", "smooth", "ladders"],
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if "piecewise" in args.parts:
        piecewise(args.digits)
    if "smooth" in args.parts:
        smooth()
    if "ladders" in args.parts:
        ladders(args.digits)


if __name__ == "__main__":
    main()
