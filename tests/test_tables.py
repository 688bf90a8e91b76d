"""Tables: exact attributions of a linear model from mean/median baselines, ranking, charts."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot
import numpy as np
import pandas as pd
import pytest
import torch

from integrad import tables
from integrad.views import _png

matplotlib.use("Agg")

WEIGHTS = [2.0, -1.0, 0.5, 0.0]
NAMES = ["age", "dose", "weight", "unused"]


def linear() -> torch.nn.Module:
    model = torch.nn.Linear(4, 1, bias=True).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([WEIGHTS]))
        model.bias.fill_(0.3)
    return model


def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(20, 4)) * [1, 2, 3, 4] + [5, 0, -1, 2], columns=NAMES)


@pytest.mark.parametrize("baseline", ["mean", "median"])
def test_linear_model_gets_weight_times_distance_from_the_training_baseline(baseline):
    train = data()
    rows = train.iloc[:3]
    exp = tables.tabular(linear(), rows, training_data=train, baseline=baseline, n_steps=4)
    centre = train.mean() if baseline == "mean" else train.median()
    expected = (rows - centre).to_numpy() * np.array(WEIGHTS)
    assert torch.allclose(exp.attributions, torch.from_numpy(expected), atol=1e-12)
    assert exp.attributions[:, 3].eq(0).all()  # dummy: an unused feature gets exactly 0
    assert exp.extras["feature_names"] == NAMES and exp.kind == "table"
    assert exp.baseline == f"{baseline} of training data (n=20)"


def test_ranked_table_orders_by_magnitude_and_shares_sum_to_one():
    train = data()
    exp = tables.tabular(
        linear(),
        train.to_numpy()[:2],
        training_data=train.to_numpy(),
        feature_names=NAMES,
        n_steps=4,
    )
    frame = tables.ranked(exp, 1)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["feature", "value", "attribution", "share"]
    magnitudes = frame["attribution"].abs().to_list()
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert frame["share"].sum() == pytest.approx(1.0)
    assert frame.set_index("feature").loc["dose", "value"] == train.iloc[1]["dose"]
    rows = tables.ranked(exp, 1, top=2, as_frame=False)
    assert [r["feature"] for r in rows] == frame["feature"].to_list()[:2]


def test_global_importance_is_mean_absolute_attribution():
    train = data()
    exp = tables.tabular(linear(), train, training_data=train, n_steps=4)
    importance = tables.global_importance(exp).set_index("feature")
    expected = (train - train.mean()).abs().mean() * np.abs(WEIGHTS)
    for name in NAMES:
        assert importance.loc[name, "mean_abs_attribution"] == pytest.approx(expected[name])
    assert importance.index[-1] == "unused"


def test_bar_chart_colours_bars_by_sign():
    train = data()
    exp = tables.tabular(linear(), train.iloc[:1], training_data=train, baseline="zeros", n_steps=4)
    fig = tables.bar_chart(exp, top=3)
    (ax,) = fig.axes
    bars = ax.patches
    assert len(bars) == 3
    for bar in bars:
        expected = _png.POSITIVE if bar.get_width() >= 0 else _png.NEGATIVE
        assert np.allclose(bar.get_facecolor()[:3], expected / 255)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    assert (np.abs(pixels.astype(int) - _png.POSITIVE).sum(-1) < 6).any()
    assert len(tables.importance_chart(exp).axes[0].patches) == 4
    matplotlib.pyplot.close("all")


def test_feature_names_are_drawn_literally_not_as_mathtext():
    train = data()
    names = ["$\\j$", "a$b", "$x^2$", "cost in $"]
    exp = tables.tabular(
        linear(), train.iloc[:2], training_data=train, feature_names=names, n_steps=4
    )
    exp.baseline = "$\\undefined$"
    for fig in (tables.bar_chart(exp, top=4), tables.importance_chart(exp)):
        fig.canvas.draw()  # mathtext would fail here on "$\\j$"
        labels = {t.get_text() for t in fig.axes[0].get_yticklabels()}
        assert {n.split(" = ")[0] for n in labels} == set(names)
    matplotlib.pyplot.close("all")


def test_rows_go_to_the_models_dtype_and_device(monkeypatch):
    # A model on another device (meta stands in for a GPU) gets its inputs there.
    seen = {}

    def fake_explain(model, inputs, *, baselines, target, **kwargs):
        seen.update(inputs=inputs, baselines=baselines)
        raise RuntimeError("stop")

    monkeypatch.setattr("integrad.tables.explain", fake_explain)
    model = torch.nn.Linear(3, 1, device="meta", dtype=torch.float64)
    with pytest.raises(RuntimeError, match="stop"):
        tables.tabular(model, np.ones((2, 3)), baseline="zeros")
    for t in seen.values():
        assert (t.device.type, t.dtype) == ("meta", torch.float64)


def test_bad_tables_are_named():
    train = data()
    with pytest.raises(ValueError, match="needs training_data"):
        tables.tabular(linear(), train, baseline="median")
    with pytest.raises(ValueError, match="baseline='mode'"):
        tables.tabular(linear(), train, baseline="mode")
    with pytest.raises(ValueError, match="3 names for 4 features"):
        tables.tabular(linear(), train, training_data=train, feature_names=NAMES[:3])
    with pytest.raises(ValueError, match="training_data has 3 features"):
        tables.tabular(linear(), train, training_data=train.iloc[:, :3])
    with pytest.raises(ValueError, match=r"must be 2-d \(rows, features\)"):
        tables.tabular(linear(), np.zeros((2, 2, 4)))


def test_bar_charts_say_what_they_show_and_draw_into_the_callers_axes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = data()
    exp = tables.tabular(linear(), train.iloc[:2], training_data=train, n_steps=4)
    owner = Figure()
    FigureCanvasAgg(owner)
    left, right = owner.subplots(1, 2)
    assert tables.bar_chart(exp, 1, top=2, ax=left) is owner
    assert tables.importance_chart(exp, ax=right) is owner
    assert len(owner.axes) == 2 and len(left.patches) == 2 and len(right.patches) == 4
    assert left.get_title().startswith("Integrated Gradients (gausslegendre) of the output")
    assert "row 1, top 2 by |attribution|" in left.get_title()
    assert "contribution to F(x) - F(x') (units of F): red raises F" in left.get_xlabel()
    assert f"delta = {float(exp.delta[1]):.2g}" in left.get_xlabel()
    assert "mean |attribution| over rows (units of F)" in right.get_xlabel()
    owner.canvas.draw()
    pixels = np.asarray(owner.canvas.buffer_rgba())[..., :3]
    assert (pixels[: pixels.shape[0] // 10] < 80).any()  # title text in the top band
