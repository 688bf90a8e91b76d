"""The dataset report: a whole run of explanations on one self-contained HTML page.

It reads plain data and Explanations only (``Run.to_html`` in :mod:`integrad.runs`
hands them over): the per-example summary rows (columns ``id``, ``label``,
``target``, ``output`` = F(x), ``baseline_output`` = F(x'), ``delta``,
``relative_delta``, ``n_evals``, ``converged``, ``error_estimate``, ``seconds``), a
function giving the Explanation of one example id, and the stored batches as
``(ids, Explanation)`` pairs. The page shows histograms of the deltas and costs, the
worst-converged examples, the most and least confident examples (highest and lowest
F(x)) in the view of their kind, and for images and tables the mean attribution per
class (by label where the data has labels, else by target).

>>> import torch, integrad
>>> exp = integrad.explain(torch.nn.Linear(3, 2), torch.rand(4, 3), target=1)
>>> rows = {"id": [0, 1, 2, 3], "output": exp.output.tolist(), "delta": exp.delta.tolist()}
>>> page = render(rows, lambda i: exp, [([0, 1, 2, 3], exp)])
>>> "Most confident" in page and "<script" not in page
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _png
from ._captions import SIGN_WORDS, facts, unit, what_f_is
from ._html import cell_style, escape, img, tr, write

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["histogram", "render", "to_html"]


def _column(rows: Mapping[str, Sequence[Any]], name: str) -> np.ndarray:
    """A numeric column as float64, NaN where missing (a column absent is all NaN)."""
    n = len(rows["id"])
    values = rows.get(name)
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def histogram(
    values: Sequence[float], *, bins: int = 30, log: bool = False, size: tuple[int, int] = (300, 90)
) -> tuple[np.ndarray, str]:
    """Bars of how many ``values`` fall in each of ``bins`` equal bins, and a caption.

    ``log`` bins log10 of the values (zeros and below are counted apart, in the caption).
    The caption gives the range and the tallest bar's count, so the picture has a scale.
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    zeros = 0
    if log:
        zeros = int((data <= 0).sum())
        data = np.log10(data[data > 0])
    width, height = size
    out = np.full((height + 1, width, 3), _png.WHITE, dtype=np.uint8)
    out[height] = 0
    if data.size == 0:
        return out, "no values" + (f" ({zeros} zeros)" if zeros else "")
    low, high = float(data.min()), float(data.max())
    counts, _ = np.histogram(data, bins=bins, range=(low, high) if high > low else None)
    step = width // bins
    for k, count in enumerate(counts):
        tall = round(height * count / counts.max())
        out[height - tall : height, k * step : (k + 1) * step - 1] = _png.NEGATIVE.astype(np.uint8)
    scale = "log10 of the value: " if log else ""
    caption = f"{scale}{low:.3g} to {high:.3g}; tallest bar {int(counts.max())} examples"
    if zeros:
        caption += f"; {zeros} exactly 0 (not drawn)"
    return out, caption


def _distributions(rows: Mapping[str, Sequence[Any]]) -> str:
    figures = []
    for name, title, log in [
        ("delta", "|delta| (completeness error)", True),
        ("relative_delta", "|delta| / |F(x) − F(x′)|", True),
        ("n_evals", "model evaluations per example (cost)", False),
        ("seconds", "seconds per example", False),
    ]:
        values = np.abs(_column(rows, name))
        if np.isfinite(values).any():
            picture, caption = histogram(values, log=log)
            figures.append(img(picture, f"{title}: {caption}", title))
    return '<h2>Distributions</h2><div class="views">' + "".join(figures) + "</div>"


def _row_cells(rows: Mapping[str, Sequence[Any]], i: int) -> list[str]:
    out = []
    for name in ("id", "label", "target"):
        value = rows.get(name, [None] * len(rows["id"]))[i]
        out.append("" if value is None else escape(value))
    for name in ("output", "baseline_output", "delta", "relative_delta", "error_estimate"):
        value = _column(rows, name)[i]
        out.append("" if np.isnan(value) else f"num:{value:.4g}")
    converged = rows.get("converged", [None] * len(rows["id"]))[i]
    return [*out, "" if converged is None else escape(bool(converged))]


def _worst(rows: Mapping[str, Sequence[Any]], count: int) -> str:
    """The examples furthest from completeness: unconverged first, then by the error
    estimate (tolerance runs) or else the relative delta."""
    estimate = _column(rows, "error_estimate")
    estimated = bool(np.isfinite(estimate).any())
    key = np.nan_to_num(estimate if estimated else _column(rows, "relative_delta"), nan=-1.0)
    converged = rows.get("converged", [None] * len(key))
    failed = np.array([c is not None and not bool(c) for c in converged])
    order = np.lexsort((-key, ~failed))[:count]
    by = "estimated error" if estimated else "|delta| / |F(x) − F(x′)|"
    head = tr(
        "id", "label", "target", "F(x)", "F(x′)", "delta", "relative delta", "est. error",
        "converged", header=True,
    )  # fmt: skip
    body = "".join(tr(*_row_cells(rows, int(i))) for i in order)
    return (
        f"<h2>Worst converged ({len(order)} of {len(key)})</h2><p>Unconverged examples "
        f"first, then by {by}.</p>"
        f'<table id="worst">{head}{body}</table>'
    )


def _gallery(title: str, ids: Sequence[int], explanation_of: Callable[[int], Explanation]) -> str:
    """The examples ``ids`` in the view of their kind, against one shared colour scale."""
    from . import kind_of
    from .report import _example, legend, limits

    explanations = [explanation_of(i) for i in ids]
    try:
        kind = kind_of(explanations[0])
    except ValueError as error:
        return f"<h2>{escape(title)}</h2><p>No pictures: {escape(error)}</p>"
    own = [limits(e, kind, 0) for e in explanations]
    shared = {key: max(s[key] for s in own) for key in own[0]}
    sections = []
    for i, exp in zip(ids, explanations, strict=True):
        said = " · ".join(escape(f) for f in facts(exp, 0))
        sections.append(
            f'<section class="example"><h3>Example {i}: F = {escape(what_f_is(exp, 0))}</h3>'
            f'<p class="facts">{said}</p>{_example(exp, kind, 0, shared, None)}</section>'
        )
    scale = legend(explanations[0], kind, shared, "cumsum", 98.0)
    return f"<h2>{escape(title)}</h2>{scale}{''.join(sections)}"


def _classes(
    rows: Mapping[str, Sequence[Any]], batches: Iterable[tuple[Sequence[int], Explanation]]
) -> str:
    """Mean signed attribution per class, for images (heatmaps) and tables (one column each)."""
    from . import kind_of

    ids = list(rows["id"])
    labels = rows.get("label") or [None] * len(ids)
    by = "label" if any(v is not None for v in labels) else "target"
    group = dict(zip(ids, labels if by == "label" else rows.get("target", labels), strict=True))
    sums: dict[Any, torch.Tensor] = {}
    sums_abs: dict[Any, torch.Tensor] = {}
    counts: dict[Any, int] = {}
    first: Explanation | None = None
    for batch_ids, exp in batches:
        first = first or exp
        kind = kind_of(exp)
        a = exp.attributions
        if kind not in ("image", "table") or isinstance(a, tuple):
            return ""
        for row, i in enumerate(batch_ids):
            c = group.get(i)
            values = a[row].detach().cpu().double()
            sums[c] = sums.get(c, 0 * values) + values
            sums_abs[c] = sums_abs.get(c, 0 * values) + values.abs()
            counts[c] = counts.get(c, 0) + 1
    if first is None:
        return ""
    order = sorted(sums, key=lambda c: (c is None, str(c)))
    means = {c: sums[c] / counts[c] for c in order}
    if kind_of(first) == "image":
        return _class_images(first, by, means, counts)
    return _class_table(first, by, means, {c: sums_abs[c] / counts[c] for c in order}, counts)


def _mean_legend(exp: Explanation, limit: float) -> np.ndarray:
    """The colour bar of the per-class means, in the units of ``exp``'s F."""
    return _png.legend(limit, f"mean attribution ({unit(exp.output_kind)}): {SIGN_WORDS}")


def _class_images(
    exp: Explanation, by: str, means: dict[Any, torch.Tensor], counts: dict[Any, int]
) -> str:
    from .images import aggregate_channels, heatmap, outlier_limit

    # The means have an example's layout: (channels, height, width) or (height, width).
    maps = {c: aggregate_channels(m, "sum", 0) for c, m in means.items()}
    limit = max(outlier_limit(m) for m in maps.values())
    size = max(1, 96 // next(iter(maps.values())).shape[0])
    pictures = [
        img(heatmap(m, scale=size, limit=limit), f"{by} {c}: {counts[c]} examples", f"{by} {c}")
        for c, m in maps.items()
    ]
    bar = img(_mean_legend(exp, limit), SIGN_WORDS)
    return (
        f"<h2>Mean attribution per {by}</h2><p>Each picture: the mean signed attribution of "
        f"the examples of one {by} (channels summed), one colour limit ±{limit:.3g} for all."
        f'</p>{bar}<div class="views">{"".join(pictures)}</div>'
    )


def _class_table(
    exp: Explanation,
    by: str,
    means: dict[Any, torch.Tensor],
    means_abs: dict[Any, torch.Tensor],
    counts: dict[Any, int],
) -> str:
    from .tables import _names

    total = torch.stack([means_abs[c] * counts[c] for c in means]).sum(0) / sum(counts.values())
    names = _names(exp, None, int(total.numel()))
    ranked = torch.argsort(total, descending=True, stable=True)[:15].tolist()
    limit = max(float(m.abs().max()) for m in means.values())
    head = tr("feature", "mean |attribution|", *(f"{by} {c} ({counts[c]})" for c in means),
              header=True)  # fmt: skip
    body = []
    for j in ranked:
        cells = "".join(
            f'<td class="num" style="{cell_style(float(m[j]), limit)}">{float(m[j]):.3g}</td>'
            for m in means.values()
        )
        body.append(
            f'<tr><td>{escape(names[j])}</td><td class="num">{float(total[j]):.4g}</td>{cells}</tr>'
        )
    bar = img(_mean_legend(exp, limit), SIGN_WORDS)
    return (
        f"<h2>Mean attribution per {by}</h2><p>Features by mean |attribution| over all "
        f"examples; each column the mean signed attribution of one {by}.</p>{bar}"
        f'<table id="classes">{head}{"".join(body)}</table>'
    )


def render(
    rows: Mapping[str, Sequence[Any]],
    explanation_of: Callable[[int], Explanation],
    batches: Iterable[tuple[Sequence[int], Explanation]],
    *,
    title: str = "integrad: dataset report",
    examples: int = 4,
    worst: int = 10,
) -> str:
    """The dataset report as an HTML string (see the module's docstring and :func:`to_html`)."""
    from .report import STYLE

    if "id" not in rows or not len(rows["id"]):
        raise ValueError("rows must have an 'id' column with at least one example")
    if examples < 1:
        raise ValueError(f"examples must be at least 1, got {examples}")
    ids = [int(i) for i in rows["id"]]
    output = _column(rows, "output")
    order = [ids[k] for k in np.argsort(-np.nan_to_num(output, nan=-np.inf), kind="stable")]
    most, least = order[:examples], order[::-1][:examples]
    delta = np.abs(_column(rows, "delta"))
    said = (
        f"<p>{len(ids)} examples; max |delta| {np.nanmax(delta):.3g}, median "
        f"{np.nanmedian(delta):.3g}. Confidence here is F(x), the explained output "
        f"(with target 'pred': the top class's score). Colours: {SIGN_WORDS}.</p>"
    )
    body = [
        said,
        _distributions(rows),
        _worst(rows, worst),
        _gallery(f"Most confident (highest F(x), {len(most)})", most, explanation_of),
        _gallery(f"Least confident (lowest F(x), {len(least)})", least, explanation_of),
        _classes(rows, batches),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{''.join(body)}</body></html>\n"
    )


def to_html(
    path: str | Path,
    rows: Mapping[str, Sequence[Any]],
    explanation_of: Callable[[int], Explanation],
    batches: Iterable[tuple[Sequence[int], Explanation]],
    **options: Any,
) -> Path:
    """Write :func:`render`'s page to ``path`` (UTF-8) and return the path.

    ``examples`` sets how many of the most and least confident examples are drawn,
    ``worst`` how many rows the worst-converged table has, ``title`` the heading.
    """
    return write(path, render(rows, explanation_of, batches, **options))
