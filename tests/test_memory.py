"""The chunk policy: sizes within the budget, a timed choice that follows the clock and
cannot change results beyond rounding, and the default budget per device."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from conftest import small_cnn, smooth_mlp
from torch import nn

import integrad
from integrad import _engine, _memory

pytestmark = pytest.mark.filterwarnings("ignore::integrad.CompletenessWarning")


class Clock:
    """A clock that moves only when a chunk is worked on: ``cost(size)`` seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_slices(
    policy: _memory.ChunkPolicy, total: int, per_point: float, cost: Callable[[int], float]
) -> list[int]:
    """Sizes the policy hands out on one path, each chunk taking ``cost(size)`` seconds."""
    clock = policy.clock if isinstance(policy.clock, Clock) else Clock()
    policy.clock = clock
    sizes = []
    for part in policy.slices(total, lambda: per_point, True):
        size = part.stop - part.start
        sizes.append(size)
        clock.now += cost(size)
    assert sum(sizes) == total
    return sizes


def test_search_climbs_to_the_budget_when_calls_cost_more_than_points():
    # 1 KiB per point, 64 guessed points' worth of budget: a fixed cost per chunk.
    first = _memory.TARGET_CHUNK_BYTES // 1024
    policy = _memory.ChunkPolicy(4 * first * 1024, fill=False)
    sizes = run_slices(policy, 32 * first, 1024.0, lambda size: 0.03)
    assert sizes[:9] == [first] * 3 + [2 * first] * 3 + [4 * first] * 3  # a warm-up, two timed
    assert policy.trial(1024.0, 32 * first) is None and policy.size(1024.0) == 4 * first
    assert max(sizes) == 4 * first  # never above the budget


def rate_best_at_16(size: int) -> float:
    """Seconds for a chunk: per point, 16 points is fastest."""
    return size * (1.0 + 0.1 * (math.log2(size) - 4) ** 2)


def test_search_finds_the_fastest_size_away_from_its_guess():
    # 4 MiB per point: the guess is the 8-point minimum; per point, 16 is fastest.
    policy = _memory.ChunkPolicy(1 << 40, fill=False)
    sizes = run_slices(policy, 400, float(4 << 20), rate_best_at_16)
    assert sizes[:9] == [8] * 3 + [16] * 3 + [32] * 3  # a warm-up, two timed; upward first
    assert policy.trial(float(4 << 20), 400) is None and policy.size(float(4 << 20)) == 16
    assert set(sizes[9:-2]) == {16} and sum(sizes[-2:]) < 32  # the winner, then the rest
    # 32 MiB per point (a big model): downward first, from 8 to 4.
    big = _memory.ChunkPolicy(1 << 40, fill=False)
    assert run_slices(big, 400, float(32 << 20), rate_best_at_16)[:6] == [8] * 3 + [4] * 3


def test_a_search_too_long_for_one_call_goes_on_in_the_next():
    policy = _memory.ChunkPolicy(1 << 40, fill=False)
    calls = [run_slices(policy, 40, float(4 << 20), rate_best_at_16)]
    while policy.trial(float(4 << 20), 40) is not None and len(calls) < 20:
        calls.append(run_slices(policy, 40, float(4 << 20), rate_best_at_16))
    assert 3 <= len(calls) <= 6 and policy.size(float(4 << 20)) == 16
    assert run_slices(policy, 40, float(4 << 20), rate_best_at_16) == [16, 12, 12]
    assert set(policy.timings.sizes) == {8, 16, 32}  # a cut-short chunk is not timed


def test_a_size_that_lost_under_a_passing_load_is_timed_again_and_wins():
    # While the machine is busy (its first 40 chunks), 16-point chunks run 3x slower: the
    # search settles on 8; a later check of its neighbours finds 16 faster and moves on.
    policy = _memory.ChunkPolicy(1 << 40, fill=False)
    chunks = [0]

    def cost(size: int) -> float:
        chunks[0] += 1
        busy = 3.0 if size == 16 and chunks[0] <= 40 else 1.0
        return busy * rate_best_at_16(size)

    sizes = run_slices(policy, 800, float(4 << 20), cost)
    assert sizes[:9] == [8] * 3 + [16] * 3 + [4] * 3 and sizes[9] == 8  # settled on 8
    assert policy.size(float(4 << 20)) == 16 and sizes[-3] == 16
    assert sizes.count(8) < 3 + _memory.RECHECK + 4  # the check came after RECHECK chunks


def test_a_noisy_first_chunk_does_not_decide():
    # Each size's first chunk pays a set-up cost: the best of two timings counts.
    policy = _memory.ChunkPolicy(1 << 30, fill=False)
    seen: set[int] = set()

    def cost(size: int) -> float:
        setup = 0.0 if size in seen else 100.0
        seen.add(size)
        return setup + size * (1.0 if size == 8 else 2.0)

    run_slices(policy, 400, float(4 << 20), cost)
    assert policy.size(float(4 << 20)) == 8


def test_untimed_and_short_paths_run_in_equal_chunks_within_the_budget():
    policy = _memory.ChunkPolicy(100 * 1024, fill=False)  # 100 points of 1 KiB
    parts = list(policy.slices(250, lambda: 1024.0, False))
    assert [p.stop - p.start for p in parts] == [84, 83, 83]
    # Held at a budget of 6 points, the search tries 6, then 4 (never below the least).
    tight = _memory.ChunkPolicy(6 * 1024, fill=False)
    assert run_slices(tight, 24, 1024.0, lambda size: 1.0) == [6, 6, 6, 4, 2]
    assert min(tight.timings.sizes) == _memory.LEAST_CHUNK_POINTS


def test_filling_policy_takes_the_budget_in_one_go_without_a_trial():
    policy = _memory.ChunkPolicy(1000 * 1024, fill=True)
    parts = list(policy.slices(2500, lambda: 1024.0, True))
    assert [p.stop - p.start for p in parts] == [834, 833, 833] and not policy.timings.sizes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_timed_chunking_gives_the_result_of_one_fixed_chunk(dtype: torch.dtype):
    model = small_cnn().to(dtype)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    per_point = integrad.explain(model, x, target=1, n_steps=2).extras["bytes_per_point"]
    # A budget of 64 points: the search times 64 points twice, then 32, and maybe 16.
    budget = int(64.5 * per_point)
    timed = integrad.explain(model, x, target=1, n_steps=200, max_memory=budget)
    assert timed.extras["chunks"] > 7  # the search ran (equal 64-point chunks are 7)
    whole = integrad.explain(model, x, target=1, n_steps=200, internal_batch_size=400)
    rtol = 1e-6 if dtype == torch.float32 else 1e-12
    scale = whole.attributions.abs().max()
    assert torch.allclose(timed.attributions, whole.attributions, rtol=0, atol=rtol * scale)


def test_the_searchs_timings_are_remembered_for_the_next_call():
    model = smooth_mlp()
    x = torch.rand(4, 6, dtype=torch.float64)
    per_point = integrad.explain(model, x, target=0, n_steps=2).extras["bytes_per_point"]
    budget = int(32.5 * per_point)
    problem = _engine.PathProblem.build(model, x, None, 0, None)[0]
    for _ in range(10):  # 256 points a call: the search may take a few calls to settle
        integrad.explain(model, x, target=0, n_steps=64, max_memory=budget)
        known = _memory.remembered(problem)
        assert known is not None and known.timings.sizes
        if _memory.ChunkPolicy(budget, False, known.timings).trial(per_point, 256) is None:
            break
    # A new engine for the same model and shapes starts where the calls left off: no
    # search, chunks of a size the search timed.
    engine = _engine.Engine(problem, max_memory=budget)
    assert engine.chunk_points() in known.timings.sizes
    assert engine.policy.trial(per_point, 256) is None


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
