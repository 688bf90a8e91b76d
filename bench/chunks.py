"""Forward+backward time per chunk size: the measurement behind the engine's chunk choice.

For each model of ``bench/_models.py`` it prints the time to evaluate the same path
points in chunks of 8 … 4096 points (medians), next to the chunk's saved activations
as integrad measures them. The engine's first guess aims at about ``TARGET_CHUNK_BYTES``
per chunk, and at least ``MIN_CHUNK_POINTS`` points; a timed search goes on from there
(``integrad._memory.ChunkPolicy``; ``bench/zoo.py`` measures the result).

    python bench/chunks.py [--points 8192] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _models import CASES, case

import integrad
from integrad._engine import MIN_CHUNK_POINTS, TARGET_CHUNK_BYTES

SIZES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"target {TARGET_CHUNK_BYTES / 2**20:.0f} MiB per chunk, at least {MIN_CHUNK_POINTS}")
    for name in CASES:
        model, x = case(name)
        per_point = integrad.explain(model, x, target=0, n_steps=2).extras["bytes_per_point"]
        points = torch.rand(args.points, *x.shape[1:], generator=torch.Generator().manual_seed(0))
        print(f"{name}: {per_point / 2**10:.1f} KiB of saved activations per point")
        for size in SIZES:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for s in range(0, args.points, size):
                    p = points[s : s + size].clone().requires_grad_()
                    torch.autograd.grad(model(p)[:, 0].sum(), p)
                times.append(time.perf_counter() - start)
            ms = statistics.median(times) * 1e3
            print(f"  chunk {size:5d}: {ms:9.1f} ms  ({size * per_point / 2**20:8.1f} MiB)")


if __name__ == "__main__":
    main()
