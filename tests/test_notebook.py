"""The notebook summary (Explanation._repr_html_): small, self-contained, never raises."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import torch
from PIL import Image

import integrad
from integrad import tables
from integrad.views import _png, notebook

POS = _png.POSITIVE.astype(int)
NEG = _png.NEGATIVE.astype(int)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def checked(markup: str) -> dict[str, np.ndarray]:
    """The fragment's pictures by alt text, after checking it refers to nothing outside."""
    parser = Tags()
    parser.feed(markup)
    names = {tag for tag, _ in parser.tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base", "style"}, names
    assert "http://" not in markup and "https://" not in markup and "url(" not in markup
    out = {}
    for tag, attrs in parser.tags:
        if tag == "img":
            head, data = attrs["src"].split(",", 1)
            assert head == "data:image/png;base64"
            rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
            assert (int(attrs["width"]), int(attrs["height"])) == (rgb.shape[1], rgb.shape[0])
            out[attrs["alt"]] = rgb
    return out


def test_a_batch_of_64_images_gives_a_small_summary_with_four_thumbnails():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, 10))
    x = torch.rand(64, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(model, x, target=torch.arange(64) % 10, output_kind="logits", n_steps=2)
    markup = exp._repr_html_()
    assert len(markup.encode()) < 1_000_000
    pictures = checked(markup)
    predicted = exp.predicted
    assert predicted is not None
    thumbnails = [f"#{i}, predicted {int(predicted[i])}" for i in range(4)]
    assert set(pictures) == {*thumbnails, "red raises F, blue lowers it, white is 0"}
    assert all(pictures[t].shape == (64, 64, 3) for t in thumbnails)
    rows = re.findall(r"<tr>", markup)
    assert len(rows) == 1 + 8 and "56 more; max |delta| over all 64" in markup
    for header in ("F(x)", "F(x′)", "delta", "|delta| / |F(x) − F(x′)|", "p(predicted)"):
        assert f"<th>{header}</th>" in markup
    assert f"{float(exp.probability[0]):.3g}" in markup  # type: ignore[index]
    assert "method=gausslegendre" in markup and "logit units" in markup


def test_large_images_are_pooled_to_thumbnails_of_at_most_64_pixels():
    exp = integrad.explain(torch.nn.Flatten(), torch.rand(1, 1, 256, 256), target=0, n_steps=2)
    a = torch.zeros(1, 1, 256, 256)
    a[..., :128, :128], a[..., 128:, 128:] = 1.0, -1.0
    exp.attributions = a
    pictures = checked(markup := notebook.summary(exp))
    thumbnail = next(rgb for alt, rgb in pictures.items() if alt.startswith("#0"))
    assert thumbnail.shape == (64, 64, 3) and "mean over 4×4 blocks" in markup
    assert (thumbnail[:32, :32] == POS).all() and (thumbnail[32:, 32:] == NEG).all()


def test_without_a_kind_3d_inputs_get_the_table_and_a_note_and_nothing_raises():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    exp = integrad.explain(model, torch.rand(2, 3, 4), n_steps=2)
    markup = exp._repr_html_()
    assert not checked(markup) and "kind=" in markup and "<th>F(x)</th>" in markup
    exp.kind = "text"  # but no tokens: the pictures fail, the summary does not
    markup = exp._repr_html_()
    assert "No pictures (KeyError" in markup and "<th>F(x)</th>" in markup
    assert "predicted" not in markup and "p(explained)" not in markup  # one output, no classes


def test_tolerance_runs_show_each_examples_estimate_and_flag():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.ones(2, 3, dtype=torch.float64)
    exp = integrad.explain(model.double(), x, tolerance=0.01)
    markup = notebook.summary(exp)
    assert "<th>est. error</th><th>converged</th>" in markup and "2 of 2 converged" in markup
    assert markup.count("<td>True</td>") == 2


def test_tables_series_and_text_get_thumbnails_in_their_own_view():
    model = torch.nn.Linear(3, 1).double()
    rows = np.array([[1.0, -2.0, 0.5]] * 6)
    table = notebook.summary(tables.tabular(model, rows, baseline="zeros", n_steps=2))
    assert table.count("top 5 features") == 4 and table.count("background: rgb(") == 4 * 3
    series_model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(400, 1))
    series = integrad.explain(series_model, torch.ones(2, 400, 1), n_steps=2, kind="timeseries")
    pictures = checked(markup := notebook.summary(series))
    assert pictures["#0"].shape[1] == 133 and "mean over 3 steps" in markup  # 400 → 133 bars
    text = integrad.explain(torch.nn.Flatten(), torch.ones(1, 3, 2), target=0, kind="text")
    text.extras["tokens"] = [["a", "<b>", "c"]]
    markup = notebook.summary(text)
    assert markup.count("data-score") == 3 and '"0">&lt;b&gt;</span>' in markup
