"""PNG output, the colour maps and legends every view uses; numpy is enough, Pillow if present.

Pixels are uint8 ``(height, width, 3)`` arrays. PNGs are encoded by Pillow when it is
installed and otherwise by the stdlib writer below; text (titles, captions, a legend's
numbers) is drawn only with Pillow, the colour bars and tick marks always.

>>> bar = legend(0.5, "attribution (units of F): red raises F, blue lowers it")
>>> bar.shape[1], bar.dtype
(240, dtype('uint8'))
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

NEGATIVE = np.array([33, 102, 172], dtype=np.float64)  # blue
NEUTRAL = np.array([247, 247, 247], dtype=np.float64)  # near white
POSITIVE = np.array([178, 24, 43], dtype=np.float64)  # red
ABSOLUTE = np.array([84, 39, 143], dtype=np.float64)  # purple: magnitude without sign
WHITE = 255


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"rgb must be a (height, width, 3) uint8 array, got {rgb.shape} {rgb.dtype}"
        )


def encode_png_stdlib(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG from zlib and struct only (for machines without Pillow)."""
    _check_rgb(rgb)
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an ``(height, width, 3)`` uint8 array: Pillow if installed, else stdlib."""
    _check_rgb(rgb)
    try:
        from PIL import Image
    except ImportError:
        return encode_png_stdlib(rgb)
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``(height, width, 3)`` uint8 array as an 8-bit RGB PNG."""
    data = encode_png(rgb)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _fraction(values: np.ndarray, limit: float | None) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    limit = float(np.abs(values).max(initial=0.0)) if limit is None else float(limit)
    if limit <= 0 or not np.isfinite(limit):
        return np.zeros_like(values)
    return np.clip(values / limit, -1.0, 1.0)


def diverging(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Signed values to RGB: negative blue, zero white, positive red, centred at 0.

    ``limit`` (default: the largest magnitude) maps to full colour; beyond it values clip.
    """
    t = _fraction(values, limit)[..., None]
    rgb = np.where(t >= 0, NEUTRAL + t * (POSITIVE - NEUTRAL), NEUTRAL - t * (NEGATIVE - NEUTRAL))
    return np.round(rgb).astype(np.uint8)


def diverging_cmap() -> Any:
    """:func:`diverging` as a matplotlib colormap, for figures (imports matplotlib)."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "integrad", [NEGATIVE / 255, NEUTRAL / 255, POSITIVE / 255]
    )


def sequential_cmap(colour: np.ndarray) -> Any:
    """:func:`sequential` (white to ``colour``) as a matplotlib colormap."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("integrad-sequential", [NEUTRAL / 255, colour / 255])


def new_figure(size: tuple[float, float], use_pyplot: bool = False) -> Any:
    """A constrained-layout matplotlib Figure of ``size`` inches.

    Without pyplot (the default) the figure is not registered anywhere: returned as a
    notebook cell's value it displays once, it needs no closing, and ``savefig`` works
    (an Agg canvas is attached). ``use_pyplot=True`` makes a pyplot figure, for
    ``plt.show()`` in scripts.
    """
    if use_pyplot:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=size, layout="constrained")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def sequential(
    values: np.ndarray, limit: float | None = None, colour: np.ndarray = ABSOLUTE
) -> np.ndarray:
    """Non-negative values to RGB from white (0) to ``colour`` (``limit`` and beyond)."""
    t = np.clip(_fraction(values, limit), 0.0, 1.0)[..., None]
    return np.round(NEUTRAL + t * (np.asarray(colour, dtype=np.float64) - NEUTRAL)).astype(np.uint8)


def gray(values: np.ndarray) -> np.ndarray:
    """Values scaled to their own range, as gray RGB (black low, white high)."""
    low, high = float(values.min()), float(values.max())
    t = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.repeat(np.round(t * 255).astype(np.uint8)[..., None], 3, axis=2)


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 8×8 digits are visible."""
    return rgb.repeat(factor, axis=0).repeat(factor, axis=1)


def _canvas(width: int, height: int, font_size: int) -> tuple[Any, Any, Any] | None:
    """A white Pillow image ``width`` × ``height``, a Draw on it and Pillow's default font
    at ``font_size``; None without Pillow."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    image = Image.fromarray(np.full((height, width, 3), WHITE, dtype=np.uint8), "RGB")
    return image, ImageDraw.Draw(image), ImageFont.load_default(size=font_size)


def _text_strip(width: int, text: str, height: int) -> np.ndarray:
    """A white ``(height, width, 3)`` strip with ``text`` in black (blank without Pillow)."""
    canvas = _canvas(width, height, max(8, height - 7))
    if canvas is None:
        return np.full((height, width, 3), WHITE, dtype=np.uint8)
    image, draw, font = canvas
    while text and draw.textlength(text, font=font) > width - 4:
        text = text[:-2] + "…" if len(text) > 2 else ""
    draw.text((2, 2), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def titled(rgb: np.ndarray, title: str, height: int = 20) -> np.ndarray:
    """``rgb`` under a white strip with ``title`` (the strip stays blank without Pillow)."""
    return np.concatenate([_text_strip(rgb.shape[1], title, height), rgb], axis=0)


def wrap(text: str, font: Any, width: int) -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` pixels in Pillow ``font``
    (a single word wider than that gets a line of its own)."""
    lines = [""]
    for word in text.split(" "):
        trial = f"{lines[-1]} {word}".strip()
        if font.getlength(trial) <= width or not lines[-1]:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def _wrapped(text: str, width: int, height: int) -> list[str]:
    """``text`` broken at spaces into lines that fit ``width`` pixels at the strip's font."""
    canvas = _canvas(1, 1, max(8, height - 7))
    return [text] if canvas is None else wrap(text, canvas[2], width - 4)


def captioned(rgb: np.ndarray, lines: list[str], height: int = 16) -> np.ndarray:
    """``rgb`` over white strips of ``lines``, wrapped to its width (blank without Pillow)."""
    width = rgb.shape[1]
    strips = [
        _text_strip(width, part, height) for line in lines for part in _wrapped(line, width, height)
    ]
    return np.concatenate([rgb, *strips], axis=0)


SIGN_COLOURS = {"absolute": ABSOLUTE, "positive": POSITIVE, "negative": NEGATIVE}
"""The colour at full strength of each one-sided view (``"all"`` is :func:`diverging`)."""


def legend(limit: float | None, label: str, sign: str = "all", *, width: int = 240) -> np.ndarray:
    """A colour bar for the heatmaps of ``sign``, as uint8 RGB ``(height, width, 3)``.

    The bar runs from -``limit`` (blue) through 0 (white) to +``limit`` (red) for
    ``sign="all"``; from 0 (white) to ``limit`` (purple for ``"absolute"``: the white→purple
    map is |a|; red for ``"positive"``) or to -``limit`` (blue, ``"negative"``). Tick
    marks at both ends and at 0 are always drawn; with Pillow the ticks carry their
    values (``limit=None``: the symbols -L, 0, +L, for per-image scales) and ``label``
    (units and sign convention) is written under the bar.
    """
    if sign != "all" and sign not in SIGN_COLOURS:
        raise ValueError(f"sign={sign!r} has no legend; choose one of {['all', *SIGN_COLOURS]}")
    margin, bar, tick = 4, 12, 4
    span = width - 2 * margin
    if span < 8:
        raise ValueError(f"width={width} is too narrow for a legend (at least {2 * margin + 8})")
    ramp = np.linspace(-1.0, 1.0, span) if sign == "all" else np.linspace(0.0, 1.0, span)
    row = diverging(ramp, 1.0) if sign == "all" else sequential(ramp, 1.0, SIGN_COLOURS[sign])
    out = np.full((bar + tick + 2, width, 3), WHITE, dtype=np.uint8)
    out[:bar, margin : margin + span] = row[None]
    marks = (
        [margin, margin + span // 2, margin + span - 1]
        if sign == "all"
        else [
            margin,
            margin + span - 1,
        ]
    )
    for column in marks:
        out[bar : bar + tick, column] = 0
    if limit is None:
        ends = ("-L", "+L") if sign == "all" else ("0", "-L" if sign == "negative" else "L")
    else:
        high = f"{limit:.3g}"
        low = f"-{high}"
        ends = (low, f"+{high}") if sign == "all" else ("0", low if sign == "negative" else high)
    names = [ends[0], "0", ends[1]] if sign == "all" else list(ends)
    numbers = _tick_labels(width, [(c, n) for c, n in zip(marks, names, strict=True)])
    return np.concatenate([out, numbers, _text_strip(width, label, 15)], axis=0)


def _tick_labels(width: int, ticks: list[tuple[int, str]], height: int = 13) -> np.ndarray:
    """``text`` centred under each ``(column, text)``, kept inside the strip."""
    canvas = _canvas(width, height, height - 2)
    if canvas is None:
        return np.full((height, width, 3), WHITE, dtype=np.uint8)
    image, draw, font = canvas
    for column, text in ticks:
        size = draw.textlength(text, font=font)
        left = min(max(0.0, column - size / 2), width - size)
        draw.text((left, 0), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def grid(rows: list[list[np.ndarray]], gap: int = 6) -> np.ndarray:
    """Panels laid out row by row on white, each row's panels top-aligned, ``gap`` apart."""
    if not rows or not all(rows):
        raise ValueError("grid needs at least one panel in every row")
    width = max(sum(p.shape[1] for p in row) + gap * (len(row) - 1) for row in rows)
    heights = [max(p.shape[0] for p in row) for row in rows]
    out = np.full((sum(heights) + gap * (len(rows) - 1), width, 3), WHITE, dtype=np.uint8)
    top = 0
    for row, height in zip(rows, heights, strict=True):
        left = 0
        for panel in row:
            _check_rgb(panel)
            out[top : top + panel.shape[0], left : left + panel.shape[1]] = panel
            left += panel.shape[1] + gap
        top += height + gap
    return out
