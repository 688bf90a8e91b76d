"""The model zoo: integrad against the floor and Captum on what users run, CPU or CUDA.

Per model it prints integrad / floor, integrad / Captum (Captum's default, and its best
``internal_batch_size`` of a sweep) and peak memory ratios. The floor is the model's own
forward + ``torch.autograd.grad`` with respect to precomputed Gauss–Legendre path points,
in chunks, at the best chunk size of a sweep (as ``bench/speed.py``); for MiniLM layer IG
the points live in the word embeddings' output space and a forward hook swaps each chunk
in. integrad and Captum run with their defaults; the CompletenessWarning is filtered (the
untrained models would trip it), so ``IntegratedGradients`` skips the F(x) and F(x') forward
passes of its guard, as Captum does without ``return_convergence_delta``.

Procedure, per model, all in this process: a sweep (median of ``--sweep-repeats`` runs per
size) picks the floor's two best chunk sizes and Captum's best ``internal_batch_size``;
then those, integrad and Captum's default alternate for ``--repeats`` runs (medians).
Peak memory is one more run of each: on CUDA ``torch.cuda.max_memory_allocated`` above
what was allocated before; on CPU the process's resident high-water mark (reset through
``/proc/self/clear_refs``, after ``malloc_trim`` hands the heap's free pages back, so that
memory freed by an earlier run cannot hide growth) above its size before. "flat" is
integrad's peak at 4n over n; "1st" is integrad's first call (which starts its chunk-size
search) over its settled median.

    python bench/zoo.py [--device cpu|cuda] [--quick] [--models resnet18 minilm ...]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerIntegratedGradients as CaptumLIG

sys.path.insert(0, str(Path(__file__).parent))
import _models

import integrad


@dataclass
class Case:
    """One model: how to run integrad (at n steps), Captum (at an internal_batch_size) and
    the floor (at a chunk size), and how many path points a run at the case's n has."""

    name: str
    setting: str
    n: int
    points: int
    ours: Callable[[int], object]
    captum: Callable[[int | None], object]
    floor: Callable[[int], object]


def gl_alphas(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return integrad.quadrature.rule("gausslegendre", n).alphas.to(device, dtype)


def input_case(name: str, model: torch.nn.Module, x: torch.Tensor, n: int) -> Case:
    """Input IG, zero baselines, target 0."""
    alphas = gl_alphas(n, x.device, x.dtype).view(-1, *[1] * x.dim())
    points = (alphas * x.unsqueeze(0)).reshape(-1, *x.shape[1:])  # node-major, as both tools

    def floor(chunk: int) -> None:
        for s in range(0, points.shape[0], chunk):
            p = points[s : s + chunk].clone().requires_grad_()
            torch.autograd.grad(model(p)[:, 0].sum(), p)

    ours = integrad.IntegratedGradients(model)
    theirs = CaptumIG(model)
    setting = f"batch {x.shape[0]}, {'×'.join(map(str, x.shape[1:]))}, n={n}"
    return Case(
        name,
        setting,
        n,
        int(points.shape[0]),
        lambda steps: ours.attribute(x, target=0, n_steps=steps),
        lambda ibs: theirs.attribute(x, target=0, n_steps=n, internal_batch_size=ibs),
        floor,
    )


def minilm_case(device: torch.device, batch: int, tokens: int, n: int) -> Case:
    """Layer IG at MiniLM's word embeddings, mean-pooled output, [PAD] baselines."""
    model, ids, mask, weights = _models.minilm(tokens, batch)
    model, ids, mask = model.to(device), ids.to(device), mask.to(device)
    base = torch.where((ids == 101) | (ids == 102) | (mask == 0), ids, torch.zeros_like(ids))
    layer = model.embeddings.word_embeddings

    def pooled(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return integrad.text.mean_pool(hidden, attention_mask)

    with torch.no_grad():
        e_x, e_b = layer(ids), layer(base)
    alphas = gl_alphas(n, device, e_x.dtype).view(-1, 1, 1, 1)
    points = (e_b + alphas * (e_x - e_b)).reshape(-1, *e_x.shape[1:])
    all_ids, all_mask = ids.repeat(n, 1), mask.repeat(n, 1)

    def floor(chunk: int) -> None:
        for s in range(0, points.shape[0], chunk):
            p = points[s : s + chunk].clone().requires_grad_()
            handle = layer.register_forward_hook(lambda mod, args, out, p=p: p)
            try:
                out = pooled(all_ids[s : s + chunk], all_mask[s : s + chunk])
            finally:
                handle.remove()
            torch.autograd.grad(out[:, 0].sum(), p)

    ours = integrad.LayerIntegratedGradients(pooled, layer)
    theirs = CaptumLIG(pooled, layer)
    kw = dict(baselines=base, target=0, additional_forward_args=(mask,))
    return Case(
        "minilm",
        f"layer IG, batch {batch}×{tokens} tokens, n={n}, {weights}",
        n,
        batch * n,
        lambda steps: ours.attribute(ids, n_steps=steps, **kw),
        lambda ibs: theirs.attribute(ids, n_steps=n, internal_batch_size=ibs, **kw),
        floor,
    )


# (batch, n) per model: on CPU sized to run in seconds on 2 cores; on CUDA as users run.
SIZES = {
    "cpu": {
        "digits_cnn": (16, 64),
        "cnn64": (8, 64),
        "resnet18": (2, 32),
        "minilm": (4, 50),
        "series_cnn": (16, 64),
        "mlp": (64, 64),
    },
    "cuda": {
        "digits_cnn": (256, 64),
        "cnn64": (64, 64),
        "resnet18": (32, 64),
        "minilm": (32, 50),
        "series_cnn": (128, 64),
        "mlp": (1024, 64),
    },
}
QUICK_CPU = {"resnet18": (1, 16), "cnn64": (4, 32), "minilm": (2, 24)}
SHAPES = {
    "digits_cnn": (1, 8, 8),
    "cnn64": (3, 64, 64),
    "resnet18": (3, 224, 224),
    "series_cnn": (8, 256),
    "mlp": (30,),
}
MODELS = {
    "digits_cnn": _models.digits_cnn,
    "cnn64": _models.cnn64,
    "resnet18": _models.resnet18,
    "series_cnn": _models.series_cnn,
    "mlp": _models.mlp,
}


def build(name: str, device: torch.device, quick: bool) -> Case:
    batch, n = SIZES[device.type][name]
    if quick and device.type == "cpu":
        batch, n = QUICK_CPU.get(name, (batch, n))
    tokens = 64 if device.type == "cuda" else 16
    if name == "minilm":
        return minilm_case(device, batch, tokens, n)
    model = MODELS[name]().to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, *SHAPES[name], generator=g).to(device)
    return input_case(name, model, x, n)


WARM_CALLS = 8
"""integrad calls after the first and before the race (the chunk search settles)."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def medians(
    contenders: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Warm each contender up once, then alternate them ``repeats`` times; medians."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for key, fn in contenders.items():
            times[key].append(timed(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


def _resident(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) * 1024.0


def peak_bytes(fn: Callable[[], object], device: torch.device) -> float:
    """Memory ``fn`` needs above what was in use when it started."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the resident high-water mark
    before = _resident("VmRSS:")
    fn()
    return _resident("VmHWM:") - before


def sizes_up_to(total: int) -> list[int]:
    """Powers of two from 8 (or total / 256, to keep small models' sweeps short) to total."""
    out, size = [], max(8, 1 << max(0, (total // 256).bit_length() - 1))
    while size < total:
        out.append(size)
        size *= 2
    return [*out, total]


def run_case(case: Case, device: torch.device, repeats: int, sweep_repeats: int) -> dict:
    chunks = sizes_up_to(case.points)
    floor_sweep = medians(
        {str(c): lambda c=c: case.floor(c) for c in chunks}, sweep_repeats, device
    )
    best_floor = sorted(chunks, key=lambda c: floor_sweep[str(c)])[:2]
    ibs_sweep = medians({str(c): lambda c=c: case.captum(c) for c in chunks}, sweep_repeats, device)
    best_ibs = min(chunks, key=lambda c: ibs_sweep[str(c)])
    # integrad's first call starts its chunk-size search, which goes on over the next
    # calls (a dataset explained batch by batch pays it once): the first call is timed on
    # its own, then WARM_CALLS more let the search settle before the race.
    first = timed(lambda: case.ours(case.n), device)
    for _ in range(WARM_CALLS):
        case.ours(case.n)
    contenders: dict[str, Callable[[], object]] = {
        "integrad": lambda: case.ours(case.n),
        "captum": lambda: case.captum(None),
        "captum_best": lambda: case.captum(best_ibs),
    }
    for c in best_floor:
        contenders[f"floor{c}"] = lambda c=c: case.floor(c)
    med = medians(contenders, repeats, device)
    floor_chunk = min(best_floor, key=lambda c: med[f"floor{c}"])
    floor = med[f"floor{floor_chunk}"]
    peaks = {
        "integrad": peak_bytes(lambda: case.ours(case.n), device),
        "integrad4n": peak_bytes(lambda: case.ours(4 * case.n), device),
        "floor": peak_bytes(lambda: case.floor(floor_chunk), device),
        "captum": peak_bytes(lambda: case.captum(None), device),
        "captum_best": peak_bytes(lambda: case.captum(best_ibs), device),
    }
    mib = float(1 << 20)  # below a MiB, CPU resident sizes are noise
    return {
        "floor_ms": floor * 1e3,
        "floor_chunk": floor_chunk,
        "chunk_ms": floor * 1e3 * floor_chunk / case.points,
        "best_ibs": best_ibs,
        "integrad_ms": med["integrad"] * 1e3,
        "first/settled": first / med["integrad"],
        "int/floor": med["integrad"] / floor,
        "int/captum": med["integrad"] / med["captum"],
        "int/captum_best": med["integrad"] / med["captum_best"],
        "mem/floor": max(peaks["integrad"], mib) / max(peaks["floor"], mib),
        "mem/captum": max(peaks["integrad"], mib) / max(peaks["captum"], mib),
        "mem/captum_best": max(peaks["integrad"], mib) / max(peaks["captum_best"], mib),
        "mem_mib": peaks["integrad"] / mib,
        "flat": max(peaks["integrad4n"], mib) / max(peaks["integrad"], mib),
        "floor_sweep": {c: floor_sweep[str(c)] * 1e3 for c in chunks},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="smaller CPU cases, 1-run sweeps")
    parser.add_argument("--models", nargs="*", default=[*MODELS, "minilm"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sweep-repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--show-sweep", action="store_true", help="print the floor's sweep")
    args = parser.parse_args()
    # Untrained models at modest n: the completeness guard would warn on every call.
    warnings.simplefilter("ignore", integrad.CompletenessWarning)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    sweep_repeats = args.sweep_repeats or (1 if args.quick else 3)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"CPU, {torch.get_num_threads()} threads")
    )
    print(
        f"torch {torch.__version__}, {where}; medians of {args.repeats} alternating runs "
        f"(sweeps: {sweep_repeats}); times in ms, ratios integrad / other"
    )
    print(
        f"{'model':11s} {'floor':>8s} {'chunk':>5s} {'ms/chk':>7s} {'integrad':>9s} "
        f"{'/floor':>7s} {'/captum':>8s} {'/best':>6s} {'ibs':>5s} {'mem/fl':>7s} "
        f"{'mem/cap':>8s} {'mem/best':>8s} {'MiB':>7s} {'flat':>5s} {'1st':>5s}  setting"
    )
    for name in args.models:
        case = build(name, device, args.quick)
        r = run_case(case, device, args.repeats, sweep_repeats)
        print(
            f"{name:11s} {r['floor_ms']:8.1f} {r['floor_chunk']:5d} {r['chunk_ms']:7.1f} "
            f"{r['integrad_ms']:9.1f} {r['int/floor']:7.3f} {r['int/captum']:8.3f} "
            f"{r['int/captum_best']:6.3f} {r['best_ibs']:5d} {r['mem/floor']:7.2f} "
            f"{r['mem/captum']:8.3f} {r['mem/captum_best']:8.3f} {r['mem_mib']:7.1f} "
            f"{r['flat']:5.2f} {r['first/settled']:5.2f}  {case.setting}",
            flush=True,
        )
        if args.show_sweep:
            sweep = "  ".join(f"{c}:{ms:.1f}" for c, ms in r["floor_sweep"].items())
            print(f"{'':11s} floor sweep (chunk: ms) {sweep}", flush=True)
        del case
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
