"""Noise tunnel: zero noise is the wrapped method, closed-form SmoothGrad, moments, options."""

from __future__ import annotations

import math

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import NoiseTunnel as CaptumNT
from conftest import smooth_mlp

import integrad
from integrad.noise_tunnel import _Moments


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("method", ["saliency", "ig"])
def test_zero_noise_gives_the_wrapped_method(method):
    model = smooth_mlp()
    x = rand(3, 6)
    wrapped = (
        integrad.Saliency(model) if method == "saliency" else integrad.IntegratedGradients(model)
    )
    kwargs = {"target": [0, 2, 1]}
    plain = wrapped.attribute(x, **kwargs)
    nt = integrad.NoiseTunnel(wrapped)
    smooth = nt.attribute(x, nt_samples=4, stdevs=0.0, **kwargs)
    torch.testing.assert_close(smooth, plain)
    squared = nt.attribute(x, nt_type="smoothgrad_sq", nt_samples=4, stdevs=0.0, **kwargs)
    torch.testing.assert_close(squared, plain**2)
    var = nt.attribute(x, nt_type="vargrad", nt_samples=4, stdevs=0.0, **kwargs)
    assert var.abs().max() < 1e-24


def test_zero_noise_matches_captums_noise_tunnel_with_baselines_and_deltas():
    model = smooth_mlp()
    x, b = rand(3, 6), rand(3, 6, seed=1)
    kwargs = dict(baselines=b, target=[0, 1, 2], n_steps=16, return_convergence_delta=True)
    ours, d_ours = integrad.NoiseTunnel(integrad.IntegratedGradients(model)).attribute(
        x, nt_samples=3, stdevs=0.0, **kwargs
    )
    theirs, d_theirs = CaptumNT(CaptumIG(model)).attribute(x, nt_samples=3, stdevs=0.0, **kwargs)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)
    assert d_ours.shape == d_theirs.shape == (9,)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-5, atol=1e-7)


def test_smoothgrad_of_a_sine_has_its_closed_form():
    # E[cos(x + e)] = cos(x) exp(-sigma^2 / 2) for e ~ N(0, sigma^2).
    x = rand(2, 5)
    sigma, n = 0.5, 6000
    nt = integrad.NoiseTunnel(integrad.Saliency(lambda t: torch.sin(t).sum(1)))
    smooth = nt.attribute(
        x, nt_samples=n, nt_samples_batch_size=1000, stdevs=sigma, abs=False, generator=gen()
    )
    expected = torch.cos(x) * math.exp(-(sigma**2) / 2)
    assert (smooth - expected).abs().max() < 5 * 1.0 / math.sqrt(n)


def test_relative_noise_follows_each_examples_range():
    # Gradient of sum(t^2) is 2t: vargrad = 4 Var(noise) = 4 (sigma * range)^2.
    x = torch.stack([torch.linspace(0, 1, 50), torch.linspace(0, 10, 50)]).double()
    nt = integrad.NoiseTunnel(integrad.Saliency(lambda t: (t**2).sum(1)))
    var = nt.attribute(
        x,
        nt_type="vargrad",
        nt_samples=400,
        stdevs=0.1,
        relative=True,
        abs=False,
        generator=gen(),
    )
    std = var.mean(dim=1).sqrt() / 2
    assert std[0].item() == pytest.approx(0.1, rel=0.05)
    assert std[1].item() == pytest.approx(1.0, rel=0.05)


def test_vargrad_is_never_negative_and_runs_are_reproducible():
    model = smooth_mlp()
    x = rand(4, 6)
    nt = integrad.NoiseTunnel(integrad.Saliency(model))
    kwargs = dict(target=1, nt_type="vargrad", nt_samples=7, nt_samples_batch_size=3, stdevs=0.3)
    a = nt.attribute(x, generator=gen(5), **kwargs)
    b = nt.attribute(x, generator=gen(5), **kwargs)
    c = nt.attribute(x, generator=gen(6), **kwargs)
    assert bool((a >= 0).all())
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("splits", [[1, 1, 1, 1, 1, 1], [2, 4], [5, 1], [3, 3]])
def test_moments_merge_to_the_direct_mean_and_variance(splits):
    samples = rand(3, 6, 4, seed=9)
    parts = torch.split(samples, splits, dim=1)
    m = _Moments.of(parts[0])
    for part in parts[1:]:
        m.merge(_Moments.of(part))
    torch.testing.assert_close(m.mean, samples.mean(1))
    torch.testing.assert_close(m.m2 / m.n, samples.var(1, unbiased=False))


def test_bad_arguments():
    nt = integrad.NoiseTunnel(integrad.Saliency(lambda t: t.sum(1)))
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match=r"nt_type='smooth' is not known.*vargrad"):
        nt.attribute(x, nt_type="smooth")
    with pytest.raises(ValueError, match=r"nt_samples must be a positive int, got 0"):
        nt.attribute(x, nt_samples=0)
    with pytest.raises(ValueError, match=r"stdevs must be finite numbers >= 0"):
        nt.attribute(x, stdevs=-1.0)
    with pytest.raises(ValueError, match=r"stdevs has 2 entries but there are 1 inputs"):
        nt.attribute(x, stdevs=(1.0, 2.0))
    with pytest.raises(TypeError, match=r"attribution_method must have an attribute\(\) method"):
        integrad.NoiseTunnel(lambda t: t)
