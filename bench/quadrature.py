"""Gauss–Legendre rules at any size: time and peak memory of slices, and their accuracy.

Prints, for each n, the time to build the rule, to read one slice, and to sweep all
nodes in chunks (with the peak memory numpy traced while doing it), and how far the
swept weights' sum is from 1. For n up to 4096 it also prints the largest difference
from Newton's method on the three-term recurrence (the method used up to n = 100).

    python bench/quadrature.py [--slice 1000] [--chunk 131072]
"""

from __future__ import annotations

import argparse
import math
import time
import tracemalloc

import numpy as np

from integrad.quadrature import _legendre, rule


def sweep(n: int, chunk: int) -> tuple[float, float, int]:
    """Seconds to read every node in chunks, |Σw - 1|, and the traced peak bytes."""
    tracemalloc.start()
    begin = time.perf_counter()
    sums = []
    for start in range(0, n, chunk):
        _, weights = rule("gausslegendre", n).nodes(start, min(start + chunk, n))
        sums.append(float(weights.sum()))
    seconds = time.perf_counter() - begin
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, abs(math.fsum(sums) - 1.0), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=2**17)
    args = parser.parse_args()
    print(f"{'n':>10} {'rule()':>9} {'slice':>9} {'sweep':>9} {'peak MB':>8} {'|sum-1|':>9}")
    for n in (10**3, 10**5, 10**6, 10**7):
        begin = time.perf_counter()
        r = rule("gausslegendre", n)
        build = time.perf_counter() - begin
        begin = time.perf_counter()
        r.nodes(n // 3, n // 3 + min(args.slice, n - n // 3))
        one = time.perf_counter() - begin
        seconds, error, peak = sweep(n, args.chunk)
        print(
            f"{n:>10} {build * 1e3:>7.2f}ms {one * 1e3:>7.2f}ms {seconds:>8.2f}s"
            f" {peak / 2**20:>8.1f} {error:>9.1e}"
        )
    print("\nagreement with Newton's method (all nodes):")
    for n in (101, 1000, 4096):
        roots, weights = _legendre(n)
        r = rule("gausslegendre", n)
        node_gap = np.abs(r.alphas.numpy() - 0.5 * (1 + roots)).max()
        weight_gap = np.abs(r.weights.numpy() / (0.5 * weights) - 1).max()
        print(f"  n={n:>5}: nodes {node_gap:.1e} abs, weights {weight_gap:.1e} rel")


if __name__ == "__main__":
    main()
