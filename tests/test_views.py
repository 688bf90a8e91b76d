"""Explanation.plot picks the view for the kind of input."""

from __future__ import annotations

import matplotlib
import pytest
import torch

import integrad
from integrad import views

matplotlib.use("Agg")


def flat_model(features: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(features, 2))


@pytest.mark.parametrize(
    ("shape", "kind", "axes"),
    [((2, 1, 6, 6), "image", 5), ((2, 12, 3), "timeseries", 4), ((2, 5), "table", 1)],
)
def test_kind_is_read_from_the_shape_and_plot_follows(shape, kind, axes):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    features = int(torch.tensor(shape[1:]).prod())
    exp = integrad.explain(flat_model(features), x, target=1, n_steps=4)
    assert views.kind_of(exp) == kind
    fig = exp.plot()
    assert len(fig.axes) == axes
    matplotlib.pyplot.close(fig)


def test_extras_kind_wins_and_unknown_kinds_are_named():
    exp = integrad.explain(flat_model(12), torch.rand(2, 12, 1), target=0, n_steps=4)
    exp.extras["kind"] = "table"
    assert views.kind_of(exp) == "table"
    exp.extras["kind"] = "audio"
    with pytest.raises(ValueError, match=r"extras\['kind'\]='audio' is not one of"):
        views.kind_of(exp)
    with pytest.raises(ValueError, match="kind='audio' is not a view"):
        views.plot(exp, "audio")
    exp.extras.pop("kind")
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
