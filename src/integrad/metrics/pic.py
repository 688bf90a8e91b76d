"""Performance Information Curves (Kapishnikov et al., 2019): SIC and AIC, as in PAIR saliency.

Start from a "fully blurred" image: the pixels of a sparse random mask kept, the rest
filled by linear interpolation between them (Delaunay, as ``scipy.interpolate.griddata``).
Reveal the most salient pixels a fraction at a time and re-interpolate; each image's
information is estimated by its lossless WebP size. The curve plots the model's
normalised score (softmax of the class: SIC; 1 if still classified right: AIC) against
the normalised information; a faithful saliency map reaches a high score early (high
area). Definitions, thresholds, validity checks and interpolation follow PAIR's
``saliency/metrics/pic.py`` (0.2.1), against which a test checks every number. The
model runs batched over all examples and thresholds, in chunks within ``max_memory``;
the interpolation needs scipy and the entropy estimate Pillow (imported here only).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._engine import default_budget
from .._inputs import check_callable, check_positive_int, not_a_tensor
from ._common import as_tuple

__all__ = ["DEFAULT_THRESHOLDS", "PicResult", "pic", "random_mask"]

DEFAULT_THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.10, 0.13, 0.21, 0.34, 0.5, 0.75)
"""The saliency fractions revealed, from PAIR's documentation."""
KINDS = ("sic", "aic")


@dataclass
class PicResult:
    """Per-example PIC curves; examples PAIR would skip are NaN, with the reason kept."""

    kind: str
    """``"sic"`` or ``"aic"``."""
    curve_x: torch.Tensor
    """Shape ``(num_data_points + 1,)``: normalised information, 0 to 1."""
    curves: torch.Tensor
    """Shape ``(batch, num_data_points + 1)``: normalised score, float64; NaN when skipped."""
    predictions: torch.Tensor
    """Shape ``(batch, len(thresholds) + 2)``: score of the fully blurred image, of each
    threshold's image, and of the original."""
    entropies: torch.Tensor
    """Shape ``(batch, len(thresholds) + 2)``: WebP bytes of the same images."""
    thresholds: tuple[float, ...]
    skipped: list[str | None]
    """Per example: ``None``, or why PAIR would raise ``ComputePicMetricError``."""

    @property
    def valid(self) -> torch.Tensor:
        """Shape ``(batch,)``: the examples with a curve."""
        return torch.tensor([reason is None for reason in self.skipped])

    @property
    def auc(self) -> torch.Tensor:
        """Shape ``(batch,)``: area under each curve (trapezoid rule); NaN when skipped."""
        return torch.trapezoid(self.curves, self.curve_x, dim=1)

    def aggregate(self, method: str = "median") -> tuple[torch.Tensor, float]:
        """The median (or mean) curve over the valid examples and its area, as PAIR's."""
        if method not in ("median", "mean"):
            raise ValueError(f"method must be 'median' or 'mean', got {method!r}")
        rows = self.curves[self.valid]
        if rows.shape[0] == 0:
            raise ValueError("no example has a PIC curve: every one was skipped")
        # torch.median takes the lower middle value; PAIR (numpy) averages the two.
        curve = rows.mean(0) if method == "mean" else torch.quantile(rows, 0.5, dim=0)
        return curve, float(torch.trapezoid(curve, self.curve_x))

    def plot(self, ax: Any = None, aggregate: str = "median") -> Any:
        """The curves: each valid example thin, the ``aggregate`` curve thick, AUCs in the legend.

        Draws into ``ax`` if given, else into a new figure
        (``views._png.new_figure``, no pyplot); returns the Figure. Needs
        matplotlib.
        """
        from ..views._png import new_figure

        fig = new_figure((5.0, 3.6)) if ax is None else ax.figure
        if ax is None:
            ax = fig.add_subplot()
        x = self.curve_x.numpy()
        auc = self.auc
        for i in torch.nonzero(self.valid).flatten().tolist():
            ax.plot(x, self.curves[i].numpy(), linewidth=0.8, alpha=0.5,
                    label=f"#{i}: AUC {float(auc[i]):.3f}")  # fmt: skip
        curve, area = self.aggregate(aggregate)
        ax.plot(x, curve.numpy(), color="black", linewidth=2.5,
                label=f"{aggregate}: AUC {area:.3f}")  # fmt: skip
        name = self.kind.upper()
        ax.set_xlabel("normalised information (WebP bytes)")
        ax.set_ylabel("normalised softmax" if self.kind == "sic" else "accuracy")
        skipped = len(self.skipped) - int(self.valid.sum())
        ax.set_title(f"{name}: {int(self.valid.sum())} images" + (
            f" ({skipped} skipped)" if skipped else ""))  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize="small")
        return fig


def random_mask(
    height: int, width: int, fraction: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A ``(height, width)`` bool mask with ``int(height * width * fraction)`` pixels set."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    size = height * width
    chosen = torch.randperm(size, generator=generator)[: int(size * fraction)]
    mask = torch.zeros(size, dtype=torch.bool)
    mask[chosen] = True
    return mask.reshape(height, width)


def pic(
    forward_func: Callable[..., Any],
    images: torch.Tensor,
    saliency: Any,
    *,
    target: int | Sequence[int] | torch.Tensor | None = None,
    kind: str = "sic",
    random_masks: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    min_pred_value: float = 0.8,
    keep_monotonous: bool = True,
    num_data_points: int = 1000,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    max_memory: int | None = None,
) -> PicResult:
    """SIC (``kind="sic"``) or AIC (``kind="aic"``) curves for a batch of uint8 images.

    ``images`` is uint8, ``(batch, C, H, W)`` with 1 or 3 channels, or ``(batch, H, W)``;
    the model sees ``preprocess(images)`` (default: float32 in [0, 1]) and returns
    ``(batch, classes)`` logits. ``saliency`` is ``(batch, H, W)`` or shaped like
    ``images`` (summed over channels), or an Explanation; higher means more important
    (take ``abs`` first if that is what you mean). ``target`` is the class (one, or one
    per example; default: the class predicted on the original image).
    ``random_masks`` ``(batch, H, W)`` seeds the fully blurred images; by default each
    example draws its own from ``generator`` (1% of the pixels).

    >>> import torch
    >>> from integrad.metrics import pic
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    >>> images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    >>> result = pic(model, images, torch.rand(2, 8, 8), min_pred_value=0.0)
    >>> result.curves.shape
    torch.Size([2, 1001])
    """
    check_callable(forward_func)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    check_positive_int(num_data_points, "num_data_points")
    if max_memory is not None:
        check_positive_int(max_memory, "max_memory")
    pixels = _channels_last(images)
    batch, height, width = pixels.shape[:3]
    maps = _saliency(saliency, images)
    masks = _masks(random_masks, batch, height, width, generator)
    levels = tuple(float(t) for t in thresholds)
    if not all(0.0 <= t <= 1.0 for t in levels):
        raise ValueError(f"thresholds must lie in [0, 1], got {list(thresholds)!r}")
    prepare = preprocess if preprocess is not None else _to_unit_float

    # Per example: the fully blurred image, one per threshold, the original.
    stacks = []
    for b in range(batch):
        source = pixels[b]
        stack = [_blurred(source, masks[b])]
        for t in levels:
            # PAIR: np.quantile (linear) of the map, pixels at or above it, plus the seed mask.
            cut = np.quantile(maps[b], 1 - t)
            stack.append(_blurred(source, (maps[b] >= cut) | masks[b]))
        stack.append(source)
        stacks.append(np.stack(stack))
    everything = np.stack(stacks)  # (batch, T + 2, H, W, C)
    entropies = torch.tensor(
        [[_webp_bytes(image) for image in stack] for stack in everything], dtype=torch.float64
    )
    logits = _evaluate(forward_func, prepare, everything, images.device, max_memory)
    classes = _targets(target, logits[:, -1], batch)
    if kind == "sic":
        scores = logits.softmax(-1).gather(2, classes[:, None, None].expand(-1, len(levels) + 2, 1))
        scores = scores.squeeze(2)
    else:
        scores = (logits.argmax(-1) == classes[:, None]).double()

    # numpy.linspace(0, 1, n, endpoint=False) multiplies by the step, then 1.0 is appended.
    steps = torch.arange(num_data_points, dtype=torch.float64) * (1.0 / num_data_points)
    curve_x = torch.cat([steps, torch.ones(1, dtype=torch.float64)])
    curves = torch.full((batch, num_data_points + 1), float("nan"), dtype=torch.float64)
    skipped: list[str | None] = []
    for b in range(batch):
        reason = _skip_reason(scores[b], entropies[b], min_pred_value)
        skipped.append(reason)
        if reason is None:
            curves[b] = _curve(scores[b], entropies[b], keep_monotonous, curve_x)
    return PicResult(kind, curve_x, curves, scores, entropies, levels, skipped)


def _channels_last(images: torch.Tensor) -> np.ndarray:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (PIC measures WebP sizes), got {images.dtype}")
    if images.dim() == 3:
        return images.unsqueeze(-1).cpu().numpy()
    if images.dim() == 4 and images.shape[1] in (1, 3):
        return images.movedim(1, -1).cpu().numpy()
    raise ValueError(
        "images must be (batch, H, W) or (batch, C, H, W) with 1 or 3 channels, got shape "
        f"{tuple(images.shape)}"
    )


def _saliency(saliency: Any, images: torch.Tensor) -> np.ndarray:
    (maps,) = as_tuple(saliency, "saliency")
    if maps.shape == images.shape and images.dim() == 4:
        maps = maps.sum(1)
    if maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(
            f"saliency has shape {tuple(maps.shape)}; it must be (batch, H, W) = "
            f"{(images.shape[0], *images.shape[-2:])} or the images' shape"
        )
    return maps.detach().double().cpu().numpy()


def _masks(
    masks: torch.Tensor | None, batch: int, height: int, width: int, generator: Any
) -> np.ndarray:
    if masks is None:
        return torch.stack(
            [random_mask(height, width, 0.01, generator) for _ in range(batch)]
        ).numpy()
    if not isinstance(masks, torch.Tensor) or masks.shape != (batch, height, width):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"random_masks must be a ({batch}, {height}, {width}) tensor, got {shape}")
    return masks.bool().cpu().numpy()


def _blurred(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PAIR's ``create_blurred_image`` (linear) on an ``(H, W, C)`` uint8 image."""
    from scipy.interpolate import LinearNDInterpolator

    height, width = image.shape[:2]
    mask = mask.copy()
    mask[[0, 0, height - 1, height - 1], [0, width - 1, 0, width - 1]] = True
    if mask.all():
        return image
    out = image * mask[..., None].astype(np.float32)
    known, unknown = np.argwhere(mask), np.argwhere(~mask)
    # One triangulation for all channels (griddata makes the same one per channel).
    values = image[tuple(known.T)].astype(np.float64)
    filled = LinearNDInterpolator(known, values, fill_value=np.nan)(unknown)
    mean = image.mean(axis=(0, 1))
    filled = np.where(np.isnan(filled), mean[None, :], filled)
    out[tuple(unknown.T)] = filled
    return np.round(out).astype(np.uint8)


def _webp_bytes(image: np.ndarray) -> int:
    """PAIR's entropy estimate: the image's size as lossless WebP."""
    from PIL import Image

    buffer = io.BytesIO()
    plane = image[..., 0] if image.shape[-1] == 1 else image
    Image.fromarray(plane).save(buffer, format="webp", lossless=True, quality=100)
    return buffer.tell()


def _to_unit_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255


def _evaluate(
    forward_func: Callable[..., Any],
    prepare: Callable[[torch.Tensor], torch.Tensor],
    everything: np.ndarray,
    device: torch.device,
    max_memory: int | None,
) -> torch.Tensor:
    """Logits ``(batch, T + 2, classes)`` of all images, in chunks within the budget."""
    batch, per_example = everything.shape[:2]
    flat = torch.from_numpy(everything.reshape(-1, *everything.shape[2:])).movedim(-1, 1)
    budget = default_budget(device) if max_memory is None else max_memory
    # float32 model inputs with room for activations (4x), as the deletion curves; on a
    # GPU, whose default budget is a share of its free memory, 16x.
    room = 16 if device.type == "cuda" else 4
    per_chunk = max(1, budget // (4 * room * flat[0].numel()))
    outputs = []
    with torch.no_grad():
        for start in range(0, flat.shape[0], per_chunk):
            chunk = flat[start : start + per_chunk].to(device)
            out = forward_func(prepare(chunk))
            if not isinstance(out, torch.Tensor):
                raise TypeError(not_a_tensor(out))
            if out.dim() != 2 or out.shape[0] != chunk.shape[0]:
                raise ValueError(
                    f"forward_func returned shape {tuple(out.shape)} for {chunk.shape[0]} "
                    "images; PIC needs (images, classes) logits"
                )
            outputs.append(out.detach().double().cpu())
    return torch.cat(outputs).reshape(batch, per_example, -1)


def _targets(target: object, original: torch.Tensor, batch: int) -> torch.Tensor:
    if target is None:
        return original.argmax(-1)
    if isinstance(target, int) and not isinstance(target, bool):
        return torch.full((batch,), target, dtype=torch.long)
    classes = torch.as_tensor(target).reshape(-1)
    if classes.is_floating_point() or classes.dtype == torch.bool or classes.numel() != batch:
        raise ValueError(
            f"target must be None, an int or {batch} ints (one per image), got {target!r}"
        )
    return classes.long().cpu()


def _skip_reason(scores: torch.Tensor, entropies: torch.Tensor, min_pred_value: float) -> Any:
    """PAIR's three ``ComputePicMetricError`` cases, in its order."""
    original, blurred = float(scores[-1]), float(scores[0])
    if original < min_pred_value:
        return f"the score on the original image ({original:.4g}) is below min_pred_value"
    if entropies[0] >= entropies[-1]:
        return "the fully blurred image is not smaller (as WebP) than the original"
    if blurred >= original:
        return f"the fully blurred image scores {blurred:.4g}, not below the original"
    return None


def _curve(
    scores: torch.Tensor, entropies: torch.Tensor, keep_monotonous: bool, curve_x: torch.Tensor
) -> torch.Tensor:
    """PAIR's normalised (information, score) points, interpolated as scipy's interp1d."""
    low_e, high_e = entropies[0], entropies[-1]
    low_s, high_s = scores[0], scores[-1]
    information = ((entropies[1:-1] - low_e) / (high_e - low_e)).clamp(0.0, 1.0)
    score = ((scores[1:-1] - low_s) / (high_s - low_s)).clamp(0.0, 1.0)
    if keep_monotonous:
        score = torch.cummax(score, 0).values
    xs = torch.cat([information, torch.tensor([0.0, 1.0], dtype=torch.float64)]).numpy()
    ys = torch.cat([score, torch.tensor([0.0, 1.0], dtype=torch.float64)]).numpy()
    # interp1d(x, y) on float64 data: a stable sort by x, then numpy.interp.
    order = np.argsort(xs, kind="mergesort")
    inner = np.interp(curve_x[:-1].numpy(), xs[order], ys[order])
    return torch.cat([torch.from_numpy(inner), torch.ones(1, dtype=torch.float64)])
