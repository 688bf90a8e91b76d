"""The comparison view and page: one colour limit across methods, sign-coloured tables, no links."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

import integrad
from integrad.views import _png
from integrad.views import comparison as view

POS = tuple(int(c) for c in _png.POSITIVE)
NEG = tuple(int(c) for c in _png.NEGATIVE)


def corners(size: int = 4) -> np.ndarray:
    a = np.zeros((1, size, size))
    a[0, 0, 0], a[0, -1, -1] = 1.0, -1.0
    return a


def pixel(rgb: np.ndarray, top: int, left: int) -> tuple[int, ...]:
    return tuple(int(c) for c in rgb[top, left])


def test_row_draws_every_method_on_one_limit_unless_asked_not_to() -> None:
    image = np.linspace(0, 1, 16).reshape(1, 4, 4)
    maps = {"strong": corners(), "weak": corners() / 10}
    heat_top, width = 20 + 1, 4 * 8  # under the title strip; scale 8
    shared = view.row(image, maps, scale=8, clip=None)
    separate = view.row(image, maps, scale=8, clip=None, shared_scale=False)

    def cell(rgb: np.ndarray, column: int, corner: int = 0) -> tuple[int, ...]:
        offset = corner * (width - 2)
        return pixel(rgb, heat_top + offset, column * (width + 6) + 1 + offset)

    assert cell(shared, 1) == POS and cell(shared, 1, corner=1) == NEG
    weak = cell(shared, 2)
    assert weak != POS and weak[0] > weak[2]  # pale red: same sign, a tenth of the size
    assert cell(separate, 1) == cell(separate, 2) == POS
    with pytest.raises(ValueError, match="at least one method"):
        view.row(image, {})


def images_comparison() -> integrad.metrics.Comparison:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def ig(x: torch.Tensor, target: object) -> integrad.Explanation:
        return integrad.explain(model, x, target=target, kind="image", output_kind="logits")

    return integrad.compare(model, x, target=1, steps=4, methods={
        "IG": ig, "IG / 10": lambda x, target: ig(x, target).attributions / 10,
    })  # fmt: skip


def pictures(html: str) -> list[np.ndarray]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in found]


def test_image_page_has_the_table_and_each_example_on_one_shared_limit(tmp_path) -> None:
    result = images_comparison()
    path = result.to_html(tmp_path / "page.html", examples=2, clip=None, scale=8)
    html = path.read_text(encoding="utf-8")
    said = [
        "IG / 10",
        "deletion<br><small>lower is better",
        "seconds per example",
        "insertion<br><small>higher is better",
        "completeness delta",
        "red raises F",
    ]
    assert all(words in html for words in said)
    # The best infidelity (IG's: exact on a linear model) is bold; the scaled copy's is not.
    row = html.split("<td>IG</td>")[1].split("</tr>")[0]
    assert re.findall(r"<td[^>]*>(.*?)</td>", row)[2].startswith("<b>")
    assert len(pictures(html)) == 2
    # The caption states the one limit; with clip=None it is the largest |a| of any method.
    ig = result.explanations["IG"].attributions
    for i in range(2):
        limit = float(ig[i].abs().max())
        assert f"example {i}: the input, then each method on one colour limit ±{limit:.3g}" in html
    # Self-contained: no script, every src/href an inline data URI.
    assert "<script" not in html.lower()
    assert all(u.startswith("data:") for u in re.findall(r'(?:src|href)="([^"]*)"', html))
    # The scaled method is paler than IG at IG's strongest pixel (one limit for both).
    picture, strongest = pictures(html)[0], int(ig[0].abs().argmax())
    top, left = 20 + 8 * (strongest // 4) + 1, 8 * (strongest % 4) + 1
    full = pixel(picture, top, 1 * (32 + 6) + left)
    pale = pixel(picture, top, 2 * (32 + 6) + left)
    assert full in (POS, NEG) and pale not in (POS, NEG)


def test_table_page_colours_features_by_sign_and_other_inputs_get_the_table_only(tmp_path):
    model = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, -1.0, 0.5]]))
    x = torch.rand(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.1

    def ig(x: torch.Tensor, target: object) -> integrad.Explanation:
        return integrad.explain(model, x, target=target)

    result = integrad.compare(model, x, steps=3, methods={"IG": ig, "negated": lambda x, target:
                              -ig(x, target).attributions})  # fmt: skip
    html = result.to_html(tmp_path / "t.html", feature_names=["up", "down", "small"]).read_text()
    assert "<img" not in html and "<h3>Example 1</h3>" in html
    styles = re.findall(r'<td class="num" style="background: rgb\((\d+), (\d+), (\d+)\)', html)
    signs = [1 if int(r) > int(b) else -1 for r, _, b in styles]
    # Example 0, rows up/down/small, columns IG/negated: IG's sign is the weight's.
    assert signs[:6] == [1, -1, -1, 1, 1, -1]
    assert all(name in html for name in ("up", "down", "small"))
    with pytest.raises(ValueError, match="feature_names has 2 names for 3 features"):
        result.to_html(tmp_path / "bad.html", feature_names=["a", "b"])
    with pytest.raises(ValueError, match="examples: 5 is out of range for a batch of 2"):
        result.to_html(tmp_path / "bad.html", examples=[5])
    series = torch.rand(2, 4, 3, dtype=torch.float64)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1)).double()
    plain = integrad.compare(
        flat,
        series,
        steps=3,
        metrics=("deletion",),
        methods={"random": lambda x, target: torch.randn_like(x)},
    )
    page = plain.to_html(tmp_path / "s.html").read_text()
    assert "<h2>Scores</h2>" in page and "Examples" not in page
