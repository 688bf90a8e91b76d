"""The HTML report: self-contained, every picture inline, colours by sign, seen in Chromium."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

import integrad
from integrad import tables
from integrad.views import _png, report

POS = _png.POSITIVE.astype(int)
NEG = _png.NEGATIVE.astype(int)
ZERO = _png.NEUTRAL.astype(int)


class Collect(HTMLParser):
    """Every start tag with its attributes, and the text of each <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def parse(text: str) -> Collect:
    parser = Collect()
    parser.feed(text)
    return parser


def quadrants() -> integrad.Explanation:
    """One 8×8 image whose attributions are +1 top-left, -1 bottom-right, 0 elsewhere."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(model, x, n_steps=4)
    a = torch.zeros(1, 1, 8, 8)
    a[..., :4, :4], a[..., 4:, 4:] = 1.0, -1.0
    exp.attributions = a
    return exp


def assert_self_contained(text: str) -> Collect:
    parsed = parse(text)
    names = {tag for tag, _ in parsed.tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base"}, names
    for tag, attrs in parsed.tags:
        for key in ("src", "href", "srcset", "poster", "data"):
            if key in attrs:
                assert attrs[key].startswith("data:"), (tag, key, attrs[key][:40])
        assert "url(" not in attrs.get("style", "")
    css = "".join(parsed.styles)
    assert "url(" not in css and "@import" not in css and "@font-face" not in css
    assert "http://" not in text and "https://" not in text
    return parsed


def pictures(parsed: Collect) -> dict[str, np.ndarray]:
    out = {}
    for tag, attrs in parsed.tags:
        if tag == "img":
            head, data = attrs["src"].split(",", 1)
            assert head == "data:image/png;base64"
            image = Image.open(io.BytesIO(base64.b64decode(data)))
            assert image.format == "PNG"
            rgb = np.asarray(image.convert("RGB"))
            assert (int(attrs["width"]), int(attrs["height"])) == (rgb.shape[1], rgb.shape[0])
            out[attrs["alt"]] = rgb
    return out


def test_image_report_is_self_contained_and_its_pictures_have_the_known_colours(tmp_path):
    exp = quadrants()
    path = exp.to_html(tmp_path / "r.html", clip=None)
    text = path.read_text(encoding="utf-8")
    parsed = assert_self_contained(text)
    images = pictures(parsed)
    assert set(images) == {"input", "signed attribution", "absolute", "overlay"}
    signed = images["signed attribution"]
    assert signed.shape == (160, 160, 3)
    assert (signed[:80, :80] == POS).all() and (signed[80:, 80:] == NEG).all()
    assert (signed[:80, 80:] == ZERO).all() and (signed[80:, :80] == ZERO).all()
    # Provenance and the completeness check are in the text.
    for needed in ("gausslegendre", "zeros", torch.__version__, integrad.__version__):
        assert needed in text
    assert f"{float(exp.delta[0]):.3g}" in text
    assert re.search(r'<table id="completeness">.*<td>0</td>', text)
    assert "<th>tolerance</th>" not in text  # not a tolerance-mode run


def test_tolerance_run_reports_its_tolerance_and_how_many_converged(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    exp = integrad.explain(model.double(), torch.ones(2, 3, dtype=torch.float64), tolerance=0.01)
    text = exp.to_html(tmp_path / "tol.html", kind="table").read_text(encoding="utf-8")
    assert "<th>tolerance</th><td>0.01</td>" in text
    assert "<th>converged</th><td>2 of 2</td>" in text


def test_table_report_colours_every_feature_by_its_sign(tmp_path):
    model = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, -1.0, 0.0, 1.0]]))
    rows = np.array([[1.0, 1.0, 1.0, -1.0], [0.5, -2.0, 3.0, 0.0]])
    names = ["alpha", "beta", "gamma", "<delta>"]
    exp = tables.tabular(model, rows, feature_names=names, baseline="zeros", n_steps=4)
    text = exp.to_html(tmp_path / "t.html").read_text(encoding="utf-8")
    parsed = assert_self_contained(text)
    assert "&lt;delta&gt;" in text and "<delta>" not in text  # names are escaped
    cells = [attrs for tag, attrs in parsed.tags if tag == "td" and "data-score" in attrs]
    assert len(cells) == 2 * 4  # every feature of every row
    for attrs in cells:
        score = float(attrs["data-score"])
        found = re.search(r"background: rgb\((\d+), (\d+), (\d+)\)", attrs["style"])
        assert found is not None
        rgb = np.array([int(c) for c in found.groups()])
        if score > 0:
            assert rgb[0] > rgb[2]
        elif score < 0:
            assert rgb[2] > rgb[0]
        else:
            assert (rgb == ZERO).all()
    assert 'id="importance"' in text


def test_token_spans_carry_every_token_with_the_colour_of_its_sign():
    tokens = ["the", "movie", "was", "<b>great</b>"]
    markup = report.token_spans(tokens, torch.tensor([0.0, -0.5, 0.1, 1.0]))
    parsed = assert_self_contained(markup)
    spans = [attrs for tag, attrs in parsed.tags if tag == "span"]
    assert len(spans) == 4 and "&lt;b&gt;great&lt;/b&gt;" in markup
    colours = [np.array([int(c) for c in re.findall(r"\d+", s["style"])]) for s in spans]
    assert (colours[0] == ZERO).all() and (colours[3] == POS).all()
    assert colours[1][2] > colours[1][0] and colours[2][0] > colours[2][2]
    with pytest.raises(ValueError, match="4 tokens but 3 scores"):
        report.token_spans(tokens, [1.0, 2.0, 3.0])


def test_series_report_shows_input_bars_and_heatmap(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    exp = integrad.explain(model, torch.rand(1, 12, 1), n_steps=4, kind="timeseries")
    parsed = assert_self_contained(exp.to_html(tmp_path / "s.html").read_text())
    assert len(pictures(parsed)) == 3


def find_square(mask: np.ndarray, size: int) -> tuple[int, int] | None:
    """Top-left corner of the first size×size window where mask is all true."""
    sums = np.pad(mask.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    hits = np.argwhere(windows == size * size)
    return (int(hits[0][0]), int(hits[0][1])) if len(hits) else None


def test_chromium_renders_the_heatmap_colours_where_they_belong(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    page = quadrants().to_html(tmp_path / "r.html", clip=None)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--force-color-profile=srgb", "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            "--window-size=1000,1400", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    near = lambda colour: np.abs(rgb - colour).sum(-1) <= 6  # noqa: E731
    top_left = find_square(near(POS), 80)
    assert top_left is not None, "no 80×80 block of the positive colour on the page"
    r, c = top_left
    assert near(NEG)[r + 80 : r + 160, c + 80 : c + 160].all()
    assert near(ZERO)[r : r + 80, c + 80 : c + 160].all()
    assert near(ZERO)[r + 80 : r + 160, c : c + 80].all()
