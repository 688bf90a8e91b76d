"""ROAD's noisy linear imputation: the neighbour system holds, noise comes from the generator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from integrad.metrics import deletion, insertion, noisy_linear_impute, road

WEIGHTS = {
    (-1, -1): 1 / 12, (-1, 0): 1 / 6, (-1, 1): 1 / 12, (0, -1): 1 / 6,
    (0, 1): 1 / 6, (1, -1): 1 / 12, (1, 0): 1 / 6, (1, 1): 1 / 12,
}  # fmt: skip


def neighbour_mean(image: torch.Tensor, i: int, j: int) -> float:
    """Rong et al.'s weighted mean of the in-bounds neighbours of (i, j), written out."""
    height, width = image.shape
    total = weight = 0.0
    for (di, dj), w in WEIGHTS.items():
        if 0 <= i + di < height and 0 <= j + dj < width:
            total += w * float(image[i + di, j + dj])
            weight += w
    return total / weight


def test_filled_pixels_solve_the_neighbour_system() -> None:
    g = torch.Generator().manual_seed(0)
    planes = torch.rand(3, 9, 7, generator=g, dtype=torch.float64)
    removed = torch.rand(3, 9, 7, generator=g) < torch.tensor([0.2, 0.6, 0.95])[:, None, None]
    removed[0, 0, 0] = removed[0, 8, 6] = removed[1, 4, 0] = True  # corners and borders
    assert (~removed).flatten(1).any(1).all()
    filled = noisy_linear_impute(planes, removed)
    assert torch.equal(filled[~removed], planes[~removed])
    for n, i, j in removed.nonzero().tolist():
        assert float(filled[n, i, j]) == pytest.approx(neighbour_mean(filled[n], i, j), abs=1e-10)


def test_a_plane_with_nothing_kept_gets_its_mean_and_dtype_is_kept() -> None:
    planes = torch.arange(12.0).reshape(1, 3, 4)
    filled = noisy_linear_impute(planes, torch.ones(1, 3, 4, dtype=torch.bool))
    assert filled.dtype == torch.float32
    torch.testing.assert_close(filled, torch.full((1, 3, 4), 5.5))


def test_noise_is_added_to_filled_pixels_only_and_follows_the_seeds() -> None:
    g = torch.Generator().manual_seed(1)
    planes = torch.rand(2, 40, 40, generator=g, dtype=torch.float64)
    removed = torch.rand(2, 40, 40, generator=g) < 0.5
    clean = noisy_linear_impute(planes, removed)
    seeds = torch.tensor([3, 4])
    noisy = noisy_linear_impute(planes, removed, 0.05, seeds)
    assert torch.equal(noisy, noisy_linear_impute(planes, removed, 0.05, seeds))
    assert not torch.equal(noisy, noisy_linear_impute(planes, removed, 0.05, torch.tensor([3, 5])))
    difference = noisy - clean
    assert torch.equal(difference[~removed], torch.zeros_like(difference[~removed]))
    # ~1600 draws: the sample deviation is within 10% of 0.05 (its own sd is ~2%).
    assert float(difference[removed].std()) == pytest.approx(0.05, rel=0.1)
    with pytest.raises(ValueError, match="one seed per plane"):
        noisy_linear_impute(planes, removed, 0.05)


def ramp(batch: int) -> torch.Tensor:
    """Affine images a + b i + c j (per example and channel)."""
    g = torch.Generator().manual_seed(2)
    coefficients = torch.rand(batch, 2, 3, 1, 1, generator=g, dtype=torch.float64)
    i = torch.arange(8, dtype=torch.float64)[:, None]
    j = torch.arange(8, dtype=torch.float64)[None, :]
    a, b, c = coefficients.unbind(2)
    return a + b * i + c * j


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2)
    ).double()


def test_road_deletion_of_interior_pixels_of_an_affine_image_changes_nothing() -> None:
    """A symmetric neighbour mean reproduces an affine image inside; zeros would not."""
    model, x = cnn(), ramp(2)
    interior = torch.zeros(2, 2, 8, 8, dtype=torch.float64)
    interior[:, :, 1:-1, 1:-1] = 1.0  # 72 interior features of 128 ranked first
    result = deletion(model, x, interior, target=1, steps=16, baselines=road(noise=0.0))
    with torch.no_grad():
        start = model(x)[:, 1]
    moved_inside = result.fractions * result.n_units <= 72
    assert int(moved_inside.sum()) == 10
    expected = start[:, None].expand(-1, 10)
    torch.testing.assert_close(result.curves[:, moved_inside], expected, rtol=1e-10, atol=1e-10)
    zeros = deletion(model, x, interior, target=1, steps=16)
    assert (zeros.curves[:, 1:10] - expected[:, 1:]).abs().min() > 1e-3


def test_road_curves_are_reproducible_and_do_not_depend_on_the_chunking() -> None:
    model = cnn()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 2, 8, 8, generator=g, dtype=torch.float64)
    attributions = torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64)
    x0 = x.clone()

    def run(seed: int, max_memory: int | None, kind: str = "deletion") -> torch.Tensor:
        func = deletion if kind == "deletion" else insertion
        imputation = road(0.1, torch.Generator().manual_seed(seed))
        return func(
            model,
            x,
            attributions,
            target=0,
            steps=5,
            patch=2,
            baselines=imputation,
            max_memory=max_memory,
        ).curves

    first = run(0, None)
    for max_memory in (1, 3000):
        torch.testing.assert_close(run(0, max_memory), first, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(run(1, None), first)
    assert torch.equal(x, x0)
    with torch.no_grad():
        torch.testing.assert_close(first[:, 0], model(x)[:, 0])  # nothing removed yet
        torch.testing.assert_close(run(0, None, "insertion")[:, -1], model(x)[:, 0])
    default = deletion(model, x, attributions, target=0, steps=5, baselines="road").curves
    again = deletion(model, x, attributions, target=0, steps=5, baselines="road").curves
    assert torch.equal(default, again)


def test_road_arguments_are_checked() -> None:
    model = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="baselines='road' needs image inputs"):
        deletion(model, torch.rand(2, 4), torch.rand(2, 4), baselines="road")
    with pytest.raises(ValueError, match="noise must be a number >= 0, got -1"):
        road(-1)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator, got int"):
        road(0.01, 5)  # type: ignore[arg-type]
