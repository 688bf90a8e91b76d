"""The HTML report: self-contained, every picture inline, colours by sign, seen in Chromium."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from conftest import wcag
from PIL import Image

import integrad
from integrad import tables
from integrad.views import _html, _png, report

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


def near(rgb: np.ndarray, colour: np.ndarray, tolerance: int = 6) -> np.ndarray:
    return np.abs(rgb.astype(int) - colour.astype(int)).sum(-1) <= tolerance


def contrast_of(style: str) -> float:
    """The WCAG contrast of a ``background: rgb(...); color: #000|#fff`` style (by the
    tests' own formula, not the one under test)."""
    found = re.search(r"background: rgb\((\d+), (\d+), (\d+)\); color: (#000|#fff)", style)
    assert found is not None, style
    background = [int(c) for c in found.groups()[:3]]
    return wcag(background, (0, 0, 0) if found.group(4) == "#000" else (255,) * 3)


def classifier() -> tuple[torch.nn.Module, torch.Tensor]:
    """Three classes from two features; at x = (1, 0) the logits are (0, 1, 2): class 2 wins."""
    model = torch.nn.Linear(2, 3).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, -1.0], [2.0, 0.5]]))
        model.bias.zero_()
    return model, torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)


def series() -> integrad.Explanation:
    """12 steps of 2 features; the weights alternate in sign by step, so every example has
    tall bars of both signs (no draw from the global random state)."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([1.0, -1.0]).repeat_interleave(2).repeat(6)[None])
        model[1].bias.zero_()
    x = torch.rand(2, 12, 2, generator=torch.Generator().manual_seed(1))
    return integrad.explain(model, x, n_steps=4, kind="timeseries")


def text_explanation() -> integrad.Explanation:
    """Token attributions set by hand: token 3 of text 0 is the largest positive score."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 2))
    exp = integrad.explain(model, torch.ones(2, 5, 2), target=1, kind="text", n_steps=4)
    a = torch.zeros(2, 5, 2)
    a[0, :, 0] = torch.tensor([0.0, -0.5, 0.1, 2.0, 0.3])
    a[1, :, 0] = torch.tensor([0.2, 0.2, -1.0, 0.0, 0.0])
    exp.attributions = a
    exp.extras["tokens"] = [
        ["[CLS]", "the", "movie", "was", "great"],
        ["it", "is", "<b>", "ok", "."],
    ]
    return exp


def test_image_report_is_self_contained_and_its_pictures_have_the_known_colours(tmp_path):
    exp = quadrants()
    path = exp.to_html(tmp_path / "r.html", clip=None)
    text = path.read_text(encoding="utf-8")
    parsed = assert_self_contained(text)
    images = pictures(parsed)
    assert set(images) == {
        "colour bar", "absolute colour bar", "input #0", "signed #0", "abs #0", "overlay #0"
    }  # fmt: skip
    signed = images["signed #0"]
    assert signed.shape == (160, 160, 3)
    assert (signed[:80, :80] == POS).all() and (signed[80:, 80:] == NEG).all()
    assert (signed[:80, 80:] == ZERO).all() and (signed[80:, :80] == ZERO).all()
    assert (images["abs #0"][:80, :80] == _png.ABSOLUTE).all()
    # Provenance and the completeness check are in the text.
    for needed in ("gausslegendre", "zeros", torch.__version__, integrad.__version__):
        assert needed in text
    assert f"{float(exp.delta[0]):.3g}" in text
    assert re.search(r'<table id="completeness">.*<td>0</td>', text)
    assert "<th>tolerance</th>" not in text  # not a tolerance-mode run
    # The scale: limits with units, the sign convention, purple, Captum's colours.
    assert "colour limit ±1 units of F" in text and "full purple at 1 units of F" in text
    assert "red raises F, blue lowers it" in text and "purple is |attribution|" in text
    assert "positive green" in text and "largest |a|" in text


def test_without_pillow_the_bars_stay_and_the_page_says_the_numbers(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "PIL", None)  # `from PIL import ...` now fails
        text = report.render(quadrants(), clip=None)
    drawn = pictures(parse(text))
    assert len(drawn) == 6 and "colour limit ±1 units of F" in text
    assert find_bar(drawn["colour bar"], "all")
    assert find_bar(drawn["absolute colour bar"], "absolute")


def test_heading_says_what_was_explained_and_the_prediction_with_its_probability():
    model, x = classifier()
    exp = integrad.explain(model, x, target=1, output_kind="logits", n_steps=8)
    text = report.render(exp, kind="table", class_names=["cat", "dog", "cow"])
    with torch.no_grad():
        chances = torch.softmax(model(x), 1)
    said = html.unescape(text)
    assert "Example 0: F = logit of class 1 'dog'</h3>" in said
    top = float(chances[0, 2])
    assert f"predicted class 2 'cow' with probability {top:.3g}" in said
    assert f"probability of the explained class {float(chances[1, 1]):.3g}" in text
    assert "colour limit ±" in text and "logit units" in text
    regression = integrad.explain(torch.nn.Linear(2, 1).double(), x, n_steps=8)
    plain = report.render(regression, kind="table")
    assert "Example 0: F = the model output</h3>" in plain
    assert "predicted" not in plain and "probability" not in plain and "units of F" in plain


def test_shared_scale_lets_examples_compare_and_per_example_scales_say_so():
    exp = quadrants()
    exp.inputs, exp.delta = exp.inputs.repeat(2, 1, 1, 1), exp.delta.repeat(2)
    exp.output, exp.baseline_output = exp.output.repeat(2), exp.baseline_output.repeat(2)
    exp.attributions = torch.cat([exp.attributions, 10 * exp.attributions])
    shared = report.render(exp, clip=None)
    images = pictures(parse(shared))
    assert "<b>shared</b>" in shared and "colour limit ±10 units of F" in shared
    pale = _png.diverging(np.array([0.1]), 1.0)[0]
    assert (images["signed #0"][:80, :80] == pale).all()
    assert (images["signed #1"][:80, :80] == POS).all()
    own = report.render(exp, clip=None, shared_scale=False)
    images = pictures(parse(own))
    assert "<b>per example</b>" in own and own.count('alt="colour bar"') == 2
    assert "colour limit ±1 units of F" in own and "colour limit ±10 units of F" in own
    assert (images["signed #0"][:80, :80] == POS).all()


def test_tolerance_run_reports_its_tolerance_and_how_many_converged(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    exp = integrad.explain(model.double(), torch.ones(2, 3, dtype=torch.float64), tolerance=0.01)
    text = exp.to_html(tmp_path / "tol.html", kind="table").read_text(encoding="utf-8")
    assert "<th>tolerance</th><td>0.01</td>" in text
    assert "<th>converged</th><td>2 of 2</td>" in text
    assert "<th>est. error</th><th>converged</th>" in text and "tolerance 0.01 met" in text


def table_explanation() -> integrad.Explanation:
    model = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, -1.0, 0.0, 1.0]]))
    rows = np.array([[1.0, 1.0, 1.0, -1.0], [0.5, -2.0, 3.0, 0.0]])
    names = ["alpha", "beta", "gamma", "<delta>"]
    return tables.tabular(model, rows, feature_names=names, baseline="zeros", n_steps=4)


def test_table_report_colours_every_feature_by_its_sign_with_readable_ink(tmp_path):
    text = table_explanation().to_html(tmp_path / "t.html").read_text(encoding="utf-8")
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
        assert contrast_of(attrs["style"]) >= 4.5
    # Shared scale: the largest |attribution| of both rows (2, row 0's alpha) is full red.
    assert any(a["data-score"] == "2" and "rgb(178, 24, 43)" in a["style"] for a in cells)
    assert 'id="importance"' in text and "colour limit ±2 units of F" in text


def test_token_spans_carry_every_token_with_the_colour_of_its_sign_at_aa_contrast():
    tokens = ["the", "movie", "was", "<b>great</b>"]
    markup = report.token_spans(tokens, torch.tensor([0.0, -0.5, 0.1, 1.0]))
    parsed = assert_self_contained(markup)
    spans = [attrs for tag, attrs in parsed.tags if tag == "span"]
    assert len(spans) == 4 and "&lt;b&gt;great&lt;/b&gt;" in markup
    colours = [np.array([int(c) for c in re.findall(r"\d+", s["style"])[:3]]) for s in spans]
    assert (colours[0] == ZERO).all() and (colours[3] == POS).all()
    assert colours[1][2] > colours[1][0] and colours[2][0] > colours[2][2]
    assert min(contrast_of(s["style"]) for s in spans) >= 4.5
    assert "color: #fff" in spans[3]["style"]  # white on full red; black would be 3.4:1
    with pytest.raises(ValueError, match="4 tokens but 3 scores"):
        report.token_spans(tokens, [1.0, 2.0, 3.0])


def test_every_colour_gets_text_at_wcag_aa_contrast():
    ramp = np.linspace(-1.0, 1.0, 401)
    worst = min(contrast_of(_html.cell_style(v, 1.0)) for v in ramp)
    assert worst >= 4.5


def test_series_report_shows_input_bars_heatmap_and_the_bars_scale(tmp_path):
    exp = series()
    parsed = assert_self_contained(text := exp.to_html(tmp_path / "s.html").read_text())
    assert len(pictures(parsed)) == 1 + 3 * 2  # the legend, then three per example
    per_step = exp.attributions.double().sum(2).abs().max()
    assert f"a full half-height is ±{float(per_step):.3g} units of F" in text


def test_text_report_colours_tokens_against_one_limit():
    text = report.render(text_explanation())
    spans = [a for tag, a in parse(text).tags if tag == "span" and "data-score" in a]
    assert [s["data-score"] for s in spans][:5] == ["0", "-0.5", "0.1", "2", "0.3"]
    assert "&lt;b&gt;" in text and "colour limit ±2 units of F" in text
    full = _png.diverging(np.array([-1.0]), 2.0)[0]  # -1 is half way to blue at limit 2
    assert _html.rgb_css(full) in spans[7]["style"]
    with pytest.raises(ValueError, match="needs the tokens"):
        report.render(series(), kind="text")


def find_square(mask: np.ndarray, size: int) -> tuple[int, int] | None:
    """Top-left corner of the first size×size window where mask is all true."""
    sums = np.pad(mask.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    hits = np.argwhere(windows == size * size)
    return (int(hits[0][0]), int(hits[0][1])) if len(hits) else None


def find_bar(rgb: np.ndarray, sign: str, width: int = 232) -> bool:
    """Whether a row of ``rgb`` shows the whole colour bar of ``sign`` (``width`` columns:
    the legend's), column by column from one end of its colour map to the other."""
    values = np.linspace(-1.0, 1.0, width)
    expected = (
        _png.diverging(values, 1.0) if sign == "all" else _png.sequential(values / 2 + 0.5, 1.0)
    ).astype(int)
    for r, c in np.argwhere(near(rgb, expected[0])):
        segment = rgb[r, c : c + len(expected)]
        if len(segment) == len(expected) and near(segment, expected).all():
            return True
    return False


FRAME = (1000, 1400)


def test_chromium_draws_every_kinds_report_with_its_colour_bars(tmp_path):
    """One browser run: the four reports side by side in frames of a test page."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    reports = {
        "image": quadrants().to_html(tmp_path / "image.html", clip=None),
        "table": table_explanation().to_html(tmp_path / "table.html"),
        "timeseries": series().to_html(tmp_path / "series.html"),
        "text": text_explanation().to_html(tmp_path / "text.html"),
    }
    width, height = FRAME
    frames = "".join(
        f'<iframe src="{path.name}" style="position: absolute; left: {k * width}px; top: 0; '
        f'width: {width}px; height: {height}px; border: 0"></iframe>'
        for k, path in enumerate(reports.values())
    )
    page = tmp_path / "all.html"
    page.write_text(f'<!DOCTYPE html><html><body style="margin: 0">{frames}</body></html>')
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--force-color-profile=srgb", "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            f"--window-size={4 * width},{height}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    views = {kind: rgb[:, k * width : (k + 1) * width] for k, kind in enumerate(reports)}
    for kind, view in views.items():
        assert find_bar(view, "all"), f"no signed colour bar drawn in the {kind} report"
    assert find_bar(views["image"], "absolute"), "no purple bar in the image report"
    image = views["image"]
    top_left = find_square(near(image, POS), 80)
    assert top_left is not None, "no 80×80 block of the positive colour on the page"
    r, c = top_left
    assert near(image, NEG)[r + 80 : r + 160, c + 80 : c + 160].all()
    assert near(image, ZERO)[r : r + 80, c + 80 : c + 160].all()
    # The full-colour cell, the full per-step bar and the full token, where they belong.
    assert find_square(near(views["table"], POS), 12) is not None
    assert find_square(near(views["timeseries"], POS), 30) is not None
    assert find_square(near(views["timeseries"], NEG), 30) is not None
    assert near(views["text"], POS).sum() > 300  # the "was" token's span (white text on it)
