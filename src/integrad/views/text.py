"""Text views: token attributions as a self-contained HTML page, ANSI text, or a picture.

Red raises the explained output, blue lowers it (integrad's convention in every view;
Captum's ``visualize_text`` uses green for positive). Read
:class:`integrad.text.TextAttribution` records made by :func:`integrad.text.explain_text` /
``explain_similarity``.
"""

from __future__ import annotations

import html as _html
import os
import sys
import unicodedata
from collections.abc import Sequence
from typing import cast

import numpy as np

from .._tokens import TextAttribution
from . import _png

__all__ = ["html", "picture", "terminal"]


POSITIVE = cast("tuple[int, int, int]", tuple(int(c) for c in _png.POSITIVE))
"""Red: the token raises the explained output (the colour of every other view)."""
NEGATIVE = cast("tuple[int, int, int]", tuple(int(c) for c in _png.NEGATIVE))
"""Blue: the token lowers it."""


def _blend(score: float, scale: float) -> tuple[tuple[int, int, int], float]:
    strength = 0.0 if scale == 0 else min(1.0, abs(score) / scale)
    return (POSITIVE if score > 0 else NEGATIVE), strength


def html(
    attributions: TextAttribution | Sequence[TextAttribution],
    level: str = "word",
    title: str = "integrad text attributions",
) -> str:
    """A self-contained HTML page: one line per text, red raises, blue lowers.

    Each token (or word) is a ``<span class="tok">`` whose background has the sign's
    colour at an opacity proportional to ``|score|`` over the text's largest
    ``|score|``; ``data-score`` and the tooltip carry the value.
    """
    items = [attributions] if isinstance(attributions, TextAttribution) else list(attributions)
    rows = []
    for a in items:
        units, scores = a.units(level)
        scale = float(scores.abs().max()) if len(scores) else 0.0
        spans = []
        for unit, s in zip(units, scores.tolist(), strict=True):
            (r, g, b), alpha = _blend(s, scale)
            spans.append(
                f'<span class="tok" data-score="{s:.6g}" title="{s:+.4g}" '
                f'style="background-color: rgba({r}, {g}, {b}, {alpha:.3f})">'
                f"{_html.escape(unit)}</span>"
            )
        summary = (
            f"F(x) = {a.output:.4g}, F(baseline) = {a.baseline_output:.4g}, "
            f"sum = {float(a.scores.sum()):.4g}, delta = {a.delta:.2g} ({a.baseline} baseline)"
        )
        rows.append(
            f'<div class="row"><p class="text">{" ".join(spans)}</p>'
            f'<p class="summary">{_html.escape(summary)}</p></div>'
        )
    legend = (
        f'<span class="tok" style="background-color: rgb{POSITIVE}">raises</span> '
        f'<span class="tok" style="background-color: rgb{NEGATIVE}">lowers</span>'
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{_html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        ".tok{padding:0.1em 0.2em;margin:0 0.05em;border-radius:0.2em;line-height:2}"
        ".summary{color:#555;font-size:0.85em}</style></head><body>"
        f"<h1>{_html.escape(title)}</h1><p>{legend}</p>" + "".join(rows) + "</body></html>\n"
    )


def _visible(unit: str) -> str:
    """``unit`` with control and format characters (ESC, CSI, BEL, bidi overrides) escaped."""
    return "".join(
        c
        if unicodedata.category(c) not in ("Cc", "Cf")
        else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in unit
    )


def terminal(attribution: TextAttribution, level: str = "word", *, ansi: bool | None = None) -> str:
    """One line of text with 24-bit ANSI backgrounds: red raises, blue lowers.

    Tokens are shown, never obeyed: control characters in them (a terminal escape
    sequence, a bell, a bidi override) are written as ``\\x1b``-style escapes.
    ``ansi=None`` colours only when standard output is a terminal and ``NO_COLOR`` is
    unset; without colours (``ansi=False``, logs, pipes) each unit is followed by its
    score, as in ``guitar[+0.31]``.
    """
    if ansi is None:
        ansi = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if not isinstance(ansi, bool):
        raise TypeError(f"ansi must be True, False or None, got {ansi!r}")
    units, scores = attribution.units(level)
    if not ansi:
        return " ".join(
            f"{_visible(u)}[{s:+.2g}]" for u, s in zip(units, scores.tolist(), strict=True)
        )
    scale = float(scores.abs().max()) if len(scores) else 0.0
    parts = []
    for unit, s in zip(units, scores.tolist(), strict=True):
        (r, g, b), t = _blend(s, scale)
        # Blend from white so weak tokens stay readable; black text on top.
        r, g, b = (round(255 + (c - 255) * t) for c in (r, g, b))
        parts.append(f"\x1b[30;48;2;{r};{g};{b}m{_visible(unit)}\x1b[0m")
    return " ".join(parts)


def picture(
    attributions: TextAttribution | Sequence[TextAttribution],
    level: str = "word",
    width: int = 720,
    font_size: int = 18,
) -> np.ndarray:
    """The :func:`html` view as an RGB image (``uint8``, height × width × 3), for papers.

    One block per text: its words on backgrounds blended from white towards the sign's
    colour by ``|score|`` over the text's largest ``|score|``, wrapped to ``width``,
    then a grey line with F(x), F(baseline) and the delta. Needs Pillow.
    """
    from PIL import Image, ImageDraw, ImageFont

    items = [attributions] if isinstance(attributions, TextAttribution) else list(attributions)
    font = ImageFont.load_default(size=font_size)
    small = ImageFont.load_default(size=max(8, font_size * 2 // 3))
    pad, line = 6, font_size + 14
    placed: list[tuple[int, int, str, tuple[int, int, int]]] = []
    notes: list[tuple[int, str]] = []
    y = pad
    for a in items:
        units, scores = a.units(level)
        scale = float(scores.abs().max()) if len(scores) else 0.0
        x = pad
        for unit, s in zip(units, scores.tolist(), strict=True):
            w = int(font.getlength(unit)) + 2 * pad
            if x + w > width - pad and x > pad:
                x, y = pad, y + line
            (r, g, b), t = _blend(s, scale)
            fill = tuple(round(255 + (c - 255) * t) for c in (r, g, b))
            placed.append((x, y, unit, fill))  # type: ignore[arg-type]
            x += w + 3
        y += line
        notes.append(
            (
                y,
                f"F(x) = {a.output:.4g}, F(baseline) = {a.baseline_output:.4g}, "
                f"delta = {a.delta:.2g} ({a.baseline} baseline)",
            )
        )
        y += line
    image = Image.new("RGB", (width, y + pad), "white")
    draw = ImageDraw.Draw(image)
    for x, y0, unit, fill in placed:
        w = int(font.getlength(unit)) + 2 * pad
        draw.rounded_rectangle((x, y0, x + w, y0 + line - 4), radius=4, fill=fill)
        draw.text((x + pad, y0 + 4), unit, fill="black", font=font)
    for y0, note in notes:
        draw.text((pad, y0 + 2), note, fill=(90, 90, 90), font=small)
    return np.asarray(image, dtype=np.uint8).copy()
