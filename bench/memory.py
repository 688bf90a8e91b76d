"""Peak process memory: integrad vs Captum's defaults, each in a fresh process.

IG at n_steps=512 and 4096 vs Captum at 512; NoiseTunnel(Saliency) at 1000 noisy
samples, and GradientShap / ExpectedGradients at 1000 samples, vs Captum's NoiseTunnel
and GradientShap at 1000. Every configuration runs in a fresh subprocess (4 examples of
3×64×64 through a CNN with BatchNorm, ``bench/_models.py``) and reports its peak
resident set size, in total and above the process's size just before the call.
Captum builds all path points (IG) or all noisy copies (NoiseTunnel, GradientShap) at
once.

IG at n_steps=10**6 (against 10**5) on a small MLP shows that nodes and weights are made
chunk by chunk.

    python bench/memory.py [--repeats 3] [--only ig|sampling|huge]
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
from captum.attr import GradientShap as CaptumGS
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import NoiseTunnel as CaptumNT
from captum.attr import Saliency as CaptumSaliency
torch.set_num_threads(2)
model, x = case("cnn64")
refs = torch.rand(16, *x.shape[1:], generator=torch.Generator().manual_seed(2))
who, n = sys.argv[1], int(sys.argv[2])
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
before = rss_mb()
if who == "integrad":
    integrad.IntegratedGradients(model).attribute(x, target=0, n_steps=n)
elif who == "captum":
    CaptumIG(model).attribute(x, target=0, n_steps=n)
elif who == "integrad-nt":
    nt = integrad.NoiseTunnel(integrad.Saliency(model))
    nt.attribute(x, target=0, nt_samples=n, stdevs=0.1)
elif who == "captum-nt":
    CaptumNT(CaptumSaliency(model)).attribute(x, target=0, nt_samples=n, stdevs=0.1)
elif who == "integrad-gs":
    integrad.GradientShap(model).attribute(x, refs, n_samples=n, stdevs=0.1, target=0)
elif who == "integrad-mlp":
    mlp, rows = case("mlp")
    integrad.IntegratedGradients(mlp).attribute(rows[:4], target=0, n_steps=n)
elif who == "integrad-eg":
    integrad.ExpectedGradients(model).attribute(x, refs, n_samples=n, stdevs=0.1, target=0)
else:
    CaptumGS(model).attribute(x, refs, n_samples=n, stdevs=0.1, target=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"before": before, "peak": peak}}))
"""


def measure(who: str, n: int) -> dict[str, float]:
    code = CHILD.format(bench=str(Path(__file__).parent))
    out = subprocess.run(
        [sys.executable, "-c", code, who, str(n)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


IG_CONFIGS = [("integrad", 512), ("integrad", 4096), ("captum", 512)]
HUGE_CONFIGS = [("integrad-mlp", 10**5), ("integrad-mlp", 10**6)]
SAMPLING_CONFIGS = [
    ("integrad-nt", 100),
    ("integrad-nt", 1000),
    ("captum-nt", 1000),
    ("integrad-gs", 1000),
    ("integrad-eg", 1000),
    ("captum-gs", 1000),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["ig", "sampling", "huge"], default=None)
    args = parser.parse_args()
    configs = []
    if args.only in (None, "ig"):
        configs += IG_CONFIGS
    if args.only in (None, "sampling"):
        configs += SAMPLING_CONFIGS
    if args.only in (None, "huge"):
        configs += HUGE_CONFIGS
    runs: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            runs[c].append(measure(*c))
    peak = {c: statistics.median(r["peak"] for r in runs[c]) for c in configs}
    extra = {c: statistics.median(r["peak"] - r["before"] for r in runs[c]) for c in configs}
    print(
        f"cnn64, batch 4, 3x64x64 (integrad-mlp: the 30-feature MLP, batch 4, Gauss-Legendre); "
        f"medians of {args.repeats} fresh processes (MiB)"
    )
    print(f"{'config':22s} {'peak RSS':>9s} {'above start':>12s}")
    for who, n in configs:
        print(f"{who + ' n=' + str(n):22s} {peak[(who, n)]:9.0f} {extra[(who, n)]:12.0f}")
    if args.only in (None, "ig"):
        ours, big, theirs = (peak[c] for c in IG_CONFIGS)
        print(f"integrad n=4096 / n=512 peak: {big / ours:.3f}  (target <= 1.25)")
        print(f"integrad n=512 / Captum n=512 peak: {ours / theirs:.3f}  (target <= 0.5)")
        ratio = extra[IG_CONFIGS[1]] / extra[IG_CONFIGS[0]]
        print(f"above-start growth n=4096 / n=512: {ratio:.3f}")
    if args.only in (None, "huge"):
        small, huge = (extra[c] for c in HUGE_CONFIGS)
        print(f"IG n_steps=10**6 / n_steps=10**5 above start (mlp): {huge / small:.3f}")
    if args.only in (None, "sampling"):
        nt100, nt1000, cnt, gs, eg, cgs = (extra[c] for c in SAMPLING_CONFIGS)
        print(f"NoiseTunnel above-start growth n=1000 / n=100: {nt1000 / nt100:.3f}")
        print(f"NoiseTunnel n=1000 integrad / Captum above start: {nt1000 / cnt:.3f}")
        print(f"GradientShap n=1000 integrad / Captum above start: {gs / cgs:.3f}")
        print(f"ExpectedGradients n=1000 / Captum GradientShap above start: {eg / cgs:.3f}")


if __name__ == "__main__":
    main()
