"""The chunk policy: sizes within the budget, a timed choice that follows the clock and
cannot change results beyond rounding, and the default budget per device."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import small_cnn, smooth_mlp
from torch import nn

import integrad
from integrad import _engine, _memory

pytestmark = pytest.mark.filterwarnings("ignore::integrad.CompletenessWarning")


def run_slices(
    policy: _memory.ChunkPolicy, total: int, per_point: float, cost: object
) -> tuple[list[int], list[int]]:
    """Sizes the policy hands out, sleeping ``cost(size)`` seconds on each chunk."""
    sizes, chosen = [], []
    for part in policy.slices(total, lambda: per_point, True, chosen.append):
        size = part.stop - part.start
        sizes.append(size)
        time.sleep(cost(size))  # type: ignore[operator]
    return sizes, chosen


def test_timed_trial_settles_on_the_larger_size_when_calls_cost_more_than_points():
    # 1 KiB per point: the byte target gives the first size, the other is four times it.
    first = _memory.TARGET_CHUNK_BYTES // 1024
    policy = _memory.ChunkPolicy(1 << 40, fill=False)
    sizes, chosen = run_slices(policy, 16 * first, 1024.0, lambda size: 0.03)
    assert sizes[:2] == [4 * first, first] and chosen == [4 * first]
    assert sum(sizes) == 16 * first and len(sizes) == 5 and max(sizes) == 4 * first


def test_timed_trial_settles_on_the_smaller_size_when_points_cost_more_in_bulk():
    # A model that already fills the byte target (1 MiB per point): 32 points or 8.
    policy = _memory.ChunkPolicy(1 << 30, fill=False)
    sizes, chosen = run_slices(policy, 160, float(1 << 20), lambda size: 1e-4 * size**2)
    assert sizes[:2] == [8, 32] and chosen == [8]
    assert sum(sizes) == 160 and max(sizes[2:]) <= 8


def test_untimed_and_short_paths_run_in_equal_chunks_within_the_budget():
    policy = _memory.ChunkPolicy(100 * 1024, fill=False)  # 100 points of 1 KiB
    parts = list(policy.slices(250, lambda: 1024.0, False, lambda size: None))
    assert [p.stop - p.start for p in parts] == [84, 83, 83]
    # Held at a budget of 6 points, a smaller trial size would be too small to pay.
    tight = _memory.ChunkPolicy(6 * 1024, fill=False)
    assert tight.second(1024.0) == 6
    assert [p.stop - p.start for p in tight.slices(12, lambda: 1024.0, True, print)] == [6, 6]
    short = list(policy.slices(30, lambda: 1024.0, True, lambda size: None))
    assert [(p.start, p.stop) for p in short] == [(0, 30)] and policy.chosen is None


def test_filling_policy_takes_the_budget_in_one_go_without_a_trial():
    policy = _memory.ChunkPolicy(1000 * 1024, fill=True)
    parts = list(policy.slices(2500, lambda: 1024.0, True, lambda size: None))
    assert [p.stop - p.start for p in parts] == [834, 833, 833] and policy.chosen is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_timed_chunking_gives_the_result_of_one_fixed_chunk(dtype: torch.dtype):
    model = small_cnn().to(dtype)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    per_point = integrad.explain(model, x, target=1, n_steps=2).extras["bytes_per_point"]
    # A budget of 64 points: the trial runs 16 points, then 64, then the faster size.
    budget = int(64.5 * per_point)
    timed = integrad.explain(model, x, target=1, n_steps=60, max_memory=budget)
    assert timed.extras["chunks"] >= 3  # the trial ran (equal 64-point chunks are 2)
    whole = integrad.explain(model, x, target=1, n_steps=60, internal_batch_size=120)
    rtol = 1e-6 if dtype == torch.float32 else 1e-12
    scale = whole.attributions.abs().max()
    assert torch.allclose(timed.attributions, whole.attributions, rtol=0, atol=rtol * scale)


def test_the_settled_size_is_remembered_for_the_next_call():
    model = smooth_mlp()
    x = torch.rand(4, 6, dtype=torch.float64)
    per_point = integrad.explain(model, x, target=0, n_steps=2).extras["bytes_per_point"]
    integrad.explain(model, x, target=0, n_steps=64, max_memory=int(32.5 * per_point))
    problem = _engine.PathProblem.build(model, x, None, 0, None)[0]
    settled = _memory.remembered(problem)
    assert settled is not None and settled.chunk in (8, 32)
    engine = _engine.Engine(problem, max_memory=int(32.5 * per_point))
    assert engine.chunk_points() == settled.chunk


def test_a_model_in_training_mode_is_chunked_the_same_every_call():
    # Train-mode BatchNorm depends on the chunking: the timed trial must not run.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.rand(4, 3)
    with pytest.warns(RuntimeWarning, match="training mode"):
        per_point = integrad.explain(model, x, target=0, n_steps=2).extras["bytes_per_point"]
    with pytest.warns(RuntimeWarning, match="training mode"):
        exp = integrad.explain(model, x, target=0, n_steps=64, max_memory=int(32.5 * per_point))
    assert exp.extras["chunks"] == 8  # equal 32-point chunks, no trial chunks


def test_default_budget_is_a_share_of_free_cuda_memory(device: torch.device):
    budget = _memory.default_budget(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        assert 0.4 * free <= budget <= free
    else:
        assert budget == _engine.DEFAULT_MAX_MEMORY


def test_a_callers_max_memory_wins_on_every_device(device: torch.device):
    model = smooth_mlp().to(device)
    x = torch.rand(4, 6, dtype=torch.float64, device=device)
    engine = _engine.Engine(_engine.PathProblem.build(model, x, None, 0, None)[0], 4096)
    assert engine.max_memory == 4096
    assert engine.chunk_points() * engine.bytes_per_point <= 4096
