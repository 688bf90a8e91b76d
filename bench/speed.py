"""Speed at fixed n: integrad vs the floor vs Captum, side by side in one process.

The floor is the model's own forward + ``torch.autograd.grad`` w.r.t. precomputed
path points, in chunks, at the best chunk size among 32…512 points. Runs alternate
between contenders; each figure is the median of ``--repeats`` runs.

    python bench/speed.py [--cases cnn64 digits_cnn mlp] [--n-steps 50] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _models import CASES, case
from captum.attr import IntegratedGradients as CaptumIG

import integrad

FLOOR_CHUNKS = (32, 64, 128, 256, 512)


def floor_run(model: torch.nn.Module, points: torch.Tensor, chunk: int) -> Callable[[], None]:
    def run() -> None:
        for s in range(0, points.shape[0], chunk):
            p = points[s : s + chunk].clone().requires_grad_()
            torch.autograd.grad(model(p)[:, 0].sum(), p)

    return run


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--n-steps", type=int, nargs="*", default=[50, 256])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, medians of {args.repeats} runs")
    print(
        f"{'case':12s} {'n':>5s} {'floor ms':>9s} {'best':>5s} {'integrad':>9s} "
        f"{'captum':>9s} {'int/floor':>9s} {'int/captum':>10s}"
    )
    for name in args.cases:
        model, x = case(name)
        for n in args.n_steps:
            quad = integrad.quadrature.rule("gausslegendre", n)
            alphas = quad.alphas.to(x.dtype).view(-1, *[1] * x.dim())
            points = (alphas * x.unsqueeze(0)).reshape(-1, *x.shape[1:])
            contenders: dict[str, Callable[[], object]] = {
                f"floor{c}": floor_run(model, points, c) for c in FLOOR_CHUNKS
            }
            ig = integrad.IntegratedGradients(model)
            cig = CaptumIG(model)
            contenders["integrad"] = lambda ig=ig, x=x, n=n: ig.attribute(x, target=0, n_steps=n)
            contenders["captum"] = lambda c=cig, x=x, n=n: c.attribute(x, target=0, n_steps=n)
            times: dict[str, list[float]] = {k: [] for k in contenders}
            for fn in contenders.values():  # warm-up
                fn()
            for _ in range(args.repeats):
                for key, fn in contenders.items():
                    times[key].append(timed(fn))
            med = {k: statistics.median(v) for k, v in times.items()}
            best = min(FLOOR_CHUNKS, key=lambda c: med[f"floor{c}"])
            floor = med[f"floor{best}"]
            print(
                f"{name:12s} {n:5d} {floor * 1e3:9.1f} {best:5d} {med['integrad'] * 1e3:9.1f} "
                f"{med['captum'] * 1e3:9.1f} {med['integrad'] / floor:9.3f} "
                f"{med['integrad'] / med['captum']:10.3f}"
            )
            del points


if __name__ == "__main__":
    main()
