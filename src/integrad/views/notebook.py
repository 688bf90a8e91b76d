"""The compact summary a notebook shows for an Explanation (``Explanation._repr_html_``).

One provenance line, the per-example table (F(x), F(x'), delta, relative delta, the
predicted class and probabilities where the model has classes, the error estimate in
tolerance mode) for the first rows, and up to four small pictures in the view of the
input's kind with one colour bar for all of them. It stays small (a batch of 64
3×64×64 images gives some tens of kB) and never raises: where the kind cannot be told
(3-d inputs without ``kind=``) or a picture cannot be drawn it says so instead.
Inline styles only, no ``<style>`` element, so nothing leaks into the notebook's page.

>>> import torch, integrad
>>> html = summary(integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3)))
>>> "F(x′)" in html and "<script" not in html
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _png
from ._captions import SIGN_WORDS, sign_note, unit
from ._html import cell_style, data_uri, escape, summary_table

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["summary"]

_BOX = "font-family: sans-serif; font-size: 12px; line-height: 1.4"
_TABLE = "border-collapse: collapse; font-size: 12px; margin: 4px 0"
_FIGURE = "display: inline-block; margin: 0 8px 4px 0; vertical-align: top"


def _picture(rgb: np.ndarray, caption: str) -> str:
    h, w = rgb.shape[:2]
    return (
        f'<figure style="{_FIGURE}"><img src="{data_uri(rgb)}" width="{w}" height="{h}" '
        f'alt="{escape(caption)}" style="image-rendering: pixelated; display: block">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _short(value: object, limit: int = 40) -> str:
    text = str(value.tolist() if hasattr(value, "tolist") else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line(exp: Explanation) -> str:
    attributions = exp.attributions
    parts = attributions if isinstance(attributions, tuple) else (attributions,)
    shapes = ", ".join(f"{tuple(a.shape)} {str(a.dtype).removeprefix('torch.')}" for a in parts)
    said = [
        f"method={exp.method}",
        f"n_steps={exp.n_steps}",
        f"baseline={exp.baseline}",
        f"target={_short(exp.target)}",
        f"multiply_by_inputs={exp.multiply_by_inputs}",
    ]
    said += [f"kind={exp.kind}"] if exp.kind else []
    said += [f"output_kind={exp.output_kind}"] if exp.output_kind else []
    said.append(f"attributions {shapes}")
    said.append(f"{float(exp.n_evals.double().mean()):.4g} evaluations per example")
    if exp.tolerance is not None and exp.converged is not None:
        said.append(
            f"tolerance {exp.tolerance:g}: {int(exp.converged.sum())} of "
            f"{int(exp.converged.numel())} converged"
        )
    return "<b>Explanation</b> " + escape(", ".join(said))


def _pool(values: np.ndarray, most: int) -> tuple[np.ndarray, int]:
    """``values`` averaged over k×k blocks (k×1 for 1-d) so no side exceeds ``most``."""
    k = -(-max(values.shape) // most)
    if k == 1:
        return values, 1
    if values.ndim == 1:
        cut = values[: values.size // k * k]
        return cut.reshape(-1, k).mean(axis=1), k
    h, w = values.shape[0] // k * k, values.shape[1] // k * k
    return values[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3)), k


def _maps(exp: Explanation, kind: str, shown: int) -> tuple[list[np.ndarray], float, str]:
    """Each shown example's thumbnail values, their one colour limit, and what a value is."""
    from .report import _scores

    if kind == "image":
        from .images import aggregate_channels, outlier_limit

        # _scores gives an image's (channels, height, width) or (height, width).
        summed = [aggregate_channels(_scores(exp, kind, i), "sum", 0) for i in range(shown)]
        pooled = [_pool(values, 64) for values in summed]
        maps = [values for values, _ in pooled]
        block = max(k for _, k in pooled)
        limit = max(outlier_limit(values) for values in maps)
        what = "per pixel" if block == 1 else f"per pixel, mean over {block}×{block} blocks"
        return maps, limit, what
    if kind == "timeseries":
        pooled = [_pool(_scores(exp, kind, i).sum(axis=1), 160) for i in range(shown)]
        block = max(k for _, k in pooled)
        maps = [values for values, _ in pooled]
        what = "per time step" if block == 1 else f"per time step, mean over {block} steps"
        return maps, max(float(np.abs(m).max(initial=0.0)) for m in maps), what
    maps = [np.asarray(_scores(exp, kind, i)) for i in range(shown)]
    limit = max(float(np.abs(m).max(initial=0.0)) for m in maps)
    return maps, limit, "per feature" if kind == "table" else "per token"


def _thumbnails(exp: Explanation, kind: str, shown: int) -> str:
    """Up to ``shown`` small pictures against one colour limit, with its colour bar."""
    from .report import token_spans
    from .timeseries import bars

    maps, limit, what = _maps(exp, kind, shown)
    cells = []
    for i, values in enumerate(maps):
        caption = f"#{i}"
        if exp.predicted is not None:
            caption += f", predicted {int(exp.predicted[i])}"
        if kind == "image":
            size = max(1, 64 // values.shape[0])
            cells.append(_picture(_png.upscale(_png.diverging(values, limit), size), caption))
        elif kind == "timeseries":
            width = max(1, 160 // values.size)
            cells.append(_picture(bars(values, height=40, step_width=width, limit=limit), caption))
        elif kind == "table":
            from .tables import ranked

            rows = "".join(
                f"<tr><td>{escape(r['feature'])}</td>"
                f'<td style="{cell_style(r["attribution"], limit)}">'
                f"{r['attribution']:.3g}</td></tr>"
                for r in ranked(exp, i, top=5, as_frame=False)
            )
            cells.append(
                f'<figure style="{_FIGURE}"><table style="{_TABLE}">{rows}</table>'
                f"<figcaption>{escape(caption)}: top 5 features</figcaption></figure>"
            )
        else:
            tokens = exp.extras["tokens"][i][:40]
            spans = token_spans(tokens, values[: len(tokens)], limit)
            cells.append(f"<div>{escape(caption)}: {spans}</div>")
    measure = unit(exp.output_kind)
    if kind == "timeseries":
        legend = f"bars: attribution {what}; a full half-height is ±{limit:.3g} {measure}"
        bar = f"<p>{escape(legend)}; {SIGN_WORDS}.</p>"
    else:
        label = f"attribution {what} ({measure}): {sign_note('all')}"
        bar = _picture(_png.legend(limit, label), SIGN_WORDS)
    return (
        f"<div>{''.join(cells)}</div><div>{bar}</div><p>One colour limit for these "
        f"pictures (attribution {escape(what)}): ±{limit:.3g} {escape(measure)}. "
        "exp.plot(example=i) draws one in full, "
        "exp.to_html(path) writes the report.</p>"
    )


def summary(exp: Explanation, *, rows: int = 8, thumbnails: int = 4) -> str:
    """The notebook summary as an HTML fragment (see the module's docstring)."""
    from . import kind_of

    n = int(exp.delta.numel())
    shown = min(n, rows)
    table = summary_table(exp, range(shown))
    more = ""
    if n > shown:
        worst = float(exp.delta.abs().max())
        more = f"<p>… {n - shown} more; max |delta| over all {n}: {worst:.3g}</p>"
    try:
        kind = kind_of(exp)
        pictures = _thumbnails(exp, kind, min(n, thumbnails)) if n else ""
    except ValueError as error:
        pictures = f"<p>No pictures: {escape(error)}</p>"
    except Exception as error:  # a repr must not raise; say what went wrong instead
        pictures = f"<p>No pictures ({escape(type(error).__name__)}: {escape(error)})</p>"
    return (
        f'<div style="{_BOX}"><p>{_line(exp)}</p><p>F is the explained output, x′ the '
        "baseline; delta = sum of attributions − (F(x) − F(x′)).</p>"
        f'<table style="{_TABLE}">{table}</table>{more}{pictures}</div>'
    )
