"""Neuron IG: Captum parity for every selector form, completeness on the neuron."""

from __future__ import annotations

import pytest
import torch
from captum.attr import NeuronIntegratedGradients as CaptumNIG
from conftest import small_cnn, smooth_mlp

import integrad


def images(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize(
    "selector", [(2, 1, 3), lambda a: a[:, 1].sum(dim=(1, 2))], ids=["tuple", "callable"]
)
def test_matches_captum(selector, to_input):
    model = small_cnn()
    layer = model[2]
    x = images()
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
