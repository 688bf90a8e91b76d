"""Layer IG: Captum parity on an inner CNN layer, identity layer equals IG, hooks removed."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerIntegratedGradients as CaptumLIG
from conftest import small_cnn, smooth_mlp
from torch import nn

import integrad


def images(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("layer_index", [2, 4])
def test_matches_captum_on_an_inner_cnn_layer(to_input, layer_index):
    model = small_cnn()
    layer = model[layer_index]
    x, b = images(), images(1) * 0.1
    kwargs = dict(
        baselines=b,
        target=[0, 3, 1],
        n_steps=16,
        attribute_to_layer_input=to_input,
        return_convergence_delta=True,
    )
    ours, d_ours = integrad.LayerIntegratedGradients(model, layer).attribute(x, **kwargs)
    theirs, d_theirs = CaptumLIG(model, layer).attribute(x, **kwargs)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-4, atol=1e-5)


def test_identity_layer_gives_plain_ig():
    inner = smooth_mlp()
    model = nn.Sequential(nn.Identity(), inner)
    x, b = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    layer_ig = integrad.LayerIntegratedGradients(model, model[0]).attribute(
        x, baselines=b, target=2, n_steps=20
    )
    ig = integrad.explain(inner, x, baselines=b, target=2, n_steps=20).attributions
    torch.testing.assert_close(layer_ig, ig)


def test_completeness_in_terms_of_the_model_output():
    model = smooth_mlp()
    x = torch.randn(5, 6, dtype=torch.float64)
    _, delta = integrad.LayerIntegratedGradients(model, model[1]).attribute(
        x, target=0, n_steps=64, return_convergence_delta=True
    )
    assert delta.abs().max() < 1e-9


def test_hooks_are_removed_also_when_the_model_raises():
    model = small_cnn()
    calls = {"n": 0}

    def flaky(t: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("boom")
        return model(t)

    lig = integrad.LayerIntegratedGradients(flaky, model[2])
    with pytest.raises(RuntimeError, match="boom"):
        lig.attribute(images(), target=0, internal_batch_size=3, n_steps=8)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    lig.attribute(images(), target=0, n_steps=4)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_layer_the_model_does_not_use():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"layer was not called by forward_func"):
        integrad.LayerIntegratedGradients(model, nn.Linear(2, 2)).attribute(images(), target=0)
