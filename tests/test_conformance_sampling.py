"""integrad beside Captum 0.9 over Captum's documented arguments: NoiseTunnel, GradientShap.

NoiseTunnel draws from a torch.Generator, Captum from the global state: with
``stdevs=0`` the results must be Captum's; with noise the shapes, delta conventions
and statistics must be. GradientShap with ``generator=None`` draws what Captum draws
from the global state, so seeded alike the values agree to float tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import GradientShap as CaptumGradientShap
from captum.attr import InputXGradient as CaptumInputXGradient
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import NoiseTunnel as CaptumNoiseTunnel
from captum.attr import Saliency as CaptumSaliency
from conftest import TwoInputs, smooth_mlp

import integrad


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


METHODS = {
    "ig": (integrad.IntegratedGradients, CaptumIG, {"n_steps": 8}),
    "saliency": (integrad.Saliency, CaptumSaliency, {"abs": False}),
    "input_x_gradient": (integrad.InputXGradient, CaptumInputXGradient, {}),
}


def assert_same(ours, theirs, rtol: float) -> None:
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b.to(a.dtype), rtol=rtol, atol=1e-12)


def seeded(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# -- NoiseTunnel ---------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("nt_samples_batch_size", [None, 2])
@pytest.mark.parametrize("tuple_inputs", [False, True])
def test_noise_tunnel_without_noise_is_captums(
    method, nt_type, nt_samples_batch_size, tuple_inputs
):
    ours_cls, theirs_cls, extra = METHODS[method]
    if tuple_inputs:
        model = TwoInputs().double()
        inputs = (rand(3, 5), rand(3, 2, 3, seed=1))
        kwargs = dict(target=(1, 2), additional_forward_args=(rand(3, 1, seed=2), True))
        stdevs: float | tuple[float, ...] = (0.0, 0.0)
    else:
        model = smooth_mlp()
        inputs = rand(3, 6)
        kwargs = dict(target=[0, 2, 1])
        stdevs = 0.0
    args = dict(nt_type=nt_type, nt_samples=5, stdevs=stdevs, **kwargs, **extra)
    ours = integrad.NoiseTunnel(ours_cls(model)).attribute(
        inputs, nt_samples_batch_size=nt_samples_batch_size, **args
    )
    theirs = CaptumNoiseTunnel(theirs_cls(model)).attribute(
        inputs, nt_samples_batch_size=nt_samples_batch_size, **args
    )
    # Captum's IG casts its quadrature weights to float32.
    assert_same(ours, theirs, rtol=1e-6 if method == "ig" else 1e-12)


@pytest.mark.parametrize("nt_samples_batch_size", [None, 3])
@pytest.mark.parametrize("draw", [False, True])
def test_noise_tunnel_deltas_and_drawn_baselines_without_noise_are_captums(
    nt_samples_batch_size, draw
):
    model = smooth_mlp()
    x = rand(3, 6)
    # A one-row distribution makes the draws coincide.
    baselines = rand(1, 6, seed=1) if draw else rand(3, 6, seed=1)
    args = dict(
        nt_samples=7,
        nt_samples_batch_size=nt_samples_batch_size,
        stdevs=0.0,
        draw_baseline_from_distrib=draw,
        baselines=baselines,
        target=1,
        n_steps=16,
        return_convergence_delta=True,
    )
    ours, d_ours = integrad.NoiseTunnel(integrad.IntegratedGradients(model)).attribute(x, **args)
    theirs, d_theirs = CaptumNoiseTunnel(CaptumIG(model)).attribute(x, **args)
    assert_same(ours, theirs, rtol=1e-6)
    assert d_ours.shape == d_theirs.shape == (3 * 7,)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-5, atol=1e-7)


def test_noise_tunnel_surface_is_captums():
    model = smooth_mlp()
    for ours_cls, theirs_cls, _ in METHODS.values():
        ours, theirs = integrad.NoiseTunnel(ours_cls(model)), CaptumNoiseTunnel(theirs_cls(model))
        assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs
        assert ours.has_convergence_delta() == theirs.has_convergence_delta()
        for nt in (ours, theirs):
            with pytest.raises(NotImplementedError, match="attribute_future is not implemented"):
                nt.attribute_future()


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 4)])
def test_noisy_noise_tunnel_has_captums_statistics(shape):
    # Saliency of sum(t^2) is 2(x + e): smoothgrad is 2x, smoothgrad_sq 4x^2 + 4 sigma^2 and
    # vargrad 4 sigma^2 in expectation, for both libraries.
    x, sigma, n = rand(*shape), 0.2, 600

    def f(t: torch.Tensor) -> torch.Tensor:
        return (t**2).reshape(len(t), -1).sum(1)

    ours_nt = integrad.NoiseTunnel(integrad.Saliency(f))
    theirs_nt = CaptumNoiseTunnel(CaptumSaliency(f))
    torch.manual_seed(0)
    # Expected value and standard deviation of one sample, per nt_type.
    moments = {
        "smoothgrad": (2 * x, 2 * sigma + 0 * x),
        "smoothgrad_sq": (4 * x**2 + 4 * sigma**2, 4 * sigma * (4 * x**2 + 2 * sigma**2).sqrt()),
        "vargrad": (torch.full_like(x, 4 * sigma**2), 4 * sigma**2 * 2**0.5 + 0 * x),
    }
    for nt_type, (value, spread) in moments.items():
        args = dict(nt_type=nt_type, nt_samples=n, stdevs=sigma, abs=False)
        ours = ours_nt.attribute(x, nt_samples_batch_size=64, **args)
        theirs = theirs_nt.attribute(x, nt_samples_batch_size=64, **args)
        assert ours.shape == theirs.shape == x.shape
        for got in (ours, theirs):
            assert ((got - value).abs() < 5 * spread / n**0.5).all()


def test_noisy_noise_tunnel_deltas_have_captums_shape():
    model = smooth_mlp()
    x = rand(2, 6)
    args = dict(nt_samples=4, stdevs=0.1, target=0, n_steps=32, return_convergence_delta=True)
    _, ours = integrad.NoiseTunnel(integrad.IntegratedGradients(model)).attribute(x, **args)
    _, theirs = CaptumNoiseTunnel(CaptumIG(model)).attribute(x, **args)
    assert ours.shape == theirs.shape == (8,)
    assert ours.abs().max() < 1e-6 and theirs.abs().max() < 1e-3


# -- GradientShap --------------------------------------------------------------------


def single_input_cases() -> list[tuple[str, object, int]]:
    return [
        ("int", 1, 3),
        ("0-d tensor", torch.tensor(2), 3),
        ("list", [0, 2, 1], 3),
        ("1-d tensor", torch.tensor([2, 0, 1]), 3),
        ("one-element tensor", torch.tensor([1]), 1),
        ("one-element tensor, batch 3", torch.tensor([1]), 3),
    ]


@pytest.mark.parametrize(("name", "target", "batch"), single_input_cases())
@pytest.mark.parametrize("n_samples", [1, 5])
@pytest.mark.parametrize("stdevs", [0.0, 0.25])
@pytest.mark.parametrize("baselines", ["tensor", "callable()", "callable(inputs)"])
def test_gradient_shap_is_captums_seeded_alike(name, target, batch, n_samples, stdevs, baselines):
    model = smooth_mlp()
    x, refs = rand(batch, 6), rand(7, 6, seed=1)
    given = {
        "tensor": refs,
        "callable()": lambda: refs,
        "callable(inputs)": lambda inputs: refs * inputs.mean(),
    }[baselines]
    args = dict(n_samples=n_samples, stdevs=stdevs, target=target, return_convergence_delta=True)
    seeded(3)
    theirs, d_theirs = CaptumGradientShap(model).attribute(x, given, **args)
    after_theirs = (torch.rand(1), np.random.rand())
    seeded(3)
    ours, d_ours = integrad.GradientShap(model).attribute(x, given, max_memory=4000, **args)
    after_ours = (torch.rand(1), np.random.rand())
    assert_same(ours, theirs, rtol=1e-12)
    assert d_ours.shape == d_theirs.shape == (batch * n_samples,)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-10, atol=1e-12)
    assert torch.equal(after_ours[0], after_theirs[0]) and after_ours[1] == after_theirs[1]


@pytest.mark.parametrize("target", [(1, 2), [(0, 1), (1, 3), (0, 0)]])
@pytest.mark.parametrize("stdevs", [0.0, (0.1, 0.3)])
@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_gradient_shap_tuple_inputs_and_extra_args_are_captums(target, stdevs, multiply_by_inputs):
    model = TwoInputs().double()
    inputs = (rand(3, 5), rand(3, 2, 3, seed=1))
    refs = (rand(4, 5, seed=2), rand(6, 2, 3, seed=3))  # each its own distribution size
    args = dict(
        n_samples=6,
        stdevs=stdevs,
        target=target,
        additional_forward_args=(rand(3, 1, seed=4), True),
        return_convergence_delta=True,
    )
    seeded(5)
    theirs, d_theirs = CaptumGradientShap(model, multiply_by_inputs).attribute(inputs, refs, **args)
    seeded(5)
    ours, d_ours = integrad.GradientShap(model, multiply_by_inputs).attribute(inputs, refs, **args)
    assert isinstance(ours, tuple)
    assert_same(ours, theirs, rtol=1e-12)
    if not multiply_by_inputs:
        # integrad's delta stays a completeness check: that of the multiplied attributions.
        seeded(5)
        _, d_theirs = CaptumGradientShap(model).attribute(inputs, refs, **args)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-10, atol=1e-12)


def test_gradient_shap_without_delta_and_with_scalar_outputs_is_captums():
    f = smooth_mlp()

    def model(t: torch.Tensor) -> torch.Tensor:
        return f(t)[:, 1]

    x, refs = rand(4, 6), rand(9, 6, seed=1)
    seeded(8)
    theirs = CaptumGradientShap(model).attribute(x, refs)
    seeded(8)
    ours = integrad.GradientShap(model).attribute(x, refs)
    assert_same(ours, theirs, rtol=1e-12)
    gs = integrad.GradientShap(model)
    assert gs.has_convergence_delta() == CaptumGradientShap(model).has_convergence_delta()
    assert gs.multiplies_by_inputs == CaptumGradientShap(model).multiplies_by_inputs
