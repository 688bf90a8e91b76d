"""Explanation.plot picks the view for the kind of input."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot
import pytest
import torch

import integrad
from integrad import views

matplotlib.use("Agg")


def flat_model(features: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(features, 2))


# Every valid input shape, with and without kind=: (shape, kind given, view, axes drawn:
# an image has four panels and two colour bars, a series three panels and one).
# Grayscale (batch, H, W) images and univariate (batch, T) series were drawn as a series
# and a table when the kind was guessed from the shape.
SHAPES = [
    ((2, 1, 6, 6), None, "image", 6),
    ((2, 3, 6, 6), "image", "image", 6),
    ((2, 6, 6), "image", "image", 6),
    ((2, 5), None, "table", 1),
    ((2, 5), "table", "table", 1),
    ((2, 12), "timeseries", "timeseries", 4),
    ((2, 12, 3), "timeseries", "timeseries", 4),
]


@pytest.mark.parametrize(("shape", "kind", "view", "axes"), SHAPES)
def test_the_view_follows_the_kind_and_else_the_unambiguous_shape(shape, kind, view, axes):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    features = int(torch.tensor(shape[1:]).prod())
    exp = integrad.explain(flat_model(features), x, target=1, n_steps=4, kind=kind)
    assert exp.kind == kind
    assert views.kind_of(exp) == view
    fig = exp.plot()
    assert len(fig.axes) == axes
    matplotlib.pyplot.close(fig)


def test_three_dimensional_inputs_without_a_kind_ask_for_one():
    exp = integrad.explain(flat_model(36), torch.rand(2, 6, 6), target=1, n_steps=4)
    for draw in (exp.plot, lambda: exp.to_html("unused.html")):
        with pytest.raises(ValueError, match=r"\(2, 6, 6\) may be grayscale images.*kind="):
            draw()
    fig = exp.plot(kind="image")  # said at drawing time
    assert len(fig.axes) == 6
    matplotlib.pyplot.close(fig)


def test_a_kind_that_does_not_fit_the_inputs_is_refused_before_any_work():
    calls = []

    def model(x):
        calls.append(1)
        return x.flatten(1).sum(1)

    with pytest.raises(
        ValueError, match=r"kind='table' needs inputs with 2 dimensions.*\(2, 1, 4, 4\)"
    ):
        integrad.explain(model, torch.rand(2, 1, 4, 4), kind="table")
    with pytest.raises(ValueError, match=r"kind='audio' is not a kind of input"):
        integrad.explain(model, torch.rand(2, 4), kind="audio")
    with pytest.raises(ValueError, match=r"output_kind='softmax' must be None, 'logits'"):
        integrad.explain(model, torch.rand(2, 4), output_kind="softmax")
    assert calls == []


def test_unknown_kinds_are_named_and_tokens_mean_text():
    exp = integrad.explain(flat_model(12), torch.rand(2, 12, 1), target=0, n_steps=4)
    with pytest.raises(ValueError, match="kind='audio' is not a view"):
        views.plot(exp, "audio")
    exp.extras["tokens"] = [["a"], ["b"]]
    assert views.kind_of(exp) == "text"


def test_text_has_no_figure_and_says_where_to_look():
    exp = integrad.explain(flat_model(3), torch.rand(2, 3), target=0, n_steps=4)
    exp.extras["tokens"] = [["a", "b", "c"], ["d", "e", "f"]]
    with pytest.raises(ValueError, match=r"no matplotlib view for text.*to_html"):
        exp.plot()


def test_import_integrad_needs_no_optional_package():
    import subprocess
    import sys

    code = (
        "import sys, integrad; "
        "print(sorted(m for m in ('matplotlib', 'PIL', 'pandas', 'safetensors', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["image", "table", "timeseries"])
def test_every_figure_says_what_was_explained_and_returns_an_unregistered_figure(kind):
    shape = {"image": (2, 1, 6, 6), "table": (2, 5), "timeseries": (2, 12, 3)}[kind]
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    features = int(torch.tensor(shape[1:]).prod())
    exp = integrad.explain(
        flat_model(features), x, target=1, n_steps=4, kind=kind, output_kind="logits"
    )
    fig = exp.plot(example=1, class_names=["no", "yes"])
    words = " ".join(
        [fig.get_suptitle(), fig.get_supxlabel()]
        + [t for ax in fig.axes for t in (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())]
    )
    predicted = int(exp.predicted[1])
    assert "target 1 'yes'" in words and f"predicted {predicted} " in words
    assert f"(p {float(exp.predicted_probability[1]):.2f})" in words
    # output_kind="logits": the scales read in logit units, in every kind's figure.
    assert "logit units" in words and "units of F" not in words and "red raises F" in words
    assert f"delta = {float(exp.delta[1]):.2g}" in words
    # Not a pyplot figure: a notebook shows the returned value once, nothing to close.
    assert fig not in map(matplotlib.pyplot.figure, matplotlib.pyplot.get_fignums())
