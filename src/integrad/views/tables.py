"""Table views: rank and chart the features of explanations of tabular rows.

:func:`integrad.tables.tabular` explains rows with a baseline from training data and
records the feature names; here :func:`ranked` lists one
row's features by |attribution| (a pandas DataFrame when pandas is installed, else a
list of dicts), :func:`global_importance` averages |attribution| over a dataset, and
:func:`bar_chart` draws the signed horizontal bars (matplotlib).

>>> import numpy as np, torch
>>> model = torch.nn.Linear(3, 1).double()
>>> train = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
>>> from integrad.tables import tabular
>>> exp = tabular(model, train[:1], training_data=train, feature_names=["a", "b", "c"])
>>> [row["feature"] for row in ranked(exp, as_frame=False)] == sorted(
...     "abc", key=lambda f: -abs(float(exp.attributions[0, "abc".index(f)])))
True
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from . import _captions, _png

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["bar_chart", "global_importance", "importance_chart", "ranked"]


def _names(exp: Explanation, feature_names: Sequence[str] | None, count: int) -> list[str]:
    names = list(feature_names or exp.extras.get("feature_names") or [])
    names = names or [f"x{j}" for j in range(count)]
    if len(names) != count:
        raise ValueError(f"{len(names)} feature names for {count} features")
    return names


def _flat(value: Any) -> torch.Tensor:
    if isinstance(value, tuple):
        raise ValueError("table views take one input tensor; pass one part of a tuple")
    if value.dim() != 2:
        raise ValueError(f"table views need (rows, features), got {tuple(value.shape)}")
    return value.detach().cpu().double()


def _frame(rows: list[dict[str, Any]], as_frame: bool | None) -> Any:
    if as_frame is False:
        return rows
    try:
        import pandas as pd
    except ImportError:
        if as_frame:
            raise
        return rows
    return pd.DataFrame(rows)


def ranked(
    exp: Explanation,
    example: int = 0,
    *,
    feature_names: Sequence[str] | None = None,
    top: int | None = None,
    as_frame: bool | None = None,
) -> Any:
    """One row's features by decreasing |attribution|: feature, value, attribution, share.

    ``share`` is |attribution| / Σ|attributions| (the shares sum to 1). A DataFrame when
    pandas is installed (``as_frame=False`` for a list of dicts).
    """
    attributions, inputs = _flat(exp.attributions), _flat(exp.inputs)
    if not 0 <= example < attributions.shape[0]:
        raise ValueError(f"example={example} is out of range for {attributions.shape[0]} rows")
    names = _names(exp, feature_names, attributions.shape[1])
    a, v = attributions[example], inputs[example]
    total = float(a.abs().sum())
    order = torch.argsort(a.abs(), descending=True, stable=True).tolist()[:top]
    rows = [
        {
            "feature": names[j],
            "value": float(v[j]),
            "attribution": float(a[j]),
            "share": abs(float(a[j])) / total if total > 0 else 0.0,
        }
        for j in order
    ]
    return _frame(rows, as_frame)


def global_importance(
    exp: Explanation,
    *,
    feature_names: Sequence[str] | None = None,
    as_frame: bool | None = None,
) -> Any:
    """Features over all rows by mean |attribution|, with the mean signed attribution and share."""
    attributions = _flat(exp.attributions)
    names = _names(exp, feature_names, attributions.shape[1])
    mean_abs = attributions.abs().mean(0)
    mean = attributions.mean(0)
    total = float(mean_abs.sum())
    order = torch.argsort(mean_abs, descending=True, stable=True).tolist()
    rows = [
        {
            "feature": names[j],
            "mean_abs_attribution": float(mean_abs[j]),
            "mean_attribution": float(mean[j]),
            "share": float(mean_abs[j]) / total if total > 0 else 0.0,
        }
        for j in order
    ]
    return _frame(rows, as_frame)


def _bars(ax: Any, labels: list[str], values: list[float], xlabel: str) -> None:
    colours = [(_png.POSITIVE if v >= 0 else _png.NEGATIVE) / 255 for v in values]
    positions = np.arange(len(values))[::-1]
    ax.barh(positions, values, color=colours)
    ax.set_yticks(positions, labels, parse_math=False)  # names are text, not mathtext
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel, parse_math=False)


def _axes(ax: Any, rows: int, use_pyplot: bool) -> Any:
    if ax is not None:
        return ax
    return _png.new_figure((7.5, 0.3 * rows + 2.2), use_pyplot).subplots()


def bar_chart(
    exp: Explanation,
    example: int = 0,
    *,
    top: int = 15,
    feature_names: Sequence[str] | None = None,
    class_names: _captions.ClassNames = None,
    ax: Any = None,
    use_pyplot: bool = False,
) -> Any:
    """A matplotlib Figure: the ``top`` features' signed attributions as horizontal bars.

    Titled with what was explained (method, target, predicted class and probabilities
    when known; ``class_names`` label classes); the axis reads in units of F, the sign
    convention (red raises F, blue lowers it) and F(x), F(x'), the delta, the steps and
    the baseline are written under it. Draws into ``ax`` when given and returns its figure.
    """
    rows = ranked(exp, example, feature_names=feature_names, top=top, as_frame=False)
    labels = [f"{r['feature']} = {r['value']:.3g}" for r in rows]
    ax = _axes(ax, len(rows), use_pyplot)
    # ranked() checked the inputs are (rows, features) and the names fit them.
    features = cast(torch.Tensor, exp.inputs).shape[-1]
    shown = "" if len(rows) == features else f", top {len(rows)} by |attribution|"
    _bars(
        ax,
        labels,
        [r["attribution"] for r in rows],
        f"contribution to F(x) - F(x') ({_captions.unit(exp.output_kind)}): "
        f"{_captions.sign_note('all')}\n"
        + _captions.completeness(exp, example).replace("; ", "\n"),
    )
    # Wrapped: the feature labels push the axes right, so a long title would leave the figure.
    headline = "\n".join(textwrap.wrap(_captions.headline(exp, example, class_names), 60))
    ax.set_title(
        f"{headline}\nrow {example}{shown}",
        fontsize=9,
        parse_math=False,
    )
    return ax.figure


def importance_chart(
    exp: Explanation,
    *,
    top: int = 15,
    feature_names: Sequence[str] | None = None,
    ax: Any = None,
    use_pyplot: bool = False,
) -> Any:
    """A matplotlib Figure: mean |attribution| over all rows, coloured by the mean's sign.

    Draws into ``ax`` when given and returns its figure.
    """
    rows = global_importance(exp, feature_names=feature_names, as_frame=False)[:top]
    ax = _axes(ax, len(rows), use_pyplot)
    signs = [np.copysign(r["mean_abs_attribution"], r["mean_attribution"]) for r in rows]
    worst = float(exp.delta.abs().max()) if exp.delta.numel() else 0.0
    _bars(
        ax,
        [r["feature"] for r in rows],
        [abs(s) for s in signs],
        f"mean |attribution| over rows ({_captions.unit(exp.output_kind)})\n"
        f"colour: sign of the mean attribution, {_captions.sign_note('all')}\n"
        f"max |delta| = {worst:.2g}; {exp.n_steps} steps, baseline {exp.baseline}",
    )
    for patch, s in zip(ax.patches, signs, strict=True):
        patch.set_facecolor(tuple((_png.POSITIVE if s >= 0 else _png.NEGATIVE) / 255))
    ax.set_title(
        f"global importance over {len(exp.delta)} rows: {_captions.method_name(exp)}",
        fontsize=9,
        parse_math=False,
    )
    return ax.figure
