"""PNG output and the colour maps every view uses; numpy is enough, Pillow is used if present.

Pixels are uint8 ``(height, width, 3)`` arrays. PNGs are encoded by Pillow when it is
installed and otherwise by the stdlib writer below; titles are drawn only with Pillow.
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


def titled(rgb: np.ndarray, title: str, height: int = 20) -> np.ndarray:
    """``rgb`` under a white strip with ``title`` (the strip stays blank without Pillow)."""
    strip = np.full((height, rgb.shape[1], 3), WHITE, dtype=np.uint8)
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return np.concatenate([strip, rgb], axis=0)
    image = Image.fromarray(strip, "RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, height - 7))
    while title and draw.textlength(title, font=font) > rgb.shape[1] - 4:
        title = title[:-2] + "…" if len(title) > 2 else ""
    draw.text((2, 2), title, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(image), rgb], axis=0)


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
