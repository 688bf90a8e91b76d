"""Matplotlib figures of image attributions, with the options of Captum's ``visualize_image_attr``.

:func:`figure` is ``exp.plot()`` for images: by default four panels (input | signed |
absolute | overlay) under a title saying what was explained (method, target, predicted
class and probabilities when the Explanation has them, ``class_names=`` for labels), with
colour bars in attribution units and the sign convention, and a caption with F(x),
F(x'), the completeness delta and how the colour limits were chosen. With ``method=``
or ``ax=`` it draws one panel the way Captum does (``heat_map``, ``blended_heat_map``,
``masked_image``, ``alpha_scaling``, ``original_image``) into the caller's axes.

:func:`visualize_image_attr` takes Captum's arguments (numpy ``(H, W, C)`` arrays) and
returns ``(fig, ax)`` as Captum does. Its colours are ours (red raises F, blue lowers
it) unless ``captum_colors=True``: then Captum's maps (red negative, white, green
positive; Greens, Reds, Blues for one sign), so a Captum user sees the same picture.
The colour positions equal Captum's ``_normalize_attr``. Neither function calls
``plt.show()``: a returned Figure displays inline in Jupyter.

>>> import numpy as np
>>> fig, ax = visualize_image_attr(np.eye(4)[:, :, None], sign="all", use_pyplot=False)
>>> float(ax.images[0].get_array().max())  # in attribution units: the colour limit
1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _captions, _png
from .images import (
    _numpy,
    _signed_part,
    aggregate_channels,
    channel_axis_of,
    image_rgb,
    one_example,
    outlier_limit,
    overlay,
    sign_name,
)

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["METHODS", "colormap", "figure", "normalized", "visualize_image_attr"]

METHODS = ("heat_map", "blended_heat_map", "masked_image", "alpha_scaling", "original_image")
"""Captum's ``ImageVisualizationMethod`` names."""


def colormap(sign: str, captum_colors: bool = False) -> Any:
    """The colour map for a ``sign`` view: ours, or Captum's defaults with ``captum_colors``."""
    sign = sign_name(sign)
    if captum_colors:
        from matplotlib.colors import LinearSegmentedColormap

        if sign == "all":
            return LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"])
        return {"positive": "Greens", "negative": "Reds", "absolute": "Blues"}[sign]
    if sign == "all":
        return _png.diverging_cmap()
    return _png.sequential_cmap(_png.SIGN_COLOURS[sign])


def normalized(
    attributions: Any,
    sign: str = "all",
    *,
    outlier_perc: float = 2.0,
    clip: str | None = "cumsum",
    how: str = "sum",
    limit: float | None = None,
    channel_axis: int | None = None,
) -> np.ndarray:
    """One image's attributions as colour positions, ``(height, width)`` in [-1, 1] or [0, 1].

    Captum's ``_normalize_attr`` with its defaults (``how="sum"`` over channels, the
    cumsum rule, ``outlier_perc``): ``"all"`` keeps the sign; ``"positive"``,
    ``"negative"`` (as its magnitude) and ``"absolute"`` (also ``"absolute_value"``)
    lie in [0, 1]. ``limit`` replaces the rule's limit; all zeros when it is 0.
    """
    sign = sign_name(sign)
    values = _signed_part(aggregate_channels(attributions, how, channel_axis), sign)
    if limit is None:
        limit = outlier_limit(values, 100.0 - outlier_perc, clip)
    if limit <= 0:
        return np.zeros_like(values)
    return np.clip(values / limit, -1.0, 1.0)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not a view; choose one of {list(METHODS)}")


def _panel(
    ax: Any,
    values: np.ndarray,
    image: np.ndarray | None,
    *,
    method: str,
    sign: str,
    limit: float,
    cmap: Any,
    captum_colors: bool,
    alpha_overlay: float,
) -> Any:
    """Draw one Captum-style panel of ``values`` (an ``(H, W)`` map) coloured within
    ``limit``; the heat map's image (for a colour bar) or None.

    Heat maps show the colour positions (:func:`normalized`) times ``limit`` so that a
    colour bar reads in attribution units. ``cmap`` None: :func:`colormap`'s for ``sign``.
    ``image`` is uint8 ``(H, W, 3)``.
    """
    norm = normalized(values, sign, limit=limit)
    cmap = cmap or colormap(sign, captum_colors)
    _check_method(method)
    if method in ("masked_image", "alpha_scaling") and sign == "all":
        raise ValueError(
            f"method={method!r} cannot show both signs; pass sign='positive', 'negative' or "
            "'absolute'"
        )
    ax.set_xticks([])
    ax.set_yticks([])
    scale = limit if limit > 0 else 1.0
    low = -scale if sign == "all" else 0.0
    if method == "heat_map":
        return ax.imshow(norm * scale, cmap=cmap, vmin=low, vmax=scale, interpolation="nearest")
    if image is None:
        raise ValueError(f"method={method!r} needs the original image; only heat_map works without")
    if method == "original_image":
        ax.imshow(image, interpolation="nearest")
        return None
    if method == "blended_heat_map":
        ax.imshow(image.mean(axis=2), cmap="gray", interpolation="nearest")
        return ax.imshow(
            norm * scale,
            cmap=cmap,
            vmin=low,
            vmax=scale,
            alpha=alpha_overlay,
            interpolation="nearest",
        )
    if method == "masked_image":
        shown = np.clip(image * norm[..., None], 0, 255).astype(np.uint8)
        ax.imshow(shown, interpolation="nearest")
        return None
    alpha = np.clip(norm * 255, 0, 255).astype(np.uint8)[..., None]
    ax.imshow(np.concatenate([image.astype(np.uint8), alpha], axis=2), interpolation="nearest")
    return None


def _colorbar(
    fig: Any, mappable: Any, ax: Any, sign: str, captum_colors: bool, output_kind: str | None
) -> Any:
    bar = fig.colorbar(mappable, ax=ax, shrink=0.85)
    bar.set_label(_captions.units(sign, captum_colors, output_kind, sep=",\n"), fontsize=8)
    return bar


def figure(
    exp: Explanation,
    example: int = 0,
    *,
    method: str | None = None,
    sign: str = "all",
    cmap: Any = None,
    show_colorbar: bool = True,
    outlier_perc: float = 2.0,
    clip: str | None = "cumsum",
    alpha_overlay: float = 0.5,
    title: str | None = None,
    fig_size: tuple[float, float] | None = None,
    use_pyplot: bool = False,
    captum_colors: bool = False,
    class_names: _captions.ClassNames = None,
    ax: Any = None,
    fig: Any = None,
    channel_axis: int = 0,
) -> Any:
    """A matplotlib Figure of one example's attributions, titled, with scales and a caption.

    Without ``method`` and ``ax``: input | signed | absolute | overlay (into ``fig`` if
    given, else a new figure). With either: one panel, Captum's ``method`` (default
    ``"heat_map"``) and ``sign`` (``"all"``, ``"positive"``, ``"negative"``,
    ``"absolute"`` or ``"absolute_value"``), drawn into ``ax`` when given (its figure
    is returned; nothing of the caller's is closed). The colour limit is the cumsum rule
    with Captum's ``outlier_perc`` (``clip="percentile"`` or None for the others); the
    title is ``title`` or what was explained; ``class_names`` label classes.
    """
    sign = sign_name(sign)
    image, attributions = one_example(exp, example, channel_axis)
    axis = 0 if attributions.ndim == 3 else None
    rgb = image_rgb(image, channel_axis=axis)
    percentile = 100.0 - outlier_perc
    headline = title if title is not None else _captions.headline(exp, example, class_names)
    caption = _captions.completeness(exp, example)
    if method is not None or ax is not None:
        method = method or "heat_map"
        _check_method(method)
        if ax is None:
            owner = fig if fig is not None else _png.new_figure(fig_size or (6, 5.4), use_pyplot)
            ax = owner.subplots()
        values = aggregate_channels(attributions, "sum", axis)
        limit = outlier_limit(_signed_part(values, sign), percentile, clip)
        mappable = _panel(
            ax,
            values,
            rgb,
            method=method,
            sign=sign,
            limit=limit,
            cmap=cmap,
            captum_colors=captum_colors,
            alpha_overlay=alpha_overlay,
        )
        if show_colorbar and mappable is not None:
            _colorbar(ax.figure, mappable, ax, sign, captum_colors, exp.output_kind)
        # One clause a line: a single panel is narrow.
        ax.set_title(headline.replace("; ", "\n"), fontsize=9)
        note = _captions.scale_note(limit, clip, percentile, "for this image")
        ax.set_xlabel(f"{caption}\n{note}".replace("; ", "\n").replace(" (", "\n("), fontsize=7)
        return ax.figure
    owner = fig if fig is not None else _png.new_figure(fig_size or (14, 4.6), use_pyplot)
    axes = owner.subplots(1, 4)
    summed = aggregate_channels(attributions, "sum", axis)
    magnitudes = aggregate_channels(attributions, "abs_sum", axis)
    limit = outlier_limit(summed, percentile, clip)
    magnitude = outlier_limit(magnitudes, percentile, clip)
    axes[0].imshow(rgb, interpolation="nearest")
    axes[0].set_title(f"input #{example}")
    signed = _panel(
        axes[1],
        summed,
        None,
        method="heat_map",
        sign="all",
        limit=limit,
        cmap=cmap,
        captum_colors=captum_colors,
        alpha_overlay=alpha_overlay,
    )
    axes[1].set_title(f"signed, sum {float(summed.sum()):.3g}")
    absolute = _panel(
        axes[2],
        magnitudes,
        None,
        method="heat_map",
        sign="absolute",
        limit=magnitude,
        cmap=None,
        captum_colors=captum_colors,
        alpha_overlay=alpha_overlay,
    )
    axes[2].set_title("absolute |a|")
    axes[3].imshow(overlay(image, summed, limit=limit, channel_axis=axis), interpolation="nearest")
    axes[3].set_title("overlay (signed scale)")
    for panel in axes:
        panel.set_xticks([])
        panel.set_yticks([])
    if show_colorbar:
        _colorbar(owner, signed, axes[1], "all", captum_colors, exp.output_kind)
        _colorbar(owner, absolute, axes[2], "absolute", captum_colors, exp.output_kind)
    owner.suptitle(headline, fontsize=11)
    rule = _captions.rule(clip, percentile)
    owner.supxlabel(
        f"{caption}\ncolour limits: signed ±{limit:.3g}, absolute {magnitude:.3g}, "
        f"this image only ({rule})",
        fontsize=8,
    )
    return owner


def _captum_axis(shape: tuple[int, ...], channel_axis: int | None) -> int | None:
    """Captum's layout, ``(H, W, C)``, where the shape cannot tell (a ``(C, H, W)`` it can)."""
    if channel_axis is None and len(shape) == 3:
        try:
            return channel_axis_of(shape)
        except ValueError:
            return 2
    return channel_axis_of(shape, channel_axis)


def _captum_image(original_image: Any, channel_axis: int | None) -> np.ndarray:
    """Captum's preparation: ``(H, W, 3)``, values up to 1 scaled by 255, clipped to 0..255."""
    values = _numpy(original_image)
    axis = _captum_axis(values.shape, channel_axis)
    values = values[..., None] if axis is None else np.moveaxis(values, axis, -1)
    if values.max() <= 1.0:
        values = values * 255
    values = np.clip(values.astype(int), 0, 255)
    return np.repeat(values, 3, axis=2) if values.shape[-1] == 1 else values[..., :3]


def visualize_image_attr(
    attr: Any,
    original_image: Any = None,
    method: str = "heat_map",
    sign: str = "absolute_value",
    plt_fig_axis: tuple[Any, Any] | None = None,
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.5,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
    *,
    captum_colors: bool = False,
    channel_axis: int | None = None,
) -> tuple[Any, Any]:
    """Captum's ``visualize_image_attr``: same arguments, same normalisation, ``(fig, ax)``.

    ``attr`` and ``original_image`` are ``(H, W, C)`` or ``(H, W)`` numpy arrays as in
    Captum (tensors and ``(C, H, W)`` are read too where
    :func:`integrad.views.images.channel_axis_of` can tell;
    where it cannot, channels are last, as Captum has them).
    Differences, on purpose: our colours unless ``captum_colors=True``; the colour bar
    (``show_colorbar``) reads in attribution units with the sign convention, where
    Captum's reads -1..1; ``plt.show()`` is never called (``use_pyplot`` only chooses a
    pyplot figure); errors are ValueErrors, not assertions.
    """
    _check_method(method)
    sign = sign_name(sign)
    values = _numpy(attr)
    axis = _captum_axis(values.shape, channel_axis)
    summed = values.sum(axis=axis) if axis is not None else values
    image = None if original_image is None else _captum_image(original_image, channel_axis)
    if image is not None and image.shape[:2] != summed.shape:
        raise ValueError(f"attr is {summed.shape} per channel but original_image is {image.shape}")
    limit = outlier_limit(_signed_part(summed, sign), 100.0 - outlier_perc, "cumsum")
    if plt_fig_axis is not None:
        fig, ax = plt_fig_axis
    else:
        fig = _png.new_figure(fig_size, use_pyplot)
        fig.set_layout_engine("none")
        ax = fig.subplots()
    mappable = _panel(
        ax,
        summed,
        image,
        method=method,
        sign=sign,
        limit=limit,
        cmap=cmap,
        captum_colors=captum_colors,
        alpha_overlay=alpha_overlay,
    )
    if show_colorbar and mappable is not None:
        bar = fig.colorbar(mappable, ax=ax, orientation="horizontal", shrink=0.8, pad=0.05)
        bar.set_label(_captions.units(sign, captum_colors), fontsize=8)
    if title:
        ax.set_title(title)
    return fig, ax
