"""GradientShap: Captum's signature and conventions, exact on linear models, bounded groups."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from captum.attr import GradientShap as CaptumGradientShap
from conftest import peak_growth_mib, smooth_mlp

import integrad


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_signature_is_captums_with_keyword_only_extras():
    ours = inspect.signature(integrad.GradientShap.attribute).parameters
    theirs = inspect.signature(CaptumGradientShap.attribute).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    assert all(ours[name].default == theirs[name].default for name in theirs if name != "self")
    assert all(ours[name].kind is inspect.Parameter.KEYWORD_ONLY for name in list(ours)[8:])
    init = inspect.signature(integrad.GradientShap.__init__).parameters
    assert list(init) == list(inspect.signature(CaptumGradientShap.__init__).parameters)


def test_positional_n_samples_is_the_number_of_samples():
    model = torch.nn.Linear(4, 1).double()
    x, refs = rand(3, 4), rand(5, 4, seed=1)
    _, delta = integrad.GradientShap(model).attribute(
        x, refs, 7, return_convergence_delta=True, generator=gen()
    )
    assert delta.shape == (3 * 7,)


def test_linear_model_is_exact_per_sample(device):
    # The gradient of a linear model is w everywhere: each sample gives w (x~ - x'), so the
    # per-sample delta is 0 and a one-row distribution gives w (x - x') exactly.
    model = torch.nn.Linear(4, 3).double().to(device)
    w = model.weight[2].detach()
    x, refs = rand(3, 4).to(device), rand(6, 4, seed=1).to(device)
    gs = integrad.GradientShap(model)
    one = gs.attribute(x, refs[:1], n_samples=4, target=2, generator=gen())
    torch.testing.assert_close(one, w * (x - refs[:1]))
    _, delta = gs.attribute(
        x, refs, n_samples=9, stdevs=0.3, target=2, return_convergence_delta=True, generator=gen()
    )
    assert delta.abs().max() < 1e-12
    many = gs.attribute(x, refs, n_samples=4000, target=2, generator=gen(1))
    torch.testing.assert_close(many, w * (x - refs.mean(0)), atol=0.1, rtol=0)


def test_without_multiplying_by_inputs_it_is_the_expected_gradient():
    model = torch.nn.Linear(4, 2).double()
    x, refs = rand(2, 4), rand(5, 4, seed=1)
    gs = integrad.GradientShap(model, multiply_by_inputs=False)
    assert not gs.multiplies_by_inputs and gs.has_convergence_delta()
    local = gs.attribute(x, refs, n_samples=3, target=0, generator=gen())
    torch.testing.assert_close(local, model.weight[0].detach().expand(2, 4))
    with pytest.raises(NotImplementedError, match="attribute_future is not implemented"):
        gs.attribute_future()


def test_callable_baselines_are_called_as_captum_calls_them():
    model = torch.nn.Linear(4, 1).double()
    x, refs = rand(2, 4), rand(1, 4, seed=1)
    gs = integrad.GradientShap(model)
    w = model.weight[0].detach()
    seen = []

    def from_inputs(inputs):
        seen.append(inputs)
        return refs

    torch.testing.assert_close(gs.attribute(x, lambda: refs, generator=gen()), w * (x - refs))
    torch.testing.assert_close(gs.attribute(x, from_inputs, generator=gen()), w * (x - refs))
    assert seen[0] is x


@pytest.mark.parametrize("knobs", [{"max_memory": 2500}, {"max_memory": 40_000}])
def test_results_do_not_depend_on_the_memory_budget(knobs):
    model = smooth_mlp()
    x, refs = rand(3, 6), rand(5, 6, seed=7)
    gs = integrad.GradientShap(model)
    kwargs = dict(n_samples=13, stdevs=0.2, target=[0, 1, 2], return_convergence_delta=True)
    a, d_a = gs.attribute(x, refs, generator=gen(5), **kwargs)
    b, d_b = gs.attribute(x, refs, generator=gen(5), **knobs, **kwargs)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(d_b, d_a, rtol=1e-12, atol=1e-15)
    torch.manual_seed(0)
    np.random.seed(0)
    c, d_c = gs.attribute(x, refs, **kwargs)
    torch.manual_seed(0)
    np.random.seed(0)
    e, d_e = gs.attribute(x, refs, **knobs, **kwargs)
    torch.testing.assert_close(e, c, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(d_e, d_c, rtol=1e-12, atol=1e-15)


def test_generator_leaves_the_global_random_state_alone():
    model = smooth_mlp()
    x, refs = rand(2, 6), rand(4, 6, seed=1)
    torch.manual_seed(3)
    np.random.seed(3)
    integrad.GradientShap(model).attribute(x, refs, stdevs=0.1, target=0, generator=gen())
    after_torch, after_numpy = torch.rand(1), np.random.rand()
    torch.manual_seed(3)
    np.random.seed(3)
    assert torch.equal(torch.rand(1), after_torch) and np.random.rand() == after_numpy


def test_memory_stays_bounded_whatever_n_samples():
    growth = peak_growth_mib(
        """
        x, refs = torch.rand(2, 3, 64, 64, dtype=torch.float64), torch.rand(8, 3, 64, 64).double()
        gs = integrad.GradientShap(lambda t: t.tanh().flatten(1).sum(1))
        gs.attribute(x, refs, n_samples=2, stdevs=0.1, max_memory=16 << 20)
        """,
        "gs.attribute(x, refs, n_samples=1000, stdevs=0.1, max_memory=16 << 20)",
    )
    assert growth < 16 + 64  # the budget plus a constant; all at once it is > 1000


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"n_samples": 0}, ValueError, r"n_samples must be a positive int, got 0"),
        ({"stdevs": (0.1, 0.2)}, ValueError, r"stdevs has 2 entries but there are 1 inputs"),
        ({"stdevs": float("nan")}, ValueError, r"stdevs must be finite numbers >= 0, got nan"),
        ({"baselines": torch.rand(3)}, ValueError, r"baselines must be a reference set"),
        ({"baselines": 0.0}, ValueError, r"baselines must be a reference set.*got float"),
        ({"generator": 3}, TypeError, r"generator must be a torch.Generator or None, got int"),
    ],
)
def test_bad_arguments(arguments, error, message):
    gs = integrad.GradientShap(lambda t: t.sum(1))
    call = {"baselines": torch.rand(3, 4), **arguments}
    with pytest.raises(error, match=message):
        gs.attribute(torch.rand(2, 4), **call)
    with pytest.raises(TypeError, match=r"multiply_by_inputs must be a bool, got str"):
        integrad.GradientShap(lambda t: t.sum(1), multiply_by_inputs="yes")  # type: ignore[arg-type]
