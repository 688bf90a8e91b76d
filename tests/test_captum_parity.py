"""Parity with Captum 0.9 where the definitions coincide (Captum is a test-only oracle)."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from conftest import small_cnn, smooth_mlp

import integrad

SHARED_METHODS = ["riemann_left", "riemann_right", "riemann_middle", "gausslegendre"]


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_same(ours, theirs, rtol: float = 1e-5) -> None:
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        scale = b.abs().max().clamp_min(1e-12)
        assert float((a - b).abs().max() / scale) < rtol


def both(model, inputs, **kwargs):
    ours = integrad.IntegratedGradients(model).attribute(inputs, **kwargs)
    theirs = CaptumIG(model).attribute(inputs, **kwargs)
    return ours, theirs


@pytest.mark.parametrize("method", SHARED_METHODS)
@pytest.mark.parametrize(
    "target", [0, torch.tensor([0, 2, 1, 1]), [2, 0, 0, 1]], ids=["int", "tensor", "list"]
)
def test_targets_and_methods(method, target):
    model = smooth_mlp().float()
    x = rand(4, 6)
    assert_same(*both(model, x, target=target, method=method, n_steps=13))


def test_no_target_for_a_single_output_model():
    model = torch.nn.Sequential(smooth_mlp().float(), torch.nn.Linear(3, 1))
    assert_same(*both(model, rand(4, 6), n_steps=9))


@pytest.mark.parametrize("target", [(1, 3), [(0, 1), (1, 2), (0, 0)]], ids=["tuple", "tuples"])
@pytest.mark.parametrize("internal_batch_size", [None, 2, 7])
def test_tuple_inputs_extra_args_tuple_targets(two_inputs, target, internal_batch_size):
    x, y = rand(3, 5, dtype=torch.float64), rand(3, 2, 3, seed=1, dtype=torch.float64)
    scale = rand(3, 1, seed=2, dtype=torch.float64)
    ours, theirs = both(
        two_inputs,
        (x, y),
        baselines=(0.5, torch.zeros(1, 2, 3, dtype=torch.float64)),
        target=target,
        additional_forward_args=(scale, True),
        internal_batch_size=internal_batch_size,
        n_steps=11,
    )
    assert_same(ours, theirs)


@pytest.mark.parametrize(
    "baselines",
    [None, 0.25, "broadcast", "full"],
)
def test_baseline_forms(baselines):
    model = small_cnn()
    x = rand(3, 1, 8, 8)
    if baselines == "broadcast":
        baselines = rand(1, 1, 8, 8, seed=5)
    elif baselines == "full":
        baselines = rand(3, 1, 8, 8, seed=6)
    assert_same(*both(model, x, baselines=baselines, target=1, n_steps=20))


def test_convergence_delta(two_inputs):
    x, y = rand(3, 5, dtype=torch.float64), rand(3, 2, 3, seed=1, dtype=torch.float64)
    scale = rand(3, 1, seed=2, dtype=torch.float64)
    kwargs = dict(target=(0, 1), additional_forward_args=(scale,), return_convergence_delta=True)
    (ours, d_ours), (theirs, d_theirs) = both(two_inputs, (x, y), n_steps=5, **kwargs)
    assert_same(ours, theirs)
    assert d_ours.shape == d_theirs.shape == (3,)
    # Captum's float32 weights add ~1e-8 of their own; the delta itself is large at n=5.
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [2, 10, 50])
def test_trapezoid_is_captums_rescaled_to_weights_that_sum_to_one(n):
    # Captum gives the same nodes weights 1/n (ends halved), summing to (n-1)/n.
    model = smooth_mlp().float()
    x = rand(4, 6)
    ours, theirs = both(model, x, target=1, method="riemann_trapezoid", n_steps=n)
    assert_same(ours, theirs * n / (n - 1))


def test_trapezoid_exact_on_linear_model_where_captum_is_biased():
    model = torch.nn.Linear(5, 1).double()
    x = rand(2, 5, dtype=torch.float64)
    ours, theirs = both(model, x, method="riemann_trapezoid", n_steps=50)
    exact = model.weight.detach() * x
    torch.testing.assert_close(ours, exact, rtol=1e-12, atol=1e-12)
    assert float(theirs.sum() / exact.sum()) == pytest.approx(49 / 50, rel=1e-6)
