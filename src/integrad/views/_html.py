"""Building blocks of the HTML views: escaping, inline PNGs, table rows, readable ink.

Shared by the report (:mod:`integrad.views.report`), the notebook summary
(:mod:`integrad.views.notebook`), the dataset report and the text views. Every picture
is a ``data:`` URI and every colour comes from :mod:`integrad.views._png`, so the pages
hold no external reference; colour bars are ``views._png.legend`` and the
words :mod:`integrad.views._captions`. Colours carry text at WCAG AA contrast
(:func:`ink`).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _png

if TYPE_CHECKING:
    from ..explanation import Explanation

BLACK = (0, 0, 0)
WHITE = (255, 255, 255)


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(rgb: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 RGB array."""
    return "data:image/png;base64," + base64.b64encode(_png.encode_png(rgb)).decode("ascii")


def img(rgb: np.ndarray, caption: str, alt: str | None = None) -> str:
    """A ``<figure>`` with the inline PNG at its own pixel size and ``caption`` below."""
    h, w = rgb.shape[:2]
    return (
        f'<figure><img src="{data_uri(rgb)}" width="{w}" height="{h}" '
        f'alt="{escape(alt or caption)}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def tr(*cells: str, header: bool = False) -> str:
    """A table row; a cell given as ``"num:..."`` is right-aligned monospace."""
    tag = "th" if header else "td"
    out = []
    for cell in cells:
        if cell.startswith("num:"):
            out.append(f'<{tag} class="num">{cell[4:]}</{tag}>')
        else:
            out.append(f"<{tag}>{cell}</{tag}>")
    return "<tr>" + "".join(out) + "</tr>"


def rgb_css(colour: Any) -> str:
    r, g, b = (int(c) for c in np.asarray(colour).ravel()[:3])
    return f"rgb({r}, {g}, {b})"


def _luminance(colour: Any) -> float:
    """WCAG 2's relative luminance of an sRGB colour (0 to 255 per channel)."""
    c = np.asarray(colour, dtype=np.float64).ravel()[:3] / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast(first: Any, second: Any) -> float:
    """WCAG 2 contrast ratio of two sRGB colours, from 1 (same) to 21 (black on white).

    AA body text needs 4.5.
    """
    dark, light = sorted((_luminance(first), _luminance(second)))
    return (light + 0.05) / (dark + 0.05)


def ink_rgb(background: Any) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``background`` (never below 4.58:1)."""
    return BLACK if contrast(background, BLACK) >= contrast(background, WHITE) else WHITE


def ink(background: Any) -> str:
    """:func:`ink_rgb` as CSS: ``#000`` or ``#fff``."""
    return "#000" if ink_rgb(background) == BLACK else "#fff"


def cell_style(value: float, limit: float) -> str:
    """``background`` (diverging colour of ``value`` at ``limit``) and ``color`` (ink) CSS."""
    colour = _png.diverging(np.array([value]), limit)[0]
    return f"background: {rgb_css(colour)}; color: {ink(colour)}"


def summary_table(exp: Explanation, rows: Sequence[int], *, with_sum: bool = False) -> str:
    """The per-example table: F(x), F(x′), delta, relative delta, predictions, tolerance."""
    head = ["#", "F(x)", "F(x′)", *(["sum of attributions"] if with_sum else [])]
    head += ["delta", "|delta| / |F(x) − F(x′)|"]
    if exp.predicted is not None:
        head.append("predicted")
    if exp.probability is not None and exp.predicted_probability is not None:
        head += ["p(explained)", "p(predicted)"]
    tolerated = exp.error_estimate is not None and exp.converged is not None
    if tolerated:
        head += ["est. error", "converged"]
    body = []
    for i in rows:
        output, base, delta = float(exp.output[i]), float(exp.baseline_output[i]), exp.delta[i]
        cells = [str(i), f"num:{output:.5g}", f"num:{base:.5g}"]
        if with_sum:
            cells.append(f"num:{float(delta) + output - base:.5g}")
        cells += [f"num:{float(delta):.3g}", f"num:{float(exp.relative_delta[i]):.3g}"]
        if exp.predicted is not None:
            cells.append(f"num:{int(exp.predicted[i])}")
        if exp.probability is not None and exp.predicted_probability is not None:
            cells += [
                f"num:{float(exp.probability[i]):.3g}",
                f"num:{float(exp.predicted_probability[i]):.3g}",
            ]
        if exp.error_estimate is not None and exp.converged is not None:
            cells += [f"num:{float(exp.error_estimate[i]):.3g}", str(bool(exp.converged[i]))]
        body.append(tr(*cells))
    return tr(*head, header=True) + "".join(body)


def write(path: str | Path, page: str) -> Path:
    """Write an HTML page (UTF-8), making its folder; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
