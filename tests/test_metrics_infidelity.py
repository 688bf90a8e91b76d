"""infidelity: Captum parity (same perturbations, same global seed), oracles, errors."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import Saliency
from captum.metrics import infidelity as captum_infidelity
from captum.metrics import infidelity_perturb_func_decorator as captum_decorator
from conftest import TwoInputs, smooth_mlp

import integrad
from integrad.metrics import infidelity, infidelity_perturb_func_decorator, perturbations

# Captum's Saliency warns that it set requires_grad; Captum's batching warns on large batches.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Input Tensor 0 did not:UserWarning", "ignore:`max_examples_per_batch`:UserWarning"
)


def global_noise(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum's documented example: noise from torch's global random state."""
    noise = torch.randn(inputs.shape, dtype=inputs.dtype) * 0.1
    return noise, inputs - noise


def both(seed: int, *args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    theirs = captum_infidelity(*args, **kwargs)  # type: ignore[arg-type]
    torch.manual_seed(seed)
    ours = infidelity(*args, **kwargs)  # type: ignore[arg-type]
    return ours, theirs


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("max_examples_per_batch", [None, 4, 8, 100])
def test_matches_captum_with_global_noise(
    normalize: bool, max_examples_per_batch: int | None
) -> None:
    model = smooth_mlp()
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = [0, 2, 1, 0]
    attributions = Saliency(model).attribute(x, target=target, abs=False)
    ours, theirs = both(
        3,
        model,
        global_noise,
        x,
        attributions,
        target=target,
        n_perturb_samples=9,
        max_examples_per_batch=max_examples_per_batch,
        normalize=normalize,
    )
    assert ours.shape == (4,)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)


def test_matches_captum_for_tuple_inputs_baselines_and_extra_args() -> None:
    model = TwoInputs().double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, dtype=torch.float64, generator=g)
    y = torch.randn(3, 2, 3, dtype=torch.float64, generator=g)
    scale = torch.rand(3, 1, dtype=torch.float64, generator=g) + 0.5
    baselines = (torch.zeros(3, 5, dtype=torch.float64), 0.25)
    target = [(0, 1), (1, 3), (0, 0)]
    attributions = CaptumIG(model).attribute(
        (x, y), baselines=baselines, target=target, additional_forward_args=(scale, True)
    )

    @captum_decorator(True)
    def shrink(inputs: tuple[torch.Tensor, ...], refs: tuple[object, ...]) -> tuple:
        return tuple(
            t - 0.3 * torch.rand(t.shape, dtype=t.dtype) * (t - r)
            for t, r in zip(inputs, refs, strict=True)
        )

    ours, theirs = both(
        5,
        model,
        shrink,
        (x, y),
        attributions,
        baselines=baselines,
        additional_forward_args=(scale, True),
        target=target,
        n_perturb_samples=5,
        max_examples_per_batch=6,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)


def test_decorator_matches_captums() -> None:
    x = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    base = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)

    def halve(inputs: torch.Tensor, baselines: torch.Tensor | None = None) -> torch.Tensor:
        return inputs / 2

    for flag in (True, False):
        for refs in (None, base):
            args = (x,) if refs is None else (x, refs)
            ours = infidelity_perturb_func_decorator(flag)(halve)(*args)
            theirs = captum_decorator(flag)(halve)(*args)
            for a, b in zip(ours, theirs, strict=True):
                torch.testing.assert_close(a[0], b[0])


def test_exact_attributions_of_a_linear_model_have_zero_infidelity() -> None:
    """IG of a linear model is exact: removing any subset changes F by its attribution."""
    model = torch.nn.Linear(6, 1).double()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(model, x, baselines=0.5)
    removal = perturbations.subset(0.3, generator=torch.Generator().manual_seed(0))
    score = infidelity(model, removal, x, exp, baselines=0.5, n_perturb_samples=20)
    assert score.abs().max() < 1e-25
    # A wrong attribution (a sign flipped) is penalised.
    wrong = exp.attributions * torch.tensor([1, 1, -1, 1, 1, 1], dtype=torch.float64)
    assert (infidelity(model, removal, x, wrong, baselines=0.5) > 1e-6).all()


def test_normalize_ignores_the_attributions_scale() -> None:
    model = smooth_mlp()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    exp = integrad.explain(model, x, target=1)
    attributions = exp.attributions
    assert isinstance(attributions, torch.Tensor)
    scores = [
        infidelity(
            model,
            perturbations.subset(0.5, torch.Generator().manual_seed(0)),
            x,
            attributions * c,
            target=1,
            normalize=True,
        )
        for c in (1.0, 7.0)
    ]
    torch.testing.assert_close(scores[0], scores[1], rtol=1e-10, atol=0.0)


def test_results_do_not_depend_on_max_examples_per_batch_for_a_fixed_perturbation() -> None:
    model = smooth_mlp()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    attributions = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator())

    def shrink(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.2 * inputs, 0.8 * inputs

    scores = [
        infidelity(
            model, shrink, x, attributions, target=0, n_perturb_samples=7, max_examples_per_batch=m
        )
        for m in (None, 1, 3, 6, 14, 1000)
    ]
    for s in scores[1:]:
        torch.testing.assert_close(s, scores[0], rtol=1e-14, atol=0.0)


def test_generator_perturbations_are_reproducible_and_leave_global_state_alone() -> None:
    model = smooth_mlp()
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    attributions = Saliency(model).attribute(x, target=0, abs=False)
    state = torch.get_rng_state()
    runs = [
        infidelity(
            model,
            perturbations.gaussian(0.05, torch.Generator().manual_seed(9)),
            x,
            attributions,
            target=0,
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(torch.get_rng_state(), state)


def test_inputs_and_attributions_are_not_modified() -> None:
    model = smooth_mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    attributions = torch.randn(2, 6, dtype=torch.float64)
    x0, a0 = x.clone(), attributions.clone()
    infidelity(model, perturbations.gaussian(0.1), x, attributions, target=0)
    assert torch.equal(x, x0) and torch.equal(attributions, a0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attributions": torch.zeros(2, 5)}, ValueError, r"attributions has shape \(2, 5\)"),
        ({"attributions": (torch.zeros(2, 6),) * 2}, ValueError, "attributions has 2 tensor"),
        ({"attributions": [1.0]}, TypeError, "attributions must be a torch.Tensor"),
        ({"n_perturb_samples": 0}, ValueError, "n_perturb_samples must be a positive int"),
        ({"max_examples_per_batch": 0}, ValueError, "max_examples_per_batch must be a positive"),
        ({"perturb_func": None}, TypeError, "perturb_func must be callable"),
        ({"perturb_func": lambda x: x}, TypeError, r"must return \(perturbations, perturbed"),
        ({"perturb_func": lambda x: (x, x[:, :2])}, ValueError, "perturbed inputs has shape"),
        ({"normalize": "yes"}, TypeError, "normalize must be True or False"),
        ({"baselines": (0.0, 0.0)}, ValueError, "baselines has 2 entries"),
        ({"target": None}, ValueError, "target=None needs one output value per example"),
        ({"target": 7}, ValueError, "target 7 is out of range"),
    ],
)
def test_bad_arguments_name_themselves(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {
        "forward_func": smooth_mlp(),
        "perturb_func": perturbations.gaussian(0.1),
        "inputs": torch.randn(2, 6, dtype=torch.float64),
        "attributions": torch.zeros(2, 6, dtype=torch.float64),
        "target": 0,
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        infidelity(**arguments)  # type: ignore[arg-type]
