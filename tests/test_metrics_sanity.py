"""randomization_check: correlations fall on the digits CNN; the model is never touched."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import integrad
from integrad.metrics import randomization_check
from integrad.metrics.sanity import spearman, ssim

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def explain_half(model: nn.Module, x: torch.Tensor, target: object) -> integrad.Explanation:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrad.CompletenessWarning)
        return integrad.explain(model, x, target=target, n_steps=32, baselines=0.5)


def test_ig_on_the_digits_cnn_passes_the_cascading_check(
    digits_cnn: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    """Measured (16 test digits, IG with baseline 0.5, generator seed 0), mean over examples,
    layers from the top (8 = last linear) down, against 1.0 for the original model:
    Spearman |a| 0.348, 0.345, 0.337, 0.260; SSIM 0.348, 0.309, 0.257, 0.184; signed Spearman
    within ±0.2. (Seed 1: Spearman |a| 0.47 -> 0.30, SSIM 0.39 -> 0.21.) With a zero baseline
    the digits' zero background gets zero attribution whatever the weights, and Spearman |a|
    stays ~0.91: the input, not the model, sets those ranks (Adebayo et al.'s caveat)."""
    model, x_test, _ = digits_cnn
    x = x_test[:16]
    with torch.no_grad():
        predicted = model(x).argmax(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check = randomization_check(
        model, explain_half, x, target=predicted, generator=torch.Generator().manual_seed(0)
    )
    assert check.layers == ["8", "6", "2", "0"]
    assert check.ssim is not None
    table = check.table()
    ssim_mean = table["ssim"].to_numpy()
    rank_mean = table["spearman_abs"].to_numpy()
    assert (ssim_mean[1:] <= ssim_mean[:-1]).all()  # measured steps >= 0.039
    assert ssim_mean[-1] < ssim_mean[0] - 0.08 and rank_mean[-1] < rank_mean[0] - 0.04
    assert rank_mean.max() < 0.5 and ssim_mean.max() < 0.5
    assert abs(table["spearman"].to_numpy()).max() < 0.35
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


def test_independent_mode_randomizes_one_layer_at_a_time() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    seen: list[list[bool]] = []
    reference = [p.clone() for p in model.parameters()]

    def explain(m: nn.Module, x: torch.Tensor, target: object) -> torch.Tensor:
        seen.append(
            [torch.equal(p, r) for p, r in zip(m.parameters(), reference, strict=True)][::2]
        )
        return integrad.explain(m, x, n_steps=8).attributions  # type: ignore[return-value]

    x = torch.randn(4, 5, dtype=torch.float64)
    randomization_check(model, explain, x, mode="independent")
    # original, then the top layer alone, then the bottom layer alone (weights checked).
    assert seen == [[True, True], [True, False], [False, True]]
    seen.clear()
    randomization_check(model, explain, x, mode="cascading")
    assert seen == [[True, True], [True, False], [False, False]]
    assert all(torch.equal(p, r) for p, r in zip(model.parameters(), reference, strict=True))


def test_constant_parameters_are_redrawn_at_their_scale_not_zeroed() -> None:
    # A fresh BatchNorm has weight 1 everywhere (standard deviation 0): redrawn as
    # N(0, 0²) it became 0, the model constant, every attribution 0, and the
    # correlation 0 read as a pass. Each randomized model must still use its input.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1))
    model = model.double().eval()
    sizes: list[float] = []

    def explain(m: nn.Module, x: torch.Tensor, target: object) -> torch.Tensor:
        attributions = integrad.explain(m, x, n_steps=16).attributions
        sizes.append(float(attributions.abs().max()))  # type: ignore[union-attr]
        return attributions  # type: ignore[return-value]

    x = torch.randn(5, 4, dtype=torch.float64)
    for mode in ("cascading", "independent"):
        sizes.clear()
        check = randomization_check(model, explain, x, mode=mode)
        assert check.layers == ["3", "1", "0"]
        assert min(sizes) > 1e-3, (mode, sizes)


def test_the_same_generator_seed_gives_the_same_table() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    x = torch.randn(3, 5, dtype=torch.float64)

    def explain(m: nn.Module, x: torch.Tensor, target: object) -> integrad.Explanation:
        return integrad.explain(m, x, target=target, n_steps=8)

    runs = [
        randomization_check(model, explain, x, target=1, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    assert torch.equal(runs[0].spearman_abs, runs[1].spearman_abs)
    assert runs[0].ssim is None  # not images
    open_before = plt.get_fignums()
    fig = runs[0].plot()
    spearman_abs = fig.axes[0].lines[0]  # the plotted means are the check's own numbers
    assert spearman_abs.get_label().startswith("Spearman |a|")
    assert np.allclose(spearman_abs.get_ydata(), runs[0].spearman_abs.mean(1).numpy())
    assert "randomized from the output down" in fig.axes[0].get_xlabel()
    assert plt.get_fignums() == open_before  # not a pyplot figure: shown once, no leak


def test_spearman_matches_scipy_with_ties() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (5, 30), generator=g).double()
    b = torch.randn(5, 30, dtype=torch.float64, generator=g)
    b[:, :10] = 0.0
    expected = [spearmanr(x.numpy(), y.numpy()).statistic for x, y in zip(a, b, strict=True)]
    torch.testing.assert_close(spearman(a, b), torch.tensor(expected, dtype=torch.float64))
    assert spearman(torch.ones(1, 4), torch.randn(1, 4)).item() == 0.0


def test_ssim_is_one_for_equal_images_and_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 9, 9, dtype=torch.float64, generator=g)
    b = torch.rand(2, 9, 9, dtype=torch.float64, generator=g)
    torch.testing.assert_close(ssim(a, a), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(ssim(a, b), ssim(b, a))
    assert (ssim(a, b) < 0.5).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": lambda x: x}, TypeError, "model must be a torch.nn.Module"),
        ({"model": nn.ReLU()}, ValueError, "model has no parameters"),
        ({"mode": "random"}, ValueError, r"mode must be one of \('cascading', 'independent'\)"),
        ({"generator": 3}, TypeError, "generator must be a torch.Generator"),
        (
            {"explain_func": lambda m, x, target: x[:, :2]},
            ValueError,
            r"explain_func's result has shape \(2, 2\)",
        ),
    ],
)
def test_bad_arguments_name_themselves(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {
        "model": nn.Linear(3, 1),
        "explain_func": lambda m, x, target: integrad.explain(m, x).attributions,
        "inputs": torch.randn(2, 3),
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        randomization_check(**arguments)  # type: ignore[arg-type]
