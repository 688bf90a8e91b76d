"""Noise tunnel: zero noise is the wrapped method, closed-form SmoothGrad, moments, options."""

from __future__ import annotations

import math

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import NoiseTunnel as CaptumNT
from conftest import peak_growth_mib, smooth_mlp

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


def test_smoothgrad_of_a_sine_has_its_closed_form(device):
    # E[cos(x + e)] = cos(x) exp(-sigma^2 / 2) for e ~ N(0, sigma^2).
    x = rand(2, 5).to(device)
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


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 5, 7), (6,)])
def test_absolute_noise_works_on_inputs_of_any_rank(shape):
    # Saliency (abs=False) of sum(t^2) is 2(x + e): smoothgrad averages the noise away,
    # vargrad is 4 sigma^2 wherever the noise is absolute.
    x = rand(*shape)
    nt = integrad.NoiseTunnel(integrad.Saliency(lambda t: (t**2).reshape(len(t), -1).sum(1)))
    kwargs = dict(nt_samples=400, stdevs=0.1, abs=False, generator=gen(1))
    smooth = nt.attribute(x, **kwargs)
    assert smooth.shape == x.shape
    assert (smooth - 2 * x).abs().max() < 0.1
    var = nt.attribute(x, nt_type="vargrad", **kwargs)
    assert var.mean().item() == pytest.approx(4 * 0.1**2, rel=0.05)


def test_captum_surface_follows_the_wrapped_method():
    model = smooth_mlp()
    ig = integrad.NoiseTunnel(integrad.IntegratedGradients(model))
    local = integrad.NoiseTunnel(integrad.IntegratedGradients(model, multiply_by_inputs=False))
    sal = integrad.NoiseTunnel(integrad.Saliency(model))
    ixg = integrad.NoiseTunnel(integrad.InputXGradient(model))
    assert (ig.multiplies_by_inputs, local.multiplies_by_inputs) == (True, False)
    assert (sal.multiplies_by_inputs, ixg.multiplies_by_inputs) == (False, True)
    assert ig.has_convergence_delta() and not sal.has_convergence_delta()
    assert ig.forward_func is model
    with pytest.raises(NotImplementedError, match="attribute_future is not implemented"):
        ig.attribute_future()


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_results_do_not_depend_on_how_samples_are_grouped(nt_type):
    model = smooth_mlp()
    x = rand(3, 6)
    nt = integrad.NoiseTunnel(integrad.IntegratedGradients(model))
    kwargs = dict(nt_type=nt_type, nt_samples=7, stdevs=0.2, target=[0, 1, 2], n_steps=8)
    reference, d_ref = nt.attribute(x, generator=gen(3), return_convergence_delta=True, **kwargs)
    for knobs in ({"nt_samples_batch_size": 1}, {"nt_samples_batch_size": 3}, {"max_memory": 3000}):
        again, delta = nt.attribute(
            x, generator=gen(3), return_convergence_delta=True, **knobs, **kwargs
        )
        torch.testing.assert_close(again, reference, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(delta, d_ref, rtol=1e-12, atol=1e-15)


class _Recorder:
    """A wrapped method that records the rows and keywords of every call."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.keywords: list[dict] = []

    def attribute(self, inputs, max_memory=None, **kwargs):
        self.rows.append(int(inputs.shape[0]))
        self.keywords.append({"max_memory": max_memory, **kwargs})
        return torch.ones_like(inputs)


def test_samples_are_grouped_to_the_memory_budget_and_it_is_forwarded():
    x = torch.zeros(2, 64, dtype=torch.float64)  # 1 KiB of inputs
    recorder = _Recorder()
    integrad.NoiseTunnel(recorder).attribute(x, nt_samples=1000, stdevs=0.1, max_memory=64 << 10)
    assert sum(recorder.rows) == 2 * 1000
    assert max(recorder.rows) * 64 * 8 <= 64 << 10
    assert all(k["max_memory"] == 64 << 10 for k in recorder.keywords)
    # A wrapped method without max_memory still gets bounded groups, and no keyword.
    sal = integrad.NoiseTunnel(integrad.Saliency(lambda t: t.sum(1)))
    out = sal.attribute(x, nt_samples=50, stdevs=0.1, max_memory=4 << 10)
    assert out.shape == x.shape


def test_draw_baseline_from_distrib_draws_one_baseline_per_sample():
    model = torch.nn.Linear(4, 2).double()
    w = model.weight[1].detach()
    x, refs = rand(3, 4), rand(5, 4, seed=2)
    nt = integrad.NoiseTunnel(integrad.IntegratedGradients(model))
    # A one-row distribution is that baseline for every sample.
    one = nt.attribute(
        x, nt_samples=3, stdevs=0.0, draw_baseline_from_distrib=True, baselines=refs[:1], target=1
    )
    torch.testing.assert_close(one, w * (x - refs[:1]))
    # IG of a linear model is w (x - x'): the mean over drawn x' tends to the set's mean.
    many, delta = nt.attribute(
        x,
        nt_samples=4000,
        stdevs=0.0,
        draw_baseline_from_distrib=True,
        baselines=refs,
        target=1,
        return_convergence_delta=True,
        generator=gen(4),
    )
    torch.testing.assert_close(many, w * (x - refs.mean(0)), atol=0.1, rtol=0)
    assert delta.shape == (3 * 4000,) and delta.abs().max() < 1e-12
    # Not drawing: the same tensor is one baseline per example, as before.
    fixed = nt.attribute(x, nt_samples=2, stdevs=0.0, baselines=refs[:3], target=1)
    torch.testing.assert_close(fixed, w * (x - refs[:3]))


def test_bad_draw_and_delta_requests():
    nt = integrad.NoiseTunnel(integrad.IntegratedGradients(lambda t: t.sum(1)))
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match=r"draw_baseline_from_distrib=True needs baselines="):
        nt.attribute(x, draw_baseline_from_distrib=True)
    with pytest.raises(ValueError, match=r"baselines must be a distribution.*got \(4, 2\)"):
        nt.attribute(x, draw_baseline_from_distrib=True, baselines=torch.rand(4, 2))
    with pytest.raises(ValueError, match=r"stdevs must be finite numbers >= 0, got inf"):
        nt.attribute(x, stdevs=math.inf)
    sal = integrad.NoiseTunnel(integrad.Saliency(lambda t: t.sum(1)))
    with pytest.raises(ValueError, match=r"return_convergence_delta=True but Saliency has no"):
        sal.attribute(x, return_convergence_delta=True)


def test_memory_stays_bounded_whatever_nt_samples():
    # 1000 noisy copies of 2 examples of 3x64x64 float64 would be 196 MiB per copy set.
    growth = peak_growth_mib(
        """
        x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
        nt = integrad.NoiseTunnel(integrad.Saliency(lambda t: t.tanh().flatten(1).sum(1)))
        nt.attribute(x, nt_samples=2, stdevs=0.1, max_memory=16 << 20)
        """,
        "nt.attribute(x, nt_samples=1000, stdevs=0.1, max_memory=16 << 20)",
    )
    assert growth < 16 + 64  # the budget plus a constant; all at once it is > 1000
