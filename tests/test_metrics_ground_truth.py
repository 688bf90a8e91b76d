"""Ground-truth check: exact on a model that reads known features; IG on the demo's sensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import integrad
from integrad.demo_views import train_series_model
from integrad.metrics import ground_truth_check, sensor_series


def test_relevant_marks_exactly_the_features_the_target_reads() -> None:
    x, y, relevant = sensor_series(5, generator=torch.Generator().manual_seed(4))
    # y is linear in x with weights on the relevant features only.
    weights = torch.zeros(48, 3)
    weights[30:36, 0], weights[8:14, 1] = 1 / 6, -1 / 6
    torch.testing.assert_close((x * weights).sum(dim=(1, 2)), y)
    assert torch.equal(relevant, weights != 0)


def test_a_linear_model_on_the_relevant_features_only_scores_exactly_one() -> None:
    _, _, relevant = sensor_series(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48 * 3, 1), nn.Flatten(0)).double()
    with torch.no_grad():
        model[1].weight.mul_(relevant.reshape(1, -1))
    x = torch.randn(6, 48, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    check = ground_truth_check(integrad.explain(model, x), relevant)
    assert torch.equal(check.mass, torch.ones(6, dtype=torch.float64))
    assert torch.equal(check.rank, torch.ones(6, dtype=torch.float64))
    assert check.chance == 12 / 144
    # An attribution that puts everything elsewhere scores 0.
    elsewhere = ground_truth_check((~relevant).double().expand(6, -1, -1), relevant)
    assert torch.equal(elsewhere.mass, torch.zeros(6, dtype=torch.float64))
    assert torch.equal(elsewhere.rank, torch.zeros(6, dtype=torch.float64))


def test_ig_on_the_trained_demo_model_lands_on_the_relevant_features() -> None:
    """Measured (the demo's MLP and training, 64 test series, IG 32 steps from zeros):
    IG mass mean 0.549, min 0.193; rank mean 0.773; random attributions mass 0.082
    (chance 12/144 = 0.083). Margins: half-way between IG's values and chance."""
    generator = torch.Generator().manual_seed(0)
    x, y, relevant = sensor_series(2048, generator=generator)
    model = train_series_model(x, y, generator, seed=0)
    x_test, _, _ = sensor_series(64, generator=generator)
    ig = ground_truth_check(integrad.explain(model, x_test, n_steps=32), relevant)
    noise = torch.randn(x_test.shape, generator=torch.Generator().manual_seed(1))
    random = ground_truth_check(noise, relevant)
    assert float(ig.mass.mean()) > 0.32  # 0.549 measured
    assert float(ig.mass.min()) > 0.14  # 0.193: series near 0 in the window get little
    assert float(ig.rank.mean()) > 0.43  # 0.773
    assert float(random.mass.mean()) == pytest.approx(random.chance, abs=0.02)  # 0.082


def test_tuple_and_per_example_masks_and_errors() -> None:
    a = (torch.tensor([[1.0, -3.0], [2.0, 0.0]]), torch.tensor([[[4.0]], [[2.0]]]))
    per_example = (torch.tensor([[True, False], [False, True]]), torch.ones(2, 1, 1).bool())
    check = ground_truth_check(a, per_example)
    torch.testing.assert_close(check.mass, torch.tensor([5 / 8, 2 / 4], dtype=torch.float64))
    # k = 2 for both: #0 ranks 4, 3 (one relevant); #1 ranks 2, 2 (tie: feature order).
    torch.testing.assert_close(check.rank, torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="relevant must be a bool tensor"):
        ground_truth_check(torch.ones(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match=r"relevant has shape \(4,\)"):
        ground_truth_check(torch.ones(2, 3), torch.ones(4).bool())
    with pytest.raises(ValueError, match="relevant marks no feature"):
        ground_truth_check(torch.ones(2, 3), torch.zeros(3).bool())
    with pytest.raises(ValueError, match="relevant has 1 tensor"):
        ground_truth_check(a, torch.ones(2).bool())
    with pytest.raises(ValueError, match="steps must be >= 36"):
        sensor_series(2, steps=20)
