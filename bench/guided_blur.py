"""Guided IG and Blur IG: integrad (batched) vs PAIR's saliency (one image at a time).

Same model, images and arguments (PAIR's defaults); PAIR's ``call_model_function``
runs the same torch model. Prints seconds for each, their ratio and the largest
difference relative to the attributions' scale. Needs ``pip install --no-deps saliency``.

    python bench/guided_blur.py [--batch 8] [--size 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
import types
from typing import Any

import numpy as np
import torch
from torch import nn

import integrad


def pair(module: str) -> Any:
    """saliency.core.<module> without saliency/__init__ (which needs scikit-image)."""
    spec = importlib.util.find_spec("saliency")
    assert spec is not None and spec.submodule_search_locations
    if "_pair_saliency" not in sys.modules:
        package = types.ModuleType("_pair_saliency")
        package.__path__ = [os.path.join(spec.submodule_search_locations[0], "core")]
        sys.modules["_pair_saliency"] = package
    return importlib.import_module(f"_pair_saliency.{module}")


def small_cnn(size: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (size // 4) ** 2, 10),
    ).eval()


def call_model_function(model: nn.Module, target: int) -> Any:
    def call(batch: np.ndarray, call_model_args: Any = None, expected_keys: Any = None) -> dict:
        dtype = next(model.parameters()).dtype
        x = torch.tensor(batch, dtype=dtype).movedim(-1, 1).requires_grad_()
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
        return {"INPUT_OUTPUT_GRADIENTS": grad.movedim(1, -1).numpy()}

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--double", action="store_true", help="float64 model and images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quantile = np.quantile  # saliency 0.2.1 passes interpolation=, gone in numpy 2.4
    np.quantile = lambda *a, interpolation=None, **k: quantile(  # type: ignore[assignment]
        *a, **({"method": interpolation} if interpolation else {}), **k
    )
    dtype = torch.float64 if args.double else torch.float32
    model = small_cnn(args.size).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g, dtype=dtype)
    target = model(x).argmax(1).tolist()
    cases = {
        "guided (n_steps=200)": (
            lambda: integrad.GuidedIntegratedGradients(model).attribute(x, target=target),
            lambda i: (
                pair("guided_ig")
                .GuidedIG()
                .GetMask(x[i].permute(1, 2, 0).numpy(), call_model_function(model, target[i]))
            ),
        ),
        "blur (n_steps=100)": (
            lambda: integrad.BlurIntegratedGradients(model).attribute(x, target=target),
            lambda i: (
                pair("blur_ig")
                .BlurIG()
                .GetMask(x[i].permute(1, 2, 0).numpy(), call_model_function(model, target[i]))
            ),
        ),
    }
    print(f"batch {args.batch} × 3×{args.size}×{args.size} {dtype}, torch threads {args.threads}")
    for name, (ours, theirs) in cases.items():
        ours(), theirs(0)  # warm-up: first-call costs (lazy imports, allocator) excluded
        t = time.perf_counter()
        a = ours()
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        b = np.stack([theirs(i) for i in range(args.batch)]).transpose(0, 3, 1, 2)
        t_pair = time.perf_counter() - t
        diff = float(np.abs(a.numpy() - b).max() / np.abs(b).max())
        print(
            f"{name:22s} integrad {t_ours:7.2f} s   saliency {t_pair:7.2f} s   "
            f"speed-up {t_pair / t_ours:5.1f}×   max diff / scale {diff:.1e}"
        )


if __name__ == "__main__":
    main()
