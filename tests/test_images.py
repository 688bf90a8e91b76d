"""Image views read at the pixel: colours at known positions, sizes, layouts, Captum's clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import integrad
from integrad import images
from integrad.views import _png

POS = tuple(_png.POSITIVE.astype(int))
NEG = tuple(_png.NEGATIVE.astype(int))
ZERO = tuple(_png.NEUTRAL.astype(int))


def corners(channels: int = 1, size: int = 8) -> np.ndarray:
    """+1 in the top-left pixel, -1 in the bottom-right, 0 elsewhere, spread over channels."""
    a = np.zeros((channels, size, size))
    a[:, 0, 0] = 1.0 / channels
    a[:, -1, -1] = -1.0 / channels
    return a


def colour(rgb: np.ndarray, row: int, col: int) -> tuple[int, ...]:
    return tuple(int(c) for c in rgb[row, col])


@pytest.mark.parametrize("channels", [1, 3])
def test_signed_heatmap_puts_known_signs_at_known_positions(channels):
    rgb = images.heatmap(corners(channels), clip=None, scale=3)
    assert rgb.shape == (24, 24, 3) and rgb.dtype == np.uint8
    # Every pixel of the enlarged top-left cell is the positive colour, bottom-right negative.
    assert {colour(rgb, r, c) for r in range(3) for c in range(3)} == {POS}
    assert {colour(rgb, r, c) for r in range(21, 24) for c in range(21, 24)} == {NEG}
    assert colour(rgb, 12, 12) == ZERO and colour(rgb, 0, 23) == ZERO


@pytest.mark.parametrize(
    ("sign", "top_left", "bottom_right"),
    [
        ("positive", POS, ZERO),
        ("negative", ZERO, NEG),
        ("absolute", tuple(_png.ABSOLUTE.astype(int)), tuple(_png.ABSOLUTE.astype(int))),
    ],
)
def test_one_sided_views_keep_their_side_only(sign, top_left, bottom_right):
    rgb = images.heatmap(corners(), sign, clip=None)
    assert colour(rgb, 0, 0) == top_left and colour(rgb, 7, 7) == bottom_right
    assert colour(rgb, 3, 4) == ZERO


def test_colour_grows_with_magnitude_and_clips_at_the_limit():
    values = np.array([[0.0, 0.25, 0.5, 1.0, 4.0]])
    rgb = images.heatmap(values, limit=1.0)
    greens = rgb[0, :, 1].astype(int)  # red ramps down green and blue
    assert list(greens) == sorted(greens, reverse=True)
    assert colour(rgb, 0, 3) == colour(rgb, 0, 4) == POS


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("sum", [[1.0, -1.0]]),
        ("abs_sum", [[3.0, 5.0]]),
        ("max_abs", [[2.0, -3.0]]),
        ("l2", [[np.sqrt(5.0), np.sqrt(13.0)]]),
    ],
)
def test_channel_aggregation(how, expected):
    a = np.array([[[2.0, -3.0]], [[-1.0, 2.0]]])  # (channels=2, 1, 2)
    assert np.allclose(images.aggregate_channels(a, how), expected)
    # Channels last, and torch tensors, give the same.
    last = torch.from_numpy(np.moveaxis(a, 0, -1))
    assert np.allclose(images.aggregate_channels(last, how, channel_axis=-1), expected)


def test_cumulative_clipping_matches_captum_and_percentile_is_plain():
    from captum.attr._utils.visualization import _cumulative_sum_threshold

    values = np.random.default_rng(0).standard_normal((3, 16, 16)) ** 3
    for percentile in (50.0, 90.0, 98.0, 100.0):
        ours = images.outlier_limit(values, percentile, "cumsum")
        assert ours == _cumulative_sum_threshold(np.abs(values), percentile)
    assert images.outlier_limit(values, 90.0, "percentile") == np.percentile(np.abs(values), 90)
    assert images.outlier_limit(values, 90.0, None) == np.abs(values).max()
    # One outlier no longer washes out the rest with clipping; it does without.
    spiky = np.full((8, 8), 0.1)
    spiky[0, 0] = 100.0
    assert colour(images.heatmap(spiky, clip="percentile", percentile=90), 4, 4) == POS
    assert colour(images.heatmap(spiky, clip=None), 4, 4) != POS


def test_overlay_keeps_the_image_where_attribution_is_zero():
    image = np.linspace(0, 1, 64).reshape(1, 8, 8)
    plain = images.image_rgb(image)
    blended = images.overlay(image, corners(), alpha=1.0, clip=None)
    assert np.array_equal(blended[1:7], plain[1:7])
    assert colour(blended, 0, 0) == POS and colour(blended, 7, 7) == NEG


def test_masked_image_shows_only_the_top_fraction():
    image = np.ones((1, 10, 10))
    image[0, 0, 0] = 0.0  # the image's range: shown pixels are white
    attributions = np.arange(100.0).reshape(1, 10, 10)
    out = images.masked(image, attributions, top=0.1)
    shown = out[..., 0] == 255
    assert shown.sum() == 10 and shown[-1].all()
    assert (out[~shown] == 0).all()


def explanation(batch: int = 3, channels: int = 1) -> integrad.Explanation:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels * 64, 2))
    x = torch.rand(batch, channels, 8, 8, generator=torch.Generator().manual_seed(0))
    return integrad.explain(model, x, target=0, n_steps=4)


def test_side_by_side_has_four_panels_of_the_right_size():
    exp = explanation()
    exp.attributions = torch.from_numpy(np.stack([corners()] * 3)).float()
    rgb = images.side_by_side(exp, 1, scale=10, clip=None)
    title, gap = 20, 6
    assert rgb.shape == (title + 80, 4 * 80 + 3 * gap, 3)
    signed_left, absolute_left = 80 + gap, 2 * (80 + gap)
    assert colour(rgb, title + 5, signed_left + 5) == POS
    assert colour(rgb, title + 75, signed_left + 75) == NEG
    assert colour(rgb, title + 40, signed_left + 40) == ZERO
    assert colour(rgb, title + 5, absolute_left + 5) == tuple(_png.ABSOLUTE.astype(int))
    # Titles are drawn: dark pixels in the strip above each panel.
    assert (rgb[:title, :80] < 100).any() and (
        rgb[:title, signed_left : signed_left + 80] < 100
    ).any()


def test_gallery_and_comparison_layouts():
    exp = explanation(batch=5, channels=3)
    rgb = images.gallery(exp, columns=2, scale=4)
    # 3 rows of cells; a cell is two 32-pixel panels under 20-pixel titles, 2 apart.
    cell_h, cell_w = 2 * (20 + 32) + 2, 32
    assert rgb.shape == (3 * cell_h + 2 * 10, 2 * cell_w + 10, 3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    exps = images.compare_baselines(model, x, target=1, n_steps=4)
    assert list(exps) == ["zeros", "blur", "noise", "mean"]
    assert exps["mean"].baseline == "mean(n_reference=2)"
    rgb = images.comparison(exps, 1, scale=5)
    assert rgb.shape == (2 * (20 + 40) + 6, 5 * 40 + 4 * 6, 3)
    with pytest.raises(ValueError, match="example=9 is out of range"):
        images.side_by_side(exp, 9)


def test_matplotlib_figure_has_four_panels_and_a_colour_bar():
    import matplotlib

    matplotlib.use("Agg")
    fig = explanation().plot(example=2)
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes[:4]] == ["input #2", "signed", "absolute", "overlay"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="how='mean' is not an aggregation"):
        images.aggregate_channels(np.zeros((1, 2, 2)), "mean")
    with pytest.raises(ValueError, match="sign='both' is not a view"):
        images.heatmap(np.zeros((2, 2)), "both")
    with pytest.raises(ValueError, match="method='top' is not a clipping rule"):
        images.outlier_limit(np.zeros(3), 90, "top")
    with pytest.raises(ValueError, match=r"must be \(channels, height, width\)"):
        images.heatmap(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="top must be a fraction"):
        images.masked(np.zeros((2, 2)), np.zeros((2, 2)), top=0)


def test_views_work_without_pillow(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)  # any "from PIL import ..." now fails
    exp = explanation()
    exp.attributions = torch.from_numpy(np.stack([corners()] * 3)).float()
    rgb = images.side_by_side(exp, 0, scale=10, clip=None)
    assert (rgb[:20] == 255).all()  # the title strips stay blank
    assert colour(rgb, 25, 80 + 6 + 5) == POS
    path = _png.write_png(tmp_path / "x.png", rgb)
    assert path.read_bytes() == _png.encode_png_stdlib(rgb)
