"""Exact IG (method="exact"): regions crossed, evaluations and time against quadrature.

Per case: regions per example, gradient (``n_evals``) and forward-only (``n_forward``)
evaluations, the relative L2 error that Gauss–Legendre with 50 steps leaves, and
wall-time ratios to GL at 50 steps and at as many steps as the exact mode's gradient
evaluations (median of ``--repeats`` alternating runs). Models in float64, untrained.
``--against REV`` also runs exact mode as it was at git revision REV (its exact.py
loaded beside the current one, alternating in the same process) for an A/B ratio.

    python bench/exact.py [--cases relu_mlp digits_cnn cnn16] [--repeats 3] [--threads 1]
                          [--against a2288cf]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import integrad
import integrad.integrated_gradients as methods
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


def exact_at(revision: str) -> Callable[..., object]:
    """``integrad.exact.exact`` as it was at git ``revision`` (same package, old module)."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{revision}:src/integrad/exact.py"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "exact_ref.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("integrad._exact_ref", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load exact.py of revision {revision!r}")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "integrad"
    sys.modules["integrad._exact_ref"] = module
    spec.loader.exec_module(module)
    return module.exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--against", default=None, help="git revision to A/B exact mode with")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    current = methods.exact
    reference = exact_at(args.against) if args.against else None
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
        kinds = ["exact", "gl50", "gl_same"] + (["ref"] if reference else [])
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        for i in range(args.repeats):
            for kind in kinds if i % 2 else reversed(kinds):
                methods.exact = reference if kind == "ref" else current
                if kind in ("exact", "ref"):
                    runs[kind].append(seconds(model, x, method="exact"))
                else:
                    runs[kind].append(seconds(model, x, n_steps=50 if kind == "gl50" else evals))
        methods.exact = current
        t = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
        r = exact.extras["regions"].double()
        print(
            f"{name} {tuple(shape)}: regions median {r.median():.0f} "
            f"[{r.min():.0f}, {r.max():.0f}]; gradients (n_evals) median "
            f"{exact.n_evals.double().median():.0f}, forward-only (n_forward) median "
            f"{exact.n_forward.double().median():.0f}; max|delta| {exact.delta.abs().max():.1e}"
        )
        print(
            f"  GL-50 relative L2 error median {error.median():.1e} max {error.max():.1e}; "
            f"time exact/GL-50 {t['exact'] / t['gl50']:.2f}, exact/GL-{evals} "
            f"{t['exact'] / t['gl_same']:.2f} (exact {t['exact']:.3f} s); CPU time exact/GL-50 "
            f"{cpu['exact'] / cpu['gl50']:.2f}"
        )
        if reference:
            methods.exact = reference
            before = integrad.explain(model, x, target=0, method="exact")
            methods.exact = current
            gap = (before.attributions - exact.attributions).abs().max()
            print(
                f"  {args.against}: exact/GL-50 {t['ref'] / t['gl50']:.2f} (CPU "
                f"{cpu['ref'] / cpu['gl50']:.2f}), now/then {t['exact'] / t['ref']:.2f}; "
                f"max |attributions now - then| {gap:.1e}, gradients then median "
                f"{before.n_evals.double().median():.0f}"
            )


if __name__ == "__main__":
    main()
