"""The main job end to end, and its PNG writer read back by an independent decoder."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from integrad import demo
from integrad.views import _png


def test_png_writers_round_trip_through_pillow(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    path = _png.write_png(tmp_path / "x.png", rgb)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)
    # The stdlib encoder, used where Pillow is missing, decodes to the same pixels.
    stdlib = Image.open(io.BytesIO(_png.encode_png_stdlib(rgb))).convert("RGB")
    assert np.array_equal(np.asarray(stdlib), rgb)


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
    # Plain text when stdout is not a terminal; F and the baseline are said, never "x_".
    assert "\x1b" not in out and "x_" not in out
    assert "F(x) = the logit of the predicted class k; baseline x' = zeros" in out
    rows = [line.split() for line in out.splitlines() if line[:2].strip().isdigit()]
    assert len(rows) == 3
    for row in rows:
        assert 0.5 < float(row[3]) <= 1  # p(k): the predicted class is the most probable
        f_x, f_base, total, delta = map(float, row[4:8])
        assert total - (f_x - f_base) == pytest.approx(delta, abs=2e-4)
        assert abs(delta) < 0.05 * abs(f_x - f_base)
    pngs = sorted(tmp_path.glob("digit_*.png"))
    assert len(pngs) == 3
    image = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert image.shape[1] >= 4 * 8 * 24  # input, signed, absolute, overlay at 24× scale
    views = tmp_path / "views"
    for name in (
        "image_side_by_side.png", "image_views.png", "image_gallery.png", "image_baselines.png",
        "image_figure.png", "table_bars.png", "table_importance.png", "timeseries.png",
        "timeseries_heatmap.png", "digits.html", "table.html", "timeseries.html",
        "text_similarity.png", "text_similarity.html", "convergence.png",
        "digits.safetensors", "digits.json",
    ):  # fmt: skip
        assert (views / name).stat().st_size > 0, name
    assert "reloaded exactly: True" in out
    accuracy = float(out.split("breast-cancer MLP: test accuracy ")[1].split("%")[0])
    assert accuracy > 90
    assert "F(x) = the logit of class 1 (benign)" in out
    assert "F(x) = the predicted value" in out
    # The sensor that the target never reads gets the smallest share.
    per_sensor = [float(v) for v in out.split("attribution per sensor: ")[1].split()[0:3]]
    assert abs(per_sensor[2]) < min(abs(per_sensor[0]), abs(per_sensor[1]))
    # The cached weights are reused: a second run gives the same table.
    demo.main(["--out", str(tmp_path), "--examples", "3", "--n-steps", "32", "--no-views"])
    assert capsys.readouterr().out.splitlines()[:7] == out.splitlines()[:7]


def test_make_demo_writes_only_under_out():
    makefile = Path(__file__).resolve().parents[1] / "Makefile"
    commands = {}
    for target in ("demo", "readme-images"):
        dry = subprocess.run(
            ["make", "-n", "-o", ".venv/.demo", "-f", str(makefile), target],
            capture_output=True,
            text=True,
            check=True,
            cwd=makefile.parent,
        )
        commands[target] = [line for line in dry.stdout.splitlines() if "integrad.demo" in line]
    [demo_command] = commands["demo"]
    paths = re.findall(r"--(?:out|readme)[ =](\S+)", demo_command)
    assert paths and all(Path(p).parts[0] == "out" for p in paths), demo_command
    [readme_command] = commands["readme-images"]
    assert "--readme docs/images" in readme_command
