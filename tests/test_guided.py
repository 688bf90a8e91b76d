"""Guided IG: parity with PAIR's saliency, its closed forms, completeness, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FailsOnCall, call_model_function, pair_saliency, smooth_cnn, smooth_mlp
from torch import nn

import integrad


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def images(batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and baselines; the last example equals its baseline (nothing to attribute)."""
    x, b = rand(batch, 3, 6, 6, seed=seed), 0.2 * rand(batch, 3, 6, 6, seed=seed + 1)
    b[-1] = x[-1]
    return x, b


@pytest.mark.usefixtures("numpy_quantile_interpolation")
@pytest.mark.parametrize(
    ("n_steps", "fraction", "max_dist"),
    [(200, 0.25, 0.02), (30, 0.1, 0.1), (25, 0.5, 1.0), (40, 1.0, 0.0)],
)
def test_parity_with_pair_saliency(n_steps, fraction, max_dist):
    model = smooth_cnn()
    x, b = images()
    target = [0, 2, 1]
    ours = integrad.GuidedIntegratedGradients(model).attribute(
        x, baselines=b, target=target, n_steps=n_steps, fraction=fraction, max_dist=max_dist
    )
    guided_ig = pair_saliency("guided_ig").GuidedIG()
    theirs = np.stack(
        [
            guided_ig.GetMask(
                x[i].permute(1, 2, 0).numpy(),
                call_model_function(model, target[i]),
                x_baseline=b[i].permute(1, 2, 0).numpy(),
                x_steps=n_steps,
                fraction=fraction,
                max_dist=max_dist,
            ).transpose(2, 0, 1)
            for i in range(3)
        ]
    )
    assert np.abs(theirs).max() > 1e-3 and not theirs[-1].any()
    torch.testing.assert_close(ours, torch.from_numpy(theirs), rtol=0, atol=1e-13)


def test_batched_equals_one_example_at_a_time_and_any_chunking():
    model = smooth_cnn()
    x, b = images(4)
    target = [1, 0, 2, 1]
    gig = integrad.GuidedIntegratedGradients(model)
    first = integrad.explain_guided(model, x, baselines=b, target=target, n_steps=30)
    assert first.extras["chunks"] == 30  # one forward+backward per step for the batch
    alone = torch.cat(
        [
            gig.attribute(x[i : i + 1], baselines=b[i : i + 1], target=target[i], n_steps=30)
            for i in range(4)
        ]
    )
    # A memory budget of 2.5 points: every step in chunks of 2 (3 images move).
    budget = int(2.5 * first.extras["bytes_per_point"])
    chunked = integrad.explain_guided(
        model, x, baselines=b, target=target, n_steps=30, max_memory=budget
    )
    assert chunked.extras["chunks"] == 60
    torch.testing.assert_close(first.attributions, alone, rtol=0, atol=1e-14)
    torch.testing.assert_close(first.attributions, chunked.attributions, rtol=0, atol=1e-14)


def test_without_deviation_it_is_ig_with_the_left_riemann_rule():
    model = smooth_mlp()
    x, b = rand(3, 6), rand(3, 6, seed=1)
    guided = integrad.GuidedIntegratedGradients(model).attribute(
        x, baselines=b, target=2, n_steps=16, max_dist=0.0
    )
    ig = integrad.IntegratedGradients(model).attribute(
        x, baselines=b, target=2, n_steps=16, method="riemann_left"
    )
    torch.testing.assert_close(guided, ig, rtol=0, atol=1e-14)


@pytest.mark.parametrize(("fraction", "max_dist"), [(0.25, 0.02), (0.1, 1.0)])
def test_linear_model_gets_weight_times_difference_on_any_path(fraction, max_dist, device):
    model = nn.Linear(7, 3).double().to(device)
    x, b = rand(4, 7).to(device), rand(4, 7, seed=1).to(device)
    exp = integrad.explain_guided(
        model, x, baselines=b, target=1, n_steps=13, fraction=fraction, max_dist=max_dist
    )
    torch.testing.assert_close(exp.attributions, model.weight[1].detach() * (x - b))
    assert exp.delta.abs().max() < 1e-13


def test_completeness_gap_shrinks_with_steps_on_a_smooth_model():
    model = smooth_cnn()
    x, b = images(2)
    gaps = [
        integrad.explain_guided(model, x[:1], baselines=b[:1], target=0, n_steps=n).relative_delta
        for n in (10, 40, 160)
    ]
    # A left-point path sum: the gap falls like 1/n_steps.
    assert float(gaps[1]) < float(gaps[0]) / 3 and float(gaps[2]) < float(gaps[1]) / 3
    assert float(gaps[2]) < 2e-3


def test_path_ends_at_the_input_and_counts_evaluations():
    model = smooth_cnn()
    x, b = images(3)
    exp = integrad.explain_guided(model, x, baselines=b, target=2, n_steps=20)
    assert exp.method == "guided" and exp.n_steps == 20
    assert exp.n_evals.tolist() == [20, 20, 0]  # the last input equals its baseline
    assert not exp.attributions[-1].any()
    torch.testing.assert_close(exp.output, model(x)[:, 2].detach())
    torch.testing.assert_close(exp.baseline_output, model(b)[:, 2].detach())


def test_idgi_option_is_complete_and_shares_by_squared_gradient():
    model = smooth_cnn()
    x, b = images(3)
    exp = integrad.explain_guided(model, x, baselines=b, target=1, n_steps=15, idgi=True)
    assert exp.delta.abs().max() < 1e-12 and exp.extras["idgi"]
    linear = nn.Linear(5, 2).double()
    x, b = rand(2, 5), rand(2, 5, seed=1)
    ours = integrad.GuidedIntegratedGradients(linear).attribute(
        x, baselines=b, target=0, n_steps=9, idgi=True
    )
    w = linear.weight[0].detach()
    torch.testing.assert_close(ours, w**2 / (w**2).sum() * ((x - b) @ w).unsqueeze(1))


def test_tuple_inputs_are_one_feature_vector():
    model = smooth_mlp()

    def split(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return model(torch.cat([a, c.flatten(1)], dim=1))

    x, b = rand(2, 6), rand(2, 6, seed=1)
    whole = integrad.GuidedIntegratedGradients(model).attribute(
        x, baselines=b, target=0, n_steps=20
    )
    parts = integrad.GuidedIntegratedGradients(split).attribute(
        (x[:, :2], x[:, 2:].reshape(2, 2, 2)),
        baselines=(b[:, :2], b[:, 2:].reshape(2, 2, 2)),
        target=0,
        n_steps=20,
    )
    torch.testing.assert_close(torch.cat([parts[0], parts[1].flatten(1)], dim=1), whole)


def test_deterministic_without_a_generator():
    model = smooth_cnn()
    x, b = images(2)
    first = integrad.GuidedIntegratedGradients(model).attribute(
        x, baselines=b, target=1, n_steps=10
    )
    again = integrad.GuidedIntegratedGradients(model).attribute(
        x, baselines=b, target=1, n_steps=10
    )
    assert torch.equal(first, again)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_steps": 0}, r"n_steps must be a positive int, got 0"),
        ({"n_steps": 2.5}, r"n_steps must be a positive int, got 2.5"),
        ({"fraction": 0}, r"fraction must be a number in \(0, 1\], got 0"),
        ({"fraction": 1.5}, r"fraction must be a number in \(0, 1\], got 1.5"),
        ({"fraction": True}, r"fraction must be a number in \(0, 1\], got True"),
        ({"max_dist": -0.1}, r"max_dist must be a number in \[0, 1\], got -0.1"),
        ({"max_dist": float("nan")}, r"max_dist must be a number in \[0, 1\], got nan"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        integrad.GuidedIntegratedGradients(nn.Linear(3, 1)).attribute(torch.ones(2, 3), **kwargs)


def test_model_and_inputs_untouched_when_the_model_raises_midway():
    model = FailsOnCall(smooth_cnn(), fail_at=4).eval()
    model.inner[0].weight.requires_grad_(False)
    params = [(p.requires_grad, p.detach().clone()) for p in model.parameters()]
    x, b = images(2)
    x_before = x.clone()
    with pytest.raises(RuntimeError, match="device lost"):
        integrad.explain_guided(model, x, baselines=b, target=0, n_steps=10)
    assert not model.training and torch.equal(x, x_before) and x.grad is None
    for (flag, value), p in zip(params, model.parameters(), strict=True):
        assert p.requires_grad == flag and p.grad is None and torch.equal(p, value)


def test_float32_inputs_give_float32_attributions_close_to_float64():
    model = smooth_cnn()
    x, b = images(2)
    exact = integrad.GuidedIntegratedGradients(model).attribute(
        x, baselines=b, target=0, n_steps=20
    )
    single = integrad.GuidedIntegratedGradients(model.float()).attribute(
        x.float(), baselines=b.float(), target=0, n_steps=20
    )
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), exact, rtol=0, atol=1e-5 * float(exact.abs().max()))


def test_extra_forward_args_follow_their_examples():
    # The example equal to its baseline never moves, so the moving rows are 0 and 2.
    model = smooth_mlp()

    def scaled(t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return model(t) * scale

    x, b = rand(3, 6), rand(3, 6, seed=1)
    b[1] = x[1]
    scale = torch.tensor([[2.0], [3.0], [-1.0]], dtype=torch.float64)
    ours = integrad.GuidedIntegratedGradients(scaled).attribute(
        x, baselines=b, target=[0, 1, 2], additional_forward_args=scale, n_steps=12
    )
    for i in (0, 2):
        alone = integrad.GuidedIntegratedGradients(model).attribute(
            x[i : i + 1], baselines=b[i : i + 1], target=[0, 1, 2][i], n_steps=12
        )
        torch.testing.assert_close(ours[i : i + 1], alone * scale[i])
    assert not ours[1].any()
