"""Generator-backed perturbations: forms, reproducibility, the subset mask's meaning, errors."""

from __future__ import annotations

import pytest
import torch

from integrad.metrics import perturbations


def test_gaussian_keeps_the_tuple_form_and_its_noise_has_the_asked_spread() -> None:
    x = (torch.zeros(4000, 5, dtype=torch.float64), torch.ones(4000, 2, 3))
    noise, moved = perturbations.gaussian(0.3, torch.Generator().manual_seed(0))(x)
    assert isinstance(noise, tuple) and isinstance(moved, tuple)
    assert noise[0].dtype == torch.float64 and noise[1].dtype == torch.float32
    for xi, n, m in zip(x, noise, moved, strict=True):
        assert torch.equal(m, xi - n)
        assert abs(float(n.std()) - 0.3) < 0.01


def test_same_seed_same_draws() -> None:
    x = torch.ones(3, 4)
    for factory in (
        lambda g: perturbations.gaussian(0.1, g),
        lambda g: perturbations.subset(0.5, g),
        perturbations.uniform,
    ):
        a = factory(torch.Generator().manual_seed(4))(x)
        b = factory(torch.Generator().manual_seed(4))(x)
        c = factory(torch.Generator().manual_seed(5))(x)
        flat = [
            torch.cat([t.flatten() for t in (v if isinstance(v, tuple) else (v,))])
            for v in (a, b, c)
        ]
        assert torch.equal(flat[0], flat[1]) and not torch.equal(flat[0], flat[2])


def test_subset_replaces_masked_features_by_the_baseline() -> None:
    x = torch.arange(1.0, 41.0, dtype=torch.float64).reshape(2, 20)
    base = torch.full((2, 20), 5.0, dtype=torch.float64)
    mask, moved = perturbations.subset(0.5, torch.Generator().manual_seed(1))(x, base)
    removed = moved == base
    # The mask marks removed features, except where input and baseline agree (x = 5).
    assert torch.equal(mask.bool(), removed & (x != base))
    assert 10 < int(removed.sum()) < 30
    # (x - moved) = mask * (x - baseline): Captum's multiply_by_inputs perturbation.
    assert torch.equal(x - moved, mask * (x - base))


def test_uniform_stays_within_the_radius() -> None:
    x = torch.zeros(100, 10, dtype=torch.float64)
    moved = perturbations.uniform(torch.Generator().manual_seed(0))(x, 0.25)
    assert isinstance(moved, torch.Tensor) and moved.dtype == torch.float64
    assert float(moved.abs().max()) <= 0.25 and float(moved.abs().max()) > 0.24


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: perturbations.gaussian(0.0), ValueError, "stdev must be a finite number > 0"),
        (lambda: perturbations.gaussian("a"), TypeError, "stdev must be a number"),  # type: ignore[arg-type]
        (lambda: perturbations.subset(1.5), ValueError, r"fraction must be in \(0, 1\]"),
        (lambda: perturbations.uniform(3), TypeError, "generator must be a torch.Generator"),  # type: ignore[arg-type]
        (lambda: perturbations.uniform()(torch.zeros(1, 2), -1.0), ValueError, "perturb_radius"),
    ],
)
def test_bad_arguments_name_themselves(make: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()  # type: ignore[operator]
