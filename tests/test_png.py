"""The legend image and the captions of the pixel layouts, read at the pixel, Pillow or not."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from integrad.views import _png


def bar_row(legend: np.ndarray) -> np.ndarray:
    """The middle row of the colour bar (the legend's first 12 rows)."""
    return legend[6, 4:-4].astype(int)


@pytest.mark.parametrize(
    ("sign", "left", "right"),
    [
        ("all", _png.NEGATIVE, _png.POSITIVE),
        ("absolute", _png.NEUTRAL, _png.ABSOLUTE),
        ("positive", _png.NEUTRAL, _png.POSITIVE),
        ("negative", _png.NEUTRAL, _png.NEGATIVE),
    ],
)
def test_legend_bar_runs_over_the_map_of_its_sign(sign, left, right):
    legend = _png.legend(0.25, "attribution (units of F)", sign, width=200)
    assert legend.dtype == np.uint8 and legend.shape[1] == 200
    row = bar_row(legend)
    assert np.array_equal(row[0], left) and np.array_equal(row[-1], right)
    if sign == "all":
        assert np.abs(row[len(row) // 2] - _png.NEUTRAL).max() <= 3
    # Tick marks (black) under the ends of the bar.
    assert (legend[13, 4] == 0).all() and (legend[13, 195] == 0).all()
    # The numbers and the label are drawn: dark pixels under the ticks.
    assert (legend[17:] < 90).any()


def test_legend_numbers_follow_the_limit_and_draw_without_pillow(monkeypatch):
    one, other = _png.legend(0.25, "x"), _png.legend(7.5, "x")
    assert np.array_equal(one[:16], other[:16])  # same bar and ticks
    assert not np.array_equal(one[16:], other[16:])  # different numbers
    monkeypatch.setitem(sys.modules, "PIL", None)
    plain = _png.legend(0.25, "label")
    assert np.array_equal(plain[:16], one[:16])
    assert (plain[18:] == 255).all()
    with pytest.raises(ValueError, match="sign='both' has no legend"):
        _png.legend(1.0, "x", "both")


def test_captions_wrap_to_the_width():
    rgb = np.zeros((4, 120, 3), dtype=np.uint8)
    long = "colour limit ±0.123 shared across the gallery (cumsum rule: the top 2% saturates)"
    out = _png.captioned(rgb, [long])
    assert out.shape[1] == 120 and out.shape[0] >= 4 + 3 * 16  # wrapped over several lines
    for strip in range(4, out.shape[0], 16):
        assert (out[strip : strip + 16] < 90).any()  # every line carries text
