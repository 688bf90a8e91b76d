"""Blur IG: parity with PAIR's saliency, a closed form, completeness, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FailsOnCall, call_model_function, pair_saliency, smooth_cnn
from torch import nn

import integrad
from integrad.baselines import gaussian_blur


def images(batch: int = 3, channels: int = 3, size: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=g, dtype=torch.float64)


def pair_blur_ig(model, x, target, **kwargs) -> torch.Tensor:
    """PAIR's BlurIG, one (height, width, channels) image at a time."""
    blur_ig = pair_saliency("blur_ig").BlurIG()
    masks = [
        blur_ig.GetMask(x[i].permute(1, 2, 0).numpy(), call_model_function(model, t), **kwargs)
        for i, t in enumerate(target)
    ]
    return torch.from_numpy(np.stack(masks)).permute(0, 3, 1, 2)


@pytest.mark.parametrize(
    ("n_steps", "max_sigma", "grad_step", "sqrt"),
    [(100, 50, 0.01, False), (30, 5.0, 0.1, True), (12, 2.5, 0.05, False)],
)
def test_parity_with_pair_saliency(n_steps, max_sigma, grad_step, sqrt):
    model = smooth_cnn(size=8)
    x = images(size=8)
    target = [0, 2, 1]
    ours = integrad.BlurIntegratedGradients(model).attribute(
        x, target=target, n_steps=n_steps, max_sigma=max_sigma, grad_step=grad_step, sqrt=sqrt
    )
    theirs = pair_blur_ig(
        model, x, target, steps=n_steps, max_sigma=max_sigma, grad_step=grad_step, sqrt=sqrt
    )
    assert theirs.abs().max() > 1e-3
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-13)


def test_parity_for_single_channel_images_without_a_channel_dimension():
    cnn = smooth_cnn(channels=1, size=7)
    x = images(2, channels=1, size=7)
    ours = integrad.BlurIntegratedGradients(lambda t: cnn(t.unsqueeze(1))).attribute(
        x.squeeze(1), target=[1, 0], n_steps=16, max_sigma=8
    )
    theirs = pair_blur_ig(cnn, x, [1, 0], steps=16, max_sigma=8)
    torch.testing.assert_close(ours, theirs.squeeze(1), rtol=0, atol=1e-13)


def test_batched_equals_one_example_at_a_time_and_any_chunking():
    model = smooth_cnn()
    x = images(3)
    target = [2, 0, 1]
    big = integrad.BlurIntegratedGradients(model)
    first = integrad.explain_blur(model, x, target=target, n_steps=20, max_sigma=6)
    alone = torch.cat(
        [big.attribute(x[i : i + 1], target=target[i], n_steps=20, max_sigma=6) for i in range(3)]
    )
    # A budget of 2.5 points: chunks of 2 cut across blur levels (3 images per level).
    budget = int(2.5 * first.extras["bytes_per_point"])
    chunked = integrad.explain_blur(
        model, x, target=target, n_steps=20, max_sigma=6, max_memory=budget
    )
    assert chunked.extras["chunks"] == 30
    torch.testing.assert_close(first.attributions, alone, rtol=0, atol=1e-14)
    torch.testing.assert_close(first.attributions, chunked.attributions, rtol=0, atol=1e-14)
    torch.testing.assert_close(first.delta, chunked.delta, rtol=0, atol=1e-14)


def test_linear_model_with_grad_step_equal_to_the_sigma_step_telescopes_exactly(device):
    # Then each forward difference spans one step of the path: the sum is
    # w ⊙ (x − blur(x, max_sigma)). Sigmas are exact binary fractions here.
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 2)).double().to(device)
    x = images(2).to(device)
    exp = integrad.explain_blur(model, x, target=1, n_steps=16, max_sigma=4.0, grad_step=0.25)
    blurred = gaussian_blur(x, 4.0, "constant")
    w = model[1].weight[1].detach().reshape(3, 6, 6)
    torch.testing.assert_close(exp.attributions, w * (x - blurred), rtol=0, atol=1e-14)
    torch.testing.assert_close(exp.baselines, blurred)
    assert exp.delta.abs().max() < 1e-13


def test_completeness_gap_shrinks_with_steps_on_a_smooth_model():
    model = smooth_cnn()
    x = images(1)
    gaps = [
        integrad.explain_blur(
            model, x, target=0, n_steps=n, max_sigma=3.0, grad_step=1e-4
        ).relative_delta
        for n in (10, 40, 160)
    ]
    # Falls like 1/n_steps towards a floor of ~1e-3: scipy's kernel is cut at 4 sigma,
    # so the blur path jumps where the radius grows, and no path sum sees the jumps.
    assert float(gaps[1]) < float(gaps[0]) / 3 and float(gaps[2]) < float(gaps[1]) / 2
    assert float(gaps[2]) < 6e-3


def test_explanation_reports_the_blurred_baseline_and_evaluations():
    model = smooth_cnn()
    x = images(2)
    exp = integrad.explain_blur(model, x, target=1, n_steps=10, max_sigma=9.0, sqrt=True)
    assert exp.method == "blur" and exp.baseline == "blur(sigma=3)"  # PAIR's sqrt spacing
    blurred = gaussian_blur(x, 3.0, "constant")
    torch.testing.assert_close(exp.baselines, blurred)
    torch.testing.assert_close(exp.baseline_output, model(blurred)[:, 1].detach())
    torch.testing.assert_close(exp.output, model(x)[:, 1].detach())
    assert exp.n_evals.tolist() == [10, 10]


def test_idgi_option_is_complete():
    model = smooth_cnn()
    x = images(3)
    exp = integrad.explain_blur(model, x, target=2, n_steps=12, max_sigma=10, idgi=True)
    assert exp.delta.abs().max() < 1e-12 and exp.extras["idgi"]
    assert exp.n_evals.tolist() == [12] * 3
    assert exp.n_forward.tolist() == [13 + 2] * 3  # every level, then F at the ends


def test_deterministic_without_a_generator():
    model = smooth_cnn()
    x = images(2)
    first = integrad.BlurIntegratedGradients(model).attribute(x, target=0, n_steps=8)
    assert torch.equal(
        first, integrad.BlurIntegratedGradients(model).attribute(x, target=0, n_steps=8)
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_steps": 0}, ValueError, r"n_steps must be a positive int, got 0"),
        ({"max_sigma": 0}, ValueError, r"max_sigma must be a finite number > 0, got 0"),
        ({"max_sigma": float("inf")}, ValueError, r"max_sigma must be .* got inf"),
        ({"grad_step": -0.01}, ValueError, r"grad_step must be a finite number > 0, got -0.01"),
        ({"sqrt": "yes"}, TypeError, r"sqrt must be a bool, got str"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        integrad.BlurIntegratedGradients(smooth_cnn()).attribute(images(2), target=0, **kwargs)


def test_non_images_are_refused_by_name_and_shape():
    big = integrad.BlurIntegratedGradients(lambda a, b=None: a.sum(1))
    with pytest.raises(ValueError, match=r"inputs has shape \(4, 7\); Blur IG needs images"):
        big.attribute(torch.rand(4, 7))
    with pytest.raises(ValueError, match=r"inputs\[1\] has shape \(4, 2, 3, 3, 3\)"):
        big.attribute((torch.rand(4, 3, 3), torch.rand(4, 2, 3, 3, 3)))


def test_model_and_inputs_untouched_when_the_model_raises_midway():
    model = FailsOnCall(smooth_cnn(), fail_at=3).eval()
    model.inner[0].weight.requires_grad_(False)
    params = [(p.requires_grad, p.detach().clone()) for p in model.parameters()]
    x = images(2)
    x_before = x.clone()
    with pytest.raises(RuntimeError, match="device lost"):
        integrad.explain_blur(model, x, target=0, n_steps=10, internal_batch_size=4)
    assert not model.training and torch.equal(x, x_before) and x.grad is None
    for (flag, value), p in zip(params, model.parameters(), strict=True):
        assert p.requires_grad == flag and p.grad is None and torch.equal(p, value)


def test_float32_inputs_give_float32_attributions_close_to_float64():
    model = smooth_cnn()
    x = images(2)
    exact = integrad.BlurIntegratedGradients(model).attribute(x, target=1, n_steps=20)
    single = integrad.BlurIntegratedGradients(model.float()).attribute(
        x.float(), target=1, n_steps=20
    )
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), exact, rtol=0, atol=1e-5 * float(exact.abs().max()))
