"""Image figures read at the pixel: titles, colour bars, the caller's axes, Captum's parity."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

import integrad
from integrad.views import _png, image_figures

matplotlib.use("Agg")

NAMES = ["zero", "one", "two"]


def classifier() -> torch.nn.Module:
    """Logits (0, 0, sum of pixels): class 2 wins on positive images."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3, bias=False)).double()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[2].fill_(1.0)
    return model


def explanation(channels: int | None = 1) -> integrad.Explanation:
    shape = (2, 8, 8) if channels is None else (2, channels, 8, 8)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = classifier() if channels in (None, 1) else torch.nn.Flatten()
    target = 2 if channels in (None, 1) else 0
    return integrad.explain(model, x, target=target, n_steps=4, kind="image", output_kind="logits")


def pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)


def middle_column(fig, ax) -> np.ndarray:
    """The rendered colours down the middle of ``ax`` (a vertical colour bar), top first."""
    image = pixels(fig)
    box = ax.get_window_extent()
    height = image.shape[0]
    column = int((box.x0 + box.x1) / 2)
    top, bottom = int(height - box.y1) + 2, int(height - box.y0) - 2
    return image[top:bottom, column]


def near(rgb: np.ndarray, colour: np.ndarray, tolerance: int = 12) -> bool:
    return bool(np.abs(rgb - colour).max() <= tolerance)


def test_overview_is_titled_with_the_prediction_and_has_both_colour_bars():
    exp = explanation()
    fig = exp.plot(example=1, class_names=NAMES)
    panels, bars = fig.axes[:4], fig.axes[4:]
    assert [ax.get_title() for ax in panels] == [
        "input #1",
        f"signed, sum {float(exp.attributions[1].sum()):.3g}",
        "absolute |a|",
        "overlay (signed scale)",
    ]
    probability = float(exp.predicted_probability[1])
    title = fig.get_suptitle()
    assert "target 2 'two'" in title and f"predicted 2 'two' (p {probability:.2f})" in title
    caption = fig.get_supxlabel()
    assert f"delta = {float(exp.delta[1]):.2g}" in caption and "F(x') = " in caption
    assert "cumsum rule" in caption
    # Dark title pixels in the top band of the picture.
    image = pixels(fig)
    assert (image[: image.shape[0] // 12].max(axis=2) < 80).any()
    # The signed bar runs red (top) through white to blue; the absolute one purple to white.
    signed = middle_column(fig, bars[0])
    assert near(signed[0], _png.POSITIVE) and near(signed[-1], _png.NEGATIVE)
    assert near(signed[len(signed) // 2], _png.NEUTRAL)
    absolute = middle_column(fig, bars[1])
    assert near(absolute[0], _png.ABSOLUTE) and near(absolute[-1], _png.NEUTRAL)
    assert "red raises F, blue lowers it" in bars[0].get_ylabel()
    assert "white->purple = |a|" in bars[1].get_ylabel()
    assert "attribution (logit units)" in bars[1].get_ylabel()  # output_kind="logits"


def test_one_panel_goes_into_the_callers_axes_and_closes_nothing():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    exp = explanation()
    owner = Figure(figsize=(8, 4))
    FigureCanvasAgg(owner)
    left, right = owner.subplots(1, 2)
    left.plot([0, 1])
    fig = exp.plot(ax=right, method="blended_heat_map", class_names=NAMES)
    assert fig is owner and len(owner.axes) == 3  # the two axes and a colour bar
    assert left.get_title() == "" and len(left.lines) == 1
    assert "predicted 2 'two'" in right.get_title()
    assert "delta = " in right.get_xlabel() and "colour limit" in right.get_xlabel()
    pixels(owner)  # draws


@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize(
    ("method", "sign"),
    [
        ("heat_map", "all"),
        ("heat_map", "absolute_value"),
        ("blended_heat_map", "positive"),
        ("masked_image", "absolute"),
        ("alpha_scaling", "negative"),
        ("original_image", "all"),
    ],
)
def test_every_captum_method_draws_every_layout(channels, method, sign):
    exp = explanation(channels)
    fig = image_figures.figure(exp, method=method, sign=sign, show_colorbar=False)
    (ax,) = fig.axes
    shown = ax.images[-1].get_array()
    assert shown.shape[:2] == (8, 8)
    if method == "heat_map":
        limit = float(np.abs(shown).max())
        axis = 0 if channels else None
        norm = image_figures.normalized(exp.attributions[0], sign, channel_axis=axis)
        assert np.allclose(shown, norm * limit)


def test_bad_methods_and_signs_are_named():
    exp = explanation()
    with pytest.raises(ValueError, match="method='saliency' is not a view"):
        exp.plot(method="saliency")
    with pytest.raises(ValueError, match="method='masked_image' cannot show both signs"):
        exp.plot(method="masked_image", sign="all")
    with pytest.raises(ValueError, match="method='blended_heat_map' needs the original image"):
        image_figures.visualize_image_attr(np.ones((4, 4)), method="blended_heat_map")


@pytest.mark.parametrize("sign", ["all", "positive", "negative", "absolute_value"])
@pytest.mark.parametrize("outlier_perc", [2, 10])
def test_normalisation_equals_captums(sign, outlier_perc):
    from captum.attr._utils.visualization import _normalize_attr

    attr = np.random.default_rng(0).standard_normal((12, 10, 3)) ** 3
    ours = image_figures.normalized(attr, sign, outlier_perc=outlier_perc)
    assert np.array_equal(ours, _normalize_attr(attr.sum(axis=2), sign, outlier_perc))


@pytest.mark.parametrize("method", ["heat_map", "blended_heat_map", "masked_image"])
def test_captum_colors_give_captums_picture(method):
    from captum.attr import visualization

    rng = np.random.default_rng(1)
    attr, image = rng.standard_normal((10, 12, 3)), rng.random((10, 12, 3))
    sign = "positive" if method == "masked_image" else "all"
    theirs = visualization.visualize_image_attr(
        attr, image, method, sign, use_pyplot=False, outlier_perc=5
    )[1]
    ours = image_figures.visualize_image_attr(
        attr, image, method, sign, use_pyplot=False, outlier_perc=5, captum_colors=True
    )[1]
    for a, b in zip(ours.images, theirs.images, strict=True):
        assert np.allclose(a.to_rgba(a.get_array()), b.to_rgba(b.get_array()), atol=1e-6)
    # Our own colours put red where the attribution is largest, blue where it is least.
    mine = image_figures.visualize_image_attr(attr, sign="all", use_pyplot=False)[1].images[0]
    rgba = mine.to_rgba(mine.get_array())
    red, _, blue, _ = rgba[np.unravel_index(np.argmax(attr.sum(axis=2)), (10, 12))]
    assert red > 0.7 > blue
    red, _, blue, _ = rgba[np.unravel_index(np.argmin(attr.sum(axis=2)), (10, 12))]
    assert blue > 0.6 > red


def test_captum_signature_returns_figure_and_axes_with_a_colour_bar():
    attr = np.random.default_rng(2).standard_normal((8, 8, 1))
    fig, ax = image_figures.visualize_image_attr(
        attr, sign="all", show_colorbar=True, title="mine", use_pyplot=False
    )
    assert ax.get_title() == "mine" and len(fig.axes) == 2
    assert "red raises F" in fig.axes[1].get_xlabel()
