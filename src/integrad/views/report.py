"""A self-contained HTML report of an Explanation: one file, readable offline anywhere.

Everything is inline: pictures are base64 PNG ``data:`` URIs, styles sit in one
``<style>`` element, and there is no script, web font, link or external reference.
The page explains itself: how to read the colours (red raises the explained output F,
blue lowers it, purple is |attribution|), a colour bar with the numeric limits and
units for every coloured picture, whether the colour scale is shared across the
examples (the default, so they compare) or set per example, the provenance, and per
example what was explained (F, the predicted class and its probability where the
model has classes), F(x), F(x'), the completeness delta and the view for its kind of
input: image panels, a ranked feature table, time-series bars and heatmap, or
coloured tokens.

>>> import tempfile, torch, integrad
>>> exp = integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3))
>>> with tempfile.TemporaryDirectory() as d:
...     text = exp.to_html(d + "/report.html").read_text()
>>> "Completeness" in text and "red raises F" in text and "<script" not in text
True
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _png
from ._captions import SIGN_WORDS, facts, rule, unit, units, what_f_is
from ._html import cell_style, data_uri, escape, img, rgb_css, summary_table, tr, write

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["data_uri", "render", "to_html", "token_spans"]

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 17px; margin: 22px 0 8px 0; }
h3 { font-size: 15px; margin: 10px 0 4px 0; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
td.num { text-align: right; font-family: monospace; }
.example { border-top: 1px solid #ddd; padding-top: 8px; margin-top: 8px; }
.facts { font-size: 13px; margin: 2px 0 8px 0; }
.series { flex-direction: column; }
.views, .legend { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #444; max-width: 360px; }
img { image-rendering: pixelated; display: block; }
.tokens span { padding: 1px 4px; border-radius: 3px; }
.tokens { line-height: 2; font-size: 15px; }
.bar { display: inline-block; height: 10px; }
.warn { color: #a00; }
"""


def token_spans(tokens: Sequence[str], scores: Any, limit: float | None = None) -> str:
    """Tokens as ``<span>`` elements on the diverging colour of their score's sign and size.

    Each span carries ``data-score`` and a ``title`` with the value, so the colour can be
    read back and checked; the text is black or white, whichever contrasts more with
    the background (WCAG AA, at least 4.5:1).
    """
    values = np.asarray(
        scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor) else scores,
        dtype=np.float64,
    ).ravel()
    if len(tokens) != values.size:
        raise ValueError(f"{len(tokens)} tokens but {values.size} scores")
    limit = float(np.abs(values).max(initial=0.0)) if limit is None else limit
    spans = [
        f'<span style="{cell_style(v, limit)}" data-score="{v:.6g}" title="{v:.4g}">'
        f"{escape(t)}</span>"
        for t, v in zip(tokens, values, strict=True)
    ]
    return '<div class="tokens">' + " ".join(spans) + "</div>"


def _provenance(exp: Explanation) -> str:
    from .. import __version__

    attributions = exp.attributions
    parts = attributions if isinstance(attributions, tuple) else (attributions,)
    saved = exp.extras.get("saved_with") or {}
    rows: list[tuple[str, Any]] = [
        ("method", exp.method),
        ("n_steps", exp.n_steps),
        ("baseline", exp.baseline),
        ("target", exp.target.tolist() if isinstance(exp.target, torch.Tensor) else exp.target),
        ("multiply_by_inputs", exp.multiply_by_inputs),
        ("kind", exp.kind),
        ("output_kind", exp.output_kind),
        ("batch", int(exp.delta.numel())),
        ("attributions", ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in parts)),
        ("model evaluations per example", f"{float(exp.n_evals.double().mean()):.4g}"),
    ]
    if exp.tolerance is not None:
        rows.append(("tolerance", exp.tolerance))
    if exp.converged is not None:
        rows.append(("converged", f"{int(exp.converged.sum())} of {int(exp.converged.numel())}"))
    for key, value in exp.extras.items():
        if key in ("saved_with", "feature_names", "tokens", "kind", "class_names"):
            continue
        if isinstance(value, (bool, int, float, str)):
            rows.append((key, value))
    rows += [
        ("integrad", saved.get("integrad", __version__)),
        ("torch", saved.get("torch", torch.__version__)),
        (
            "report written",
            datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        ),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<h2>Provenance</h2><table id="provenance">{body}</table>'


def _completeness(exp: Explanation, shown: int) -> str:
    n = int(exp.delta.numel())
    table = summary_table(exp, range(min(shown, n)), with_sum=True)
    more = n - min(shown, n)
    worst = float(exp.delta.abs().max()) if n else 0.0
    note = f"<p>{more} more not shown; max |delta| over all: {worst:.3g}</p>" if more > 0 else ""
    return (
        "<h2>Completeness</h2><p>delta = sum of attributions − (F(x) − F(x′)); "
        "Integrated Gradients make it 0 up to the integration error.</p>"
        f'<table id="completeness">{table}</table>{note}'
    )


def _scores(exp: Explanation, kind: str, i: int) -> Any:
    """Example ``i``'s attributions as the kind's view reads them (numpy float64)."""
    if kind == "image":
        from .images import one_example

        return one_example(exp, i)[1]
    if kind == "table":
        from .tables import _flat

        return _flat(exp.attributions)[i].numpy()
    if kind == "timeseries":
        from .timeseries import _series

        return _series(exp.attributions)[i]
    attributions = exp.attributions
    if isinstance(attributions, tuple):
        attributions = attributions[0]
    tokens = exp.extras["tokens"][i]
    scores = attributions[i].detach().cpu().double()
    scores = scores.reshape(scores.shape[0], -1).sum(1) if scores.dim() > 1 else scores
    return scores[: len(tokens)].numpy()


def limits(
    exp: Explanation, kind: str, i: int, *, clip: str | None = "cumsum", percentile: float = 98.0
) -> dict[str, float]:
    """The colour limits of example ``i``'s pictures: what maps to full colour.

    ``"signed"`` for every kind (images: the outlier-robust limit of the channel sum;
    tables, tokens, series cells: the largest |attribution|), ``"absolute"`` for an
    image's |attribution| map, ``"steps"`` for a series' per-step bars.
    """
    scores = _scores(exp, kind, i)
    if kind == "image":
        from .images import aggregate_channels, outlier_limit

        signed, magnitude = (aggregate_channels(scores, how, 0) for how in ("sum", "abs_sum"))
        return {
            "signed": outlier_limit(signed, percentile, clip),
            "absolute": outlier_limit(magnitude, percentile, clip),
        }
    out = {"signed": float(np.abs(scores).max(initial=0.0))}
    if kind == "timeseries":
        out["steps"] = float(np.abs(scores.sum(axis=1)).max(initial=0.0))
    return out


def legend(
    exp: Explanation, kind: str, scale: dict[str, float], clip: str | None, percentile: float
) -> str:
    """Colour bars with the numeric limits of ``scale`` (from :func:`limits`) and units."""
    measure = unit(exp.output_kind)
    signed = scale["signed"]
    words = f"colour limit ±{signed:.3g} {measure}: {SIGN_WORDS}; beyond it colours saturate"
    if kind == "image":
        words += f". Limit: {rule(clip, percentile)} of the channel sum"
    bar = _png.legend(signed, units("all", output_kind=exp.output_kind))
    parts = [img(bar, words, "colour bar")]
    if kind == "image":
        top = scale["absolute"]
        parts.append(
            img(
                _png.legend(top, units("absolute", output_kind=exp.output_kind), "absolute"),
                f"purple: |attribution| per pixel, whatever its sign (sum of |·| over "
                f"channels), white 0 to full purple at {top:.3g} {measure}. Overlay: the image "
                f"tinted red/blue, 80% of the way at ±{signed:.3g}",
                "absolute colour bar",
            )
        )
    if kind == "timeseries":
        parts.append(
            f"<p>Bars: attribution per time step (summed over features), red up raises F, "
            f"blue down lowers it; a full half-height is ±{scale['steps']:.3g} {measure}.</p>"
        )
    return '<div class="legend">' + "".join(parts) + "</div>"


def _image_example(exp: Explanation, i: int, scale: dict[str, float], size: int | None) -> str:
    from .images import heatmap, image_rgb, one_example, overlay

    # one_example gives (channels, height, width) or (height, width): channel_axis=0 reads both.
    image, attributions = one_example(exp, i)
    s = size or max(1, 160 // image.shape[-2])
    signed, top = scale["signed"], scale["absolute"]
    signed_map = heatmap(attributions, limit=signed, scale=s, channel_axis=0)
    absolute_map = heatmap(attributions, "absolute", limit=top, scale=s, channel_axis=0)
    panels = [
        img(image_rgb(image, scale=s, channel_axis=0), "input", f"input #{i}"),
        img(signed_map, "signed attribution", f"signed #{i}"),
        img(absolute_map, "|attribution|", f"abs #{i}"),
        img(
            overlay(image, attributions, limit=signed, scale=s, channel_axis=0),
            "overlay",
            f"overlay #{i}",
        ),
    ]
    return '<div class="views">' + "".join(panels) + "</div>"


def _table_example(exp: Explanation, i: int, scale: dict[str, float], top: int = 20) -> str:
    from .tables import ranked

    rows = ranked(exp, i, top=top, as_frame=False)
    limit = scale["signed"]
    body = []
    for r in rows:
        a = r["attribution"]
        width = round(120 * min(abs(a) / limit, 1.0)) if limit > 0 else 0
        colour = rgb_css(_png.POSITIVE if a >= 0 else _png.NEGATIVE)
        bar = f'<span class="bar" style="width: {width}px; background: {colour}"></span>'
        score = f'<td class="num" style="{cell_style(a, limit)}" data-score="{a:.6g}">'
        body.append(
            f'<tr><td>{escape(r["feature"])}</td><td class="num">{r["value"]:.4g}</td>'
            f'{score}{a:.4g}</td><td class="num">{r["share"]:.1%}</td><td>{bar}</td></tr>'
        )
    head = tr("feature", "value", "attribution", "share of |total|", "bar", header=True)
    return f'<table class="ranked">{head}{"".join(body)}</table>'


def _series_example(exp: Explanation, i: int, scale: dict[str, float]) -> str:
    from .timeseries import _series, bars, heatmap

    x, a = _series(exp.inputs)[i], _series(exp.attributions)[i]
    step = max(2, 480 // a.shape[0])
    # The input as a gray feature × time grid, each feature scaled to its own range.
    low, high = x.min(axis=0), x.max(axis=0)
    scaled = (x - low) / np.where(high > low, high - low, 1.0)
    gray = np.repeat(np.round(scaled.T * 255).astype(np.uint8)[..., None], 3, axis=2)
    gray = gray.repeat(16, axis=0).repeat(step, axis=1)
    per_step = bars(a.sum(axis=1), step_width=step, limit=scale["steps"])
    cells = heatmap(a, cell=(step, 16), limit=scale["signed"])
    pictures = [
        img(gray, "input, feature × time (rows: features, each scaled to its range)", f"x #{i}"),
        img(per_step, "attribution per time step", f"steps #{i}"),
        img(cells, "attribution, feature × time", f"cells #{i}"),
    ]
    return '<div class="views series">' + "".join(pictures) + "</div>"


def _text_example(exp: Explanation, i: int, scale: dict[str, float]) -> str:
    return token_spans(exp.extras["tokens"][i], _scores(exp, "text", i), scale["signed"])


def _example(exp: Explanation, kind: str, i: int, scale: dict[str, float], size: int | None) -> str:
    if kind == "image":
        return _image_example(exp, i, scale, size)
    if kind == "table":
        return _table_example(exp, i, scale)
    if kind == "timeseries":
        return _series_example(exp, i, scale)
    return _text_example(exp, i, scale)


def _importance(exp: Explanation) -> str:
    from .tables import global_importance

    rows = global_importance(exp, as_frame=False)
    body = "".join(
        tr(
            escape(r["feature"]),
            f"num:{r['mean_abs_attribution']:.4g}",
            f"num:{r['mean_attribution']:.4g}",
            f"num:{r['share']:.1%}",
        )
        for r in rows
    )
    head = tr("feature", "mean |attribution|", "mean attribution", "share", header=True)
    n = int(exp.delta.numel())
    return f'<h2>Global importance over {n} rows</h2><table id="importance">{head}{body}</table>'


def render(
    exp: Explanation,
    *,
    kind: str | None = None,
    title: str | None = None,
    max_examples: int = 8,
    scale: int | None = None,
    shared_scale: bool = True,
    clip: str | None = "cumsum",
    percentile: float = 98.0,
    class_names: Sequence[str] | None = None,
) -> str:
    """The report as an HTML string (see :func:`to_html`)."""
    from . import kind_of

    kind = kind_of(exp, kind)
    if kind == "text" and "tokens" not in exp.extras:
        raise ValueError("kind='text' needs the tokens in exp.extras['tokens'] (explain_text)")
    if max_examples < 1:
        raise ValueError(f"max_examples must be at least 1, got {max_examples}")
    class_names = class_names or exp.extras.get("class_names")
    n = int(exp.delta.numel())
    shown = min(n, max_examples)
    title = title or f"integrad: {exp.method} attributions ({kind})"
    own = [limits(exp, kind, i, clip=clip, percentile=percentile) for i in range(shown)]
    shared = {key: max(s[key] for s in own) for key in own[0]} if own else {}
    if shared_scale:
        scope = (
            f"<p>Colour scale: <b>shared</b> — one limit for all {shown} examples shown (the "
            "largest of their own limits), so colours compare across examples.</p>"
            + legend(exp, kind, shared, clip, percentile)
        )
    else:
        scope = (
            "<p>Colour scale: <b>per example</b> — each example has its own limit (its "
            "legend is beside it); colours do not compare across examples.</p>"
        )
    sections = []
    for i in range(shown):
        header = (
            f"<h3>Example {i}: F = {escape(what_f_is(exp, i, class_names))}</h3>"
            f'<p class="facts">{" · ".join(escape(f) for f in facts(exp, i, class_names))}</p>'
        )
        own_legend = "" if shared_scale else legend(exp, kind, own[i], clip, percentile)
        body = _example(exp, kind, i, shared if shared_scale else own[i], scale)
        sections.append(
            f'<section class="example" id="example-{i}">{header}{own_legend}{body}</section>'
        )
    if kind == "table" and n > 1:
        sections.insert(0, _importance(exp))
    how = (
        "<h2>How to read</h2><p>F is the explained output (per example below). Attributions "
        f"are in {escape(unit(exp.output_kind))} and add up to F(x) − F(x′), x′ the baseline, "
        f"up to the completeness delta. Colours: {SIGN_WORDS}"
        + ("; purple is |attribution| without its sign" if kind == "image" else "")
        + ". (Captum's visualize_image_attr and visualize_text draw positive green, "
        "negative red.)</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{how}{scope}{_provenance(exp)}"
        f"{_completeness(exp, max_examples)}<h2>Attributions</h2>{''.join(sections)}"
        "</body></html>\n"
    )


def to_html(exp: Explanation, path: str | Path, **options: Any) -> Path:
    """Write :func:`render`'s report to ``path`` (UTF-8) and return the path.

    ``kind`` picks the view (default: :func:`integrad.views.kind_of`), ``max_examples``
    how many examples get pictures, ``title`` the heading. ``shared_scale=True`` (the
    default) colours every example against one limit so they compare; ``False`` gives
    each its own limit and legend. ``clip`` / ``percentile`` set an image's colour limit
    (:func:`integrad.views.images.outlier_limit`); ``scale`` the pixel enlargement;
    ``class_names`` (default ``exp.extras["class_names"]``) name the classes.
    """
    return write(path, render(exp, **options))
