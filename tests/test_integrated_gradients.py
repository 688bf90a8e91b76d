"""Integrated Gradients against exact answers and the axioms."""

from __future__ import annotations

import dataclasses
import itertools
import re
import warnings

import pytest
import torch
from conftest import small_cnn, smooth_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import integrad
from integrad.quadrature import METHODS

D = torch.float64


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = D) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- analytic oracles --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 3, 17])
def test_linear_model_is_exact_for_every_rule(method, n):
    model = nn.Linear(7, 3).double()
    x, b = rand(4, 7), rand(4, 7, seed=1)
    exp = integrad.explain(model, x, baselines=b, target=2, n_steps=n, method=method)
    expected = model.weight[2].detach() * (x - b)
    torch.testing.assert_close(exp.attributions, expected, rtol=0, atol=1e-10)
    assert exp.delta.abs().max() < 1e-10


def product(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0] * x[:, 1]


@pytest.mark.parametrize("n", [2, 3, 8])
def test_product_splits_evenly_from_zero_baseline(n):
    x = rand(5, 2)
    exp = integrad.explain(product, x, n_steps=n)
    half = (x[:, 0] * x[:, 1] / 2).unsqueeze(1).expand(5, 2)
    torch.testing.assert_close(exp.attributions, half, rtol=0, atol=1e-12)


def test_gauss_legendre_exactness_follows_the_polynomial_degree():
    # Two nodes integrate the product (quadratic along the path) exactly; one node cannot
    # integrate a cubic, so the oracle can tell an exact rule from a merely close one.
    x = rand(5, 2) + 3.0
    b = torch.ones_like(x)
    exp = integrad.explain(product, x, baselines=b, n_steps=2)
    assert exp.delta.abs().max() < 1e-12
    exp1 = integrad.explain(lambda t: product(t) * t[:, 0], x, baselines=b, n_steps=1)
    assert exp1.delta.abs().max() > 1e-3


@pytest.mark.parametrize("g", [torch.sigmoid, torch.tanh, nn.functional.softplus])
def test_closed_form_for_a_function_of_a_projection(g, device):
    w = rand(6, seed=3).to(device)
    x, b = rand(4, 6, seed=4).to(device), rand(4, 6, seed=5).to(device) * 0.3

    def model(t: torch.Tensor) -> torch.Tensor:
        return g(t @ w)

    exp = integrad.explain(model, x, baselines=b, n_steps=64)
    s, s0 = x @ w, b @ w
    expected = w * (x - b) / (s - s0).unsqueeze(1) * (g(s) - g(s0)).unsqueeze(1)
    torch.testing.assert_close(exp.attributions, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_paper_relu_example_gets_what_the_gradient_misses(method):
    # f(x) = 1 - ReLU(1 - x) from the IG paper: flat at x = 2, yet f(2) - f(0) = 1.
    def f(x: torch.Tensor) -> torch.Tensor:
        return 1 - torch.relu(1 - x[:, 0])

    x = torch.tensor([[2.0]], dtype=D)
    exp = integrad.explain(f, x, n_steps=10, method=method)
    assert exp.attributions.item() == pytest.approx(1.0, abs=1e-12)
    grad = torch.func.grad(lambda t: f(t.unsqueeze(0)).sum())(x[0])
    assert grad.item() == 0.0


def test_relu_minimum_gives_everything_to_the_smaller_feature():
    # min(x1, x2) = x1 - ReLU(x1 - x2): along the path from 0 the same feature stays smaller.
    def f(x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] - torch.relu(x[:, 0] - x[:, 1])

    x = torch.tensor([[3.0, 1.0], [0.5, 2.0]], dtype=D)
    exp = integrad.explain(f, x, n_steps=7)
    torch.testing.assert_close(exp.attributions, torch.tensor([[0.0, 1.0], [0.5, 0.0]], dtype=D))


# -- axioms ------------------------------------------------------------------------------


def test_completeness_delta_shrinks_as_steps_grow():
    model = smooth_mlp()
    x = rand(8, 6)
    deltas = [
        integrad.explain(model, x, target=1, n_steps=n, method="riemann_middle").delta.abs().max()
        for n in (4, 16, 64, 256)
    ]
    assert all(later < earlier / 4 for earlier, later in itertools.pairwise(deltas))
    assert integrad.explain(model, x, target=1, n_steps=32).delta.abs().max() < 1e-10


def test_sensitivity_a_feature_that_changes_the_output_gets_credit():
    model = smooth_mlp()
    x = torch.zeros(1, 6, dtype=D)
    x[0, 2] = 1.5
    exp = integrad.explain(model, x, target=0, n_steps=32)
    change = (exp.output - exp.baseline_output).item()
    assert abs(change) > 1e-3
    assert exp.attributions[0, 2].item() == pytest.approx(change, rel=1e-9)
    assert exp.attributions[0, [0, 1, 3, 4, 5]].abs().max() == 0


def test_dummy_feature_gets_exactly_zero():
    net = smooth_mlp(features=4)

    def model(x: torch.Tensor) -> torch.Tensor:
        return net(x[:, :4])  # feature 4 is ignored

    exp = integrad.explain(model, rand(3, 5), target=2)
    assert torch.equal(exp.attributions[:, 4], torch.zeros(3, dtype=D))


def test_an_unused_tuple_input_gets_exact_zeros():
    net = smooth_mlp(features=4)
    exp = integrad.explain(lambda a, b: net(a), (rand(3, 4), rand(3, 2)), target=0)
    assert torch.equal(exp.attributions[1], torch.zeros(3, 2, dtype=D))


def test_implementation_invariance():
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(5, 12), nn.GELU(), nn.Linear(12, 2))
    # The same function with the hidden units permuted and split into two halves.
    perm = torch.randperm(12)
    lin_a, lin_b = nn.Linear(5, 6), nn.Linear(5, 6)
    with torch.no_grad():
        lin_a.weight.copy_(first[0].weight[perm[:6]])
        lin_a.bias.copy_(first[0].bias[perm[:6]])
        lin_b.weight.copy_(first[0].weight[perm[6:]])
        lin_b.bias.copy_(first[0].bias[perm[6:]])
    out_w = first[2].weight[:, perm].detach()

    def second(x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([nn.functional.gelu(lin_a(x)), nn.functional.gelu(lin_b(x))], dim=1)
        return h @ out_w.T + first[2].bias

    x = rand(6, 5, dtype=torch.float32)
    a = integrad.explain(first, x, target=1).attributions
    b = integrad.explain(second, x, target=1).attributions
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(1, 12),
    features=st.integers(1, 6),
    batch=st.integers(1, 4),
    act=st.sampled_from([nn.Tanh, nn.Softplus, nn.GELU, nn.Sigmoid]),
)
def test_property_completeness_on_random_smooth_mlps(seed, width, features, batch, act):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(features, width), act(), nn.Linear(width, 2)).double()
    x = rand(batch, features, seed=seed)
    exp = integrad.explain(model, x, baselines=rand(batch, features, seed=seed + 1), target=1)
    scale = 1.0 + (exp.output - exp.baseline_output).abs()
    assert (exp.delta.abs() / scale).max() < 1e-8


# -- chunking does not change results -------------------------------------------------------


@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_results_do_not_depend_on_chunking(dtype, rtol):
    model = small_cnn().to(dtype)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    ref = integrad.explain(model, x, target=3, n_steps=40).attributions
    scale = ref.abs().max()
    for kwargs in [
        {"internal_batch_size": 1},
        {"internal_batch_size": 7},
        {"internal_batch_size": 64},
        {"max_memory": 1},
        {"max_memory": 50_000},
        {"max_memory": 1 << 34},
    ]:
        got = integrad.explain(model, x, target=3, n_steps=40, **kwargs).attributions
        assert ((got - ref).abs().max() / scale) < rtol, kwargs


def test_chunks_fit_the_memory_budget():
    model = small_cnn()
    x = torch.rand(4, 1, 8, 8)
    loose = integrad.explain(model, x, target=0, n_steps=64)
    per_point = loose.extras["bytes_per_point"]
    assert per_point > 8 * 8 * 4  # at least the point and its gradient
    budget = int(per_point * 10)
    tight = integrad.explain(model, x, target=0, n_steps=64, max_memory=budget)
    # 256 path points, at most 10 per chunk.
    assert tight.extras["chunks"] >= 256 // 10
    assert loose.extras["chunks"] < tight.extras["chunks"]


# -- the Explanation ------------------------------------------------------------------------


def test_explanation_fields():
    model = smooth_mlp()
    x, b = rand(3, 6), rand(3, 6, seed=2)
    exp = integrad.explain(model, x, baselines=b, target=[0, 1, 2], n_steps=20)
    torch.testing.assert_close(exp.output, model(x)[torch.arange(3), torch.tensor([0, 1, 2])])
    torch.testing.assert_close(
        exp.baseline_output, model(b)[torch.arange(3), torch.tensor([0, 1, 2])]
    )
    total = exp.attributions.sum(dim=1)
    torch.testing.assert_close(exp.delta, total - (exp.output - exp.baseline_output))
    worked = dataclasses.replace(
        exp,
        delta=torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=D),
        output=torch.tensor([1.0, 2.0, 3.0, 5.0], dtype=D),
        baseline_output=torch.tensor([0.0, 4.0, 3.0, 5.0], dtype=D),
    )
    torch.testing.assert_close(
        worked.relative_delta, torch.tensor([0.1, 0.1, float("inf"), 0.0], dtype=D)
    )
    assert exp.n_evals.tolist() == [20, 20, 20]
    assert (exp.method, exp.n_steps, exp.target) == ("gausslegendre", 20, [0, 1, 2])
    assert exp.inputs is not x and torch.equal(exp.inputs, x) and torch.equal(exp.baselines, b)
    assert "gausslegendre" in repr(exp) and "max|delta|" in repr(exp)
    assert "evals/example=20, forward-only/example=2" in repr(exp)
    assert "n_forward=" not in repr(exp)  # a known field, not an unknown one


def test_multiply_by_inputs_false_returns_the_path_integral_of_the_gradient():
    model = nn.Linear(4, 2).double()
    x, b = rand(3, 4), rand(3, 4, seed=1)
    exp = integrad.explain(model, x, baselines=b, target=1, multiply_by_inputs=False)
    torch.testing.assert_close(exp.attributions, model.weight[1].detach().expand(3, 4))
    assert exp.delta.abs().max() < 1e-12  # the delta still checks completeness


def test_class_returns_captum_shapes():
    model = smooth_mlp()
    ig = integrad.IntegratedGradients(model)
    x = rand(2, 6)
    attr = ig.attribute(x, target=0)
    assert isinstance(attr, torch.Tensor) and attr.shape == x.shape
    attr, delta = ig.attribute((x,), target=0, return_convergence_delta=True)
    assert isinstance(attr, tuple) and attr[0].shape == x.shape and delta.shape == (2,)
    assert ig.multiplies_by_inputs and ig.has_convergence_delta()


def test_explanation_owns_copies_of_inputs_and_baselines():
    x, b = torch.rand(2, 3), torch.rand(2, 3)
    exp = integrad.explain(torch.nn.Linear(3, 1), x, baselines=b)
    assert exp.inputs.data_ptr() != x.data_ptr() and exp.baselines.data_ptr() != b.data_ptr()
    x.add_(1.0)
    b.add_(1.0)
    assert torch.equal(exp.inputs + 1.0, x) and torch.equal(exp.baselines + 1.0, b)


def _kinked(x: torch.Tensor) -> torch.Tensor:
    # F(x) = relu(x0 - 0.8) · 10: all change after α = 0.8 for x0 = 1.
    return torch.relu(x[:, 0] - 0.8) * 10 + 0.0 * x.sum(1)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, **kw: integrad.explain(_kinked, x, **kw),
        lambda x, **kw: integrad.IntegratedGradients(_kinked).attribute(x, **kw),
    ],
)
def test_a_gap_over_five_percent_warns_once_naming_the_worst_example(call):
    x = torch.tensor([[0.5, 1.0], [1.0, 1.0]], dtype=torch.float64)  # example 0: F constant
    with pytest.warns(integrad.CompletenessWarning) as record:
        call(x, n_steps=2, method="riemann_left")
    assert len(record) == 1
    assert re.search(
        r"1 of 2 example\(s\); worst is example 1: .*n_steps=2", str(record[0].message)
    )


def test_no_completeness_warning_when_resolved_or_reported_elsewhere():
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrad.CompletenessWarning)
        integrad.explain(_kinked, x, n_steps=2000, method="riemann_middle")  # resolved
        integrad.explain(_kinked, x, n_steps=2, method="idgi")  # complete by construction
        integrad.explain(_kinked, x, tolerance=0.5, max_steps=16)  # tolerance mode reports


def test_silencing_the_guard_also_skips_its_forward_passes():
    calls = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(int(x.shape[0]))
        return _kinked(x)

    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    ig = integrad.IntegratedGradients(model)
    with pytest.warns(integrad.CompletenessWarning):
        ig.attribute(x, n_steps=2, method="riemann_left", internal_batch_size=2)
    guarded = len(calls)
    calls.clear()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=integrad.CompletenessWarning)
        ig.attribute(x, n_steps=2, method="riemann_left", internal_batch_size=2)
    assert len(calls) == guarded - 1  # the one forward pass of F(x) and F(x') is gone
    calls.clear()
    with warnings.catch_warnings():  # a narrower filter may let warnings through: still run
        warnings.filterwarnings("ignore", message="attr", category=integrad.CompletenessWarning)
        ig.attribute(x, n_steps=2, method="riemann_left", internal_batch_size=2)
    assert len(calls) == guarded


# --- what the model predicted, carried for the views ------------------------------------------


def _classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


@pytest.mark.parametrize("method", ["gausslegendre", "exact", "idgi", "tolerance"])
def test_predictions_are_the_models_top_class_and_softmax(method):
    model = _classifier().double()
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0, 1])
    options = {"tolerance": 1e-3} if method == "tolerance" else {"method": method}
    if method == "exact":
        model[1] = torch.nn.ReLU()
    exp = integrad.explain(model, x, target=target, output_kind="logits", **options)
    with torch.no_grad():
        logits = model(x)
    chances = logits.softmax(1)
    assert torch.equal(exp.predicted, logits.argmax(1))
    assert torch.allclose(exp.probability, chances[torch.arange(5), target], atol=1e-12)
    assert torch.allclose(exp.predicted_probability, chances.max(1).values, atol=1e-12)
    assert "predicted" in repr(exp) and "p(target)" in repr(exp)


def test_probabilities_are_read_as_given_and_scores_get_no_probability():
    model = torch.nn.Sequential(_classifier(), torch.nn.Softmax(1))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    exp = integrad.explain(model, x, target=2, output_kind="probabilities", n_steps=8)
    with torch.no_grad():
        p = model(x)
    assert torch.allclose(exp.probability.float(), p[:, 2])
    assert torch.allclose(exp.predicted_probability.float(), p.max(1).values)
    plain = integrad.explain(model, x, target=2, n_steps=8)  # scale not said: class only
    assert torch.equal(plain.predicted, p.argmax(1)) and plain.probability is None


@pytest.mark.parametrize("tail", [(), (1,), (2, 2)])
def test_models_without_classes_have_no_prediction(tail):
    # One output, a one-value column, or a grid per example: no row of classes.
    def model(x):
        return x.sum(1).reshape(-1, *[1] * len(tail)).expand(-1, *tail)

    target = (1, 0) if tail == (2, 2) else None
    exp = integrad.explain(model, torch.rand(3, 4), target=target, output_kind="logits")
    assert exp.predicted is None and exp.probability is None
    assert exp.output_kind == "logits"


def test_guided_and_blur_carry_the_kind_and_predictions():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        top = model(x).argmax(1)
    for exp in (
        integrad.explain_guided(model, x, target=1, n_steps=16, kind="image", output_kind="logits"),
        integrad.explain_blur(model, x, target=1, n_steps=16, kind="image", output_kind="logits"),
    ):
        assert exp.kind == "image" and torch.equal(exp.predicted, top)
        assert exp.probability is not None
    with pytest.raises(ValueError, match="kind='table' needs inputs with 2 dimensions"):
        integrad.explain_guided(model, x, target=1, kind="table")
