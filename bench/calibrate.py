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

    python bench/calibrate.py [--digits 192] [--threads 1]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", nargs="+", default=["piecewise", "smooth"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if "piecewise" in args.parts:
        piecewise(args.digits)
    if "smooth" in args.parts:
        smooth()


if __name__ == "__main__":
    main()
