"""sensitivity_max: Captum parity (same global seed), kwargs expansion, oracles, errors."""

from __future__ import annotations

import pytest
import torch
from captum.attr import InputXGradient, Saliency
from captum.attr import IntegratedGradients as CaptumIG
from captum.metrics import sensitivity_max as captum_sensitivity_max
from conftest import TwoInputs, smooth_mlp

import integrad
from integrad.metrics import perturbations, sensitivity_max

pytestmark = pytest.mark.filterwarnings(
    "ignore:Input Tensor 0 did not:UserWarning", "ignore:`max_examples_per_batch`:UserWarning"
)


def both(seed: int, *args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    theirs = captum_sensitivity_max(*args, **kwargs)  # type: ignore[arg-type]
    torch.manual_seed(seed)
    ours = sensitivity_max(*args, **kwargs)  # type: ignore[arg-type]
    return ours, theirs


@pytest.mark.parametrize("norm_ord", ["fro", 1, float("inf")])
@pytest.mark.parametrize("max_examples_per_batch", [None, 3, 8, 50])
def test_matches_captum_with_its_default_perturbation(
    norm_ord: object, max_examples_per_batch: int | None
) -> None:
    model = smooth_mlp()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours, theirs = both(
        7,
        InputXGradient(model).attribute,
        x,
        perturb_radius=0.3,
        n_perturb_samples=7,
        norm_ord=norm_ord,
        max_examples_per_batch=max_examples_per_batch,
        target=[0, 2, 1],
    )
    assert ours.shape == (3,) and (ours > 1e-3).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0.0)


def test_matches_captum_for_ig_with_tuple_inputs_baselines_and_extra_args() -> None:
    model = TwoInputs().double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, dtype=torch.float64, generator=g)
    y = torch.randn(2, 2, 3, dtype=torch.float64, generator=g)
    scale = torch.rand(2, 1, dtype=torch.float64, generator=g) + 0.5
    ours, theirs = both(
        11,
        CaptumIG(model).attribute,
        (x, y),
        perturb_radius=0.1,
        n_perturb_samples=4,
        max_examples_per_batch=4,
        baselines=(torch.full((2, 5), 0.1, dtype=torch.float64), 0.2),
        target=[(0, 1), (1, 2)],
        additional_forward_args=(scale, True),
        n_steps=16,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=0.0)


def test_integrad_explanations_are_accepted_and_match_captums_ig() -> None:
    model = smooth_mlp()
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def ours_explain(inputs: torch.Tensor, target: object) -> integrad.Explanation:
        return integrad.explain(model, inputs, target=target, n_steps=32)

    def captum_explain(inputs: torch.Tensor, target: object) -> torch.Tensor:
        return CaptumIG(model).attribute(inputs, target=target, n_steps=32)

    torch.manual_seed(0)
    ours = sensitivity_max(ours_explain, x, target=[1, 2], n_perturb_samples=5)
    torch.manual_seed(0)
    theirs = captum_sensitivity_max(captum_explain, x, target=[1, 2], n_perturb_samples=5)
    torch.testing.assert_close(ours, theirs, rtol=1e-8, atol=0.0)


def test_a_linear_models_gradient_does_not_move() -> None:
    model = torch.nn.Linear(4, 2).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    score = sensitivity_max(Saliency(model).attribute, x, perturbations.uniform(), target=1)
    assert torch.equal(score, torch.zeros(3, dtype=torch.float64))


def test_input_times_gradient_of_a_linear_model_moves_by_the_radius_at_most() -> None:
    """a(x) = w ⊙ x: ‖a(x̃) − a(x)‖∞ / ‖a(x)‖∞ ≤ r max|w| / ‖w ⊙ x‖∞, and close for many draws."""
    model = torch.nn.Linear(4, 1).double()
    x = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = model.weight.detach()[0]
    score = sensitivity_max(
        InputXGradient(model).attribute,
        x,
        perturbations.uniform(torch.Generator().manual_seed(1)),
        perturb_radius=0.05,
        n_perturb_samples=400,
        norm_ord=float("inf"),
    )
    bound = 0.05 * w.abs().max() / (w * x).abs().amax(1)
    assert (score <= bound).all() and (score > 0.9 * bound).all()


def test_results_do_not_depend_on_max_examples_per_batch_for_a_fixed_perturbation() -> None:
    model = smooth_mlp()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    fixed = [
        sensitivity_max(
            InputXGradient(model).attribute,
            x,
            lambda t, r: t * (1 + r),
            n_perturb_samples=5,
            max_examples_per_batch=m,
            target=0,
        )
        for m in (None, 1, 6, 9, 100)
    ]
    for s in fixed[1:]:
        torch.testing.assert_close(s, fixed[0], rtol=1e-12, atol=0.0)


def test_generator_perturbation_is_reproducible_and_leaves_global_state_alone() -> None:
    model = smooth_mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    state = torch.get_rng_state()
    runs = [
        sensitivity_max(
            InputXGradient(model).attribute,
            x,
            perturbations.uniform(torch.Generator().manual_seed(3)),
            target=0,
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(torch.get_rng_state(), state)


def test_kwargs_are_not_modified() -> None:
    model = smooth_mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    target = [0, 1]
    baselines = torch.zeros(2, 6, dtype=torch.float64)
    sensitivity_max(CaptumIG(model).attribute, x, target=target, baselines=baselines, n_steps=4)
    assert target == [0, 1] and baselines.shape == (2, 6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"explanation_func": 3}, TypeError, "explanation_func must be callable"),
        ({"perturb_func": "noise"}, TypeError, "perturb_func must be callable"),
        ({"norm_ord": "nuc"}, ValueError, "norm_ord must be 'fro' or a nonzero"),
        ({"n_perturb_samples": -1}, ValueError, "n_perturb_samples must be a positive int"),
        ({"max_examples_per_batch": 2.5}, ValueError, "max_examples_per_batch must be a positive"),
        ({"perturb_radius": "big"}, TypeError, "perturb_radius must be a number"),
        ({"perturb_func": lambda x: x[:, :3]}, ValueError, r"perturb_func's result has shape"),
        (
            {"explanation_func": lambda x, target: x.sum(1)},
            ValueError,
            r"explanation_func's result has shape \(2,\)",
        ),
    ],
)
def test_bad_arguments_name_themselves(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    model = smooth_mlp()
    arguments: dict[str, object] = {
        "explanation_func": Saliency(model).attribute,
        "inputs": torch.randn(2, 6, dtype=torch.float64),
        "target": 0,
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        sensitivity_max(**arguments)  # type: ignore[arg-type]
