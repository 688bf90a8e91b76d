"""Baselines: the point x' the path starts from.

Wherever ``baselines`` is accepted you may pass ``None`` (zeros), a number, a tensor of
the input's shape or broadcastable to it (e.g. a leading 1), one of the names below, a
strategy built by the functions of this module (to set its options), or a callable
``inputs -> baselines`` applied to the inputs in the form you passed them. For tuple
inputs, a tuple mixes any of these per input.

=================  ==========================================================
name               baseline
=================  ==========================================================
``"zeros"``        all zeros (Captum's default)
``"uniform"``      uniform noise in each example's value range
``"gaussian"``     the input plus Gaussian noise, ``sigma`` relative to range
``"blur"``         Gaussian blur of an image input (torch convolutions)
``"mean"``         per-feature mean of reference data: use :func:`mean`
``"max_entropy"``  0.5 everywhere (mid-gray for images in [0, 1])
=================  ==========================================================

Random strategies draw only from a ``torch.Generator``. Without one they use a
fresh generator seeded with 0, so a run is reproducible by default.

>>> import torch, integrad
>>> x = torch.rand(2, 3, 8, 8)
>>> integrad.baselines.blur(sigma=2.0)(x).shape
torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ._inputs import broadcast_baseline, check_finite

__all__ = [
    "NAMES",
    "BaselineStrategy",
    "blur",
    "blur_matrix",
    "describe",
    "gaussian",
    "gaussian_blur",
    "max_entropy",
    "mean",
    "resolve",
    "uniform",
    "zeros",
]

NAMES: tuple[str, ...] = ("blur", "gaussian", "max_entropy", "mean", "uniform", "zeros")


@dataclass(frozen=True)
class BaselineStrategy:
    """A named baseline with its options, applied to one input tensor at a time."""

    name: str
    make: Callable[..., torch.Tensor] = field(repr=False, compare=False)
    options: tuple[tuple[str, object], ...] = ()
    random: bool = False
    """Whether ``make(x, generator)`` draws random numbers (from its own generator if it was
    given one, else from ``generator``)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.make(x, generator) if self.random else self.make(x)

    def __str__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name}({opts})"


def _generator(
    generator: torch.Generator | None, device: torch.device, fallback: torch.Generator | None = None
) -> torch.Generator:
    if generator is None:
        generator = fallback
    if generator is not None:
        if torch.device(generator.device).type != device.type:
            raise ValueError(
                f"generator is on {generator.device} but the inputs are on {device}; "
                "pass a generator on the inputs' device"
            )
        return generator
    return torch.Generator(device).manual_seed(0)


def _row_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example minimum and maximum, shaped to broadcast against ``x``."""
    flat = x.reshape(x.shape[0], -1)
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return flat.amin(dim=1).reshape(shape), flat.amax(dim=1).reshape(shape)


def zeros() -> BaselineStrategy:
    """All zeros."""
    return BaselineStrategy("zeros", torch.zeros_like)


def max_entropy(value: float = 0.5) -> BaselineStrategy:
    """A constant ``value`` everywhere (0.5: mid-gray for images scaled to [0, 1])."""
    return BaselineStrategy("max_entropy", lambda x: torch.full_like(x, value), (("value", value),))


def uniform(generator: torch.Generator | None = None) -> BaselineStrategy:
    """Uniform noise between each example's minimum and maximum value."""

    def make(x: torch.Tensor, fallback: torch.Generator | None = None) -> torch.Tensor:
        low, high = _row_range(x)
        gen = _generator(generator, x.device, fallback)
        u = torch.rand(x.shape, generator=gen, device=x.device)
        return low + u.to(x.dtype) * (high - low)

    return BaselineStrategy("uniform", make, random=True)


def gaussian(sigma: float = 0.1, generator: torch.Generator | None = None) -> BaselineStrategy:
    """The input plus Gaussian noise of standard deviation ``sigma`` × the example's range."""
    if not (isinstance(sigma, (int, float)) and sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")

    def make(x: torch.Tensor, fallback: torch.Generator | None = None) -> torch.Tensor:
        low, high = _row_range(x)
        gen = _generator(generator, x.device, fallback)
        noise = torch.randn(x.shape, generator=gen, device=x.device)
        return x + noise.to(x.dtype) * (sigma * (high - low))

    return BaselineStrategy("gaussian", make, (("sigma", sigma),), random=True)


def blur(sigma: float = 5.0) -> BaselineStrategy:
    """Gaussian blur, ``sigma`` in pixels, over the last two dimensions of an image batch.

    Inputs are ``(batch, height, width)`` or ``(batch, channels, height, width)``;
    borders are replicated. See :func:`gaussian_blur`.
    """
    if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return BaselineStrategy("blur", lambda x: gaussian_blur(x, sigma), (("sigma", sigma),))


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "replicate") -> torch.Tensor:
    """Blur the last two dimensions of ``x`` with a Gaussian of std ``sigma`` pixels.

    The kernel is scipy's ``gaussian_filter`` kernel (radius ``int(4 sigma + 0.5)``,
    normalised to sum 1); ``mode`` is ``"replicate"`` (scipy's ``"nearest"``: borders
    repeat) or ``"constant"`` (zeros outside the image, as Blur IG uses). ``sigma=0``
    returns ``x``. Each axis is one matrix product, so any radius, also one larger
    than the image, costs the same.
    """
    if x.dim() not in (3, 4):
        raise ValueError(
            "the blur baseline needs image inputs of shape (batch, height, width) or "
            f"(batch, channels, height, width); got shape {tuple(x.shape)}"
        )
    rows = blur_matrix(int(x.shape[-2]), sigma, mode).to(device=x.device, dtype=x.dtype)
    cols = blur_matrix(int(x.shape[-1]), sigma, mode).to(device=x.device, dtype=x.dtype)
    return rows @ x @ cols.T


def blur_matrix(size: int, sigma: float, mode: str = "replicate") -> torch.Tensor:
    """The ``(size, size)`` float64 matrix of a 1-D Gaussian blur (see :func:`gaussian_blur`).

    Memory and time are O(size²) whatever ``sigma``: only offsets that land inside the
    image are formed; the kernel's mass beyond them (clamped to the border in
    ``"replicate"`` mode, dropped in ``"constant"`` mode) is summed in closed form.
    """
    if mode not in ("replicate", "constant"):
        raise ValueError(f"mode must be 'replicate' or 'constant', got {mode!r}")
    if not (isinstance(sigma, (int, float)) and sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if sigma == 0:
        return torch.eye(size, dtype=torch.float64)
    radius = int(4.0 * sigma + 0.5)
    reach = min(radius, size - 1)  # the largest offset that stays inside the image
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 / (sigma * sigma) * offsets**2)
    # Unnormalised mass of the offsets reach+1 .. radius on one side (scipy cuts at radius).
    beyond = _gauss_sum(reach + 1, radius, sigma)
    norm = float(kernel.sum()) + 2.0 * beyond
    kernel = kernel / norm
    i = torch.arange(size).unsqueeze(1)
    j = torch.arange(size).unsqueeze(0)
    matrix = torch.where((j - i).abs() <= reach, kernel[(j - i).clamp(-reach, reach) + reach], 0.0)
    if mode == "replicate" and size > 1:
        # Offsets reaching past an edge read the edge pixel: it gets their whole mass.
        cum = torch.cumsum(kernel, 0)  # cum[k]: mass of the offsets -reach .. k - reach
        tail = beyond / norm
        rows = torch.arange(size)
        # Column 0 takes the offsets d <= -i, column size-1 the offsets d >= size-1-i.
        matrix[:, 0] = torch.where(rows <= reach, cum[(reach - rows).clamp(min=0)], 0.0) + tail
        upper = size - 1 - rows
        below = torch.where(upper + reach >= 1, cum[(upper + reach - 1).clamp(0, 2 * reach)], 0.0)
        matrix[:, size - 1] = torch.where(upper <= reach, cum[-1] - below, 0.0) + tail
    elif mode == "replicate":
        matrix[0, 0] = 1.0
    return matrix


def _gauss_sum(first: int, last: int, sigma: float) -> float:
    """``Σ_{d=first}^{last} exp(-d² / 2σ²)`` (0 when ``first > last``), in O(1) memory."""
    if first > last:
        return 0.0
    if last - first < 1 << 17:
        d = torch.arange(first, last + 1, dtype=torch.float64)
        return float(torch.exp(-0.5 / (sigma * sigma) * d**2).sum())

    # Euler–Maclaurin; only reached for sigma > 3e4, where the next term is below 1e-20
    # of the kernel's total mass.
    def g(t: float) -> float:
        return math.exp(-0.5 * t * t / (sigma * sigma))

    scale = sigma * math.sqrt(math.pi / 2.0)
    root = sigma * math.sqrt(2.0)
    integral = scale * (math.erf(last / root) - math.erf(first / root))
    slope = (-last * g(last) + first * g(first)) / (sigma * sigma)
    return integral + 0.5 * (g(first) + g(last)) + slope / 12.0


def mean(reference: torch.Tensor) -> BaselineStrategy:
    """The per-feature mean of ``reference`` (e.g. training data), shape ``(N, *features)``."""
    if not isinstance(reference, torch.Tensor) or reference.dim() == 0:
        raise ValueError("reference must be a tensor of shape (N, *features) with N >= 1")
    if reference.shape[0] == 0:
        raise ValueError("reference is empty; give at least one example")
    check_finite(reference, "reference")
    center = reference.detach().double().mean(dim=0, keepdim=True)

    def make(x: torch.Tensor) -> torch.Tensor:
        if center.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"reference of shape {tuple(reference.shape)} does not match inputs of shape "
                f"{tuple(x.shape)} beyond the batch dimension"
            )
        return center.to(device=x.device, dtype=x.dtype).expand(x.shape).contiguous()

    return BaselineStrategy("mean", make, (("n_reference", int(reference.shape[0])),))


def _named(name: str) -> BaselineStrategy:
    if name == "mean":
        raise ValueError(
            "baselines='mean' needs reference data: pass integrad.baselines.mean(reference) "
            "with, e.g., the training set"
        )
    makers: dict[str, Callable[[], BaselineStrategy]] = {
        "zeros": zeros,
        "uniform": uniform,
        "gaussian": gaussian,
        "blur": blur,
        "max_entropy": max_entropy,
    }
    if name not in makers:
        raise ValueError(f"baselines={name!r} is not a known baseline; choose one of {list(NAMES)}")
    return makers[name]()


class _SharedGenerators:
    """One default generator per device for one resolve call: the tensors of a tuple input
    draw successive numbers from it, not the same numbers each."""

    def __init__(self) -> None:
        self.by_device: dict[torch.device, torch.Generator] = {}

    def __call__(self, device: torch.device) -> torch.Generator:
        if device not in self.by_device:
            self.by_device[device] = torch.Generator(device).manual_seed(0)
        return self.by_device[device]


def _one(spec: object, x: torch.Tensor, where: str, shared: _SharedGenerators) -> torch.Tensor:
    if spec is None:
        return torch.zeros_like(x)
    if isinstance(spec, str):
        spec = _named(spec)
    if isinstance(spec, BaselineStrategy):
        value: object = spec(x, shared(x.device)) if spec.random else spec(x)
    elif callable(spec) and not isinstance(spec, torch.Tensor):
        value = spec(x)
    else:
        value = spec
    return broadcast_baseline(value, x, where)


def resolve(
    baselines: object, inputs: tuple[torch.Tensor, ...], was_tuple: bool
) -> tuple[torch.Tensor, ...]:
    """Baselines in any accepted form, as a tuple of tensors shaped like ``inputs``."""
    if callable(baselines) and not isinstance(baselines, (BaselineStrategy, torch.Tensor)):
        # A user callable sees the inputs in the caller's form and answers in kind.
        baselines = baselines(inputs if was_tuple else inputs[0])
        if callable(baselines) and not isinstance(baselines, torch.Tensor):
            raise TypeError("a baselines callable must return baselines, not another callable")
    shared = _SharedGenerators()
    if was_tuple and isinstance(baselines, tuple):
        if len(baselines) != len(inputs):
            raise ValueError(
                f"baselines has {len(baselines)} entries but inputs has {len(inputs)}; "
                "give one baseline per input"
            )
        return tuple(
            _one(b, x, f"baselines[{i}]", shared)
            for i, (b, x) in enumerate(zip(baselines, inputs, strict=True))
        )
    if isinstance(baselines, tuple):
        if len(baselines) != 1:
            raise ValueError(f"baselines is a tuple of {len(baselines)} but inputs is one tensor")
        baselines = baselines[0]
    return tuple(_one(baselines, x, "baselines", shared) for x in inputs)


def describe(baselines: object) -> str:
    """A short human-readable description of a baselines argument, for provenance."""
    if baselines is None:
        return "zeros"
    if isinstance(baselines, (str, BaselineStrategy)):
        return str(baselines)
    if isinstance(baselines, (int, float)):
        return f"constant({baselines})"
    if isinstance(baselines, torch.Tensor):
        return f"tensor{tuple(baselines.shape)}"
    if isinstance(baselines, tuple):
        return "(" + ", ".join(describe(b) for b in baselines) + ")"
    return getattr(baselines, "__name__", type(baselines).__name__)
