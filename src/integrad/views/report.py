"""A self-contained HTML report of an Explanation: one file, readable offline anywhere.

Everything is inline: pictures are base64 PNG ``data:`` URIs, styles sit in one
``<style>`` element, and there is no script, web font, link or external reference.
The report shows the provenance, the completeness check per example, and for each
example the view for its kind of input: image panels, a ranked feature table,
time-series bars and heatmap, or coloured tokens.

>>> import tempfile, torch, integrad
>>> exp = integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3))
>>> with tempfile.TemporaryDirectory() as d:
...     text = exp.to_html(d + "/report.html").read_text()
>>> "Completeness" in text and "<script" not in text
True
"""

from __future__ import annotations

import base64
import datetime
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _png

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["data_uri", "render", "to_html", "token_spans"]

_STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 17px; margin: 22px 0 8px 0; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
td.num { text-align: right; font-family: monospace; }
.example { border-top: 1px solid #ddd; padding-top: 8px; margin-top: 8px; }
.series { flex-direction: column; }
.views { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
img { image-rendering: pixelated; display: block; }
.legend span, .tokens span { padding: 1px 4px; border-radius: 3px; }
.tokens { line-height: 2; font-size: 15px; }
.bar { display: inline-block; height: 10px; }
.warn { color: #a00; }
"""


def data_uri(rgb: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 RGB array."""
    return "data:image/png;base64," + base64.b64encode(_png.encode_png(rgb)).decode("ascii")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(rgb: np.ndarray, caption: str) -> str:
    h, w = rgb.shape[:2]
    return (
        f'<figure><img src="{data_uri(rgb)}" width="{w}" height="{h}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _tr(*cells: str, header: bool = False) -> str:
    """A table row; a cell given as ``"num:..."`` is right-aligned monospace."""
    tag = "th" if header else "td"
    out = []
    for cell in cells:
        if cell.startswith("num:"):
            out.append(f'<{tag} class="num">{cell[4:]}</{tag}>')
        else:
            out.append(f"<{tag}>{cell}</{tag}>")
    return "<tr>" + "".join(out) + "</tr>"


def _rgb_css(colour: np.ndarray) -> str:
    r, g, b = (int(c) for c in np.asarray(colour).ravel()[:3])
    return f"rgb({r}, {g}, {b})"


def _colour(value: float, limit: float) -> str:
    return _rgb_css(_png.diverging(np.array([value]), limit)[0])


def token_spans(tokens: Sequence[str], scores: Any, limit: float | None = None) -> str:
    """Tokens as ``<span>`` elements on the diverging colour of their score's sign and size.

    Each span carries ``data-score`` and a ``title`` with the value, so the colour can be
    read back and checked.
    """
    values = np.asarray(
        scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor) else scores,
        dtype=np.float64,
    ).ravel()
    if len(tokens) != values.size:
        raise ValueError(f"{len(tokens)} tokens but {values.size} scores")
    limit = float(np.abs(values).max(initial=0.0)) if limit is None else limit
    spans = [
        f'<span style="background: {_colour(v, limit)}" data-score="{v:.6g}" '
        f'title="{v:.4g}">{_e(t)}</span>'
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
        ("batch", int(exp.delta.numel())),
        ("attributions", ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in parts)),
        ("model evaluations per example", f"{float(exp.n_evals.double().mean()):.4g}"),
    ]
    if exp.tolerance is not None:
        rows.append(("tolerance", exp.tolerance))
    if exp.converged is not None:
        rows.append(("converged", f"{int(exp.converged.sum())} of {int(exp.converged.numel())}"))
    for key, value in exp.extras.items():
        if key in ("saved_with", "feature_names", "tokens", "kind"):
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
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<h2>Provenance</h2><table id="provenance">{body}</table>'


def _completeness(exp: Explanation, shown: int) -> str:
    output, base, delta = (
        t.detach().cpu().double() for t in (exp.output, exp.baseline_output, exp.delta)
    )
    relative = exp.relative_delta.detach().cpu().double()
    head = _tr(
        "#",
        "F(x)",
        "F(x′)",
        "sum of attributions",
        "delta",
        "|delta| / |F(x) − F(x′)|",
        header=True,
    )
    rows = []
    for i in range(min(shown, delta.numel())):
        total = float(delta[i] + output[i] - base[i])
        rows.append(
            _tr(
                str(i),
                f"num:{float(output[i]):.5g}",
                f"num:{float(base[i]):.5g}",
                f"num:{total:.5g}",
                f"num:{float(delta[i]):.3g}",
                f"num:{float(relative[i]):.3g}",
            )
        )
    more = delta.numel() - min(shown, delta.numel())
    worst = float(delta.abs().max()) if delta.numel() else 0.0
    note = f"<p>{more} more not shown; max |delta| over all: {worst:.3g}</p>" if more > 0 else ""
    return (
        "<h2>Completeness</h2><p>delta = sum of attributions − (F(x) − F(x′)); "
        "Integrated Gradients make it 0 up to the integration error.</p>"
        f'<table id="completeness">{head}{"".join(rows)}</table>{note}'
    )


def _legend() -> str:
    return (
        '<p class="legend">Colours: <span style="background: '
        f'{_rgb_css(_png.POSITIVE)}; color: #fff">positive: towards the target</span> '
        f'<span style="background: {_rgb_css(_png.NEUTRAL)}">zero</span> '
        f'<span style="background: {_rgb_css(_png.NEGATIVE)}; color: #fff">negative: '
        "against it</span></p>"
    )


def _image_example(exp: Explanation, i: int, scale: int | None, **options: Any) -> str:
    from .images import _one, heatmap, image_rgb, overlay

    image, attributions = _one(exp, i)
    s = scale or max(1, 160 // image.shape[-2])
    return (
        '<div class="views">'
        + "".join(
            [
                _img(image_rgb(image, scale=s), "input"),
                _img(heatmap(attributions, scale=s, **options), "signed attribution"),
                _img(heatmap(attributions, "absolute", scale=s, **options), "absolute"),
                _img(overlay(image, attributions, scale=s, **options), "overlay"),
            ]
        )
        + "</div>"
    )


def _table_example(exp: Explanation, i: int, top: int | None = 20) -> str:
    from .tables import ranked

    rows = ranked(exp, i, top=top, as_frame=False)
    limit = max((abs(r["attribution"]) for r in rows), default=0.0)
    body = []
    for r in rows:
        a = r["attribution"]
        width = round(120 * abs(a) / limit) if limit > 0 else 0
        colour = _rgb_css(_png.POSITIVE if a >= 0 else _png.NEGATIVE)
        bar = f'<span class="bar" style="width: {width}px; background: {colour}"></span>'
        ink = "; color: #fff" if limit > 0 and abs(a) > 0.6 * limit else ""
        score = (
            f'<td class="num" style="background: {_colour(a, limit)}{ink}" data-score="{a:.6g}">'
        )
        body.append(
            f'<tr><td>{_e(r["feature"])}</td><td class="num">{r["value"]:.4g}</td>'
            f'{score}{a:.4g}</td><td class="num">{r["share"]:.1%}</td><td>{bar}</td></tr>'
        )
    head = _tr("feature", "value", "attribution", "share of |total|", "", header=True)
    return f'<table class="ranked">{head}{"".join(body)}</table>'


def _series_example(exp: Explanation, i: int) -> str:
    from .timeseries import _series, bars, heatmap

    x, a = _series(exp.inputs)[i], _series(exp.attributions)[i]
    step = max(2, 480 // a.shape[0])
    # The input as a gray feature × time grid, each feature scaled to its own range.
    low, high = x.min(axis=0), x.max(axis=0)
    scaled = (x - low) / np.where(high > low, high - low, 1.0)
    gray = np.repeat(np.round(scaled.T * 255).astype(np.uint8)[..., None], 3, axis=2)
    gray = gray.repeat(16, axis=0).repeat(step, axis=1)
    return (
        '<div class="views series">'
        + "".join(
            [
                _img(gray, "input, feature × time (rows: features, each scaled to its range)"),
                _img(bars(a.sum(axis=1), step_width=step), "attribution per time step"),
                _img(heatmap(a, cell=(step, 16)), "attribution, feature × time"),
            ]
        )
        + "</div>"
    )


def _text_example(exp: Explanation, i: int) -> str:
    tokens = exp.extras["tokens"][i]
    attributions = exp.attributions
    if isinstance(attributions, tuple):
        attributions = attributions[0]
    scores = attributions[i].detach().cpu().double()
    scores = scores.reshape(scores.shape[0], -1).sum(1) if scores.dim() > 1 else scores
    return token_spans(tokens, scores[: len(tokens)])


def render(
    exp: Explanation,
    *,
    kind: str | None = None,
    title: str | None = None,
    max_examples: int = 8,
    scale: int | None = None,
    **options: Any,
) -> str:
    """The report as an HTML string (see :func:`to_html`)."""
    from . import kind_of

    kind = kind_of(exp, kind)
    n = int(exp.delta.numel())
    shown = min(n, max_examples)
    title = title or f"integrad: {exp.method} attributions ({kind})"
    sections = []
    for i in range(shown):
        gap = float(exp.output[i] - exp.baseline_output[i])
        header = (
            f"<h3>Example {i}</h3><p>F(x) − F(x′) = {gap:.4g}, "
            f"delta = {float(exp.delta[i]):.3g}</p>"
        )
        if kind == "image":
            body = _image_example(exp, i, scale, **options)
        elif kind == "table":
            body = _table_example(exp, i)
        elif kind == "timeseries":
            body = _series_example(exp, i)
        elif kind == "text":
            body = _text_example(exp, i)
        else:
            raise ValueError(f"kind={kind!r} has no HTML view")
        sections.append(f'<section class="example" id="example-{i}">{header}{body}</section>')
    if kind == "table" and n > 1:
        from .tables import global_importance

        rows = global_importance(exp, as_frame=False)
        body = "".join(
            _tr(
                _e(r["feature"]),
                f"num:{r['mean_abs_attribution']:.4g}",
                f"num:{r['mean_attribution']:.4g}",
                f"num:{r['share']:.1%}",
            )
            for r in rows
        )
        head = _tr("feature", "mean |attribution|", "mean attribution", "share", header=True)
        sections.insert(
            0,
            f'<h2>Global importance over {n} rows</h2><table id="importance">{head}{body}</table>',
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{_legend()}{_provenance(exp)}{_completeness(exp, max_examples)}"
        f"<h2>Attributions</h2>{''.join(sections)}</body></html>\n"
    )


def to_html(exp: Explanation, path: str | Path, **options: Any) -> Path:
    """Write :func:`render`'s report to ``path`` (UTF-8) and return the path.

    ``kind`` picks the view (default: :func:`integrad.views.kind_of`), ``max_examples``
    how many examples get pictures, ``title`` the heading; other options (``clip``,
    ``percentile``) go to the image colouring.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(exp, **options), encoding="utf-8")
    return path
