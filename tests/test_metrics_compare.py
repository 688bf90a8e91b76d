"""integrad.compare: one table of methods scored with the same draws; exact on a linear model."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import integrad
from integrad.metrics import deletion, perturbations, sensitivity_max


def linear_setup() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Linear(6, 1).double().eval()
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x


def methods(model: nn.Module) -> dict[str, Any]:
    noise = torch.Generator().manual_seed(2)
    return {
        "IG": lambda x, target: integrad.explain(model, x, target=target),
        "IG again": lambda x, target: integrad.explain(model, x, target=target),
        "IG from 0.5": lambda x, target: integrad.explain(model, x, target=target, baselines=0.5),
        "random": lambda x, target: torch.randn(x.shape, dtype=x.dtype, generator=noise),
        "negated IG": lambda x, target: -integrad.explain(model, x, target=target).attributions,
    }


def test_linear_model_table_is_exact_and_ranks_ig_first() -> None:
    model, x = linear_setup()
    result = integrad.compare(model, x, methods=methods(model), steps=6)
    table = result.table()
    assert list(table.index) == ["IG", "IG again", "IG from 0.5", "random", "negated IG"]
    assert list(table.columns) == [
        "deletion", "insertion", "infidelity", "completeness delta",
        "evaluations per example", "seconds per example",
    ]  # fmt: skip
    exp = integrad.explain(model, x)
    # On a linear model IG from zeros is exact: removal on random subsets costs no infidelity.
    # Each Explanation's features go to its own baselines: exact from 0.5 too.
    assert table.loc["IG", "infidelity"] < 1e-24
    assert table.loc["IG from 0.5", "infidelity"] < 1e-24
    assert table.loc["random", "infidelity"] > 1e-3
    assert table.loc["IG", "completeness delta"] < 1e-12
    assert table.loc["IG", "evaluations per example"] == float(exp.n_evals.double().mean())
    for column in ("completeness delta", "evaluations per example"):
        assert math.isnan(table.loc["random", column])
    assert (table["seconds per example"] >= 0).all()
    # The numbers are the metric functions' own: deletion from the same call.
    direct = deletion(model, x, exp, steps=6).auc.mean()
    assert table.loc["IG", "deletion"] == pytest.approx(float(direct), rel=1e-12)
    # IG's ranking is the exact one: most relevant removed first falls fastest.
    assert table.loc["IG", "deletion"] < table.loc["random", "deletion"]
    assert table.loc["random", "deletion"] < table.loc["negated IG", "deletion"]
    assert table.loc["IG", "insertion"] > table.loc["negated IG", "insertion"]


def test_every_method_sees_the_same_draws() -> None:
    """Two identical methods get identical scores, random metrics included (ROAD too)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(),
                          nn.Linear(2 * 6 * 6, 3)).double()  # fmt: skip
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    twins = {
        name: lambda x, target: integrad.explain(model, x, target=target, n_steps=16)
        for name in ("a", "b")
    }
    result = integrad.compare(
        model, x, target=1, methods=twins, metrics=("deletion", "infidelity", "sensitivity"),
        curve_baselines="road", n_perturb_samples=4, steps=4,
        generator=torch.Generator().manual_seed(9),
    )  # fmt: skip
    for metric in ("deletion", "infidelity", "sensitivity"):
        assert torch.equal(result.scores["a"][metric], result.scores["b"][metric])
    expected = sensitivity_max(
        twins["a"], x, perturb_func=perturbations.uniform(torch.Generator().manual_seed(0)),
        n_perturb_samples=4, target=1,
    )  # fmt: skip
    default_seed = integrad.compare(
        model, x, target=1, methods={"a": twins["a"]}, metrics=("sensitivity",),
        n_perturb_samples=4,
    )  # fmt: skip
    torch.testing.assert_close(default_seed.scores["a"]["sensitivity"], expected.double())


def test_custom_metrics_and_errors() -> None:
    model, x = linear_setup()

    def total(forward_func: Any, inputs: torch.Tensor, attributions: Any, target: Any) -> Any:
        return attributions.attributions.sum(1)

    result = integrad.compare(
        model, x, methods={"IG": methods(model)["IG"]}, metrics={"total": total}
    )
    exp = integrad.explain(model, x)
    torch.testing.assert_close(result.scores["IG"]["total"], exp.attributions.sum(1))
    ig = {"IG": methods(model)["IG"]}
    with pytest.raises(ValueError, match="methods must be a non-empty dict"):
        integrad.compare(model, x, methods={})
    with pytest.raises(TypeError, match=r"methods\['bad'\] must be callable, got int"):
        integrad.compare(model, x, methods={"bad": 3})
    with pytest.raises(ValueError, match="unknown metric 'aopc'"):
        integrad.compare(model, x, methods=ig, metrics=("aopc",))
    with pytest.raises(ValueError, match=r"metric 'half' must give one value per example"):
        integrad.compare(model, x, methods=ig, metrics={"half": lambda f, x, a, t: x[:2, 0]})
    with pytest.raises(ValueError, match=r"the attributions of methods\['short'\] has shape"):
        integrad.compare(model, x, methods={"short": lambda x, target: x[:, :3]})
