"""Time series: attributions of inputs ``(batch, time)`` or ``(batch, time, features)``.

:func:`per_time` sums each step's features, :func:`per_feature` sums each feature over
time (both keep the sign, so they still add up to F(x) − F(x')). :func:`heatmap` colours
one example as a feature × time grid (features as rows, time left to right),
:func:`bars` draws per-step signed bars, both as uint8 RGB with numpy alone;
:func:`figure` puts the series, the bars and the heatmap in one matplotlib figure.

>>> import torch
>>> a = torch.tensor([[[1.0, -2.0], [0.5, 0.5], [0.0, 0.0]]])  # (batch, time, features)
>>> per_time(a).tolist(), per_feature(a).tolist()
([[-1.0, 1.0, 0.0]], [[1.5, -1.5]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _captions, _png
from .images import _numpy, outlier_limit

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["bars", "figure", "heatmap", "per_feature", "per_time"]


def _series(attributions: Any) -> np.ndarray:
    """``(batch, time, features)`` float64 from 2-d or 3-d input."""
    if isinstance(attributions, tuple):
        raise ValueError("time-series views take one input tensor; pass one part of a tuple")
    values = _numpy(attributions)
    if values.ndim == 2:
        return values[:, :, None]
    if values.ndim != 3:
        raise ValueError(
            f"time series must be (batch, time) or (batch, time, features), got {values.shape}"
        )
    return values


def per_time(attributions: Any) -> np.ndarray:
    """``(batch, time)``: each step's attribution summed over features (signed)."""
    return _series(attributions).sum(axis=2)


def per_feature(attributions: Any) -> np.ndarray:
    """``(batch, features)``: each feature's attribution summed over time (signed)."""
    return _series(attributions).sum(axis=1)


def heatmap(
    attributions: Any,
    *,
    limit: float | None = None,
    clip: str | None = None,
    percentile: float = 99.0,
    cell: tuple[int, int] = (8, 16),
) -> np.ndarray:
    """One example ``(time,)`` or ``(time, features)`` as a feature × time diverging grid.

    Row ``f``, column ``t`` shows feature ``f`` at step ``t``; each cell is
    ``cell = (width, height)`` pixels. Red positive, blue negative, white zero.
    """
    values = _numpy(attributions)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"one example must be (time,) or (time, features), got {values.shape}")
    grid = values.T
    if limit is None:
        limit = outlier_limit(grid, percentile, clip)
    rgb = _png.diverging(grid, limit)
    return rgb.repeat(cell[1], axis=0).repeat(cell[0], axis=1)


def bars(
    values: Any, *, height: int = 120, step_width: int = 8, limit: float | None = None
) -> np.ndarray:
    """Signed per-step values as vertical bars about a gray zero line: uint8 RGB.

    Positive bars rise in red, negative fall in blue; ``limit`` (default: the largest
    magnitude) is a full half-height.
    """
    v = _numpy(values).ravel()
    limit = float(np.abs(v).max(initial=0.0)) if limit is None else float(limit)
    half = height // 2
    out = np.full((2 * half + 1, v.size * step_width, 3), _png.WHITE, dtype=np.uint8)
    out[half] = 160
    # A white pixel either side of each bar, where a step is wide enough to keep one.
    margin = 1 if step_width >= 3 else 0
    for t, value in enumerate(v):
        size = round(min(abs(value) / limit, 1.0) * half) if limit > 0 else 0
        if size == 0:
            continue
        columns = slice(t * step_width + margin, (t + 1) * step_width - margin)
        if value > 0:
            out[half - size : half, columns] = _png.POSITIVE.astype(np.uint8)
        else:
            out[half + 1 : half + 1 + size, columns] = _png.NEGATIVE.astype(np.uint8)
    return out


def figure(
    exp: Explanation,
    example: int = 0,
    *,
    feature_names: Sequence[str] | None = None,
    class_names: _captions.ClassNames = None,
    fig: Any = None,
    use_pyplot: bool = False,
) -> Any:
    """A matplotlib Figure: the input series, per-step attribution bars, feature × time map.

    Titled with what was explained (``class_names`` label classes); the map's colour bar
    reads in units of F with the sign convention and its limit (the example's largest
    |attribution|); F(x), F(x'), the delta, steps and baseline are written under it. A
    figure of three panels: it is drawn into ``fig`` when given (an empty Figure, e.g. a
    subfigure), else into a new one.
    """
    from matplotlib.colors import TwoSlopeNorm

    inputs, attributions = _series(exp.inputs), _series(exp.attributions)
    if not 0 <= example < inputs.shape[0]:
        raise ValueError(f"example={example} is out of range for a batch of {inputs.shape[0]}")
    x, a = inputs[example], attributions[example]
    steps, n_features = x.shape
    names = list(feature_names or exp.extras.get("feature_names") or [])
    names = names or [f"f{j}" for j in range(n_features)]
    if fig is None:
        fig = _png.new_figure((9, 2.2 + 0.25 * n_features + 4.6), use_pyplot)
    axes = fig.subplots(
        3,
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [2, 2, max(1.0, 0.35 * n_features)]},
    )
    t = np.arange(steps)
    for j in range(n_features):
        axes[0].plot(t, x[:, j], label=names[j], linewidth=1.2)
    if n_features <= 8:
        axes[0].legend(loc="upper right", fontsize=8, ncols=min(n_features, 4))
    axes[0].set_ylabel("input")
    summed = a.sum(axis=1)
    colours = [(_png.POSITIVE if v >= 0 else _png.NEGATIVE) / 255 for v in summed]
    axes[1].bar(t, summed, color=colours, width=0.9)
    axes[1].axhline(0.0, color="black", linewidth=0.8)
    measure = _captions.unit(exp.output_kind)
    axes[1].set_ylabel(f"attribution per step\n(sum of features,\n{measure})", fontsize=8)
    limit = float(np.abs(a).max()) or 1.0
    image = axes[2].imshow(
        a.T,
        aspect="auto",
        cmap=_png.diverging_cmap(),
        norm=TwoSlopeNorm(0.0, -limit, limit),
        interpolation="nearest",
        extent=(-0.5, steps - 0.5, n_features - 0.5, -0.5),
    )
    axes[2].set_yticks(np.arange(n_features), names)
    axes[2].set_xlabel("time step")
    bar = fig.colorbar(image, ax=axes[2], shrink=0.9)
    bar.set_label(_captions.units("all", output_kind=exp.output_kind, sep=",\n"), fontsize=8)
    fig.suptitle(
        _captions.headline(exp, example, class_names) + f", example {example}", fontsize=10
    )
    fig.supxlabel(
        f"{_captions.completeness(exp, example)}\n"
        f"bars: sum over features per step; map: colour limit ±{limit:.3g} "
        f"({_captions.rule(None, 100.0)} of this example)",
        fontsize=8,
    )
    return fig
