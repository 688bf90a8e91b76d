"""Named baselines, strategies and callables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import integrad
from integrad import baselines as B


def images(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 2, 12, 10, generator=torch.Generator().manual_seed(seed))


def test_named_baselines_have_the_inputs_shape_and_documented_values():
    x = images()
    x_t = (x,)
    assert torch.equal(B.resolve("zeros", x_t, False)[0], torch.zeros_like(x))
    assert torch.equal(B.resolve("max_entropy", x_t, False)[0], torch.full_like(x, 0.5))
    u = B.resolve("uniform", x_t, False)[0]
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    assert u.shape == x.shape and bool(((u >= low) & (u <= high)).all())
    g = B.resolve(B.gaussian(sigma=0.0), x_t, False)[0]
    assert torch.equal(g, x)


def test_gaussian_noise_scales_with_each_examples_range():
    x = torch.stack([torch.linspace(0, 1, 4000), torch.linspace(0, 100, 4000)])
    noisy = B.gaussian(sigma=0.1)(x)
    stds = (noisy - x).std(dim=1)
    assert stds[0].item() == pytest.approx(0.1, rel=0.05)
    assert stds[1].item() == pytest.approx(10.0, rel=0.05)


def test_random_baselines_are_reproducible_through_the_generator():
    x = images()
    a = B.uniform(generator=torch.Generator().manual_seed(7))(x)
    b = B.uniform(generator=torch.Generator().manual_seed(7))(x)
    c = B.uniform(generator=torch.Generator().manual_seed(8))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Without a generator the default is seeded: two calls agree.
    assert torch.equal(B.gaussian()(x), B.gaussian()(x))


def test_blur_keeps_constants_and_mean_and_smooths_noise():
    flat = torch.full((1, 1, 16, 16), 0.3)
    torch.testing.assert_close(B.blur(sigma=3.0)(flat), flat)
    x = images()
    blurred = B.blur(sigma=2.0)(x)
    assert blurred.shape == x.shape

    # Blurring lowers the energy of high frequencies: neighbouring pixels move closer.
    def roughness(t):
        return (t[..., 1:] - t[..., :-1]).abs().mean()

    assert roughness(blurred) < roughness(x) / 3
    # A single bright pixel spreads into a symmetric Gaussian that keeps its total.
    spike = torch.zeros(1, 21, 21)
    spike[0, 10, 10] = 1.0
    out = B.gaussian_blur(spike, 1.5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(out, out.flip(-1))
    torch.testing.assert_close(out, out.transpose(-1, -2))
    assert out[0, 10, 12].item() / out[0, 10, 10].item() == pytest.approx(
        float(torch.exp(torch.tensor(-4 / (2 * 1.5**2)))), rel=0.02
    )


def test_blur_refuses_non_images():
    with pytest.raises(ValueError, match=r"blur baseline needs image inputs.*\(4, 7\)"):
        integrad.explain(lambda t: t.sum(1), torch.rand(4, 7), baselines="blur")


def test_mean_of_reference_data():
    reference = torch.randn(50, 5, generator=torch.Generator().manual_seed(0))
    x = torch.rand(3, 5)
    out = B.resolve(B.mean(reference), (x,), False)[0]
    torch.testing.assert_close(out, reference.mean(0, keepdim=True).expand(3, 5))
    with pytest.raises(ValueError, match=r"reference of shape \(50, 5\) does not match .*\(3, 4\)"):
        B.mean(reference)(torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"baselines='mean' needs reference data"):
        integrad.explain(lambda t: t.sum(1), x, baselines="mean")


def test_callables_and_tuples_mix():
    x, y = torch.rand(2, 3), torch.rand(2, 4)
    got = B.resolve(lambda inputs: (inputs[0] * 0 + 1, 0.5), (x, y), True)
    assert torch.equal(got[0], torch.ones(2, 3)) and torch.equal(got[1], torch.full((2, 4), 0.5))
    got = B.resolve(("max_entropy", B.zeros()), (x, y), True)
    assert torch.equal(got[0], torch.full((2, 3), 0.5)) and torch.equal(got[1], torch.zeros(2, 4))
    single = B.resolve(lambda t: t / 2, (x,), False)[0]
    torch.testing.assert_close(single, x / 2)


def test_named_baseline_gives_the_same_ig_as_the_explicit_tensor():
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(2 * 12 * 10, 3), torch.nn.Tanh()
    )
    x = images()
    by_name = integrad.explain(model, x, baselines="blur", target=1)
    explicit = integrad.explain(model, x, baselines=B.blur()(x), target=1)
    torch.testing.assert_close(by_name.attributions, explicit.attributions)
    assert by_name.baseline == "blur" and str(B.blur(2.0)) == "blur(sigma=2.0)"
    torch.testing.assert_close(by_name.baselines, B.blur()(x))


def test_bad_options():
    with pytest.raises(ValueError, match=r"sigma must be a finite number > 0, got -1"):
        B.blur(sigma=-1)
    with pytest.raises(ValueError, match=r"sigma must be a finite number >= 0"):
        B.gaussian(sigma=float("nan"))


@pytest.mark.parametrize(
    ("mode", "scipy_mode"), [("replicate", "nearest"), ("constant", "constant")]
)
@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.7, 2.5, 40.0])
def test_gaussian_blur_is_scipys_gaussian_filter(mode, scipy_mode, sigma):
    from scipy import ndimage

    x = torch.rand(2, 3, 7, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = np.stack(
        [ndimage.gaussian_filter(c, sigma=sigma, mode=scipy_mode) for c in x.reshape(6, 7, 10)]
    )
    ours = B.gaussian_blur(x, sigma, mode)
    torch.testing.assert_close(
        ours, torch.from_numpy(expected).reshape(x.shape), rtol=0, atol=1e-14
    )
    with pytest.raises(ValueError, match=r"mode must be 'replicate' or 'constant', got 'wrap'"):
        B.gaussian_blur(x, sigma, "wrap")


@pytest.mark.parametrize("name", ["uniform", "gaussian"])
def test_random_baselines_draw_fresh_noise_for_each_tensor_of_a_tuple(name):
    x = torch.rand(2, 5, generator=torch.Generator().manual_seed(1))
    first, second = B.resolve(name, (x, x.clone()), True)
    assert not torch.equal(first, second)
    again = B.resolve(name, (x, x.clone()), True)  # still reproducible by default
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


@pytest.mark.parametrize("mode,scipy_mode", [("replicate", "nearest"), ("constant", "constant")])
@pytest.mark.parametrize("sigma", [0.7, 3.0, 40.0, 3.3e4])
def test_blur_matrix_equals_scipy_at_any_sigma(mode, scipy_mode, sigma):
    from scipy.ndimage import gaussian_filter1d

    size = 9
    ref = np.stack(
        [gaussian_filter1d(np.eye(size)[:, j], sigma, mode=scipy_mode) for j in range(size)], 1
    )
    np.testing.assert_allclose(B.blur_matrix(size, sigma, mode).numpy(), ref, atol=1e-14)


def test_blur_memory_does_not_grow_with_sigma():
    # The kernel was formed over 2·4σ+1 offsets for every row: 5.6 GB at sigma=1e6, and
    # an allocation failure at 1e12. With the kernel's mass almost all past the border,
    # replicate mode reads the edge pixels: every output is the mean of the four corners.
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    corners = x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].mean(dim=2)
    for sigma in (1e6, 1e12):
        out = B.gaussian_blur(x, sigma)
        expected = corners[:, :, None, None].expand_as(x)
        np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-4)
    assert B.blur(sigma=1e9)(x).shape == x.shape
