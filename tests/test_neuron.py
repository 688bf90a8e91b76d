"""Neuron IG: Captum parity for every selector form, completeness on the neuron."""

from __future__ import annotations

import pytest
import torch
from captum.attr import NeuronIntegratedGradients as CaptumNIG
from conftest import rows_seen, small_cnn, smooth_mlp

import integrad


def images(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize(
    "selector", [(2, 1, 3), lambda a: a[:, 1].sum(dim=(1, 2))], ids=["tuple", "callable"]
)
def test_matches_captum(selector, to_input, device):
    model = small_cnn().to(device)
    layer = model[2]
    x = images().to(device)
    kwargs = dict(n_steps=16, attribute_to_neuron_input=to_input)
    ours = integrad.NeuronIntegratedGradients(model, layer).attribute(x, selector, **kwargs)
    theirs = CaptumNIG(model, layer).attribute(x, selector, **kwargs)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_int_selector_and_completeness_on_the_neuron():
    model = smooth_mlp()
    x = torch.randn(4, 6, dtype=torch.float64)
    attr = integrad.NeuronIntegratedGradients(model, model[1]).attribute(x, 5, n_steps=32)
    hidden = model[1](model[0](x))[:, 5] - model[1](model[0](torch.zeros_like(x)))[:, 5]
    torch.testing.assert_close(attr.sum(1), hidden.detach(), rtol=1e-9, atol=1e-10)


def test_bad_selectors():
    model = smooth_mlp()
    nig = integrad.NeuronIntegratedGradients(model, model[1])
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"neuron_selector 16 is out of range"):
        nig.attribute(x, 16)
    with pytest.raises(ValueError, match=r"neuron_selector \(1, 2\) has 2 index"):
        nig.attribute(x, (1, 2))
    with pytest.raises(TypeError, match=r"neuron_selector must be an int"):
        nig.attribute(x, "first")


def test_a_slice_attributes_the_sum_of_its_neurons():
    """Captum's slice semantics; by IG's linearity, the sum of each neuron's attributions."""
    model = smooth_mlp()
    nig = integrad.NeuronIntegratedGradients(model, model[1])
    x = torch.randn(3, 6, dtype=torch.float64)
    sliced = nig.attribute(x, (slice(2, 5),), n_steps=16)
    each = sum(nig.attribute(x, i, n_steps=16) for i in range(2, 5))
    torch.testing.assert_close(sliced, each, rtol=1e-10, atol=1e-12)
    stepped = nig.attribute(x, (slice(None, None, 7),), n_steps=16)
    torch.testing.assert_close(stepped, sum(nig.attribute(x, i, n_steps=16) for i in (0, 7, 14)))


def test_an_aggregate_callable_equals_the_per_example_sum():
    model = smooth_mlp()
    nig = integrad.NeuronIntegratedGradients(model, model[1])
    x = torch.randn(4, 6, dtype=torch.float64)
    aggregate = nig.attribute(x, lambda a: a[:, 3:6].sum(), n_steps=12, internal_batch_size=5)
    per_example = nig.attribute(x, lambda a: a[:, 3:6].sum(1), n_steps=12)
    torch.testing.assert_close(aggregate, per_example, rtol=1e-12, atol=1e-14)


def test_a_layer_with_several_tensors_needs_a_callable():
    class Pair(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.tanh(x), x**2

    pair = Pair()
    model = lambda x: sum(t.sum(1) for t in pair(x))  # noqa: E731
    nig = integrad.NeuronIntegratedGradients(model, pair)
    x = torch.randn(2, 3, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"the layer has 2 tensors; select a neuron with a callable"
    ):
        nig.attribute(x, 1)
    attr = nig.attribute(x, lambda pair: pair[1][:, 2], n_steps=8)
    expected = torch.zeros_like(x)
    expected[:, 2] = x[:, 2] ** 2  # IG of x² from 0 is x² (exact: the rule integrates 2αx exactly)
    torch.testing.assert_close(attr, expected, rtol=1e-12, atol=1e-14)


def test_bad_selector_forms_and_values():
    model = smooth_mlp()
    nig = integrad.NeuronIntegratedGradients(model, model[1])
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"neuron_selector must be .* got \(1, 'a'\)"):
        nig.attribute(x, (1, "a"))
    with pytest.raises(TypeError, match=r"neuron_selector must be .* got True"):
        nig.attribute(x, True)
    with pytest.raises(TypeError, match=r"callable must return a tensor, got float"):
        nig.attribute(x, lambda a: 1.0)
    with pytest.raises(ValueError, match=r"neuron_selector \(slice\(None.*\), 1\) has 2 index"):
        nig.attribute(x, (slice(None), 1))


def test_a_completeness_gap_over_five_percent_warns_and_train_mode_buffers_are_kept():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(integrad.CompletenessWarning, match=r"n_steps=1"):
        integrad.NeuronIntegratedGradients(model, model[3]).attribute(
            torch.randn(6, 4), 0, n_steps=1, method="riemann_left"
        )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_cost_per_point_is_measured_once_per_model_and_layer():
    # The neuron's forward function is made afresh each call; its memory must not start
    # over each call.
    model = smooth_mlp()
    calls = rows_seen(model)
    x = torch.rand(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    nig = integrad.NeuronIntegratedGradients(model, model[1])
    first = nig.attribute(x, neuron_selector=0, n_steps=4)
    calls_first, calls[:] = list(calls), []
    second = nig.attribute(x, neuron_selector=1, n_steps=4)
    # The first call: a probe of the cost per point, one 8-point chunk, then x and the
    # baselines together for the completeness guard; the second: the same but the probe.
    assert calls_first == [2, 8, 4] and calls == [8, 4]
    third = nig.attribute(x, neuron_selector=0, n_steps=4)
    assert torch.equal(first, third) and not torch.equal(first, second)
