"""Saliency and gradient × input: exact on linear models, equal to Captum's."""

from __future__ import annotations

import pytest
import torch
from captum.attr import InputXGradient as CaptumIxG
from captum.attr import Saliency as CaptumSaliency
from conftest import small_cnn

import integrad


def test_linear_model_gradient_is_the_weight_row():
    model = torch.nn.Linear(4, 3).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    w = model.weight[1].detach()
    grads = integrad.Saliency(model).attribute(x, target=1, abs=False)
    torch.testing.assert_close(grads, w.expand(5, 4))
    torch.testing.assert_close(
        integrad.Saliency(model).attribute(x, target=1), w.abs().expand(5, 4)
    )
    torch.testing.assert_close(integrad.InputXGradient(model).attribute(x, target=1), w * x)


def test_gradient_of_a_quadratic_at_the_input():
    x = torch.randn(3, 4, dtype=torch.float64)
    grads = integrad.Saliency(lambda t: (t**2).sum(1)).attribute(x, abs=False)
    torch.testing.assert_close(grads, 2 * x)


@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_matches_captum(abs_, device):
    model = small_cnn().to(device)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)).to(device)
    target = [0, 3, 2, 4]
    ours = integrad.Saliency(model).attribute(x, target=target, abs=abs_)
    theirs = CaptumSaliency(model).attribute(x, target=target, abs=abs_)
    torch.testing.assert_close(ours, theirs)


def test_input_x_gradient_matches_captum_on_tuples_with_extra_args(two_inputs):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    y = torch.randn(3, 2, 3, generator=g, dtype=torch.float64)
    scale = torch.randn(3, 1, generator=g, dtype=torch.float64)
    kwargs = dict(target=(1, 2), additional_forward_args=(scale, True))
    ours = integrad.InputXGradient(two_inputs).attribute((x, y), **kwargs)
    theirs = CaptumIxG(two_inputs).attribute((x, y), **kwargs)
    assert isinstance(ours, tuple) and len(ours) == 2
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)
