"""Captum 0.9 conformance of the deterministic classes, driven side by side with Captum.

Every public class here (IntegratedGradients, Saliency, InputXGradient,
LayerIntegratedGradients, NeuronIntegratedGradients) is run with Captum's same-named
class over Captum's documented argument forms, on float64 models, and must give the
same results and result shapes. Where integrad deliberately differs (the README's
"Differences from Captum" list) the difference is stated here as data, never
silently skipped. NoiseTunnel and GradientShap have their own conformance tests.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import captum.attr as ca
import pytest
import torch
from conftest import smooth_cnn, smooth_mlp
from torch import nn

import integrad

CLASSES = [
    "IntegratedGradients",
    "Saliency",
    "InputXGradient",
    "LayerIntegratedGradients",
    "NeuronIntegratedGradients",
]
# Rules whose nodes and weights are the same as Captum's; riemann_trapezoid differs.
SHARED_METHODS = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"]
# Captum casts the rule's weights to float32: float64 results agree to about 1e-8.
RTOL = 1e-6

# (class, method, parameter) -> why integrad's parameter deliberately differs from Captum's.
DELIBERATE_PARAMETERS: dict[tuple[str, str, str], str] = {}
# (class, public name) -> why integrad deliberately leaves out this member of Captum's class.
DELIBERATE_MISSING: dict[tuple[str, str], str] = {}

BATCH = 4
# Captum's target forms for a 2-d output with 3 classes and a batch of 4.
TARGETS_2D: dict[str, Any] = {
    "int": 1,
    "0-d tensor": torch.tensor(2),
    "1-element tensor": torch.tensor([1]),
    "1x1 tensor": torch.tensor([[0]]),
    "per-example tensor": torch.tensor([0, 2, 1, 1]),
    "list": [2, 0, 0, 1],
    "list of tuples": [(0,), (2,), (1,), (1,)],
    "tuple": (2,),
}
# ... and for TwoInputs' 3-d output, rows of shape (2, 4).
TARGETS_3D: dict[str, Any] = {
    "tuple": (1, 3),
    "list of tuples": [(0, 1), (1, 2), (0, 0)],
}


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_same(ours: Any, theirs: Any, rtol: float = RTOL) -> None:
    """Same structure (tensor, tuple or list), shapes, dtypes, and values to ``rtol``."""
    assert type(ours) is type(theirs), (type(ours), type(theirs))
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_same(a, b, rtol)
        return
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    scale = float(theirs.abs().max()) if theirs.numel() else 0.0
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=rtol * max(scale, 1e-12))


def assert_same_with_delta(ours: Any, theirs: Any) -> None:
    """``(attributions, delta)`` pairs: Captum's float32 weights leave deltas of ~1e-9."""
    assert_same(ours[0], theirs[0])
    assert ours[1].shape == theirs[1].shape and ours[1].dtype == theirs[1].dtype
    torch.testing.assert_close(ours[1], theirs[1], rtol=0, atol=RTOL)


def assert_multiplied_delta(name: str, init: tuple[Any, ...], ours: Any, *args: Any) -> None:
    """Deliberate difference: with ``multiply_by_inputs=False`` integrad's delta is still the
    completeness gap of the multiplied attributions, which is Captum's delta with True."""
    _, delta = getattr(ca, name)(*init, True).attribute(*args)
    torch.testing.assert_close(ours[1], delta, rtol=0, atol=RTOL)


def both(name: str, init: tuple[Any, ...], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``attribute`` of integrad's and of Captum's class ``name``, built from ``init``."""
    ours = getattr(integrad, name)(*init).attribute(*args, **kwargs)
    theirs = getattr(ca, name)(*init).attribute(*args, **kwargs)
    return ours, theirs


class TwoInputs(nn.Module):
    """Tuple inputs, a batched extra tensor, a non-tensor extra flag and a 3-d output."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(5, 8, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(6, 8, generator=g, dtype=torch.float64))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, shaped: bool = True
    ) -> torch.Tensor:
        h = torch.tanh(x @ self.a + y.flatten(1) @ self.b) * scale
        return h.view(-1, 2, 4) if shaped else h


class Branches(nn.Module):
    """Two parallel layers feeding one head: a layer list Captum and integrad agree on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.left, self.right = nn.Linear(6, 4), nn.Linear(6, 5)
        self.head = nn.Linear(9, 3)
        self.double()

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        hidden = torch.cat([torch.tanh(self.left(x)), torch.tanh(self.right(x))], dim=1)
        return self.head(hidden) * scale


def tuple_problem() -> tuple[TwoInputs, tuple[torch.Tensor, torch.Tensor], tuple[Any, ...]]:
    x, y = rand(3, 5), rand(3, 2, 3, seed=1)
    return TwoInputs(), (x, y), (rand(3, 1, seed=2), True)


# -- the argument matrix ----------------------------------------------------------------


@pytest.mark.parametrize("method", SHARED_METHODS)
@pytest.mark.parametrize("target", TARGETS_2D.values(), ids=TARGETS_2D.keys())
def test_integrated_gradients_targets_and_methods(target, method):
    ours, theirs = both(
        "IntegratedGradients",
        (smooth_mlp(),),
        rand(BATCH, 6),
        target=target,
        method=method,
        n_steps=11,
        return_convergence_delta=True,
    )
    assert_same_with_delta(ours, theirs)


BASELINES: dict[str, Callable[[torch.Tensor], Any]] = {
    "None": lambda x: None,
    "scalar": lambda x: 0.5,
    "int scalar": lambda x: 1,
    "full tensor": lambda x: rand(*x.shape, seed=5),
    "leading-1 tensor": lambda x: rand(1, *x.shape[1:], seed=6),
}


@pytest.mark.parametrize("internal_batch_size", [None, 1, 5, 1000])
@pytest.mark.parametrize("baselines", BASELINES.values(), ids=BASELINES.keys())
@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_integrated_gradients_baselines_and_batching(
    baselines, internal_batch_size, multiply_by_inputs
):
    x = rand(BATCH, 6)
    args = (x, baselines(x), [0, 1, 2, 0], None, 7, "gausslegendre", internal_batch_size, True)
    ours, theirs = both("IntegratedGradients", (smooth_mlp(), multiply_by_inputs), *args)
    if multiply_by_inputs:
        assert_same_with_delta(ours, theirs)
    else:
        assert_same(ours[0], theirs[0])
        assert_multiplied_delta("IntegratedGradients", (smooth_mlp(),), ours, *args)


def test_integrated_gradients_callable_baselines_equal_their_value():
    """integrad also takes ``inputs -> baselines`` (as Captum's GradientShap does)."""
    x = rand(BATCH, 6)
    make = lambda t: t.flip(0) * 0.5  # noqa: E731
    ours = integrad.IntegratedGradients(smooth_mlp()).attribute(x, make, target=1)
    theirs = ca.IntegratedGradients(smooth_mlp()).attribute(x, make(x), target=1)
    assert_same(ours, theirs)


@pytest.mark.parametrize("target", TARGETS_3D.values(), ids=TARGETS_3D.keys())
@pytest.mark.parametrize("internal_batch_size", [None, 4])
def test_integrated_gradients_tuple_inputs_and_extra_args(target, internal_batch_size):
    model, xs, extra = tuple_problem()
    ours, theirs = both(
        "IntegratedGradients",
        (model,),
        xs,
        (0.25, torch.zeros(1, 2, 3, dtype=torch.float64)),
        target,
        extra,
        n_steps=9,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    assert_same_with_delta(ours, theirs)


def test_integrated_gradients_single_extra_arg_and_scalar_output():
    model = smooth_mlp()

    def forward(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return model(x)[:, :1] * scale

    x, scale = rand(BATCH, 6), rand(BATCH, 1, seed=3)
    ours, theirs = both("IntegratedGradients", (forward,), x, additional_forward_args=scale)
    assert_same(ours, theirs)


@pytest.mark.parametrize("n_steps", [2, 10, 50])
def test_trapezoid_is_captums_times_n_over_n_minus_1(n_steps):
    """The one deliberate difference in the rules: Captum's weights sum to (n − 1)/n."""
    x = rand(BATCH, 6)
    ours, theirs = both(
        "IntegratedGradients", (smooth_mlp(),), x, target=1, method="riemann_trapezoid",
        n_steps=n_steps,
    )  # fmt: skip
    assert_same(ours, theirs * n_steps / (n_steps - 1))


@pytest.mark.parametrize("abs_", [True, False])
@pytest.mark.parametrize("target", TARGETS_2D.values(), ids=TARGETS_2D.keys())
def test_saliency_targets(target, abs_):
    ours, theirs = both("Saliency", (smooth_mlp(),), rand(BATCH, 6), target, abs_)
    assert_same(ours, theirs)


@pytest.mark.parametrize("target", TARGETS_2D.values(), ids=TARGETS_2D.keys())
def test_input_x_gradient_targets(target):
    ours, theirs = both("InputXGradient", (smooth_mlp(),), rand(BATCH, 6), target)
    assert_same(ours, theirs)


@pytest.mark.parametrize("name", ["Saliency", "InputXGradient"])
@pytest.mark.parametrize("target", TARGETS_3D.values(), ids=TARGETS_3D.keys())
def test_gradient_classes_on_tuple_inputs_and_extra_args(name, target):
    model, xs, extra = tuple_problem()
    ours, theirs = both(name, (model,), xs, target=target, additional_forward_args=extra)
    assert_same(ours, theirs)


LAYERS: dict[str, Callable[[Branches], Any]] = {
    "module": lambda m: m.left,
    "list": lambda m: [m.left, m.right],
    "one-element list": lambda m: [m.right],
}


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())
@pytest.mark.parametrize("target", TARGETS_2D.values(), ids=TARGETS_2D.keys())
def test_layer_integrated_gradients_targets_layers_and_layer_inputs(target, layer, to_input):
    model = Branches()
    ours, theirs = both(
        "LayerIntegratedGradients",
        (model, layer(model)),
        rand(BATCH, 6),
        target=target,
        n_steps=8,
        attribute_to_layer_input=to_input,
        return_convergence_delta=True,
    )
    assert_same_with_delta(ours, theirs)


@pytest.mark.parametrize(
    "grad_kwargs", [None, {"retain_graph": True}, {"create_graph": True}], ids=str
)
@pytest.mark.parametrize("internal_batch_size", [None, 3])
@pytest.mark.parametrize("baselines", BASELINES.values(), ids=BASELINES.keys())
@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_layer_integrated_gradients_baselines_batching_grad_kwargs(
    baselines, internal_batch_size, grad_kwargs, multiply_by_inputs
):
    model = Branches()
    x = rand(BATCH, 6)
    args = (
        x, baselines(x), [0, 2, 1, 1], (2.0,), 8, "riemann_middle", internal_batch_size, True,
        False, grad_kwargs,
    )  # fmt: skip
    init = (model, model.right, None)
    ours, theirs = both("LayerIntegratedGradients", (*init, multiply_by_inputs), *args)
    if multiply_by_inputs:
        assert_same_with_delta(ours, theirs)
    else:
        assert_same(ours[0], theirs[0])
        assert_multiplied_delta("LayerIntegratedGradients", init, ours, *args)


def test_layer_integrated_gradients_on_tuple_inputs():
    model, xs, extra = tuple_problem()
    ours, theirs = both(
        "LayerIntegratedGradients",
        (lambda x, y, scale, shaped: model(x, y, scale, shaped), model),
        xs,
        target=[(0, 1), (1, 2), (0, 0)],
        additional_forward_args=extra,
        n_steps=6,
        return_convergence_delta=True,
    )
    assert_same_with_delta(ours, theirs)


def cnn_images() -> torch.Tensor:
    return rand(3, 3, 6, 6, seed=4)


SELECTORS: dict[str, Any] = {
    "tuple": (2, 1, 3),
    "negative tuple": (-1, 0, -2),
    "slices": (1, slice(0, 3), slice(None)),
    "leading slice": (slice(1, 3),),
    "callable per example": lambda a: a[:, 1].sum(dim=(1, 2)),
    "callable aggregate": lambda a: a[:, 0, 1:4, 2].sum(),
}


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("selector", SELECTORS.values(), ids=SELECTORS.keys())
@pytest.mark.parametrize("internal_batch_size", [None, 5])
def test_neuron_integrated_gradients_selectors(selector, to_input, internal_batch_size):
    model = smooth_cnn()
    ours, theirs = both(
        "NeuronIntegratedGradients",
        (model, model[1]),
        cnn_images(),
        selector,
        n_steps=7,
        internal_batch_size=internal_batch_size,
        attribute_to_neuron_input=to_input,
    )
    assert_same(ours, theirs)


@pytest.mark.parametrize("baselines", BASELINES.values(), ids=BASELINES.keys())
@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_neuron_integrated_gradients_int_selector_baselines(baselines, multiply_by_inputs):
    model = smooth_mlp()
    x = rand(BATCH, 6)
    ours, theirs = both(
        "NeuronIntegratedGradients",
        (model, model[1], None, multiply_by_inputs),
        x,
        5,
        baselines(x),
        None,
        9,
        "riemann_right",
    )
    assert_same(ours, theirs)


def test_neuron_integrated_gradients_tuple_inputs_and_extra_args():
    model, xs, extra = tuple_problem()
    layer = nn.Identity()

    def forward(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, shaped: bool) -> Any:
        return layer(model(x, y, scale, shaped))

    ours, theirs = both(
        "NeuronIntegratedGradients", (forward, layer), xs, (1, 2), additional_forward_args=extra
    )
    assert_same(ours, theirs)


# -- the rest of the class surface --------------------------------------------------------


def instances(name: str) -> tuple[Any, Any]:
    model = Branches()
    init: tuple[Any, ...] = (model,)
    if name in ("LayerIntegratedGradients", "NeuronIntegratedGradients"):
        init = (model, model.left)
    return getattr(integrad, name)(*init), getattr(ca, name)(*init)


@pytest.mark.parametrize("name", CLASSES)
def test_names_flags_and_futures_match_captum(name):
    ours, theirs = instances(name)
    assert ours.get_name() == theirs.get_name() == type(ours).get_name()
    assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs
    assert ours.has_convergence_delta() == theirs.has_convergence_delta()
    if hasattr(theirs, "attribute_future"):
        with pytest.raises(NotImplementedError):
            theirs.attribute_future()
        with pytest.raises(NotImplementedError, match="attribute_future is not implemented"):
            ours.attribute_future()
    if "multiply_by_inputs" in inspect.signature(type(theirs)).parameters:
        model = Branches()
        init = (model,) if name == "IntegratedGradients" else (model, model.left, None)
        off = (getattr(integrad, name)(*init, False), getattr(ca, name)(*init, False))
        assert off[0].multiplies_by_inputs is off[1].multiplies_by_inputs is False


DELTA_TARGETS: dict[str, Any] = {
    "None (rows summed)": None,
    "int": 2,
    "1-element tensor": torch.tensor([0]),
    "list": [0, 1, 2, 0],
}


@pytest.mark.parametrize("target", DELTA_TARGETS.values(), ids=DELTA_TARGETS.keys())
@pytest.mark.parametrize("start_point", [None, 0.5, "tensor"], ids=str)
@pytest.mark.parametrize("name", CLASSES)
def test_compute_convergence_delta_matches_captum(name, start_point, target):
    ours, theirs = instances(name)
    end = rand(BATCH, 6)
    start = rand(1, 6, seed=8) if start_point == "tensor" else start_point
    attributions = rand(BATCH, 4, seed=9)  # any attribution shaped with the batch first
    args = (attributions, start, end, target, (1.5,))
    assert_same(ours.compute_convergence_delta(*args), theirs.compute_convergence_delta(*args))


def test_compute_convergence_delta_of_ig_is_its_own_delta():
    model, xs, extra = tuple_problem()
    ig = integrad.IntegratedGradients(model)
    attr, delta = ig.attribute(xs, 0.1, (1, 2), extra, return_convergence_delta=True)
    again = ig.compute_convergence_delta(attr, 0.1, xs, (1, 2), extra)
    torch.testing.assert_close(again, delta, rtol=0, atol=1e-12)
    start = (0.1, 0.1)  # Captum needs one start point per input; integrad also takes one for all
    theirs = ca.IntegratedGradients(model).compute_convergence_delta(attr, start, xs, (1, 2), extra)
    torch.testing.assert_close(again, theirs, rtol=0, atol=1e-12)


def test_layer_interpolate_matches_captum():
    attribution = rand(2, 3, 4, 4)
    for mode in ("nearest", "bilinear"):
        ours = integrad.LayerIntegratedGradients.interpolate(attribution, (8, 6), mode)
        theirs = ca.LayerIntegratedGradients.interpolate(attribution, (8, 6), mode)
        assert_same(ours, theirs)


# -- signatures ---------------------------------------------------------------------------


def parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(inspect.unwrap(function)).parameters.values())


def assert_parameters_conform(name: str, method: str, ours: Any, theirs: Any) -> None:
    """Every Captum parameter exists in integrad's with its position, kind and default."""
    mine = parameters(ours)
    for position, p in enumerate(parameters(theirs)):
        if (name, method, p.name) in DELIBERATE_PARAMETERS:
            continue
        assert position < len(mine), f"{name}.{method} lacks Captum's parameter {p.name}"
        q = mine[position]
        assert (q.name, q.kind) == (p.name, p.kind), f"{name}.{method}: {q} where Captum has {p}"
        assert q.default == p.default, f"{name}.{method}({p.name}) default {q.default!r}"
    for q in mine[len(parameters(theirs)) :]:
        # integrad's own options come after Captum's, as keywords with defaults.
        assert q.kind is inspect.Parameter.KEYWORD_ONLY or q.default is not inspect.Parameter.empty


@pytest.mark.parametrize("name", CLASSES)
def test_signatures_and_public_members_conform_to_captum(name):
    ours_cls, theirs_cls = getattr(integrad, name), getattr(ca, name)
    for member in sorted(m for m in dir(theirs_cls) if not m.startswith("_")):
        if (name, member) in DELIBERATE_MISSING:
            continue
        assert hasattr(ours_cls, member), f"integrad.{name} lacks Captum's {member}"
        mine, theirs = (inspect.getattr_static(c, member) for c in (ours_cls, theirs_cls))
        assert type(mine) is type(theirs), f"{name}.{member}: {type(mine)} vs {type(theirs)}"
        if not isinstance(theirs, property):
            assert_parameters_conform(
                name, member, getattr(ours_cls, member), getattr(theirs_cls, member)
            )
    assert_parameters_conform(name, "__init__", ours_cls.__init__, theirs_cls.__init__)


# -- argument validation: errors name the argument -----------------------------------------


def flag_calls() -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """Every bool flag of the public classes and functions: ``name -> (argument, call)``."""
    mlp, x = smooth_mlp(), rand(2, 6)
    images = rand(2, 3, 6, 6)
    cnn = smooth_cnn()
    lig = integrad.LayerIntegratedGradients(mlp, mlp[1])
    nig = integrad.NeuronIntegratedGradients(mlp, mlp[1])
    ig = integrad.IntegratedGradients(mlp)
    return {
        "IG(multiply_by_inputs)": (
            "multiply_by_inputs",
            lambda v: integrad.IntegratedGradients(mlp, v),
        ),
        "IG.attribute(return_convergence_delta)": (
            "return_convergence_delta",
            lambda v: ig.attribute(x, target=0, return_convergence_delta=v),
        ),
        "explain(multiply_by_inputs)": (
            "multiply_by_inputs",
            lambda v: integrad.explain(mlp, x, target=0, multiply_by_inputs=v),
        ),
        "Saliency.attribute(abs)": (
            "abs",
            lambda v: integrad.Saliency(mlp).attribute(x, target=0, abs=v),
        ),
        "LayerIG(multiply_by_inputs)": (
            "multiply_by_inputs",
            lambda v: integrad.LayerIntegratedGradients(mlp, mlp[1], multiply_by_inputs=v),
        ),
        "LayerIG.attribute(return_convergence_delta)": (
            "return_convergence_delta",
            lambda v: lig.attribute(x, target=0, return_convergence_delta=v),
        ),
        "LayerIG.attribute(attribute_to_layer_input)": (
            "attribute_to_layer_input",
            lambda v: lig.attribute(x, target=0, attribute_to_layer_input=v),
        ),
        "LayerIG.attribute(reuse_upstream)": (
            "reuse_upstream",
            lambda v: lig.attribute(x, target=0, reuse_upstream=v),
        ),
        "NeuronIG(multiply_by_inputs)": (
            "multiply_by_inputs",
            lambda v: integrad.NeuronIntegratedGradients(mlp, mlp[1], multiply_by_inputs=v),
        ),
        "NeuronIG.attribute(attribute_to_neuron_input)": (
            "attribute_to_neuron_input",
            lambda v: nig.attribute(x, 0, attribute_to_neuron_input=v),
        ),
        "GuidedIG.attribute(return_convergence_delta)": (
            "return_convergence_delta",
            lambda v: integrad.GuidedIntegratedGradients(mlp).attribute(
                x, target=0, n_steps=4, return_convergence_delta=v
            ),
        ),
        "explain_guided(idgi)": (
            "idgi",
            lambda v: integrad.explain_guided(mlp, x, target=0, n_steps=4, idgi=v),
        ),
        "BlurIG.attribute(return_convergence_delta)": (
            "return_convergence_delta",
            lambda v: integrad.BlurIntegratedGradients(cnn).attribute(
                images, target=0, n_steps=4, return_convergence_delta=v
            ),
        ),
        "explain_blur(idgi)": (
            "idgi",
            lambda v: integrad.explain_blur(cnn, images, target=0, n_steps=4, idgi=v),
        ),
    }


FLAGS = flag_calls()


@pytest.mark.parametrize("bad", ["no", "False", 0, None], ids=repr)
@pytest.mark.parametrize("call", FLAGS, ids=FLAGS.keys())
def test_bool_flags_refuse_non_bools_naming_the_argument(call, bad):
    argument, run = flag_calls()[call]
    with pytest.raises(TypeError, match=rf"{argument} must be True or False, got .*{bad!r}"):
        run(bad)


@pytest.mark.parametrize("name", ["NeuronIntegratedGradients", "LayerIntegratedGradients"])
def test_device_ids_are_refused_with_the_reason(name):
    model = smooth_mlp()
    with pytest.raises(ValueError, match=r"device_ids=\[0\] is not supported.*DataParallel"):
        getattr(integrad, name)(model, model[1], [0])


@pytest.mark.parametrize("name", CLASSES)
def test_forward_func_must_be_callable(name):
    model = smooth_mlp()
    init = (None,) if name in CLASSES[:3] else (None, model[1])
    with pytest.raises(TypeError, match=r"forward_func must be callable, got NoneType"):
        getattr(integrad, name)(*init)


@pytest.fixture(scope="module")
def tiny_bert() -> nn.Module:
    """A BertForSequenceClassification with random weights: it returns a ModelOutput."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=3,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config).double().eval()


MODEL_OUTPUT_CALLS: dict[str, Callable[[nn.Module, Callable[..., Any], torch.Tensor], Any]] = {
    "IntegratedGradients": lambda m, f, e: integrad.IntegratedGradients(f).attribute(e, target=0),
    "explain": lambda m, f, e: integrad.explain(f, e, target=0).attributions,
    "Saliency": lambda m, f, e: integrad.Saliency(f).attribute(e, target=0),
    "InputXGradient": lambda m, f, e: integrad.InputXGradient(f).attribute(e, target=0),
}


@pytest.mark.parametrize("call", MODEL_OUTPUT_CALLS.values(), ids=MODEL_OUTPUT_CALLS.keys())
def test_a_model_output_gets_the_one_line_wrapper(tiny_bert, call):
    ids = torch.tensor([[2, 5, 7, 3], [2, 9, 1, 3]])
    embedded = tiny_bert.bert.embeddings.word_embeddings(ids).detach()
    returns_model_output = lambda e: tiny_bert(inputs_embeds=e)  # noqa: E731
    with pytest.raises(
        ValueError,
        match=r"returned a SequenceClassifierOutput with keys \['logits'\].*"
        r"lambda \*a: model\(\*a\)\.logits",
    ):
        call(tiny_bert, returns_model_output, embedded)
    returns_dict = lambda e: {"logits": tiny_bert(inputs_embeds=e).logits}  # noqa: E731
    with pytest.raises(ValueError, match=r"returned a dict with keys \['logits'\].*\['logits'\]"):
        call(tiny_bert, returns_dict, embedded)
    wrapped = lambda e: tiny_bert(inputs_embeds=e).logits  # noqa: E731
    assert call(tiny_bert, wrapped, embedded).shape == embedded.shape


def test_layer_ig_on_a_model_output_gets_the_one_line_wrapper(tiny_bert):
    ids = torch.tensor([[2, 5, 7, 3], [2, 9, 1, 3]])
    layer = tiny_bert.bert.embeddings.word_embeddings
    lig = integrad.LayerIntegratedGradients(tiny_bert, layer)
    with pytest.raises(ValueError, match=r"lambda \*a: model\(\*a\)\.logits"):
        lig.attribute(ids, target=1, n_steps=4)
    wrapped = integrad.LayerIntegratedGradients(lambda *a: tiny_bert(*a).logits, layer)
    assert wrapped.attribute(ids, target=1, n_steps=4).shape == (2, 4, 8)
