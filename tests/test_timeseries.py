"""Time series: per-step and per-feature sums, pixels of the heatmap and bars, figure layout."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot
import numpy as np
import pytest
import torch

import integrad
from integrad import timeseries
from integrad.views import _png

matplotlib.use("Agg")

POS = tuple(_png.POSITIVE.astype(int))
NEG = tuple(_png.NEGATIVE.astype(int))
ZERO = tuple(_png.NEUTRAL.astype(int))


class Windows(torch.nn.Module):
    """F = sum of feature 0 over steps 6..8 minus feature 1 over steps 1..2; feature 2 unused."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 6:9, 0].sum(1) - x[:, 1:3, 1].sum(1)


def test_linear_series_attributions_aggregate_to_the_right_steps_and_features():
    x = torch.ones(2, 10, 3, dtype=torch.float64)
    exp = integrad.explain(Windows(), x, n_steps=4)
    steps = timeseries.per_time(exp.attributions)
    features = timeseries.per_feature(exp.attributions)
    assert np.allclose(steps[0], [0, -1, -1, 0, 0, 0, 1, 1, 1, 0], rtol=0, atol=1e-12)
    assert np.allclose(features[0], [3, -2, 0], rtol=0, atol=1e-12)
    assert np.allclose(steps.sum(1), (exp.output - exp.baseline_output).numpy())
    # (batch, time) inputs are one feature.
    assert timeseries.per_feature(torch.ones(2, 5)).shape == (2, 1)


def test_heatmap_puts_features_in_rows_and_time_in_columns():
    a = np.zeros((10, 3))
    a[7, 0], a[1, 1] = 1.0, -1.0
    rgb = timeseries.heatmap(a, cell=(4, 6))
    assert rgb.shape == (3 * 6, 10 * 4, 3)
    assert tuple(rgb[2, 7 * 4 + 1]) == POS  # feature 0, step 7
    assert tuple(rgb[6 + 2, 1 * 4 + 1]) == NEG  # feature 1, step 1
    assert tuple(rgb[12 + 2, 7 * 4 + 1]) == ZERO  # feature 2 is never used


def test_bars_rise_red_and_fall_blue_about_the_zero_line():
    rgb = timeseries.bars([1.0, 0.0, -0.5], height=40, step_width=5)
    assert rgb.shape == (41, 15, 3)
    assert tuple(rgb[1, 2]) == POS and tuple(rgb[19, 2]) == POS  # full half-height
    assert tuple(rgb[21, 12]) == NEG and tuple(rgb[31, 12]) != NEG  # half of it
    assert (rgb[:20, 5:10] == 255).all() and (rgb[21:, 5:10] == 255).all()


@pytest.mark.parametrize("step_width", [1, 2])
def test_narrow_bars_are_drawn(step_width):
    # The report uses 2-pixel steps for series longer than 240 steps.
    rgb = timeseries.bars([1.0, -1.0], height=20, step_width=step_width)
    assert tuple(rgb[1, 0]) == POS
    assert tuple(rgb[19, step_width]) == NEG


def test_figure_shows_series_bars_and_heatmap():
    x = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(Windows(), x, n_steps=4, kind="timeseries")
    fig = exp.plot(example=1, feature_names=["a", "b", "c"])
    assert len(fig.axes) == 4  # series, bars, heatmap, colour bar
    assert len(fig.axes[1].patches) == 10
    assert [t.get_text() for t in fig.axes[2].get_yticklabels()] == ["a", "b", "c"]
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match=r"must be \(batch, time\) or \(batch, time, features\)"):
        timeseries.per_time(torch.zeros(1, 2, 3, 4))


def test_figure_is_titled_with_a_scaled_colour_bar_and_draws_into_a_given_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(Windows(), x, n_steps=4, kind="timeseries")
    owner = Figure(figsize=(8, 7))
    FigureCanvasAgg(owner)
    assert timeseries.figure(exp, 1, fig=owner) is owner
    bar = owner.axes[3]
    assert "units of F" in bar.get_ylabel() and "red raises F" in bar.get_ylabel()
    limit = float(exp.attributions[1].abs().max())
    assert bar.get_ylim() == pytest.approx((-limit, limit))
    assert f"colour limit ±{limit:.3g}" in owner.get_supxlabel()
    assert owner.get_suptitle().startswith("Integrated Gradients (gausslegendre) of the output")
    owner.canvas.draw()
    pixels = np.asarray(owner.canvas.buffer_rgba())[..., :3].astype(int)
    box = bar.get_window_extent()
    column = pixels[int(pixels.shape[0] - box.y1) + 2, int((box.x0 + box.x1) / 2)]
    assert np.abs(column - _png.POSITIVE).max() <= 12  # the bar's top is the diverging map's red
