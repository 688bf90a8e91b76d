"""The engine leaves everything as it found it, also when the forward raises midway."""

from __future__ import annotations

import pytest
import torch
from conftest import FailsOnCall
from torch import nn

import integrad
from integrad import _engine, _memory


def snapshot(model: nn.Module, *tensors: torch.Tensor):
    return (
        model.training,
        [(n, p.requires_grad, p.grad, p.detach().clone()) for n, p in model.named_parameters()],
        [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
        [(t.clone(), t.requires_grad, t.grad) for t in tensors],
    )


def assert_unchanged(before, after) -> None:
    assert before[0] == after[0]
    for (n, rg, g, v), (_, rg2, g2, v2) in zip(before[1], after[1], strict=True):
        assert rg == rg2 and g is None and g2 is None and torch.equal(v, v2), n
    assert before[2] == after[2]
    for (v, rg, g), (v2, rg2, g2) in zip(before[3], after[3], strict=True):
        assert torch.equal(v, v2) and rg == rg2 and g is None and g2 is None


def make_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model[1].register_forward_hook(lambda m, i, o: None)
    model[0].weight.requires_grad_(False)  # a frozen layer stays frozen
    return model.eval()


def path_problem(
    model: nn.Module, x: torch.Tensor, b: torch.Tensor, target: object
) -> _engine.PathProblem:
    """The engine's problem for ``model`` on one input tensor, no extra arguments."""
    return _engine.PathProblem(
        model,
        (x,),
        (b,),
        integrad._inputs.Target(target, int(x.shape[0])),
        integrad._inputs.ExtraArgs.of(None, int(x.shape[0])),
    )


def test_nothing_is_mutated_by_a_successful_call():
    model = make_model()
    x = torch.rand(3, 4, requires_grad=True)
    b = torch.rand(1, 4)
    before = snapshot(model, x, b)
    exp = integrad.explain(model, x, baselines=b, target=1, internal_batch_size=6)
    assert not exp.attributions.requires_grad
    assert_unchanged(before, snapshot(model, x, b))


@pytest.mark.parametrize("fail_at", [1, 3])
def test_nothing_is_mutated_when_the_forward_raises_midway(fail_at):
    model = FailsOnCall(make_model(), fail_at)
    model.train()  # a model without Dropout/BatchNorm: no warning, flag kept
    x = torch.rand(3, 4)
    before = snapshot(model, x)
    with pytest.raises(RuntimeError, match="device lost"):
        integrad.explain(model, x, target=0, internal_batch_size=3, n_steps=10)
    assert model.calls == fail_at
    assert_unchanged(before, snapshot(model, x))


def test_works_inside_no_grad():
    model = make_model()
    x = torch.rand(2, 4)
    with torch.no_grad():
        inside = integrad.explain(model, x, target=2)
    torch.testing.assert_close(
        inside.attributions, integrad.explain(model, x, target=2).attributions
    )
    assert inside.attributions.abs().sum() > 0


def test_bytes_per_point_is_remembered_and_counted_once_on_a_real_chunk():
    model = make_model()
    x = torch.rand(2, 4)
    first = _engine.Engine(path_problem(model, x, torch.zeros_like(x), 0))
    rows, alphas = torch.arange(2).repeat(4), torch.linspace(0, 1, 8).double()
    first.gradients(rows, alphas, torch.ones(8).double())
    assert _memory.remembered(first.problem).bytes_per_point == first.bytes_per_point
    # A figure from the probe's few points is counted again on the next call's first chunk;
    # one counted on a real chunk is trusted from then on.
    _memory.remember(first.problem, 1.0, on_chunk=False)
    again = _engine.Engine(first.problem)
    again.gradients(rows, alphas, torch.ones(8).double())
    assert again.bytes_per_point == first.bytes_per_point
    assert _memory.remembered(first.problem).on_chunk
    _memory.remember(first.problem, 2.0, on_chunk=True)
    trusted = _engine.Engine(first.problem)
    trusted.gradients(rows, alphas, torch.ones(8).double())
    assert trusted.bytes_per_point == 2.0


def test_gradients_report_the_target_output_at_every_point():
    model = make_model()
    x, b = torch.rand(3, 4), torch.rand(3, 4)
    problem = path_problem(model, x, b, [0, 2, 1])
    rows = torch.tensor([2, 0, 1, 2, 0])
    alphas = torch.tensor([0.0, 0.3, 0.5, 1.0, 0.9], dtype=torch.float64)
    got = _engine.Engine(problem, internal_batch_size=3).gradients(rows, alphas, alphas).outputs
    points = b[rows] + alphas.float().unsqueeze(1) * (x[rows] - b[rows])
    expected = model(points)[torch.arange(5), torch.tensor([1, 0, 2, 1, 0])]
    torch.testing.assert_close(got, expected.detach())


def test_gradients_at_explicit_or_built_points_match_the_straight_line():
    model = make_model()
    x, b = torch.rand(3, 4), torch.rand(3, 4)
    problem = path_problem(model, x, b, [0, 2, 1])
    rows = torch.tensor([2, 0, 1, 2, 0, 1, 1])
    alphas = torch.tensor([0.0, 0.3, 0.5, 1.0, 0.9, 0.1, 0.7], dtype=torch.float64)
    weights = torch.linspace(0.5, 2.0, 7, dtype=torch.float64)
    straight = _engine.Engine(problem, internal_batch_size=3).gradients(rows, alphas, weights)
    engine = _engine.Engine(problem, internal_batch_size=3)
    points = engine.points(rows, alphas)
    explicit = engine.gradients_at(rows, points, weights)
    seen: list[slice] = []

    def build(part: slice) -> tuple[torch.Tensor, ...]:
        seen.append(part)
        return tuple(p[part] for p in points)

    built = engine.gradients_at(rows, build, weights)
    assert [(s.start, s.stop) for s in seen] == [(0, 3), (3, 6), (6, 7)]  # chunk by chunk
    for got in (explicit, built):
        torch.testing.assert_close(got.sums, straight.sums)
        torch.testing.assert_close(got.outputs, straight.outputs)
    torch.testing.assert_close(engine.outputs_at(rows, points), straight.outputs)
    assert engine.evals.tolist() == [4, 6, 4] and engine.forwards.tolist() == [2, 3, 2]
    # The transform sees which points it reweights.
    doubled = engine.gradients_at(
        rows, points, weights, lambda part, pts, grads: tuple(2 * g for g in grads)
    )
    torch.testing.assert_close(doubled.sums[0], 2 * straight.sums[0])
    with pytest.raises(ValueError, match=r"points\[0\] has shape \(6, 4\); expected 7 rows"):
        engine.gradients_at(rows, (points[0][:6],), weights)


def test_expanded_gradients_are_accumulated() -> None:
    # autograd returns d(sum)/dx as an expanded, stride-0 tensor: it must not be written to.
    x = torch.arange(12.0).reshape(2, 2, 3)
    exp = integrad.explain(lambda t: t.sum((1, 2)), x, n_steps=4)
    torch.testing.assert_close(exp.attributions, x)


def test_forward_chunks_yield_each_chunk_after_its_own_forward():
    model = make_model()
    x, b = torch.rand(3, 4), torch.rand(3, 4)
    problem = path_problem(model, x, b, [0, 2, 1])
    seen: list[int] = []
    handle = model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    try:
        engine = _engine.Engine(problem, internal_batch_size=3)
        rows = torch.tensor([2, 0, 1, 2, 0])
        alphas = torch.tensor([0.0, 0.3, 0.5, 1.0, 0.9], dtype=torch.float64)
        chunks = []
        for r, values in engine.forward_chunks(rows, alphas, before=seen.clear):
            chunks.append((r, values, list(seen)))
    finally:
        handle.remove()
    assert [c[2] for c in chunks] == [[3], [2]]  # `before` ran right before each forward
    torch.testing.assert_close(torch.cat([c[0] for c in chunks]), rows)
    expected = _engine.Engine(problem, internal_batch_size=3).outputs(rows, alphas)
    torch.testing.assert_close(torch.cat([c[1] for c in chunks]), expected)
    assert engine.forwards.tolist() == [2, 1, 2]
    assert engine.evals.tolist() == [0, 0, 0]


def test_float32_sums_do_not_lose_accuracy_with_many_steps():
    # A linear model's IG is exactly w ⊙ (x − x'); a float32 running sum over 20000
    # points erred 1.3e-4 relative (Captum: 1.8e-7).
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(10, 3)
    x = torch.rand(4, 10, generator=g) * 4 - 2
    exp = integrad.explain(model, x, target=1, n_steps=20000, method="riemann_left")
    exact = (model.weight[1].detach().double() * x.double()).float()
    ulps = ((exp.attributions - exact).abs() / torch.finfo(torch.float32).eps / exact.abs()).max()
    assert float(ulps) <= 4


def test_non_finite_outputs_are_an_error_not_nan_attributions():
    def model(x):
        out = x.sum(dim=1)
        return torch.where(x[:, 0] > 0.5, out / 0.0 * 0.0, out)  # NaN for example 1 only

    x = torch.tensor([[0.1, 0.2], [0.9, 0.3], [0.2, 0.2]])
    with pytest.raises(ValueError, match=r"non-finite target output .* example\(s\) \[1\]"):
        integrad.explain(model, x, n_steps=4)


def test_non_finite_gradients_are_an_error():
    # d sqrt(x²)/dx is 0/0 at the zero baseline, which riemann_left evaluates.
    x = torch.tensor([[1.0, -2.0]])
    with pytest.raises(ValueError, match=r"gradients of forward_func are not finite"):
        integrad.explain(lambda t: t.pow(2).sqrt().sum(1), x, n_steps=4, method="riemann_left")


def test_an_unbatched_image_gets_a_message_about_the_batch_dimension():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 2)
    )
    image = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match=r"inputs of shape \(3, 8, 8\).*x\.unsqueeze\(0\)"):
        integrad.explain(model, image, target=0)
    with pytest.raises(ValueError, match=r"inputs of shape \(2, 5\).*batch first"):
        integrad.explain(torch.nn.Linear(4, 2), torch.rand(2, 5), target=0)


_BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1500 << 20, 1500 << 20))
import torch, integrad

class Stop(Exception):
    pass

calls = [0]
linear = torch.nn.Linear(16, 2)

def model(x):
    calls[0] += 1
    if calls[0] > 3:
        raise Stop
    return linear(x)

try:
    integrad.explain(model, torch.rand(16, 16), target=0, n_steps=10**7,
                     method=sys.argv[1], max_memory=1 << 20)
except Stop:
    print("reached the model")
"""


@pytest.mark.parametrize("method", ["riemann_left", "gausslegendre", "idgi"])
def test_huge_n_steps_stay_within_the_memory_budget(method):
    # 16 examples × 10**7 steps: the old engine built 1.6e8-entry index, node and weight
    # tensors (3.8 GB) before the first model call; under a 1.5 GB address-space limit
    # the call must reach the model.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED, method], capture_output=True, text=True, timeout=120
    )
    assert "reached the model" in done.stdout, done.stderr[-2000:]


# -- half precision ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_linear_model_sums_without_losing_bits(dtype, device):
    # Path points run in the model's dtype; the sum over 256 points is kept wide, so the
    # result is w ⊙ (x − x') up to the two roundings of the final product (a running sum
    # in bfloat16 is off by about 20 ulps here).
    torch.manual_seed(0)
    model = nn.Linear(16, 3).to(device, dtype)
    x = (2 * torch.rand(4, 16)).to(device, dtype)
    b = (0.1 * torch.rand(4, 16)).to(device, dtype)
    exp = integrad.explain(model, x, baselines=b, target=1, n_steps=256)
    assert exp.attributions.dtype == dtype
    want = model.weight[1].detach().double() * (x.double() - b.double())
    err = (exp.attributions.double() - want).abs()
    assert bool((err <= 2 * torch.finfo(dtype).eps * want.abs() + 1e-6).all())


def test_autocast_runs_the_model_in_bfloat16_and_returns_float32_attributions(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3)).eval().to(device)
    x, b = torch.rand(4, 16, device=device), 0.1 * torch.rand(4, 16, device=device)
    plain = integrad.explain(model, x, baselines=b, target=2, n_steps=64)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        cast = integrad.explain(model, x, baselines=b, target=2, n_steps=64)
    assert cast.attributions.dtype == torch.float32
    assert not torch.equal(cast.attributions, plain.attributions)  # bfloat16 did run
    gap = (cast.attributions - plain.attributions).norm() / plain.attributions.norm()
    assert float(gap) < 2e-2
