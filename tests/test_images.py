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
    assert np.allclose(images.aggregate_channels(a, how, channel_axis=0), expected)
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


def test_side_by_side_has_four_panels_and_legends_under_them():
    exp = explanation()
    exp.attributions = torch.from_numpy(np.stack([corners()] * 3)).float()
    rgb = images.side_by_side(exp, 1, scale=10, clip=None)
    title, gap = 20, 6
    assert rgb.shape[1] >= 4 * 80 + 3 * gap
    signed_left, absolute_left = 80 + gap, 2 * (80 + gap)
    assert colour(rgb, title + 5, signed_left + 5) == POS
    assert colour(rgb, title + 75, signed_left + 75) == NEG
    assert colour(rgb, title + 40, signed_left + 40) == ZERO
    assert colour(rgb, title + 5, absolute_left + 5) == tuple(_png.ABSOLUTE.astype(int))
    # Titles are drawn: dark pixels in the strip above each panel.
    assert (rgb[:title, :80] < 100).any() and (
        rgb[:title, signed_left : signed_left + 80] < 100
    ).any()
    # Under the panels: the signed legend (blue to red) and the absolute one (to purple).
    below = {colour(rgb, r, c) for r in range(title + 80, rgb.shape[0]) for c in range(0, 480)}
    assert {POS, NEG, tuple(_png.ABSOLUTE.astype(int))} <= below


def two_images(strength: float = 10.0) -> integrad.Explanation:
    """Two examples with the same pattern, the first ``strength`` times stronger."""
    exp = explanation(batch=2)
    exp.attributions = torch.from_numpy(np.stack([corners() * strength, corners()])).float()
    return exp


def heat_cell(rgb: np.ndarray, index: int, scale: int = 4) -> tuple[int, ...]:
    """The top-left heatmap pixel of gallery cell ``index`` (one row of cells)."""
    size = 8 * scale
    return colour(rgb, 20 + size + 2 + 20 + 1, index * (size + 10) + 1)


def test_gallery_scale_is_shared_by_default_and_per_image_on_request():
    exp = two_images()
    shared = images.gallery(exp, columns=2, scale=4)
    strong, weak = heat_cell(shared, 0), heat_cell(shared, 1)
    assert strong == POS
    # The weaker image is paler: nearer white in every channel.
    assert all(abs(w - z) < abs(s - z) for w, s, z in zip(weak, strong, ZERO, strict=True))
    separate = images.gallery(exp, columns=2, scale=4, shared_scale=False)
    assert heat_cell(separate, 0) == heat_cell(separate, 1) == POS
    # A caption row under the grid says which (different text, so different pixels).
    grid_height = 2 * (20 + 32) + 2
    assert (shared[grid_height:] < 100).any()
    assert not np.array_equal(shared[grid_height:], separate[grid_height:])


def test_gallery_and_comparison_layouts():
    exp = explanation(batch=5, channels=3)
    rgb = images.gallery(exp, columns=2, scale=4)
    # 3 rows of cells; a cell is two 32-pixel panels under 20-pixel titles, 2 apart.
    cell_h = 2 * (20 + 32) + 2
    assert rgb.shape[0] > 3 * cell_h + 2 * 10
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    exps = images.compare_baselines(model, x, target=1, n_steps=4)
    assert list(exps) == ["zeros", "blur", "noise", "mean"]
    assert exps["mean"].baseline == "mean(n_reference=2)"
    rgb = images.comparison(exps, 1, scale=5)
    assert rgb.shape[0] > 2 * (20 + 40) + 6 and rgb.shape[1] >= 5 * 40 + 4 * 6
    with pytest.raises(ValueError, match="example=9 is out of range"):
        images.side_by_side(exp, 9)


def test_comparison_states_a_shared_or_separate_scale():
    exp = two_images()
    weak = two_images()
    weak.attributions = exp.attributions / 10
    pair = {"strong": exp, "weak": weak}
    shared = images.comparison(pair, 0, scale=4, clip=None)
    separate = images.comparison(pair, 0, scale=4, clip=None, shared_scale=False)
    heat_top = 20 + 32 + 6 + 20 + 1  # second row: title strip, then the heatmap

    def cell(rgb: np.ndarray, column: int) -> tuple[int, ...]:
        return colour(rgb, heat_top, column * (32 + 6) + 1)

    assert cell(shared, 1) == POS and cell(shared, 2) != POS
    assert cell(separate, 1) == cell(separate, 2) == POS


def test_channels_last_arrays_are_read_as_such_and_ambiguous_ones_refused():
    chw = np.random.default_rng(0).standard_normal((3, 32, 32))
    hwc = np.moveaxis(chw, 0, -1)
    # Captum's (H, W, C) layout gave a (32, 3, 3) picture.
    assert images.heatmap(hwc).shape == (32, 32, 3)
    assert np.array_equal(images.heatmap(hwc), images.heatmap(chw))
    assert np.array_equal(images.image_rgb(hwc), images.image_rgb(chw))
    assert images.channel_axis_of((28, 28, 1)) == 2 and images.channel_axis_of((1, 28, 28)) == 0
    for shape in [(3, 8, 3), (5, 8, 8)]:
        with pytest.raises(ValueError, match=r"cannot tell the channel axis.*channel_axis=0"):
            images.heatmap(np.zeros(shape))
    assert images.heatmap(np.zeros((3, 8, 3)), channel_axis=0).shape == (8, 3, 3)
    assert images.heatmap(np.zeros((3, 8, 3)), channel_axis=-1).shape == (3, 8, 3)


def test_grayscale_images_draw_in_every_view():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    x = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(model, x, target=0, n_steps=4, kind="image")
    exp.attributions = torch.from_numpy(np.stack([corners()[0]] * 2)).float()
    rgb = images.side_by_side(exp, 0, scale=10, clip=None)
    assert colour(rgb, 25, 86 + 5) == POS and colour(rgb, 95, 86 + 75) == NEG
    assert heat_cell(images.gallery(exp, scale=4, clip=None), 1) == POS
    assert images.comparison({"a": exp, "b": exp}, 1, scale=4).shape[1] >= 3 * 32


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="how='mean' is not an aggregation"):
        images.aggregate_channels(np.zeros((1, 2, 2)), "mean")
    with pytest.raises(ValueError, match="sign='both' is not a view"):
        images.heatmap(np.zeros((2, 2)), "both")
    # Captum's spelling of the absolute view is ours too.
    a = corners()
    assert np.array_equal(images.heatmap(a, "absolute_value"), images.heatmap(a, "absolute"))
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
    assert POS in {colour(rgb, r, c) for r in range(100, rgb.shape[0]) for c in range(240)}
    assert colour(rgb, 25, 80 + 6 + 5) == POS
    path = _png.write_png(tmp_path / "x.png", rgb)
    assert path.read_bytes() == _png.encode_png_stdlib(rgb)


def test_compare_baselines_is_compare_with_one_method_per_baseline(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)).double()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exps = images.compare_baselines(model, x, target=1, n_steps=4)
    methods = images.baseline_methods(model, n_steps=4)
    scored = integrad.compare(model, x, target=1, methods=methods, metrics=("deletion",), steps=4)
    assert list(scored.table().index) == list(exps) == ["zeros", "blur", "noise", "mean"]
    for name, exp in exps.items():
        assert torch.equal(scored.explanations[name].attributions, exp.attributions)
    # The same picture from either: comparison draws the Comparison's explanations.
    assert np.array_equal(images.comparison(scored.explanations), images.comparison(exps))
    with pytest.raises(TypeError, match="baseline_methods takes no target"):
        images.baseline_methods(model, target=1)
