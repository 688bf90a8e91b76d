"""Several attributions of the same inputs side by side, on one colour scale.

One rendering serves :func:`comparison` (explanations from several baselines, the image
layout of :func:`integrad.images.compare_baselines`) and the page of
:meth:`integrad.metrics.Comparison.to_html` (several methods, with their scores). It
takes plain data, never the metrics: names, each method's attributions, the inputs and
the table's rows.

- :func:`integrad.views.comparison.row`: one image, then each method's signed heatmap under
  ONE colour limit
  (pooled over the methods' maps, :func:`integrad.views.images.shared_limit`), with its
  legend and the stated rule, so sizes compare across methods;
- :func:`feature_table`: for tables, features × methods, each cell coloured by its sign
  on one limit per example (the largest |attribution| of any method);
- :func:`page`: the self-contained HTML page (inline PNGs, no script, no external
  reference): the score table, saying per column which direction is better, then the
  examples.

Red raises the explained output, blue lowers it (Captum's visualize_image_attr draws
positive green).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _captions, _png
from ._html import cell_style, escape, img, tr, write
from .images import (
    _default_scale,
    _footer,
    _numpy,
    aggregate_channels,
    heatmap,
    image_rgb,
    one_example,
    outlier_limit,
    shared_limit,
)

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["comparison", "feature_table", "page", "row", "write"]


def row(
    image: Any,
    attributions: Mapping[str, Any],
    *,
    caption: str = "input",
    titles: Mapping[str, str] | None = None,
    above: Mapping[str, np.ndarray] | None = None,
    scale: int | None = None,
    shared_scale: bool = True,
    clip: str | None = "cumsum",
    percentile: float = 98.0,
    output_kind: str | None = None,
    scope: str = "methods",
    limit: float | None = None,
) -> np.ndarray:
    """The image, then a signed heatmap per name of ``attributions``; legend and scale below.

    ``image`` and each attribution array are one example, ``(channels, height, width)``
    or ``(height, width)``. ``titles`` (default: the names) head the heatmaps;
    ``above`` puts a titled picture over each heatmap (e.g. the baseline), under the
    input a blank. With ``shared_scale`` every heatmap uses one colour limit; otherwise
    each its own, written in its title. ``limit`` is the shared limit when the caller has
    it already (default: :func:`integrad.views.images.shared_limit` of the maps).
    """
    if not attributions:
        raise ValueError("a comparison needs at least one method's attributions")
    names = list(attributions)
    image = _numpy(image)
    s = scale or _default_scale(image.shape[-2])
    sums = [aggregate_channels(attributions[n], "sum", 0) for n in names]
    if not shared_scale:
        limit = None
    elif limit is None:
        limit = shared_limit(sums, percentile, clip)
    first = _png.titled(image_rgb(image, scale=s, channel_axis=0), caption)
    heats = [first]
    for name, summed in zip(names, sums, strict=True):
        own = limit if limit is not None else outlier_limit(summed, percentile, clip)
        title = (titles or {}).get(name, name) + ("" if shared_scale else f" ±{own:.2g}")
        heats.append(_png.titled(heatmap(summed, scale=s, limit=own), title))
    rows = [heats]
    if above is not None:
        rows.insert(0, [first, *(above[n] for n in names)])
        heats[0] = np.full_like(first, _png.WHITE)
    picture = _png.grid(rows)
    where = f"shared across {scope}" if shared_scale else f"per {scope[:-1]} (in each title)"
    note = _captions.scale_note(limit, clip, percentile, where)
    label = _captions.units("all", output_kind=output_kind)
    footer = _footer(picture.shape[1], [note], [_png.legend(limit, label)])
    return _png.grid([[picture], [footer]])


def comparison(
    explanations: Mapping[str, Explanation],
    example: int = 0,
    *,
    scale: int | None = None,
    shared_scale: bool = True,
    channel_axis: int = 0,
    **options: Any,
) -> np.ndarray:
    """The input, then a column per baseline: the baseline over its signed attributions.

    With ``shared_scale`` every heatmap uses one colour limit, so sizes compare across
    baselines; otherwise each has its own, written in its title. Titles carry the
    baseline's name and F(x) - F(x'); a caption row states the scale next to a legend.
    The layout is :func:`integrad.views.comparison.row`'s, with the baselines above.
    """
    if not explanations:
        raise ValueError("comparison needs at least one explanation")
    names = list(explanations)
    pairs = {n: one_example(explanations[n], example, channel_axis) for n in names}
    image = pairs[names[0]][0]
    s = scale or _default_scale(image.shape[-2])
    value_range = (float(image.min()), float(image.max()))
    titles, above = {}, {}
    for name in names:
        exp = explanations[name]
        gap = float(exp.output[example] - exp.baseline_output[example])
        titles[name] = f"F(x)-F(x') {gap:.3g}"
        base = exp.baselines[0] if isinstance(exp.baselines, tuple) else exp.baselines
        base_image = _numpy(base[example] if base.dim() == image.ndim + 1 else base[0])
        if base_image.ndim == 3:
            base_image = np.moveaxis(base_image, channel_axis, 0)
        shown = image_rgb(base_image, scale=s, value_range=value_range, channel_axis=0)
        above[name] = _png.titled(shown, f"baseline: {name}")
    clip, percentile = _captions.describe_options(options)
    return row(
        image,
        {n: pairs[n][1] for n in names},
        caption=f"input #{example}",
        titles=titles,
        above=above,
        scale=s,
        shared_scale=shared_scale,
        clip=clip,
        percentile=percentile,
        output_kind=explanations[names[0]].output_kind,
        scope="baselines",
    )


def feature_table(
    values: Any,
    attributions: Mapping[str, Any],
    feature_names: Sequence[str] | None = None,
) -> str:
    """An HTML table, a row per feature: its value, then each method's attribution.

    Cells are coloured on one diverging scale per table (the largest |attribution| of any
    method): red raises F, blue lowers it, white is 0.
    """
    x = _numpy(values).ravel()
    columns = {n: _numpy(a).ravel() for n, a in attributions.items()}
    for name, column in columns.items():
        if column.shape != x.shape:
            raise ValueError(
                f"attributions[{name!r}] has {column.size} features, the inputs {x.size}"
            )
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(x.size)]
    if len(names) != x.size:
        raise ValueError(f"feature_names has {len(names)} names for {x.size} features")
    limit = max((float(np.abs(c).max(initial=0.0)) for c in columns.values()), default=0.0)
    body = [tr("feature", "value", *map(escape, columns), header=True)]
    for j, name in enumerate(names):
        cells = [
            f'<td class="num" style="{cell_style(float(c[j]), limit)}">{float(c[j]):.3g}</td>'
            for c in columns.values()
        ]
        body.append(f"<tr><td>{escape(name)}</td><td class='num'>{x[j]:.4g}</td>{''.join(cells)}")
        body[-1] += "</tr>"
    return f"<table>{''.join(body)}</table>"


def _score_table(rows: Mapping[str, Mapping[str, float]], better: Mapping[str, str]) -> str:
    """Methods × columns; a column's best value is bold where ``better`` gives a direction."""
    columns = list(next(iter(rows.values()))) if rows else []
    head = ["method"] + [
        escape(c) + (f"<br><small>{better[c]} is better</small>" if c in better else "")
        for c in columns
    ]
    best = {}
    for column in columns:
        finite = [v[column] for v in rows.values() if math.isfinite(v[column])]
        if column in better and finite:
            best[column] = min(finite) if better[column] == "lower" else max(finite)
    body = []
    for name, values in rows.items():
        cells = []
        for column in columns:
            text = "–" if not math.isfinite(values[column]) else f"{values[column]:.4g}"
            cells.append(
                "num:" + (f"<b>{text}</b>" if best.get(column) == values[column] else text)
            )
        body.append(tr(escape(name), *cells))
    return f"<table>{tr(*head, header=True)}{''.join(body)}</table>"


def page(
    rows: Mapping[str, Mapping[str, float]],
    *,
    better: Mapping[str, str],
    inputs: Any = None,
    attributions: Mapping[str, Any] | None = None,
    kind: str | None = None,
    examples: Sequence[int] = (),
    feature_names: Sequence[str] | None = None,
    output_kind: str | None = None,
    title: str = "integrad: methods compared",
    notes: Sequence[str] = (),
    **options: Any,
) -> str:
    """The comparison page: the score table, then per example the methods side by side.

    ``rows[method][column]`` are the table's numbers; ``better[column]`` is ``"lower"``
    or ``"higher"``. ``inputs`` (batch first) and ``attributions[method]`` (same shape)
    are drawn for ``examples`` when ``kind`` is ``"image"``
    (:func:`integrad.views.comparison.row`: one shared colour limit per example) or
    ``"table"`` (:func:`feature_table`); any other kind
    shows the table only. ``options`` (``clip``, ``percentile``, ``scale``) go to the
    pictures.
    """
    from .report import STYLE

    sections = []
    drawn = attributions if kind in ("image", "table") and inputs is not None else None
    x = _numpy(inputs) if drawn else np.zeros(0)
    for i in examples if drawn else ():
        one = {n: _numpy(a)[i] for n, a in (drawn or {}).items()}
        if kind == "image":
            clip, percentile = _captions.describe_options(options)
            limit = shared_limit([aggregate_channels(a, "sum", 0) for a in one.values()],
                                 percentile, clip)  # fmt: skip
            picture = row(
                x[i], one, caption=f"input #{i}", scale=options.get("scale"),
                clip=clip, percentile=percentile, output_kind=output_kind, limit=limit,
            )  # fmt: skip
            body = img(picture, f"example {i}: the input, then each method on one colour limit "
                       f"±{limit:.3g}")  # fmt: skip
        else:
            body = feature_table(x[i], one, feature_names)
        sections.append(f'<div class="example"><h3>Example {i}</h3>{body}</div>')
    how = (
        f"<p class='facts'>Attributions are in {escape(_captions.unit(output_kind))}; colours: "
        f"{escape(_captions.SIGN_WORDS)}, on one limit shared by the methods of an example "
        "(Captum's visualize_image_attr draws positive green).</p>"
    )
    said = "".join(f"<p class='facts'>{escape(n)}</p>" for n in notes)
    pictures = f"<h2>Examples</h2>{how}{''.join(sections)}" if sections else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><h2>Scores</h2>{said}{_score_table(rows, better)}"
        f"{pictures}</body></html>\n"
    )
