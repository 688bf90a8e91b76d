"""Exact IG (method='exact'): hand-computed cases, a brute-force region oracle, refusals.

The oracle below shares nothing with the implementation: it reads activation patterns
as exact signs and MaxPool argmax indices, finds the switching points by scanning a
grid and bisecting to 1e-13 (regions are convex, so equal patterns at both ends of an
interval mean no switch inside), and integrates with plain autograd at piece midpoints.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import small_cnn
from torch import nn

import integrad


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def mlp(seed: int = 0, features: int = 20, width: int = 64, act: type[nn.Module] = nn.ReLU):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(features, width), act(), nn.Linear(width, width), act(), nn.Linear(width, 3)
    ).double()


def prelu(n: int, seed: int = 3) -> nn.PReLU:
    """A PReLU with a different slope per channel."""
    act = nn.PReLU(n)
    with torch.no_grad():
        act.weight.copy_(torch.rand(n, generator=torch.Generator().manual_seed(seed)) - 0.5)
    return act


def cnn(seed: int = 0, last: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU() if last is None else last,
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 4),
    ).double()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        model[1].running_mean.copy_(rand(4, seed=5) * 0.1)
        model[1].running_var.copy_(rand(4, seed=6).abs() + 0.5)
    return model.eval()


# -- the oracle ---------------------------------------------------------------------


def patterns(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """One row per point: every ReLU-like input's side of 0, every MaxPool's argmax."""
    seen: list[torch.Tensor] = []

    def sides(module, args):
        seen.append((args[0] > 0).flatten(1).long())

    def argmax(module, args, out):
        idx = nn.functional.max_pool2d(
            args[0], module.kernel_size, module.stride, module.padding, return_indices=True
        )[1]
        seen.append(idx.flatten(1))

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.RReLU)):
            handles.append(m.register_forward_pre_hook(sides))
        elif isinstance(m, nn.MaxPool2d):
            handles.append(m.register_forward_hook(argmax))
    try:
        with torch.no_grad():
            model(points)
    finally:
        for h in handles:
            h.remove()
    return torch.cat(seen, dim=1)


def oracle(model: nn.Module, x: torch.Tensor, b: torch.Tensor, target: int, grid: int = 128):
    """(IG, pieces) for one example by grid scan and bisection of the activation pattern."""
    d = x - b

    def at(alphas: torch.Tensor) -> torch.Tensor:
        return b + alphas.view(-1, *[1] * x.dim()) * d

    alphas = torch.linspace(0, 1, grid + 1, dtype=torch.float64)
    pat = patterns(model, at(alphas))
    changed = (pat[1:] != pat[:-1]).any(1).nonzero().squeeze(1)
    lo, hi, p_lo, p_hi = alphas[changed], alphas[changed + 1], pat[changed], pat[changed + 1]
    switches = []
    while lo.numel():
        mid = (lo + hi) / 2
        small = hi - lo < 1e-13
        switches.append(mid[small])
        lo, hi, p_lo, p_hi, mid = lo[~small], hi[~small], p_lo[~small], p_hi[~small], mid[~small]
        p_mid = patterns(model, at(mid))
        left, right = (p_lo != p_mid).any(1), (p_mid != p_hi).any(1)
        lo, hi = torch.cat([lo[left], mid[right]]), torch.cat([mid[left], hi[right]])
        p_lo, p_hi = torch.cat([p_lo[left], p_mid[right]]), torch.cat([p_mid[left], p_hi[right]])
    cuts = torch.cat([torch.zeros(1, dtype=torch.float64), *switches, torch.ones(1)]).sort()[0]
    cuts = cuts[torch.cat([torch.tensor([True]), cuts[1:] - cuts[:-1] > 1e-12])]
    cuts[-1] = 1.0
    points = at((cuts[1:] + cuts[:-1]) / 2).requires_grad_()
    (grads,) = torch.autograd.grad(model(points)[:, target].sum(), points)
    lengths = (cuts[1:] - cuts[:-1]).view(-1, *[1] * x.dim())
    return d * (lengths * grads).sum(0), len(cuts) - 1


# -- analytic cases -----------------------------------------------------------------


def kinked(w1, b1, w2) -> nn.Module:
    model = nn.Sequential(nn.Linear(len(w1[0]), len(w1)), nn.ReLU(), nn.Linear(len(w2), 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w1))
        model[0].bias.copy_(torch.tensor(b1))
        model[2].weight.copy_(torch.tensor([w2]))
        model[2].bias.zero_()
    return model.double()


@pytest.mark.parametrize(
    ("x", "baseline", "expected", "regions"),
    [(5.0, 0.0, 8.0, 3), (2.0, 5.0, -7.0, 2), (0.5, 0.0, 0.0, 1), (3.0, 1.0, 2.0, 1)],
)
def test_one_dimensional_relu_sum_by_hand(x, baseline, expected, regions):
    # f(x) = relu(x - 1) + 2 relu(x - 3): kinks at 1 and 3, so 1-D IG is f(x) - f(x').
    model = kinked([[1.0], [1.0]], [-1.0, -3.0], [1.0, 2.0])
    exp = integrad.explain(
        model, torch.tensor([[x]], dtype=torch.float64), baselines=baseline, method="exact"
    )
    assert exp.attributions.item() == pytest.approx(expected, abs=1e-12)
    assert exp.extras["regions"].tolist() == [regions]
    # One activation layer: its switching points follow from the ends, and the model is
    # affine after it, so F at the two ends is all the forward passes it takes, and one
    # gradient (with the layer's derivative averaged over the path) all the backward ones.
    assert exp.n_forward.tolist() == [2]
    assert exp.n_evals.tolist() == [1]
    assert exp.n_steps == regions


def test_two_dimensional_relu_by_hand():
    # f = relu(x1 - 1) + 2 relu(x1 + x2 - 3) + relu(2 x1 - 2) on the path 0 -> (5, 1):
    # kinks at α = 0.2 (two neurons at once) and 0.5; gradient 0, (3, 0), (5, 2) between.
    model = kinked([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]], [-1.0, -3.0, -2.0], [1.0, 2.0, 1.0])
    x = torch.tensor([[5.0, 1.0]], dtype=torch.float64)
    exp = integrad.explain(model, x, method="exact")
    path_mean = torch.tensor([[0.3 * 3 + 0.5 * 5, 0.5 * 2]], dtype=torch.float64)
    torch.testing.assert_close(exp.attributions, x * path_mean, rtol=0, atol=1e-12)
    assert exp.output.item() == pytest.approx(18.0)  # 4 + 2·3 + 8 = 17 + 1
    assert exp.extras["regions"].tolist() == [3]
    assert exp.n_forward.tolist() == [2]  # the last activation layer's kinks need no forward
    averaged = integrad.IntegratedGradients(model, multiply_by_inputs=False).attribute(
        x, method="exact"
    )
    torch.testing.assert_close(averaged, path_mean, rtol=0, atol=1e-12)


def test_bias_free_relu_net_from_zero_is_one_region_and_gradient_times_input():
    # Positively homogeneous: every pre-activation is α × its value at x, so no unit
    # switches on (0, 1] and IG = x ⊙ ∇F(x) exactly.
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Linear(6, 16, bias=False), nn.ReLU(), nn.Linear(16, 2, bias=False)
    ).double()
    x = rand(4, 6, seed=11).requires_grad_()
    (grad,) = torch.autograd.grad(model(x)[:, 1].sum(), x)
    exp = integrad.explain(model, x.detach(), target=1, method="exact")
    assert exp.extras["regions"].tolist() == [1] * 4
    torch.testing.assert_close(exp.attributions, x.detach() * grad, rtol=0, atol=1e-14)


# -- against the oracle -------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        mlp(),
        mlp(seed=1, act=lambda: nn.LeakyReLU(0.1)),
        mlp(seed=2, act=lambda: prelu(64)),
        mlp(seed=3, act=lambda: nn.RReLU(0.1, 0.3)),
        cnn(),
        cnn(seed=2, last=prelu(6)),
    ],
    ids=["relu-mlp", "leaky-mlp", "prelu-mlp", "rrelu-mlp", "cnn", "prelu-cnn"],
)
def test_matches_the_brute_force_oracle(model, device):
    model.eval()
    shape = (1, 1, 8, 8) if isinstance(model[0], nn.Conv2d) else (2, 20)  # CNN: slow oracle
    x, b = rand(*shape), rand(*shape, seed=1) * 0.5
    target = [0, 2][: shape[0]]
    on_device = copy.deepcopy(model).to(device)
    exp = integrad.explain(
        on_device, x.to(device), baselines=b.to(device), target=target, method="exact"
    )
    assert exp.attributions.device.type == device.type
    for i in range(shape[0]):
        ig, pieces = oracle(model, x[i], b[i], target[i])
        torch.testing.assert_close(exp.attributions[i].cpu(), ig, rtol=0, atol=1e-10)
        assert int(exp.extras["regions"][i]) == pieces
    assert exp.delta.abs().max() < 1e-12
    # One gradient per segment between switching points of the calls before the last:
    # the last call's regions share it, with that call's derivative averaged over them.
    assert (exp.n_evals <= exp.extras["regions"]).all()
    assert (exp.n_evals < exp.extras["regions"]).any()
    assert (exp.n_forward <= 2 * exp.extras["regions"]).all()


class Residual(nn.Module):
    """A skip connection, and one ReLU module called twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.head = nn.Linear(10, 10), nn.Linear(10, 10), nn.Linear(10, 2)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(x + self.b(self.act(self.a(x)))))


def test_residual_block_with_a_shared_relu_and_an_example_at_its_baseline():
    model = Residual().double().eval()
    x, b = rand(3, 10) * 2, rand(3, 10, seed=1)
    b[1] = x[1]
    exp = integrad.explain(model, x, baselines=b, target=1, method="exact")
    for i in (0, 2):
        ig, pieces = oracle(model, x[i], b[i], 1)
        torch.testing.assert_close(exp.attributions[i], ig, rtol=0, atol=1e-12)
        assert int(exp.extras["regions"][i]) == pieces
    assert exp.attributions[1].abs().max() == 0
    assert exp.n_evals[1] == 1


def test_cnn_matches_a_dense_midpoint_reference_within_its_error_bound():
    model = cnn(seed=2)
    x, b = rand(1, 1, 8, 8, seed=3), torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    exp = integrad.explain(model, x, baselines=b, target=3, method="exact")
    n = 4096
    points = ((torch.arange(n, dtype=torch.float64) + 0.5) / n).view(-1, 1, 1, 1) * x
    points.requires_grad_()
    (grads,) = torch.autograd.grad(model(points)[:, 3].sum(), points)
    dense = x * grads.mean(0, keepdim=True)
    # The midpoint rule is exact on cells without a switch; on each of the at most
    # (regions - 1) other cells it errs by at most (max - min of the gradient) / n.
    spread = grads.amax(0) - grads.amin(0)
    bound = (int(exp.extras["regions"][0]) - 1) * spread * x.abs() / n
    assert ((exp.attributions - dense).abs() <= bound + 1e-12).all()
    assert (exp.attributions - dense).abs().max() < 1e-3 * exp.attributions.abs().max()


class Kinked(nn.Module):
    """``head(act(lin(x)))`` with ``act`` written as ``c0 + s0 z + Σ Δs_j relu(z - θ_j)``."""

    def __init__(self, lin, head, kinks, slopes, c0) -> None:
        super().__init__()
        self.lin, self.head, self.kinks, self.slopes, self.c0 = lin, head, kinks, slopes, c0
        self.relus = nn.ModuleList(nn.ReLU() for _ in kinks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.lin(x)
        h = self.c0 + self.slopes[0] * z
        for relu, at, before, after in zip(
            self.relus, self.kinks, self.slopes[:-1], self.slopes[1:], strict=True
        ):
            h = h + (after - before) * relu(z - at)
        return self.head(h)


@pytest.mark.parametrize(
    ("act", "kinks", "slopes", "c0"),
    [
        (nn.Hardtanh(), [-1.0, 1.0], [0.0, 1.0, 0.0], -1.0),
        (nn.ReLU6(), [0.0, 6.0], [0.0, 1.0, 0.0], 0.0),
        (nn.Softshrink(0.5), [-0.5, 0.5], [1.0, 0.0, 1.0], 0.5),
        (nn.LeakyReLU(0.1), [0.0], [0.1, 1.0], 0.0),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None,
)
def test_kinked_activations_equal_their_relu_form(act, kinks, slopes, c0):
    # Implementation invariance: the same function written with ReLUs only.
    torch.manual_seed(0)
    lin, head = nn.Linear(6, 8).double(), nn.Linear(8, 2).double()
    x, b = rand(3, 6, seed=9) * 4, rand(3, 6, seed=10)
    exp = integrad.explain(nn.Sequential(lin, act, head), x, baselines=b, target=1, method="exact")
    twin = integrad.explain(Kinked(lin, head, kinks, slopes, c0), x, baselines=b, target=1,
                            method="exact")  # fmt: skip
    torch.testing.assert_close(exp.attributions, twin.attributions, rtol=0, atol=1e-12)
    assert (exp.extras["regions"] > 2).all()
    assert exp.delta.abs().max() < 1e-12


@pytest.mark.parametrize(
    "act",
    [
        nn.ReLU(),
        nn.LeakyReLU(0.1),
        prelu(3),
        nn.PReLU(),
        nn.RReLU(0.1, 0.3).eval(),
        nn.Hardtanh(-1.0, 2.0),
        nn.ReLU6(),
        nn.Softshrink(0.5),
    ],
    ids=lambda m: type(m).__name__,
)
def test_derivatives_of_kinked_modules_equal_autograd_also_on_their_kinks(act):
    from integrad._hosts import derivative
    from integrad._regions import kinks

    # Random points, and every kink itself: PyTorch's backward decides the value there.
    on = [torch.full((1, 3, 5), at, dtype=torch.float64) for at in kinks(act)]
    z = torch.cat([rand(4, 3, 5) * 3, *on])
    z = z.requires_grad_()
    (expected,) = torch.autograd.grad(act.double()(z).sum(), z)
    got = derivative(act, z.detach().flatten(1).clone(), z.shape[1:])
    torch.testing.assert_close(got, expected.flatten(1), rtol=0, atol=0)
    # Single elements (flattened indices): PReLU's slope follows each element's channel.
    element = torch.tensor([[0, 7, 14], [1, 8, 13]])
    values = z.detach().flatten(1)[0][element]
    single = derivative(act, values.clone(), z.shape[1:], element)
    torch.testing.assert_close(single, expected.flatten(1)[0][element], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("pool", "shape"),
    [
        (nn.MaxPool1d(3, 2, 1), (2, 3, 11)),
        (nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), (2, 3, 10, 9)),
        (nn.MaxPool2d((2, 3), (1, 2), (1, 1), ceil_mode=True), (2, 1, 6, 7)),
        (nn.MaxPool3d(2, ceil_mode=True), (1, 2, 5, 4, 3)),
    ],
)
def test_pool_windows_hold_exactly_what_each_max_is_taken_over(pool, shape):
    from integrad._regions import pool_windows

    u = rand(*shape)
    windows = pool_windows(pool, u, pool(u))
    assert torch.equal(windows.amax(-1), pool(u).reshape(shape[0], -1))
    assert windows.shape[-1] == torch.tensor(pool.kernel_size).prod() ** (
        1 if isinstance(pool.kernel_size, tuple) else u.dim() - 2
    )
    model = nn.Sequential(nn.Flatten(0, 0), pool, nn.Flatten(), nn.LazyLinear(1)).double()
    model(u)  # materialise the lazy layer
    exp = integrad.explain(model.eval(), u, method="exact")
    assert exp.delta.abs().max() < 1e-12


# -- argument forms, batching, cost -------------------------------------------------


def test_batch_rows_are_independent_and_targets_follow_captum_forms():
    model = mlp(seed=3, width=24).eval()
    x, b = rand(3, 20, seed=4), rand(3, 20, seed=5)
    together = integrad.explain(model, x, baselines=b, target=[2, 0, 1], method="exact")
    for i, t in enumerate([2, 0, 1]):
        alone = integrad.explain(model, x[i : i + 1], baselines=b[i : i + 1], target=t,
                                 method="exact")  # fmt: skip
        torch.testing.assert_close(together.attributions[i : i + 1], alone.attributions,
                                   rtol=0, atol=1e-12)  # fmt: skip
        assert together.extras["regions"][i] == alone.extras["regions"][0]
    assert len(set(together.extras["regions"].tolist())) > 1  # each row its own regions
    assert together.n_steps == int(together.extras["regions"].max())
    chunked = integrad.IntegratedGradients(model).attribute(
        x, baselines=b, target=1, method="exact", internal_batch_size=3
    )
    by_int = integrad.explain(model, x, baselines=b, target=1, method="exact")
    torch.testing.assert_close(chunked, by_int.attributions, rtol=0, atol=1e-12)


def test_tuple_inputs_equal_the_concatenated_model():
    model = mlp(seed=4, features=7).eval()

    class Split(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return self.net(torch.cat([a, c.flatten(1)], dim=1))

    a, c = rand(2, 3, seed=6), rand(2, 2, 2, seed=7)
    exp = integrad.explain(Split(), (a, c), target=0, method="exact")
    whole = integrad.explain(model, torch.cat([a, c.flatten(1)], 1), target=0, method="exact")
    assert isinstance(exp.attributions, tuple)
    torch.testing.assert_close(exp.attributions[0], whole.attributions[:, :3], rtol=0, atol=1e-12)
    torch.testing.assert_close(exp.attributions[1].flatten(1), whole.attributions[:, 3:],
                               rtol=0, atol=1e-12)  # fmt: skip
    assert exp.delta.abs().max() < 1e-12


def test_float32_model_is_accepted_and_close_to_float64():
    model = small_cnn()
    x = rand(2, 1, 8, 8, seed=8)
    exp32 = integrad.explain(model, x.float(), target=[1, 4], method="exact")
    exp64 = integrad.explain(model.double(), x, target=[1, 4], method="exact")
    scale = exp64.attributions.abs().max()
    assert (exp32.attributions.double() - exp64.attributions).abs().max() < 1e-4 * scale
    assert exp32.attributions.dtype == torch.float32
    assert exp32.output.dtype == torch.float32


# -- refusals and state ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:tolerance=0.05 was not met")  # half precision's gaps
@pytest.mark.parametrize(
    ("dtype", "autocast", "says"),
    [
        (torch.bfloat16, False, "inputs of dtype torch.bfloat16"),
        (torch.float16, False, "inputs of dtype torch.float16"),
        (torch.float32, True, "torch.autocast in torch.bfloat16"),
    ],
)
def test_half_precision_is_refused_and_tolerance_mode_climbs_its_ladder_instead(
    dtype, autocast, says
):
    # In half precision the crossings round into the wrong regions: exact mode returned
    # attributions 28-56% off with completeness gaps over 100% (and tolerance mode
    # certified them with an error estimate of 0).
    model, x = mlp().to(dtype), rand(3, 20, seed=4).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        with pytest.raises(ValueError, match=rf"method='exact' needs .* float32 .* {says}"):
            integrad.explain(model, x, target=1, method="exact")
        tolerated = integrad.explain(model, x, target=1, tolerance=0.05)
    assert tolerated.method == "tolerance:piecewise"
    # The truth for the model's own (rounded) weights, in float64.
    truth = integrad.explain(model.double(), x.double(), target=1, method="exact").attributions
    err = (tolerated.attributions.double() - truth).norm(dim=1) / truth.norm(dim=1)
    assert bool((err <= 0.1).all())  # half precision's own error, not the regions'


@pytest.mark.parametrize(
    ("layer", "name"), [(nn.GELU(), "GELU"), (nn.Sigmoid(), "Sigmoid"), (nn.Softmax(1), "Softmax")]
)
def test_smooth_modules_are_refused_by_name(layer, name):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 3), layer))
    with pytest.raises(ValueError, match=rf"piecewise-linear model; module '2\.1' \({name}\)"):
        integrad.explain(model.eval(), torch.ones(1, 4), target=0, method="exact")


class Hidden(nn.Module):
    """A ReLU net with a nonlinearity that no module hook sees."""

    def __init__(self, squash) -> None:
        super().__init__()
        self.squash = squash
        self.net = mlp(seed=5, features=4, width=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.squash(self.net(x))


class Inside(nn.Module):
    """A ReLU net with a nonlinearity between its layers that no module hook sees."""

    def __init__(self, squash) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)
        self.act, self.squash = nn.ReLU(), squash

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.act(self.b(self.squash(self.a(x)))))


@pytest.mark.parametrize("where", [Hidden, Inside], ids=["on-output", "inside"])
@pytest.mark.parametrize("squash", [torch.sigmoid, torch.relu], ids=["sigmoid", "relu"])
def test_functional_nonlinearity_is_refused_not_integrated(squash, where):
    # Also where the last activation module's regions share one gradient (a host): the
    # check compares F at the host's ends and midpoint with the gradients.
    with pytest.raises(ValueError, match=r"not linear on a segment.*torch.sigmoid, F.relu"):
        integrad.explain(where(squash).double(), rand(2, 4) * 3, target=0, method="exact")


def test_training_mode_plain_functions_and_unknown_layers_are_refused():
    bn = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.ReLU()).double()
    with pytest.raises(ValueError, match=r"module '1' \(BatchNorm1d\) is in training mode"):
        integrad.explain(bn, rand(2, 3), target=0, method="exact")
    dropout = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"module '2' \(Dropout\) is in training mode"):
        integrad.explain(dropout.double(), rand(2, 3), method="exact")
    dropout.eval()  # eval-mode Dropout is the identity: accepted
    assert integrad.explain(dropout.double(), rand(2, 3), method="exact").delta.abs().max() < 1e-12
    with pytest.raises(ValueError, match=r"forward_func to be an nn.Module.*function"):
        integrad.explain(lambda x: bn.eval()(x), rand(2, 3), target=0, method="exact")

    class Scale(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x

    with pytest.raises(ValueError, match=r"module '1' \(Scale\) is not a known affine"):
        integrad.explain(nn.Sequential(nn.Linear(3, 1), Scale()), rand(2, 3), method="exact")


def hooks(model: nn.Module) -> list[int]:
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


def test_hooks_and_model_state_are_restored_also_after_an_error():
    model = cnn()
    before = hooks(model)
    integrad.explain(model, rand(2, 1, 8, 8), target=0, method="exact")
    assert hooks(model) == before

    calls = []

    def fail_later(module, args):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")

    own = model[4].register_forward_pre_hook(fail_later)
    with pytest.raises(RuntimeError, match="boom"):
        integrad.explain(model, rand(2, 1, 8, 8), target=0, method="exact")
    own.remove()
    assert hooks(model) == before
    assert not model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
