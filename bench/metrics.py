"""Metrics: integrad against Captum, PAIR saliency and Quantus, side by side in one process.

Two cases: the demo's trained digits CNN (16 test digits, 1×8×8) and the untrained
BatchNorm CNN of ``bench/_models.py`` at 3×32×32 (8 examples). IG attributions are computed once and
shared. Each row times integrad and its peer on the same inputs, alternating, as the
median of ``--repeats`` runs after one warm-up, and prints a value check: the largest
absolute difference where the definitions coincide (Captum's metrics seeded alike,
PAIR's PIC, Quantus's curves with the same zero baseline), else both summaries.

    python bench/metrics.py [--repeats 5] [--threads 1]            # Captum and PAIR
    python bench/metrics.py --quantus                              # and Quantus 0.6

Quantus is kept out of the project's environment (it pulls opencv and scikit-image):
``--quantus`` makes ``.venv-quantus`` (if missing) with ``pip install -c constraints.txt
torch==2.13.0 quantus==0.6.*`` and reruns the Quantus part inside it; if the install
fails it prints pip's error and the rest stands.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _models import cnn64
from torch import nn

import integrad
from integrad import demo, metrics
from integrad.metrics.pic import DEFAULT_THRESHOLDS

ROOT = Path(__file__).resolve().parent.parent
QUANTUS_VENV = ROOT / ".venv-quantus"
QUANTUS_REQUIREMENTS = ("torch==2.13.0", "quantus==0.6.*")
Case = tuple[str, nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]


def cases() -> list[Case]:
    """(name, model, inputs, targets, IG attributions), the attributions computed once."""
    model = demo.train_digits_cnn(seed=0, cache=ROOT / "out" / "bench" / "digits_cnn.pt")
    _, _, x_test, y_test = demo.digits_data(seed=0)
    digits = ("digits 16×1×8×8", model, x_test[:16], y_test[:16])
    big = cnn64(size=32)
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        bn = ("BN CNN 8×3×32×32", big, x, big(x).argmax(1))
    out = []
    for name, m, inputs, target in (digits, bn):
        attributions = integrad.IntegratedGradients(m).attribute(inputs, target=target, n_steps=32)
        out.append((name, m, inputs, target, attributions.detach()))
    return out


def race(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each contender over ``repeats`` alternating runs, after a warm-up."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {key: [] for key in contenders}
    for _ in range(repeats):
        for key, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


class Table:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        print(
            f"{'metric':34s} {'inputs':18s} {'integrad ms':>11s} {peer + ' ms':>12s} "
            f"{'ratio':>6s}  values"
        )

    def row(
        self,
        metric: str,
        inputs: str,
        ours: Callable[[], object],
        theirs: Callable[[], object],
        repeats: int,
        check: str,
    ) -> None:
        med = race({"ours": ours, "theirs": theirs}, repeats)
        print(
            f"{metric:34s} {inputs:18s} {med['ours'] * 1e3:11.1f} {med['theirs'] * 1e3:12.1f} "
            f"{med['ours'] / med['theirs']:6.3f}  {check}",
            flush=True,
        )


def seeded(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``fn`` run from torch's global random state seeded 0 (Captum's perturbations draw there)."""

    def run() -> torch.Tensor:
        torch.manual_seed(0)
        return fn()

    return run


def global_noise(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum's tutorial perturbation for infidelity: Gaussian noise from the global state."""
    noise = 0.1 * torch.randn(inputs.shape)
    return noise, inputs - noise


def largest(a: Any, b: Any) -> str:
    ours = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    theirs = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    diff, scale = float((ours - theirs).abs().max()), float(theirs.abs().max())
    return f"max |diff| {diff:.1e} (of max {scale:.1e})"


def captum_part(all_cases: list[Case], repeats: int) -> None:
    print("\n== integrad.metrics vs captum.metrics 0.9 (same perturbation, seeded alike)")
    table = Table("captum")
    for case in all_cases:
        captum_rows(table, case, repeats)


def captum_rows(table: Table, case: Case, repeats: int) -> None:
    from captum import metrics as captum_metrics

    name, model, x, target, attributions = case
    for n in (10, 50):
        for chunk in (None, 8 * x.shape[0]):
            kwargs = {"target": target, "n_perturb_samples": n, "max_examples_per_batch": chunk}

            def ours(kwargs: dict[str, Any] = kwargs) -> torch.Tensor:
                return metrics.infidelity(model, global_noise, x, attributions, **kwargs)

            def theirs(kwargs: dict[str, Any] = kwargs) -> torch.Tensor:
                return captum_metrics.infidelity(model, global_noise, x, attributions, **kwargs)

            check = largest(seeded(ours)(), seeded(theirs)())
            label = f"infidelity n={n} mepb={chunk}"
            table.row(label, name, seeded(ours), seeded(theirs), repeats, check)

    def ig8(inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return integrad.IntegratedGradients(model).attribute(inputs, target=target, n_steps=8)

    for label, explain in (("Saliency", integrad.Saliency(model).attribute), ("IG n=8", ig8)):

        def mine(explain: Callable[..., Any] = explain) -> torch.Tensor:
            return metrics.sensitivity_max(explain, x, target=target)

        def peer(explain: Callable[..., Any] = explain) -> torch.Tensor:
            return captum_metrics.sensitivity_max(explain, x, target=target)

        check = largest(seeded(mine)(), seeded(peer)())
        table.row(f"sensitivity_max {label}", name, seeded(mine), seeded(peer), repeats, check)


def pair_pic_module() -> Any:
    """PAIR's ``saliency/metrics/pic.py`` loaded from its file (saliency/__init__ needs skimage)."""
    import importlib.util

    spec = importlib.util.find_spec("saliency")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the saliency package is not installed: pip install --no-deps saliency")
    path = os.path.join(spec.submodule_search_locations[0], "metrics", "pic.py")
    module_spec = importlib.util.spec_from_file_location("_pair_pic", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(np, "trapz"):  # saliency 0.2.1 calls np.trapz, gone from numpy 2.4
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    return module


def pair_part(all_cases: list[Case], repeats: int) -> None:
    pair = pair_pic_module()
    print("\n== integrad.metrics.pic vs PAIR saliency 0.2.1 pic.compute_pic_metric (per image)")
    table = Table("PAIR")
    for case in all_cases:
        pair_row(table, pair, case, repeats)


def pair_row(table: Table, pair: Any, case: Case, repeats: int) -> None:
    name, model, x, target, attributions = case
    images = (x * 255).round().to(torch.uint8)
    maps = attributions.sum(1)
    g = torch.Generator().manual_seed(0)
    masks = torch.stack([metrics.random_mask(*x.shape[-2:], 0.01, g) for _ in range(len(x))])

    def ours() -> Any:
        return metrics.pic(
            model, images, maps, target=target, random_masks=masks, min_pred_value=0.0
        )

    def predict(batch: np.ndarray, label: int) -> list[float]:
        t = torch.from_numpy(batch).float() / 255
        t = t.unsqueeze(1) if t.dim() == 3 else t.movedim(-1, 1)
        with torch.no_grad():
            return model(t).softmax(-1)[:, label].tolist()

    def theirs() -> list[Any]:
        results: list[Any] = []
        for b in range(len(x)):
            pixels = images[b].movedim(0, -1).numpy()
            pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
            try:
                results.append(
                    pair.compute_pic_metric(
                        pixels,
                        maps[b].double().numpy(),
                        masks[b].numpy(),
                        functools.partial(predict, label=int(target[b])),
                        DEFAULT_THRESHOLDS,
                        min_pred_value=0.0,
                    )
                )
            except pair.ComputePicMetricError:  # integrad marks these NaN
                results.append(None)
        return results

    mine, peer = ours(), theirs()
    valid = [b for b, r in enumerate(peer) if r is not None]
    if valid and bool(mine.valid[valid].all()):
        check = largest(mine.curves[valid], np.stack([peer[b].curve_y for b in valid]))
        check += f" over {len(valid)}/{len(x)} curves"
    else:
        check = f"valid: integrad {int(mine.valid.sum())}, PAIR {len(valid)}"
    table.row("PIC (SIC)", name, ours, theirs, repeats, check)


def quantus_part(all_cases: list[Case], repeats: int) -> None:
    import quantus

    print(f"\n== integrad.metrics vs Quantus {quantus.__version__} (numpy {np.__version__})")
    table = Table("quantus")
    for case in all_cases:
        quantus_rows(table, quantus, case, repeats)


def quantus_rows(table: Table, quantus: Any, case: Case, repeats: int) -> None:
    name, model, x, target, attributions = case
    x_np, y_np, a_np = x.numpy(), target.numpy(), attributions.numpy()
    common = {"a_batch": a_np, "softmax": False, "device": "cpu"}  # logits, as integrad's

    # Pixel flipping: Quantus wants features_in_step to divide the pixels per channel too.
    in_step = math.gcd(max(1, x[0].numel() // 64), x[0, 0].numel())
    steps = x[0].numel() // in_step
    flipping = quantus.PixelFlipping(
        features_in_step=in_step, perturb_baseline=0.0, disable_warnings=True
    )

    def ours_flip() -> Any:
        return metrics.deletion(model, x, attributions, target=target, steps=steps)

    def theirs_flip() -> Any:
        return flipping(model, x_np, y_np, **common)

    check = largest(ours_flip().curves[:, 1:], theirs_flip())
    table.row(
        f"deletion vs PixelFlipping, {steps} st", name, ours_flip, theirs_flip, repeats, check
    )

    # Region perturbation: 64 patches, deleted one at a time; Quantus records f(x) - f(x~).
    patch = x.shape[-1] // 8
    region = quantus.RegionPerturbation(
        patch_size=patch, regions_evaluation=64, perturb_baseline=0.0, disable_warnings=True
    )

    def ours_region() -> Any:
        return metrics.deletion(model, x, attributions, target=target, steps=64, patch=patch)

    def theirs_region() -> Any:
        return region(model, x_np, y_np, **common)

    with torch.no_grad():
        start = model(x).gather(1, target[:, None]).double()
    check = largest(start - ours_region().curves[:, 1:], theirs_region())
    label = f"deletion patch={patch} vs RegionPert."
    table.row(label, name, ours_region, theirs_region, repeats, check)

    # Cascading randomization, the same explanation (IG, 16 steps) on both sides.
    def explain(model: nn.Module, inputs: Any, target: Any = None) -> torch.Tensor:
        ig = integrad.IntegratedGradients(model)
        return ig.attribute(torch.as_tensor(inputs), target=torch.as_tensor(target), n_steps=16)

    def quantus_explain(model: nn.Module, inputs: Any, targets: Any, **_: Any) -> np.ndarray:
        return explain(model, inputs, targets).detach().numpy()

    mprt = quantus.MPRT(layer_order="top_down", disable_warnings=True)

    def ours_mprt() -> Any:
        return metrics.randomization_check(model, explain, x, target=target)

    def theirs_mprt() -> Any:
        return mprt(model, x_np, y_np, explain_func=quantus_explain, **common)

    last_ours = float(ours_mprt().spearman_abs[-1].mean())
    last_theirs = float(np.mean(list(theirs_mprt().values())[-1]))
    check = f"fully random Spearman |a|: {last_ours:.3f} vs {last_theirs:.3f}"
    table.row("randomization_check vs MPRT (IG16)", name, ours_mprt, theirs_mprt, repeats, check)


def run_in_quantus_venv(argv: list[str]) -> int:
    """Make ``.venv-quantus`` if missing and rerun the Quantus part there; pip's error if not."""
    python, installed = QUANTUS_VENV / "bin" / "python", QUANTUS_VENV / ".installed"
    if not installed.exists():
        print(
            f"making {QUANTUS_VENV.name}: pip install -c constraints.txt "
            f"{' '.join(QUANTUS_REQUIREMENTS)}",
            flush=True,
        )
        subprocess.run([sys.executable, "-m", "venv", str(QUANTUS_VENV)], check=True)
        install = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-c",
                str(ROOT / "constraints.txt"),
                *QUANTUS_REQUIREMENTS,
            ],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            print(f"Quantus could not be installed (pip exit {install.returncode}):")
            print(install.stderr.strip()[-3000:] or install.stdout.strip()[-3000:])
            return install.returncode
        installed.touch()
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT / 'bench'}")
    script = str(Path(__file__).resolve())
    return subprocess.run([str(python), script, *argv, "--inside-quantus"], env=env).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quantus", action="store_true", help="also compare with Quantus 0.6")
    parser.add_argument("--inside-quantus", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # completeness warnings of randomized models, Quantus's
    common = ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    if args.inside_quantus:
        quantus_part(cases(), args.repeats)
        return
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), medians of {args.repeats} "
        "alternating runs after a warm-up; ratio = integrad / peer"
    )
    all_cases = cases()
    captum_part(all_cases, args.repeats)
    pair_part(all_cases, args.repeats)
    if args.quantus:
        sys.stdout.flush()
        code = run_in_quantus_venv(common)
        if code != 0:
            print(f"(the Quantus part ended with exit code {code})")


if __name__ == "__main__":
    main()
