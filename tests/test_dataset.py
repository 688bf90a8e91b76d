"""The dataset report: histograms, worst converged, most/least confident, per-class means."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

import integrad
from integrad.runs.results import example
from integrad.views import _png, dataset
from integrad.views.images import heatmap, outlier_limit


def pictures(page: str) -> dict[str, np.ndarray]:
    """The page's pictures by alt text."""
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*alt="([^"]*)"', page)
    return {
        alt: np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        for data, alt in found
    }


def test_histogram_bars_are_as_tall_as_their_counts():
    picture, caption = dataset.histogram([1.0, 1.0, 1.0, 2.0, 3.0], bins=2, size=(20, 90))
    blue = (picture == _png.NEGATIVE.astype(np.uint8)).all(-1)
    assert blue[:, :9].sum(0).tolist() == [90] * 9 and blue[:, 10:19].sum(0).tolist() == [60] * 9
    assert caption == "1 to 3; tallest bar 3 examples"
    _, caption = dataset.histogram([0.0, 0.0, 10.0, 100.0], bins=2, log=True)
    assert caption == "log10 of the value: 1 to 2; tallest bar 1 examples; 2 exactly 0 (not drawn)"


def linear_images() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    x = torch.rand(9, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return model, x, torch.tensor([0, 1, 2] * 3)


def test_run_report_draws_each_class_mean_and_ranks_examples_by_f(tmp_path):
    model, x, y = linear_images()
    run = integrad.run(model, x, out=tmp_path / "run", labels=y, target="label", batch_size=4,
                       progress=False)  # fmt: skip
    page = run.to_html(tmp_path / "report.html", examples=3).read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page
    # IG of a linear model from zeros is w[label] * x: the class means are known exactly.
    weight = model[1].weight.detach().reshape(3, 4, 4)
    means = [(weight[c] * x[y == c, 0]).mean(0) for c in range(3)]
    limit = max(outlier_limit(m) for m in means)
    drawn = pictures(page)
    for c in range(3):
        want = heatmap(means[c], scale=24, limit=limit)
        assert np.abs(drawn[f"label {c}"].astype(int) - want).max() <= 1
    # Most confident: the highest F(x) first; least: the lowest first.
    output = run.summary()["output"].to_numpy()
    most = page.split("Most confident")[1].split("Least confident")[0]
    least = page.split("Least confident")[1].split("Mean attribution per")[0]
    shown = [int(i) for i in re.findall(r"<h3>Example (\d+):", most)]
    assert shown == np.argsort(-output, kind="stable")[:3].tolist()
    shown = [int(i) for i in re.findall(r"<h3>Example (\d+):", least)]
    assert shown == np.argsort(output, kind="stable")[:3].tolist()
    for title in ("|delta| (completeness error)", "model evaluations per example (cost)"):
        assert f'alt="{title}"' in page


def test_worst_converged_lists_unconverged_first_then_by_error():
    model = torch.nn.Linear(3, 2).double()
    exp = integrad.explain(model, torch.rand(4, 3, dtype=torch.float64), target=1)
    rows = {
        "id": [0, 1, 2, 3],
        "target": [1, 1, 1, 1],
        "output": [0.5, 2.0, -1.0, 1.0],
        "delta": [0.0, 0.1, 0.2, 0.3],
        "relative_delta": [0.1, 0.9, 0.2, 0.5],
        "converged": [True, True, False, True],
        "error_estimate": [0.01, 0.3, 0.02, 0.2],
    }
    page = dataset.render(rows, lambda i: example(exp, i), [([0, 1, 2, 3], exp)], worst=3)
    worst = page.split('<table id="worst">')[1].split("</table>")[0]
    assert [int(i) for i in re.findall(r"<tr><td>(\d+)</td>", worst)] == [2, 1, 3]
    assert "then by estimated error" in page
    # A table: one column per target (no labels), features ranked by mean |attribution|.
    classes = page.split('<table id="classes">')[1]
    assert "<th>target 1 (4)</th>" in classes
    order = exp.attributions.abs().mean(0).argsort(descending=True).tolist()
    assert re.findall(r"<tr><td>x(\d)</td>", classes) == [str(j) for j in order]
    with pytest.raises(ValueError, match="examples must be at least 1, got 0"):
        dataset.render(rows, lambda i: exp, [], examples=0)
