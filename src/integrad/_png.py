"""A dependency-free PNG writer and the colour maps the heatmaps use."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``(height, width, 3)`` uint8 array as an 8-bit RGB PNG."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"rgb must be a (height, width, 3) uint8 array, got {rgb.shape} {rgb.dtype}"
        )
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


NEGATIVE = np.array([33, 102, 172], dtype=np.float64)  # blue
NEUTRAL = np.array([247, 247, 247], dtype=np.float64)  # near white
POSITIVE = np.array([178, 24, 43], dtype=np.float64)  # red


def diverging(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Signed values to RGB: negative blue, zero white, positive red, centred at 0."""
    limit = float(np.abs(values).max()) if limit is None else limit
    t = np.clip(values / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(values)
    t = t[..., None]
    rgb = np.where(t >= 0, NEUTRAL + t * (POSITIVE - NEUTRAL), NEUTRAL - t * (NEGATIVE - NEUTRAL))
    return np.round(rgb).astype(np.uint8)


def gray(values: np.ndarray) -> np.ndarray:
    """Values scaled to their own range, as gray RGB (black low, white high)."""
    low, high = float(values.min()), float(values.max())
    t = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.repeat(np.round(t * 255).astype(np.uint8)[..., None], 3, axis=2)


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 8×8 digits are visible."""
    return rgb.repeat(factor, axis=0).repeat(factor, axis=1)
