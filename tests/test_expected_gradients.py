"""Expected Gradients: exact on linear models, complete in expectation, deterministic mode."""

from __future__ import annotations

import pytest
import torch
from conftest import peak_growth_mib, smooth_mlp

import integrad


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_linear_model_gives_weight_times_distance_to_the_mean_reference(device):
    # For F linear the gradient is w everywhere: E[(x - x') w] over the sampled references.
    model = torch.nn.Linear(5, 2).double().to(device)
    x, refs = rand(3, 5).to(device), rand(4, 5, seed=1).to(device)
    eg = integrad.ExpectedGradients(model)
    exact = eg.attribute(x, baselines=refs, target=1, n_steps=2)
    torch.testing.assert_close(exact, model.weight[1].detach() * (x - refs.mean(0)))
    sampled = eg.attribute(
        x, baselines=refs, target=1, n_samples=4000, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(sampled, exact, atol=0.15, rtol=0)


def test_deterministic_mode_is_the_average_of_ig_over_the_references():
    model = smooth_mlp()
    x, refs = rand(2, 6), rand(3, 6, seed=4)
    eg = integrad.ExpectedGradients(model).attribute(
        x, baselines=refs, target=[0, 2], n_steps=24, samples_batch_size=2
    )
    each = [
        integrad.explain(model, x, baselines=r.unsqueeze(0), target=[0, 2], n_steps=24).attributions
        for r in refs
    ]
    torch.testing.assert_close(eg, torch.stack(each).mean(0))


def test_complete_in_expectation_and_exact_delta_in_deterministic_mode():
    model = smooth_mlp()
    x, refs = rand(3, 6), rand(10, 6, seed=5)
    eg = integrad.ExpectedGradients(model)
    for target in (1, [0, 2, 1]):  # shared and per-example targets
        _, delta = eg.attribute(
            x, baselines=refs, target=target, n_steps=32, return_convergence_delta=True
        )
        assert delta.abs().max() < 1e-9
    gap = (model(x)[:, 1] - model(refs)[:, 1].mean()).abs()
    _, delta = eg.attribute(
        x,
        baselines=refs,
        target=1,
        n_samples=3000,
        return_convergence_delta=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert (delta.abs() < 0.05 * gap + 0.02).all()


def test_reproducible_through_the_generator_and_tuple_inputs():
    f = smooth_mlp(features=5)

    def model(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return f(torch.cat([a, b], dim=1))

    x = (rand(2, 3), rand(2, 2, seed=1))
    refs = (rand(6, 3, seed=2), rand(6, 2, seed=3))
    eg = integrad.ExpectedGradients(model)

    def run(seed):
        return eg.attribute(
            x,
            baselines=refs,
            target=0,
            n_samples=9,
            stdevs=0.1,
            samples_batch_size=4,
            generator=torch.Generator().manual_seed(seed),
        )

    a, b, c = run(1), run(1), run(2)
    assert isinstance(a, tuple) and a[1].shape == (2, 2)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_bad_reference_sets():
    eg = integrad.ExpectedGradients(lambda t: t.sum(1))
    with pytest.raises(ValueError, match=r"baselines must be a reference set.*features \(4,\)"):
        eg.attribute(torch.rand(2, 4), baselines=torch.rand(4))
    with pytest.raises(ValueError, match=r"baselines of shape \(3, 5\) does not broadcast"):
        eg.attribute(torch.rand(2, 4), baselines=torch.rand(3, 5))
    with pytest.raises(ValueError, match=r"n_samples must be a positive int, got 0"):
        eg.attribute(torch.rand(2, 4), baselines=torch.rand(3, 4), n_samples=0)


def test_captum_surface():
    eg = integrad.ExpectedGradients(smooth_mlp())
    assert eg.has_convergence_delta() and eg.multiplies_by_inputs
    with pytest.raises(NotImplementedError, match="attribute_future is not implemented"):
        eg.attribute_future()


@pytest.mark.parametrize("n_steps", [None, 8])
def test_results_do_not_depend_on_samples_batch_size_or_max_memory(n_steps):
    model = smooth_mlp()
    x, refs = rand(3, 6), rand(5, 6, seed=7)
    eg = integrad.ExpectedGradients(model)
    kwargs = dict(baselines=refs, target=[0, 1, 2], n_samples=11, stdevs=0.1, n_steps=n_steps)
    reference = eg.attribute(x, generator=torch.Generator().manual_seed(2), **kwargs)
    for knobs in ({"samples_batch_size": 1}, {"samples_batch_size": 4}, {"max_memory": 2000}):
        again = eg.attribute(x, generator=torch.Generator().manual_seed(2), **knobs, **kwargs)
        torch.testing.assert_close(again, reference, rtol=1e-12, atol=1e-15)


def test_float32_results_do_not_depend_on_samples_batch_size():
    model = smooth_mlp().float()
    x, refs = rand(2, 6).float(), rand(5, 6, seed=7).float()
    eg = integrad.ExpectedGradients(model)
    runs = [
        eg.attribute(x, refs, target=1, n_samples=9, samples_batch_size=size)
        for size in (None, 1, 2)
    ]
    for run in runs[1:]:
        torch.testing.assert_close(run, runs[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"samples_batch_size": -2}, r"samples_batch_size must be a positive int, got -2"),
        ({"samples_batch_size": 0}, r"samples_batch_size must be a positive int, got 0"),
        ({"stdevs": float("inf")}, r"stdevs must be finite numbers >= 0, got inf"),
        ({"stdevs": -0.5}, r"stdevs must be finite numbers >= 0, got -0.5"),
    ],
)
def test_bad_sampling_arguments(arguments, message):
    eg = integrad.ExpectedGradients(lambda t: t.sum(1))
    with pytest.raises(ValueError, match=message):
        eg.attribute(torch.rand(2, 4), baselines=torch.rand(3, 4), **arguments)


def test_memory_stays_bounded_whatever_n_samples():
    # 1000 samples of 2 examples of 3x64x64 float64: every copy set would be 196 MiB.
    growth = peak_growth_mib(
        """
        x, refs = torch.rand(2, 3, 64, 64, dtype=torch.float64), torch.rand(8, 3, 64, 64).double()
        eg = integrad.ExpectedGradients(lambda t: t.tanh().flatten(1).sum(1))
        eg.attribute(x, refs, n_samples=2, stdevs=0.1, max_memory=16 << 20)
        """,
        "eg.attribute(x, refs, n_samples=1000, stdevs=0.1, max_memory=16 << 20)",
    )
    assert growth < 16 + 64  # the budget plus a constant; all at once it is > 1000
