"""Image views of attributions as uint8 RGB arrays: numpy only, Pillow for text if present.

Attributions of one image are ``(channels, height, width)`` (PyTorch's layout),
``(height, width, channels)`` (numpy's and Captum's) or ``(height, width)``; which axis
holds the channels is read from the shape when it can be told and asked for
(``channel_axis=``) when it cannot (:func:`integrad.views.images.channel_axis_of`).
Channels are first
aggregated to one value per pixel, the colour scale is set by an outlier-robust limit,
and the result is coloured:

- ``heatmap(a, sign="all")``: diverging, red positive (raises F), blue negative (lowers
  F), white exactly at 0; an array of the picture alone, no scale drawn in;
- ``sign="absolute" | "positive" | "negative"``: white to purple / red / blue;
- :func:`overlay`: the image blended with the signed colours where attributions are large;
- :func:`masked`: the image showing only its top-k% pixels by attribution;
- :func:`side_by_side`, :func:`gallery` (and :func:`integrad.views.comparison.comparison`):
  titled layouts of these, each
  with a legend (``views._png.legend``) and a caption stating the colour
  limit, whether it is shared, and the completeness check.

Captum's ``visualize_image_attr`` colours red negative and green positive; here red is
positive. :mod:`integrad.views.image_figures` has figures with Captum's options.

>>> import numpy as np
>>> a = np.zeros((1, 8, 8)); a[0, 0, 0], a[0, 7, 7] = 1.0, -1.0
>>> rgb = heatmap(a, clip=None)
>>> rgb.shape, rgb[0, 0].tolist(), rgb[7, 7].tolist(), rgb[1, 1].tolist()
((8, 8, 3), [178, 24, 43], [33, 102, 172], [247, 247, 247])
>>> heatmap(np.zeros((32, 32, 3))).shape  # channels last, as numpy and Captum hold them
(32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _captions, _png

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = [
    "AGGREGATIONS",
    "CHANNEL_COUNTS",
    "aggregate_channels",
    "channel_axis_of",
    "gallery",
    "heatmap",
    "image_rgb",
    "masked",
    "one_example",
    "outlier_limit",
    "overlay",
    "shared_limit",
    "side_by_side",
    "sign_name",
]

AGGREGATIONS = ("sum", "abs_sum", "max_abs", "l2")
SIGNS = ("all", "absolute", "positive", "negative")
CLIPS = ("cumsum", "percentile", None)
CHANNEL_COUNTS = (1, 3, 4)
"""How many channels an image has (gray, RGB, RGBA): what
:func:`integrad.views.images.channel_axis_of` looks for."""


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float16):
            values = values.float()
        return values.numpy().astype(np.float64)
    return np.asarray(values, dtype=np.float64)


def sign_name(sign: str, allowed: Sequence[str] = SIGNS) -> str:
    """``sign`` in our spelling (Captum's ``"absolute_value"`` is ``"absolute"``), checked."""
    sign = "absolute" if sign == "absolute_value" else sign
    if sign not in allowed:
        raise ValueError(f"sign={sign!r} is not a view; choose one of {list(allowed)}")
    return sign


def channel_axis_of(shape: tuple[int, ...], channel_axis: int | None = None) -> int | None:
    """The channel axis of one image's array of ``shape`` (None for ``(height, width)``).

    ``channel_axis`` wins when given. Otherwise a 3-d array is channels-first
    ``(C, H, W)`` (PyTorch) when only its first axis has 1, 3 or 4 entries and
    channels-last ``(H, W, C)`` (numpy, PIL, Captum's ``visualize_image_attr``) when only
    its last one has; any other 3-d shape raises, asking for ``channel_axis=``.
    """
    if len(shape) == 2:
        return None
    if len(shape) != 3:
        raise ValueError(
            f"an image's attributions must be (channels, height, width), (height, width, "
            f"channels) or (height, width), got shape {shape}"
        )
    if channel_axis is not None:
        if not -3 <= channel_axis < 3:
            raise ValueError(f"channel_axis={channel_axis} is out of range for shape {shape}")
        return channel_axis % 3
    first, last = shape[0] in CHANNEL_COUNTS, shape[-1] in CHANNEL_COUNTS
    if first and not last:
        return 0
    if last and not first:
        return 2
    raise ValueError(
        f"cannot tell the channel axis of an image of shape {shape}; pass channel_axis=0 "
        "for (channels, height, width) or channel_axis=-1 for (height, width, channels)"
    )


def aggregate_channels(
    attributions: Any, how: str = "sum", channel_axis: int | None = None
) -> np.ndarray:
    """One value per pixel, ``(height, width)``, from an image's attributions.

    ``how``: ``"sum"`` (signed; completeness still holds over pixels), ``"max_abs"``
    (signed: the channel with the largest magnitude), ``"abs_sum"`` and ``"l2"``
    (magnitudes, non-negative). The channel axis is found by
    :func:`integrad.views.images.channel_axis_of`.
    """
    values = _numpy(attributions)
    axis = channel_axis_of(values.shape, channel_axis)
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

    ``method="cumsum"`` is Captum's rule (``outlier_perc = 100 - percentile``): the
    smallest |value| at which the sorted magnitudes' cumulative sum reaches
    ``percentile`` % of their total (98: the top values holding 2% of the total mass
    saturate). ``"percentile"`` is the plain ``percentile``-th percentile of |values|;
    ``None`` is the largest |value|.
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


def shared_limit(
    values: Sequence[Any], percentile: float = 98.0, method: str | None = "cumsum"
) -> float:
    """One colour limit for several images: :func:`outlier_limit` of all their values pooled."""
    return outlier_limit(np.concatenate([_numpy(v).ravel() for v in values]), percentile, method)


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
    negative; ``"absolute"`` (or Captum's ``"absolute_value"``), ``"positive"`` and
    ``"negative"`` go from white to purple, red and blue. ``how`` aggregates channels
    (default ``"sum"``, or ``"abs_sum"`` for ``"absolute"``); ``clip``/``percentile`` set
    the colour limit (:func:`outlier_limit`) unless ``limit`` is given. The array holds
    the picture only: the scale goes beside it, e.g. ``integrad.views._png.legend(limit,
    ...)`` or in the layouts below, which draw one.
    """
    sign = sign_name(sign)
    how = how or ("abs_sum" if sign == "absolute" else "sum")
    values = _signed_part(aggregate_channels(attributions, how, channel_axis), sign)
    if limit is None:
        limit = outlier_limit(values, percentile, clip)
    if sign == "all":
        rgb = _png.diverging(values, limit)
    else:
        rgb = _png.sequential(values, limit, _png.SIGN_COLOURS[sign])
    return _png.upscale(rgb, scale)


def image_rgb(
    image: Any,
    *,
    scale: int = 1,
    channel_axis: int | None = None,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """An input image for display: one channel as gray, three as RGB (a fourth, alpha, dropped).

    Values map linearly from ``value_range`` (default: the image's own min and max) to
    0..255, clipped. The channel axis is found by :func:`integrad.views.images.channel_axis_of`.
    """
    values = _numpy(image)
    low, high = value_range or (float(values.min()), float(values.max()))
    axis = channel_axis_of(values.shape, channel_axis)
    if axis is not None:
        values = np.moveaxis(values, axis, -1)
        if values.shape[-1] == 1:
            values = values[..., 0]
        elif values.shape[-1] == 4:
            values = values[..., :3]
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=2)
    elif values.shape[-1] != 3:
        raise ValueError(
            f"an image has 1, 3 or 4 channels to display, got {values.shape[-1]}; "
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
    limit: float | None = None,
    scale: int = 1,
    channel_axis: int | None = None,
) -> np.ndarray:
    """The image blended with red/blue in proportion to the signed attribution's size.

    A pixel with zero attribution keeps the image's colour exactly; one at the colour
    limit (``limit``, else :func:`outlier_limit`) is ``alpha`` of the way to full red
    (positive) or blue (negative).
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = image_rgb(image, channel_axis=channel_axis).astype(np.float64)
    values = aggregate_channels(attributions, how, channel_axis)
    if values.shape != base.shape[:2]:
        raise ValueError(
            f"attributions aggregate to {values.shape} but the image is {base.shape[:2]}"
        )
    if limit is None:
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

    ``sign`` ranks pixels by ``"absolute"`` (|sum over channels|; also
    ``"absolute_value"``), ``"positive"`` or ``"negative"`` attribution. Ties at the
    threshold are kept.
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be a fraction in (0, 1], got {top}")
    sign = sign_name(sign, SIGNS[1:])
    base = image_rgb(image, channel_axis=channel_axis)
    score = _signed_part(aggregate_channels(attributions, "sum", channel_axis), sign)
    keep_count = max(1, round(top * score.size))
    threshold = np.sort(score.ravel())[-keep_count]
    keep = (score >= threshold) & (score > 0)
    out = np.where(keep[..., None], base, np.uint8(fill)).astype(np.uint8)
    return _png.upscale(out, scale)


def one_example(
    exp: Explanation, example: int, channel_axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``example``'s image and attributions, ``(channels, height, width)`` or ``(height, width)``.

    Explanations hold PyTorch's layout, ``(batch, channels, height, width)`` (``channel_axis``
    0 of an example; say -1 for channels-last models) or grayscale ``(batch, height, width)``.
    The arrays returned are read with ``channel_axis=0`` (which a 2-d array ignores).
    """
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
    image, values = _numpy(inputs[example]), _numpy(attributions[example])
    if image.ndim == 3:
        axis = channel_axis_of(image.shape, channel_axis)
        image, values = np.moveaxis(image, axis or 0, 0), np.moveaxis(values, axis or 0, 0)
    return image, values


def _default_scale(height: int) -> int:
    return max(1, 192 // max(height, 1))


def _footer(width: int, lines: list[str], legends: list[np.ndarray]) -> np.ndarray:
    """Legends side by side over caption lines, at least ``width`` wide."""
    text = _png.captioned(np.zeros((0, max(width, 360), 3), dtype=np.uint8), lines)
    return _png.grid([legends, [text]], gap=4)


def side_by_side(
    exp: Explanation,
    example: int = 0,
    *,
    scale: int | None = None,
    class_names: _captions.ClassNames = None,
    channel_axis: int = 0,
    **options: Any,
) -> np.ndarray:
    """original | signed | absolute | overlay for one example, titled, as uint8 RGB.

    Under the panels: a legend for the signed map (its limit also colours the overlay)
    and one for the absolute map, then what was explained, F(x), F(x'), the delta and how
    the colour limits were chosen. ``options`` (``clip``, ``percentile``) go to the
    colouring of every panel.
    """
    image, attributions = one_example(exp, example, channel_axis)
    axis = 0  # one_example's layout
    scale = scale or _default_scale(image.shape[-2])
    clip, percentile = _captions.describe_options(options)
    signed = aggregate_channels(attributions, "sum", axis)
    limit = outlier_limit(signed, percentile, clip)
    magnitude = outlier_limit(aggregate_channels(attributions, "abs_sum", axis), percentile, clip)
    panels = [
        _png.titled(image_rgb(image, scale=scale, channel_axis=axis), f"input #{example}"),
        _png.titled(
            heatmap(signed, scale=scale, limit=limit), f"signed, sum {float(signed.sum()):.3g}"
        ),
        _png.titled(
            heatmap(attributions, "absolute", scale=scale, limit=magnitude, channel_axis=axis),
            "absolute |a|",
        ),
        _png.titled(overlay(image, signed, scale=scale, limit=limit, channel_axis=axis), "overlay"),
    ]
    row = _png.grid([panels])
    footer = _footer(
        row.shape[1],
        [
            _captions.headline(exp, example, class_names),
            _captions.completeness(exp, example),
            _captions.scale_note(limit, clip, percentile, "(signed, overlay)"),
            _captions.scale_note(magnitude, clip, percentile, "(absolute)"),
        ],
        [
            _png.legend(limit, _captions.units("all", output_kind=exp.output_kind)),
            _png.legend(
                magnitude, _captions.units("absolute", output_kind=exp.output_kind), "absolute"
            ),
        ],
    )
    return _png.grid([[row], [footer]])


def gallery(
    exp: Explanation,
    examples: Sequence[int] | None = None,
    *,
    columns: int = 4,
    scale: int | None = None,
    labels: Sequence[str] | None = None,
    shared_scale: bool = True,
    class_names: _captions.ClassNames = None,
    channel_axis: int = 0,
    **options: Any,
) -> np.ndarray:
    """A batch at a glance: each example as input over its signed heatmap, titled with delta.

    With ``shared_scale`` (the default) every heatmap has one colour limit
    (:func:`shared_limit` of the shown examples), so colours compare across images;
    ``shared_scale=False`` scales each to its own limit, written in its title. A caption
    row under the grid says which, next to the legend. ``labels`` (one per shown example)
    replace the default ``#i`` captions (``#i pred c`` when the predicted class is known).
    """
    examples = list(range(len(exp.delta))) if examples is None else list(examples)
    if not examples:
        raise ValueError("gallery needs at least one example")
    if labels is not None and len(labels) != len(examples):
        raise ValueError(f"labels has {len(labels)} entries for {len(examples)} examples")
    clip, percentile = _captions.describe_options(options)
    pairs = [one_example(exp, i, channel_axis) for i in examples]
    sums = [aggregate_channels(a, "sum", 0) for _, a in pairs]
    limit = shared_limit(sums, percentile, clip) if shared_scale else None
    cells = []
    for k, (i, (image, _), summed) in enumerate(zip(examples, pairs, sums, strict=True)):
        s = scale or max(1, 96 // image.shape[-2])
        if labels is not None:
            caption = labels[k]
        elif exp.predicted is not None:
            caption = f"#{i} pred {_captions.class_label(int(exp.predicted[i]), class_names)}"
        else:
            caption = f"#{i}"
        own = limit if limit is not None else outlier_limit(summed, percentile, clip)
        note = ("" if shared_scale else f"±{own:.2g}, ") + f"delta {float(exp.delta[i]):.2g}"
        top = _png.titled(image_rgb(image, scale=s, channel_axis=0), caption)
        bottom = _png.titled(heatmap(summed, scale=s, limit=own), note)
        cells.append(_png.grid([[top], [bottom]], gap=2))
    rows = [cells[k : k + columns] for k in range(0, len(cells), columns)]
    picture = _png.grid(rows, gap=10)
    scope = "shared across the gallery" if shared_scale else "per image (in each title)"
    lines = [_captions.scale_note(limit, clip, percentile, scope)]
    if not shared_scale:
        lines.append("colours do not compare across images")
    label = _captions.units("all", output_kind=exp.output_kind)
    footer = _footer(picture.shape[1], lines, [_png.legend(limit, label)])
    return _png.grid([[picture], [footer]], gap=8)
