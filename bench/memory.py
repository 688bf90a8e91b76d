"""Peak process memory: integrad at n_steps=512 and 4096 vs Captum's default at 512.

Each configuration runs in a fresh subprocess (4 examples of 3×64×64 through a CNN with
BatchNorm, ``bench/_models.py``) and reports its peak resident set size, in total and
above the process's size just before the call. Captum's default builds all
n_steps × batch path points and their autograd graph at once.

    python bench/memory.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys
import torch
sys.path.insert(0, {bench!r})
from _models import case
import integrad
from captum.attr import IntegratedGradients as CaptumIG
torch.set_num_threads(2)
model, x = case("cnn64")
who, n = sys.argv[1], int(sys.argv[2])
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
before = rss_mb()
if who == "integrad":
    integrad.IntegratedGradients(model).attribute(x, target=0, n_steps=n)
else:
    CaptumIG(model).attribute(x, target=0, n_steps=n)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"before": before, "peak": peak}}))
"""


def measure(who: str, n: int) -> dict[str, float]:
    code = CHILD.format(bench=str(Path(__file__).parent))
    out = subprocess.run(
        [sys.executable, "-c", code, who, str(n)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = [("integrad", 512), ("integrad", 4096), ("captum", 512)]
    runs: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            runs[c].append(measure(*c))
    peak = {c: statistics.median(r["peak"] for r in runs[c]) for c in configs}
    extra = {c: statistics.median(r["peak"] - r["before"] for r in runs[c]) for c in configs}
    print(f"cnn64, batch 4, 3x64x64; medians of {args.repeats} fresh processes (MiB)")
    print(f"{'config':18s} {'peak RSS':>9s} {'above start':>12s}")
    for who, n in configs:
        print(f"{who + ' n=' + str(n):18s} {peak[(who, n)]:9.0f} {extra[(who, n)]:12.0f}")
    ours, big, theirs = peak[configs[0]], peak[configs[1]], peak[configs[2]]
    print(f"integrad n=4096 / n=512 peak: {big / ours:.3f}  (target <= 1.25)")
    print(f"integrad n=512 / Captum n=512 peak: {ours / theirs:.3f}  (target <= 0.5)")
    ratio = extra[configs[1]] / extra[configs[0]]
    print(f"above-start growth n=4096 / n=512: {ratio:.3f}")


if __name__ == "__main__":
    main()
