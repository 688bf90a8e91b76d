"""Exact IG (method="exact"): regions crossed, evaluations and time against quadrature.

Per case: regions per example, gradient (``n_evals``) and forward-only (``n_forward``)
evaluations, the relative L2 error that Gauss–Legendre with 50 steps leaves, and
wall-time ratios to GL at 50 steps and at as many steps as the exact mode's gradient
evaluations (median of ``--repeats`` alternating runs). Models in float64, untrained.

    python bench/exact.py [--cases relu_mlp digits_cnn cnn16] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import integrad
from integrad import demo


def relu_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)
    )


def cnn16() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "relu_mlp": (relu_mlp, (64, 20)),
    "digits_cnn": (demo.digits_cnn, (8, 1, 8, 8)),
    "cnn16": (cnn16, (8, 1, 16, 16)),
}


def seconds(model: nn.Module, x: torch.Tensor, **kwargs: object) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call (CPU time: steadier on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    integrad.explain(model, x, target=0, **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.cases:
        make, shape = CASES[name]
        torch.manual_seed(0)
        model = make().double().eval()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        exact = integrad.explain(model, x, target=0, method="exact")
        evals = int(exact.n_evals.max())
        gl = integrad.explain(model, x, target=0, n_steps=50)
        flat = exact.attributions.flatten(1)
        error = (gl.attributions.flatten(1) - flat).norm(dim=1) / flat.norm(dim=1)
        runs: dict[str, list[tuple[float, float]]] = {"exact": [], "gl50": [], "gl_same": []}
        for _ in range(args.repeats):
            runs["exact"].append(seconds(model, x, method="exact"))
            runs["gl50"].append(seconds(model, x, n_steps=50))
            runs["gl_same"].append(seconds(model, x, n_steps=evals))
        t = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
        r = exact.extras["regions"].double()
        print(
            f"{name} {tuple(shape)}: regions median {r.median():.0f} "
            f"[{r.min():.0f}, {r.max():.0f}]; n_evals = regions: "
            f"{bool((exact.n_evals == exact.extras['regions']).all())}; n_forward - regions "
            f"max {int((exact.n_forward - exact.extras['regions']).max())}; "
            f"max|delta| {exact.delta.abs().max():.1e}"
        )
        print(
            f"  GL-50 relative L2 error median {error.median():.1e} max {error.max():.1e}; "
            f"time exact/GL-50 {t['exact'] / t['gl50']:.2f}, exact/GL-{evals} "
            f"{t['exact'] / t['gl_same']:.2f} (exact {t['exact']:.3f} s); CPU time exact/GL-50 "
            f"{cpu['exact'] / cpu['gl50']:.2f}"
        )


if __name__ == "__main__":
    main()
