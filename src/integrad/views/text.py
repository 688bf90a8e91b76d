"""Text views: token attributions as a self-contained HTML page, ANSI text, or a picture.

Red raises the explained output F, blue lowers it (integrad's convention in every view;
Captum's ``visualize_text`` colours positive green and negative red). A word's colour
strength is ``|score| / max |score|``, the maximum taken over each text (``scale="text"``,
the default) or over the whole page (``scale="page"``), and every view says which and
gives the maximum. Each highlighted word is written in black or white, whichever
contrasts more with its background: always at least 4.58:1, above WCAG AA's 4.5:1.

Each text gets what Captum's ``visualize_text`` shows (true label, predicted label and
its probability, attribution label, attribution score) and the completeness check
(F(x), F(x'), delta). Read :class:`integrad.text.TextAttribution` records made by
:func:`integrad.text.explain_text` / ``explain_similarity``.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Sequence
from typing import cast

import numpy as np

from .._tokens import TextAttribution
from . import _captions, _png
from ._html import escape, ink_rgb

__all__ = [
    "SCALES",
    "background",
    "columns",
    "completeness",
    "html",
    "picture",
    "terminal",
]

RGB = tuple[int, int, int]

POSITIVE = cast(RGB, tuple(int(c) for c in _png.POSITIVE))
"""Red: the token raises the explained output (the colour of every other view)."""
NEGATIVE = cast(RGB, tuple(int(c) for c in _png.NEGATIVE))
"""Blue: the token lowers it."""

SCALES: tuple[str, ...] = ("text", "page")
"""What a colour's strength is relative to: each text's largest |score|, or the page's."""


def background(score: float, scale: float) -> RGB:
    """The colour of a word: white blended towards red (positive) or blue (negative)
    by ``min(1, |score| / scale)``; opaque, so it reads the same on any page."""
    strength = 0.0 if scale == 0 else min(1.0, abs(score) / scale)
    sign = POSITIVE if score > 0 else NEGATIVE
    return cast(RGB, tuple(round(255 + (c - 255) * strength) for c in sign))


def _items(attributions: TextAttribution | Sequence[TextAttribution]) -> list[TextAttribution]:
    return [attributions] if isinstance(attributions, TextAttribution) else list(attributions)


def _maxima(items: list[TextAttribution], level: str, scale: str) -> list[float]:
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} must be one of {list(SCALES)}")
    each = [float(s.abs().max()) if len(s) else 0.0 for s in (a.units(level)[1] for a in items)]
    return [max(each, default=0.0)] * len(each) if scale == "page" else each


def _strength(scale: str, maximum: float) -> str:
    where = "this text's" if scale == "text" else "the page's"
    return f"colour strength = |score| / {maximum:.3g} ({where} max |score|)"


def columns(a: TextAttribution) -> list[tuple[str, str]]:
    """Captum's ``visualize_text`` columns for one text: (heading, value) pairs."""
    predicted = a.name(a.predicted)
    if a.predicted is not None and a.predicted_probability is not None:
        predicted += f" ({a.predicted_probability:.2f})"
    attributed = a.name(a.target) if a.target is not None else a.explained
    if a.target is not None and a.probability is not None:
        attributed += f" ({a.probability:.2f})"
    return [
        ("True Label", a.name(a.label)),
        ("Predicted Label", predicted),
        ("Attribution Label", attributed),
        ("Attribution Score", f"{a.attribution_score:.3g}"),
    ]


def completeness(a: TextAttribution) -> str:
    """What F is, F(x), F(x'), the sum of the scores and the delta, in one line."""
    return (
        f"F = {a.explained}: {_captions.outputs(a.output, a.baseline_output)} "
        f"({a.baseline} baseline), sum of scores = {a.attribution_score:.4g}, "
        f"delta = {a.delta:.2g}"
    )


def _legend(scale: str, maxima: list[float]) -> str:
    how = (
        "each text's largest |score| (given under the text)"
        if scale == "text"
        else f"the page's largest |score| = {max(maxima, default=0.0):.3g}"
    )
    return (
        "red: the word raises F, the explained output; blue: it lowers F (Captum's "
        f"visualize_text uses green for raises). Colour strength = |score| / {how}."
    )


def html(
    attributions: TextAttribution | Sequence[TextAttribution],
    level: str = "word",
    title: str = "integrad text attributions",
    scale: str = "text",
) -> str:
    """A self-contained HTML page: a table with one row per text, as Captum's ``visualize_text``.

    Columns: True Label, Predicted Label (probability), Attribution Label (its
    probability), Attribution Score (the sum of the scores) and Word Importance. Each word
    is a ``<span class="tok">`` on an opaque :func:`integrad.views.text.background`, in
    black or white ink;
    ``data-score`` and the tooltip carry its score. Under the words: the completeness
    check and the maximum the colours are relative to (``scale``: "text" or "page").
    """
    items = _items(attributions)
    maxima = _maxima(items, level, scale)
    head = [heading for heading, _ in columns(items[0])] if items else []
    rows = []
    for a, maximum in zip(items, maxima, strict=True):
        units, scores = a.units(level)
        spans = []
        for unit, s in zip(units, scores.tolist(), strict=True):
            fill = background(s, maximum)
            spans.append(
                f'<span class="tok" data-score="{s:.6g}" title="{s:+.4g}" '
                f'style="background-color: rgb{fill}; color: rgb{ink_rgb(fill)}">'
                f"{escape(unit)}</span>"
            )
        cells = "".join(f"<td>{escape(value)}</td>" for _, value in columns(a))
        note = f"{completeness(a)}; {_strength(scale, maximum)}"
        rows.append(
            f'<tr>{cells}<td><p class="text">{" ".join(spans)}</p>'
            f'<p class="summary">{escape(note)}</p></td></tr>'
        )
    key = " ".join(
        f'<span class="key" style="background-color: rgb{background(v, 1)}; '
        f'color: rgb{ink_rgb(background(v, 1))}">{label}</span>'
        for v, label in [(-1, "&minus;max"), (-0.5, "&minus;max/2"), (0, "0"),
                         (0.5, "+max/2"), (1, "+max")]
    )  # fmt: skip
    headings = "".join(f"<th>{h}</th>" for h in head) + "<th>Word Importance</th>"
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:72em;margin:2em auto;background:#fff;color:#111}"
        "table{border-collapse:collapse}th,td{text-align:left;vertical-align:top;"
        "padding:0.3em 0.8em;border-top:1px solid #ccc}"
        ".tok,.key{padding:0.1em 0.2em;margin:0 0.05em;border-radius:0.2em;line-height:2}"
        ".summary,.legend{color:#555;font-size:0.85em}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="legend">{key}<br>{escape(_legend(scale, maxima))}</p>'
        f"<table><tr>{headings}</tr>" + "".join(rows) + "</table></body></html>\n"
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
    """Three lines: Captum's columns, the words on 24-bit ANSI backgrounds, the check.

    Red raises F, blue lowers it, strength relative to the text's largest |score|; each
    word in black or white text, whichever contrasts more. Tokens are shown, never
    obeyed: control characters in them (a terminal escape sequence, a bell, a bidi
    override) are written as ``\\x1b``-style escapes. ``ansi=None`` colours only when
    standard output is a terminal and ``NO_COLOR`` is unset; without colours
    (``ansi=False``, logs, pipes) each unit is followed by its score, as in
    ``guitar[+0.31]``.
    """
    if ansi is None:
        ansi = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if not isinstance(ansi, bool):
        raise TypeError(f"ansi must be True, False or None, got {ansi!r}")
    a = attribution
    units, scores = a.units(level)
    [maximum] = _maxima([a], level, "text")
    parts = []
    for unit, s in zip(units, scores.tolist(), strict=True):
        if not ansi:
            parts.append(f"{_visible(unit)}[{s:+.2g}]")
            continue
        fill = background(s, maximum)
        fg = ";".join(map(str, ink_rgb(fill)))
        bg = ";".join(map(str, fill))
        parts.append(f"\x1b[38;2;{fg};48;2;{bg}m{_visible(unit)}\x1b[0m")
    header = " | ".join(f"{heading}: {_visible(value)}" for heading, value in columns(a))
    footer = f"  {completeness(a)}; {_captions.sign_note('all')}, {_strength('text', maximum)}"
    return "\n".join([header, " ".join(parts), footer])


def picture(
    attributions: TextAttribution | Sequence[TextAttribution],
    level: str = "word",
    width: int = 720,
    font_size: int = 18,
    scale: str = "text",
) -> np.ndarray:
    """The :func:`html` view as an RGB image (``uint8``, height × width × 3), for papers.

    Per text: a line with Captum's columns, the words on their
    :func:`integrad.views.text.background` (in
    black or white, whichever contrasts more) wrapped to ``width``, and a grey line with
    the completeness check and the maximum |score| the colours are relative to. At the
    bottom, a colour bar from -max (blue, lowers F) to +max (red, raises F) with the
    normalisation. Needs Pillow.
    """
    from PIL import Image, ImageDraw, ImageFont

    items = _items(attributions)
    maxima = _maxima(items, level, scale)
    font = ImageFont.load_default(size=font_size)
    small = ImageFont.load_default(size=max(10, font_size * 2 // 3))
    pad, line, small_line = 6, font_size + 14, max(10, font_size * 2 // 3) + 6
    boxes: list[tuple[int, int, str, RGB]] = []
    notes: list[tuple[int, str]] = []
    y = pad
    for a, maximum in zip(items, maxima, strict=True):
        header = " · ".join(f"{heading}: {value}" for heading, value in columns(a))
        for text in _png.wrap(header, small, width - 2 * pad):
            notes.append((y, text))
            y += small_line
        units, scores = a.units(level)
        x = pad
        for unit, s in zip(units, scores.tolist(), strict=True):
            w = int(font.getlength(unit)) + 2 * pad
            if x + w > width - pad and x > pad:
                x, y = pad, y + line
            boxes.append((x, y, unit, background(s, maximum)))
            x += w + 3
        y += line
        for text in _png.wrap(f"{completeness(a)}; {_strength(scale, maximum)}", small,
                          width - 2 * pad):  # fmt: skip
            notes.append((y, text))
            y += small_line
        y += small_line // 2
    bar_y = y + pad
    legend = _png.wrap(_legend(scale, maxima), small, width - 2 * pad)
    image = Image.new("RGB", (width, bar_y + 14 + small_line * (len(legend) + 1) + pad), "white")
    draw = ImageDraw.Draw(image)
    for x, y0, unit, fill in boxes:
        w = int(font.getlength(unit)) + 2 * pad
        draw.rounded_rectangle((x, y0, x + w, y0 + line - 4), radius=4, fill=fill)
        draw.text((x + pad, y0 + 4), unit, fill=ink_rgb(fill), font=font)
    grey = (85, 85, 85)  # 7.5:1 on white
    for y0, note in notes:
        draw.text((pad, y0 + 2), note, fill=grey, font=small)
    bar = min(width - 2 * pad, 256)
    for i in range(bar):
        draw.line((pad + i, bar_y, pad + i, bar_y + 12), fill=background(2 * i / (bar - 1) - 1, 1))
    draw.text((pad, bar_y + 14), "-max: lowers F", fill=grey, font=small)
    right = "+max: raises F"
    draw.text((pad + bar - small.getlength(right), bar_y + 14), right, fill=grey, font=small)
    for i, text in enumerate(legend):
        draw.text((pad, bar_y + 14 + small_line * (i + 1)), text, fill=grey, font=small)
    return np.asarray(image, dtype=np.uint8).copy()
