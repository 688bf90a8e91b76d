"""The main job end to end, and its PNG writer read back by an independent decoder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from integrad import _png, demo


def test_png_writer_round_trips_through_pillow(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    path = _png.write_png(tmp_path / "x.png", rgb)
    back = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(back, rgb)


def test_diverging_colours_follow_the_sign():
    rgb = _png.diverging(np.array([[-2.0, 0.0, 2.0, 1.0]]))
    assert tuple(rgb[0, 0]) == tuple(_png.NEGATIVE.astype(int))
    assert tuple(rgb[0, 1]) == tuple(_png.NEUTRAL.astype(int))
    assert tuple(rgb[0, 2]) == tuple(_png.POSITIVE.astype(int))
    assert rgb[0, 1, 0] > rgb[0, 3, 0] > rgb[0, 2, 0] or rgb[0, 3, 1] < rgb[0, 1, 1]


def test_demo_trains_explains_and_draws(tmp_path, capsys):
    demo.main(["--out", str(tmp_path), "--examples", "3", "--n-steps", "32"])
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 90
    rows = [line.split() for line in out.splitlines() if line[:2].strip().isdigit()]
    assert len(rows) == 3
    for row in rows:
        f_x, f_base, total, delta = map(float, row[3:7])
        assert total - (f_x - f_base) == pytest.approx(delta, abs=2e-4)
        assert abs(delta) < 0.05 * abs(f_x - f_base)
    pngs = sorted(tmp_path.glob("digit_*.png"))
    assert len(pngs) == 3
    image = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert image.shape == (8 * 24, 2 * 8 * 24 + 8, 3)
    # The cached weights are reused: a second run gives the same table.
    demo.main(["--out", str(tmp_path), "--examples", "3", "--n-steps", "32"])
    assert capsys.readouterr().out.splitlines()[:6] == out.splitlines()[:6]
