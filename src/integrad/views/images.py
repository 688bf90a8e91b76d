"""Image views of attributions as uint8 RGB arrays: numpy only, Pillow for titles if present.

Attributions of one image are ``(channels, height, width)`` (PyTorch's layout) or
``(height, width)``. Channels are first aggregated to one value per pixel, the colour
scale is set by an outlier-robust limit, and the result is coloured:

- ``heatmap(a, sign="all")``: diverging, red positive, blue negative, white exactly at 0;
- ``sign="absolute" | "positive" | "negative"``: white to purple / red / blue;
- :func:`overlay`: the image blended with the signed colours where attributions are large;
- :func:`masked`: the image showing only its top-k% pixels by attribution;
- :func:`side_by_side`, :func:`comparison`, :func:`gallery`: titled layouts of these.

:func:`figure` draws the side-by-side view with matplotlib (an optional extra).

>>> import numpy as np
>>> a = np.zeros((1, 4, 4)); a[0, 0, 0], a[0, 3, 3] = 1.0, -1.0
>>> rgb = heatmap(a, clip=None)
>>> rgb.shape, rgb[0, 0].tolist(), rgb[3, 3].tolist(), rgb[1, 1].tolist()
((4, 4, 3), [178, 24, 43], [33, 102, 172], [247, 247, 247])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _png

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = [
    "AGGREGATIONS",
    "aggregate_channels",
    "comparison",
    "figure",
    "gallery",
    "heatmap",
    "image_rgb",
    "masked",
    "outlier_limit",
    "overlay",
    "side_by_side",
]

AGGREGATIONS = ("sum", "abs_sum", "max_abs", "l2")
SIGNS = ("all", "absolute", "positive", "negative")
CLIPS = ("cumsum", "percentile", None)


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float16):
            values = values.float()
        return values.numpy().astype(np.float64)
    return np.asarray(values, dtype=np.float64)


def _channel_axis(shape: tuple[int, ...], channel_axis: int | None) -> int | None:
    if len(shape) == 2:
        return None
    if len(shape) != 3:
        raise ValueError(
            f"an image's attributions must be (channels, height, width) or (height, width), "
            f"got shape {shape}"
        )
    return 0 if channel_axis is None else channel_axis


def aggregate_channels(
    attributions: Any, how: str = "sum", channel_axis: int | None = None
) -> np.ndarray:
    """One value per pixel, ``(height, width)``, from an image's attributions.

    ``how``: ``"sum"`` (signed; completeness still holds over pixels), ``"max_abs"``
    (signed: the channel with the largest magnitude), ``"abs_sum"`` and ``"l2"``
    (magnitudes, non-negative). ``channel_axis`` defaults to 0 for 3-d input.
    """
    values = _numpy(attributions)
    axis = _channel_axis(values.shape, channel_axis)
    if how not in AGGREGATIONS:
        raise ValueError(f"how={how!r} is not an aggregation; choose one of {list(AGGREGATIONS)}")
    if axis is None:
        return np.abs(values) if how in ("abs_sum", "l2") else values
    if how == "sum":
        return values.sum(axis=axis)
    if how == "abs_sum":
        return np.abs(values).sum(axis=axis)
    if how == "l2":
        return np.sqrt((values**2).sum(axis=axis))
    index = np.expand_dims(np.abs(values).argmax(axis=axis), axis)
    return np.take_along_axis(values, index, axis=axis).squeeze(axis)


def outlier_limit(values: Any, percentile: float = 98.0, method: str | None = "cumsum") -> float:
    """The magnitude that maps to full colour, so that a few outliers do not wash out the rest.

    ``method="cumsum"`` is Captum's rule: the smallest |value| at which the sorted
    magnitudes' cumulative sum reaches ``percentile`` % of their total (98: the top
    values holding 2% of the total mass saturate). ``"percentile"`` is the plain
    ``percentile``-th percentile of |values|; ``None`` is the largest |value|.
    """
    if method not in CLIPS:
        raise ValueError(f"method={method!r} is not a clipping rule; choose one of {list(CLIPS)}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    magnitudes = np.sort(np.abs(_numpy(values)).ravel())
    if magnitudes.size == 0 or magnitudes[-1] == 0:
        return 0.0
    if method is None:
        return float(magnitudes[-1])
    if method == "percentile":
        return float(np.percentile(magnitudes, percentile))
    cumulative = np.cumsum(magnitudes)
    index = int(np.searchsorted(cumulative, cumulative[-1] * 0.01 * percentile))
    return float(magnitudes[min(index, magnitudes.size - 1)])


def _signed_part(values: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return np.maximum(values, 0.0)
    if sign == "negative":
        return np.maximum(-values, 0.0)
    if sign == "absolute":
        return np.abs(values)
    return values


def heatmap(
    attributions: Any,
    sign: str = "all",
    *,
    how: str | None = None,
    clip: str | None = "cumsum",
    percentile: float = 98.0,
    limit: float | None = None,
    scale: int = 1,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Colour one image's attributions: ``(height·scale, width·scale, 3)`` uint8.

    ``sign="all"`` is diverging and centred at zero (white), red positive, blue
    negative; ``"absolute"``, ``"positive"`` and ``"negative"`` go from white to purple,
    red and blue. ``how`` aggregates channels (default ``"sum"``, or ``"abs_sum"`` for
    ``"absolute"``); ``clip``/``percentile`` set the colour limit (:func:`outlier_limit`)
    unless ``limit`` is given.
    """
    if sign not in SIGNS:
        raise ValueError(f"sign={sign!r} is not a view; choose one of {list(SIGNS)}")
    how = how or ("abs_sum" if sign == "absolute" else "sum")
    values = _signed_part(aggregate_channels(attributions, how, channel_axis), sign)
    if limit is None:
        limit = outlier_limit(values, percentile, clip)
    if sign == "all":
        rgb = _png.diverging(values, limit)
    else:
        colour = {"absolute": _png.ABSOLUTE, "positive": _png.POSITIVE, "negative": _png.NEGATIVE}
        rgb = _png.sequential(values, limit, colour[sign])
    return _png.upscale(rgb, scale)


def image_rgb(
    image: Any,
    *,
    scale: int = 1,
    channel_axis: int | None = None,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """An input image for display: one channel as gray, three as RGB.

    Values map linearly from ``value_range`` (default: the image's own min and max) to
    0..255, clipped.
    """
    values = _numpy(image)
    low, high = value_range or (float(values.min()), float(values.max()))
    axis = _channel_axis(values.shape, channel_axis)
    if axis is not None:
        values = np.moveaxis(values, axis, -1)
        if values.shape[-1] == 1:
            values = values[..., 0]
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=2)
    elif values.shape[-1] != 3:
        raise ValueError(
            f"an image has 1 or 3 channels to display, got {values.shape[-1]}; "
            "pass one channel or aggregate first"
        )
    t = np.clip((values - low) / (high - low), 0, 1) if high > low else np.zeros_like(values)
    return _png.upscale(np.round(t * 255).astype(np.uint8), scale)


def overlay(
    image: Any,
    attributions: Any,
    *,
    alpha: float = 0.8,
    how: str = "sum",
    clip: str | None = "cumsum",
    percentile: float = 98.0,
    scale: int = 1,
    channel_axis: int | None = None,
) -> np.ndarray:
    """The image blended with red/blue in proportion to the signed attribution's size.

    A pixel with zero attribution keeps the image's colour exactly; one at the colour
    limit is ``alpha`` of the way to full red (positive) or blue (negative).
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = image_rgb(image, channel_axis=channel_axis).astype(np.float64)
    values = aggregate_channels(attributions, how, channel_axis)
    if values.shape != base.shape[:2]:
        raise ValueError(
            f"attributions aggregate to {values.shape} but the image is {base.shape[:2]}"
        )
    limit = outlier_limit(values, percentile, clip)
    t = np.clip(values / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(values)
    colour = np.where(t[..., None] >= 0, _png.POSITIVE, _png.NEGATIVE)
    weight = alpha * np.abs(t)[..., None]
    blended = np.round((1 - weight) * base + weight * colour).astype(np.uint8)
    return _png.upscale(blended, scale)


def masked(
    image: Any,
    attributions: Any,
    *,
    top: float = 0.1,
    sign: str = "absolute",
    fill: int = 0,
    scale: int = 1,
    channel_axis: int | None = None,
) -> np.ndarray:
    """The image where only the ``top`` fraction of pixels by attribution show; ``fill`` elsewhere.

    ``sign`` ranks pixels by ``"absolute"`` (|sum over channels|), ``"positive"`` or
    ``"negative"`` attribution. Ties at the threshold are kept.
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be a fraction in (0, 1], got {top}")
    if sign not in SIGNS[1:]:
        raise ValueError(f"sign={sign!r}; choose one of {list(SIGNS[1:])}")
    base = image_rgb(image, channel_axis=channel_axis)
    score = _signed_part(aggregate_channels(attributions, "sum", channel_axis), sign)
    keep_count = max(1, round(top * score.size))
    threshold = np.sort(score.ravel())[-keep_count]
    keep = (score >= threshold) & (score > 0)
    out = np.where(keep[..., None], base, np.uint8(fill)).astype(np.uint8)
    return _png.upscale(out, scale)


def _one(exp: Explanation, example: int) -> tuple[np.ndarray, np.ndarray]:
    inputs, attributions = exp.inputs, exp.attributions
    if isinstance(inputs, tuple) or isinstance(attributions, tuple):
        raise ValueError("image views take one input tensor; pass one part of a tuple explanation")
    if inputs.dim() not in (3, 4):
        raise ValueError(
            f"image views need inputs (batch, channels, height, width) or (batch, height, "
            f"width), got {tuple(inputs.shape)}"
        )
    if not 0 <= example < inputs.shape[0]:
        raise ValueError(f"example={example} is out of range for a batch of {inputs.shape[0]}")
    return _numpy(inputs[example]), _numpy(attributions[example])


def _default_scale(height: int) -> int:
    return max(1, 192 // max(height, 1))


def side_by_side(
    exp: Explanation, example: int = 0, *, scale: int | None = None, **options: Any
) -> np.ndarray:
    """original | signed | absolute | overlay for one example, titled, as uint8 RGB.

    ``options`` (``clip``, ``percentile``) go to the colouring of every panel.
    """
    image, attributions = _one(exp, example)
    scale = scale or _default_scale(image.shape[-2])
    total = float(attributions.sum())
    panels = [
        _png.titled(image_rgb(image, scale=scale), f"input #{example}"),
        _png.titled(heatmap(attributions, scale=scale, **options), f"signed, sum {total:.3g}"),
        _png.titled(heatmap(attributions, "absolute", scale=scale, **options), "absolute"),
        _png.titled(overlay(image, attributions, scale=scale, **options), "overlay"),
    ]
    return _png.grid([panels])


def gallery(
    exp: Explanation,
    examples: Sequence[int] | None = None,
    *,
    columns: int = 4,
    scale: int | None = None,
    labels: Sequence[str] | None = None,
    **options: Any,
) -> np.ndarray:
    """A batch at a glance: each example as input over its signed heatmap, titled with delta.

    ``labels`` (one per shown example) replace the default ``#i`` captions.
    """
    examples = list(range(len(exp.delta))) if examples is None else list(examples)
    if not examples:
        raise ValueError("gallery needs at least one example")
    if labels is not None and len(labels) != len(examples):
        raise ValueError(f"labels has {len(labels)} entries for {len(examples)} examples")
    cells = []
    for k, i in enumerate(examples):
        image, attributions = _one(exp, i)
        s = scale or max(1, 96 // image.shape[-2])
        caption = labels[k] if labels is not None else f"#{i}"
        top = _png.titled(image_rgb(image, scale=s), caption)
        bottom = _png.titled(
            heatmap(attributions, scale=s, **options), f"delta {float(exp.delta[i]):.2g}"
        )
        cells.append(_png.grid([[top], [bottom]], gap=2))
    rows = [cells[k : k + columns] for k in range(0, len(cells), columns)]
    return _png.grid(rows, gap=10)


def comparison(
    explanations: Mapping[str, Explanation],
    example: int = 0,
    *,
    scale: int | None = None,
    shared_scale: bool = True,
    **options: Any,
) -> np.ndarray:
    """The input, then a column per baseline: the baseline over its signed attributions.

    With ``shared_scale`` every heatmap uses one colour limit, so sizes compare across
    baselines. Titles carry the baseline's name and F(x) − F(x').
    """
    if not explanations:
        raise ValueError("comparison needs at least one explanation")
    names = list(explanations)
    pairs = [_one(explanations[n], example) for n in names]
    image = pairs[0][0]
    s = scale or _default_scale(image.shape[-2])
    limit = None
    if shared_scale:
        clip = options.get("clip", "cumsum")
        percentile = options.get("percentile", 98.0)
        limit = max(outlier_limit(aggregate_channels(a), percentile, clip) for _, a in pairs)
    value_range = (float(image.min()), float(image.max()))
    first = _png.titled(image_rgb(image, scale=s), f"input #{example}")
    top, bottom = [first], [np.full_like(first, _png.WHITE)]
    for name, (_, attributions) in zip(names, pairs, strict=True):
        exp = explanations[name]
        gap = float(exp.output[example] - exp.baseline_output[example])
        base = exp.baselines[0] if isinstance(exp.baselines, tuple) else exp.baselines
        shown = image_rgb(base[example], scale=s, value_range=value_range)
        top.append(_png.titled(shown, f"baseline: {name}"))
        bottom.append(
            _png.titled(
                heatmap(attributions, scale=s, limit=limit, **options), f"F(x)-F(x') {gap:.3g}"
            )
        )
    return _png.grid([top, bottom])


def figure(exp: Explanation, example: int = 0, **options: Any) -> Any:
    """A matplotlib figure: original | signed (with colour bar) | absolute | overlay."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    image, attributions = _one(exp, example)
    summed = aggregate_channels(attributions)
    limit = outlier_limit(summed, options.get("percentile", 98.0), options.get("clip", "cumsum"))
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), layout="constrained")
    panels = [
        (image_rgb(image), f"input #{example}"),
        (heatmap(attributions, limit=limit), "signed"),
        (heatmap(attributions, "absolute", **options), "absolute"),
        (overlay(image, attributions, **options), "overlay"),
    ]
    for ax, (rgb, title) in zip(axes, panels, strict=True):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    mappable = plt.cm.ScalarMappable(Normalize(-limit or -1, limit or 1), _png.diverging_cmap())
    fig.colorbar(mappable, ax=axes[1], shrink=0.8)
    fig.suptitle(
        f"{exp.method}, {exp.n_steps} steps, baseline {exp.baseline}, "
        f"delta {float(exp.delta[example]):.2g}"
    )
    return fig
