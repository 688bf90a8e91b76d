"""IDGI: complete by construction, its closed form on linear models, and the paper's sum."""

from __future__ import annotations

import pytest
import torch
from conftest import smooth_mlp

import integrad


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 3, 20])
def test_complete_by_construction_at_any_n(n):
    model = smooth_mlp()
    x, b = rand(4, 6), rand(4, 6, seed=1)
    exp = integrad.explain(model, x, baselines=b, target=2, n_steps=n, method="idgi")
    assert exp.delta.abs().max() < 1e-12
    assert exp.n_evals.tolist() == [n] * 4
    assert exp.n_forward.tolist() == [n + 1] * 4


def test_linear_model_shares_the_change_by_squared_weights(device):
    model = torch.nn.Linear(5, 2).double().to(device)
    x, b = rand(3, 5).to(device), rand(3, 5, seed=1).to(device)
    exp = integrad.explain(model, x, baselines=b, target=0, n_steps=4, method="idgi")
    w = model.weight[0].detach()
    change = ((x - b) @ w).unsqueeze(1)
    torch.testing.assert_close(exp.attributions, w**2 / (w**2).sum() * change)


def test_matches_the_papers_sum_computed_point_by_point():
    model = smooth_mlp()
    x, b = rand(2, 6), rand(2, 6, seed=2)
    n = 7
    expected = torch.zeros_like(x)
    for i in range(2):
        f = lambda t: model(t.unsqueeze(0))[0, 1]  # noqa: E731
        for j in range(n):
            a = b[i] + (j / n) * (x[i] - b[i])
            a_next = b[i] + ((j + 1) / n) * (x[i] - b[i])
            g = torch.func.grad(f)(a)
            expected[i] += g**2 / (g**2).sum() * (f(a_next) - f(a)).detach()
    ours = integrad.IntegratedGradients(model).attribute(
        x, baselines=b, target=1, n_steps=n, method="idgi", internal_batch_size=3
    )
    torch.testing.assert_close(ours, expected)


def test_tuple_inputs_share_one_normalisation():
    def model(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.tanh(a.sum(1) * 0.3 + 2 * c[:, 0])

    x = (rand(2, 3), rand(2, 1, seed=1))
    exp = integrad.explain(model, x, n_steps=10, method="idgi")
    total = exp.attributions[0].sum(1) + exp.attributions[1].sum(1)
    torch.testing.assert_close(total, exp.output - exp.baseline_output)
    with pytest.raises(ValueError, match=r"n_steps must be a positive int for method='idgi'"):
        integrad.explain(model, x, n_steps=0, method="idgi")
