"""The methods a run can use, each turning one batch into an :class:`~integrad.Explanation`.

Path methods with an Explanation of their own (IG in every mode, Guided and Blur IG) are
called as they are. The Captum-style classes (layer IG, noise tunnel, expected
gradients, saliency) return attributions only; here they get the rest: F at the inputs
and baselines, and the completeness delta. Methods that draw random numbers (noise
tunnel, expected gradients, the ``"uniform"`` and ``"gaussian"`` baselines) explain one
example at a time with that example's own generator, so the draws do not depend on
which other examples share its batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import baselines as _baselines
from ..blur import explain_blur
from ..expected_gradients import ExpectedGradients
from ..explanation import Explanation
from ..gradients import Saliency
from ..guided import explain_guided
from ..integrated_gradients import IntegratedGradients, explain
from ..layer import LayerIntegratedGradients
from ..noise_tunnel import NoiseTunnel

__all__ = [
    "EXPLAINERS",
    "check_rereadable",
    "explain_batch",
    "is_random",
    "stored_baselines",
    "target_outputs",
]

EXPLAINERS = (
    "ig",
    "layer-ig",
    "noise-tunnel",
    "expected-gradients",
    "guided-ig",
    "blur-ig",
    "saliency",
)
"""The names ``integrad.run(explainer=...)`` and ``integrad run --explainer`` accept."""

_RANDOM_BASELINES: dict[str, Callable[..., _baselines.BaselineStrategy]] = {
    "uniform": _baselines.uniform,
    "gaussian": _baselines.gaussian,
}
_NT_OPTIONS = ("nt_type", "nt_samples", "nt_samples_batch_size", "stdevs", "relative")
Form = Callable[[tuple[torch.Tensor, ...]], Any]


def is_random(explainer: str, options: dict[str, Any]) -> bool:
    """Whether the method draws random numbers, so each example needs its own generator."""
    b = options.get("baselines")
    random_baseline = (isinstance(b, str) and b in _RANDOM_BASELINES) or (
        isinstance(b, _baselines.BaselineStrategy) and b.random
    )
    return explainer in ("noise-tunnel", "expected-gradients") or random_baseline


REREADABLE = ("ig", "guided-ig", "noise-tunnel", "saliency")
"""Explainers whose stored baselines are a function of the inputs, so a run may leave
inputs and baselines out of its shards (``store_inputs=False``) and rebuild them."""


def check_rereadable(explainer: str, options: dict[str, Any]) -> None:
    """Raise unless inputs and baselines can be rebuilt from the data alone."""
    if explainer not in REREADABLE:
        raise ValueError(
            f"store_inputs=False with explainer={explainer!r}: its inputs or baselines are not "
            f"the data's (layer activations, reference means, blurred images); use one of "
            f"{list(REREADABLE)} or store them"
        )
    if is_random("ig", {"baselines": options.get("baselines")}):  # the baselines alone
        raise ValueError(
            f"store_inputs=False with baselines={options.get('baselines')!r}: random baselines "
            "cannot be rebuilt from the data; store them (store_inputs=True)"
        )


def stored_baselines(
    explainer: str, baselines: Any, inputs: tuple[torch.Tensor, ...], was_tuple: bool
) -> tuple[torch.Tensor, ...]:
    """The baselines a ``REREADABLE`` explainer stores for ``inputs``."""
    if explainer == "saliency":
        return tuple(torch.zeros_like(x) for x in inputs)
    return _baselines.resolve(baselines, inputs, was_tuple)


def _seeded_baselines(baselines: Any, generator: torch.Generator) -> Any:
    if isinstance(baselines, str) and baselines in _RANDOM_BASELINES:
        return _RANDOM_BASELINES[baselines](generator=generator)
    if isinstance(baselines, _baselines.BaselineStrategy) and baselines.random:
        strategy: _baselines.BaselineStrategy = baselines
        return lambda x: strategy(x, generator)
    return baselines


def _call(model: Callable[..., Any], xs: tuple[torch.Tensor, ...], extra: Any) -> torch.Tensor:
    args = extra if isinstance(extra, tuple) else (() if extra is None else (extra,))
    with torch.no_grad():
        return model(*xs, *args)


def target_outputs(out: torch.Tensor, target: Any) -> torch.Tensor:
    """The explained output per example: ``out`` at ``target`` (an int or one per example)."""
    batch = int(out.shape[0])
    flat = out.reshape(batch, -1)
    if target is None:
        if flat.shape[1] != 1:
            raise ValueError(
                f"target=None needs one output per example; the model gives {tuple(out.shape)}"
            )
        return flat[:, 0]
    index = torch.as_tensor(target, device=out.device).long().reshape(-1)
    if index.numel() == 1:
        index = index.expand(batch)
    return flat.gather(1, index[:, None])[:, 0]


def _assemble(
    attributions: tuple[torch.Tensor, ...],
    inputs: tuple[torch.Tensor, ...],
    baselines: tuple[torch.Tensor, ...],
    output: torch.Tensor,
    baseline_output: torch.Tensor,
    delta: torch.Tensor,
    n_evals: int,
    form: Form,
    **fields: Any,
) -> Explanation:
    batch = int(output.shape[0])
    return Explanation(
        attributions=form(tuple(a.detach() for a in attributions)),
        delta=delta.detach(),
        output=output.detach(),
        baseline_output=baseline_output.detach(),
        n_evals=torch.full((batch,), n_evals, dtype=torch.long),
        inputs=form(tuple(x.detach().clone() for x in inputs)),
        baselines=form(tuple(b.detach().clone() for b in baselines)),
        **fields,
    )


def _tuple(value: Any) -> tuple[torch.Tensor, ...]:
    return value if isinstance(value, tuple) else (value,)


def _saliency(model: Any, xs: tuple, target: Any, form: Form, o: dict[str, Any]) -> Explanation:
    extra = o.get("additional_forward_args")
    grads = _tuple(Saliency(model).attribute(form(xs), target, o.get("abs", True), extra))
    output = target_outputs(_call(model, xs, extra), target)
    nan = torch.full_like(output, float("nan"))
    # Gradients have no baseline and no completeness: F(x') and delta are NaN.
    zeros = tuple(torch.zeros_like(x) for x in xs)
    return _assemble(
        grads,
        xs,
        zeros,
        output,
        nan,
        nan,
        1,
        form,
        method="saliency",
        n_steps=1,
        target=target,
        baseline="none",
    )


def _layer(model: Any, xs: tuple, target: Any, form: Form, o: dict[str, Any]) -> Explanation:
    o = dict(o)
    layer = o.pop("layer", None)
    if isinstance(layer, str):
        if not isinstance(model, nn.Module):
            raise TypeError(f"layer={layer!r} names a submodule, but the model is not a Module")
        try:
            layer_module = model.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"layer={layer!r} is not a submodule of the model") from None
    elif isinstance(layer, nn.Module):
        layer_module = layer
    else:
        raise ValueError(
            f"the layer-ig explainer needs layer= (a module or its dotted name), got {layer!r}"
        )
    extra = o.get("additional_forward_args")
    lig = LayerIntegratedGradients(model, layer_module, multiply_by_inputs=True)
    result = lig.attribute(form(xs), target=target, return_convergence_delta=True, **o)
    attributions, delta = result[0], result[1]
    if not isinstance(attributions, torch.Tensor) or not isinstance(delta, torch.Tensor):
        raise ValueError("a run's layer-ig needs a layer with one output tensor")
    # The Explanation holds the layer's activations as its inputs and baselines: layer IG
    # is IG in the layer's space, and its delta is in the model's output.
    seen: list[torch.Tensor] = []
    handle = layer_module.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    try:
        output = target_outputs(_call(model, xs, extra), target)
        at_inputs = len(seen)
        bs = _baselines.resolve(o.get("baselines"), xs, True)
        baseline_output = target_outputs(_call(model, bs, extra), target)
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"layer={layer!r} is not used by the model's forward pass")
    n = lig.n_evals if lig.n_evals is not None else o.get("n_steps", 50)
    name = layer if isinstance(layer, str) else type(layer_module).__name__
    exp = _assemble(
        (attributions,),
        (seen[0],),
        (seen[at_inputs],),
        output,
        baseline_output,
        delta,
        0,
        lambda t: t[0],
        method=f"layer:{o.get('method', 'gausslegendre')}",
        n_steps=int(o.get("n_steps", 50)),
        target=target,
        baseline=_baselines.describe(o.get("baselines")),
        tolerance=o.get("tolerance"),
        error_estimate=lig.error_estimate,
        converged=lig.converged,
        extras={"layer": name},
    )
    exp.n_evals = torch.as_tensor(n).long().expand(exp.delta.shape[0]).clone()
    return exp


def _noise_tunnel(
    model: Any, xs: tuple, target: Any, form: Form, o: dict[str, Any], gen: torch.Generator
) -> Explanation:
    nt = {k: o[k] for k in _NT_OPTIONS if k in o}
    ig = {k: v for k, v in o.items() if k not in _NT_OPTIONS}
    extra = ig.get("additional_forward_args")
    attributions = _tuple(
        NoiseTunnel(IntegratedGradients(model)).attribute(
            form(xs), generator=gen, target=target, **nt, **ig
        )
    )
    bs = _baselines.resolve(ig.get("baselines"), xs, True)
    output = target_outputs(_call(model, xs, extra), target)
    baseline_output = target_outputs(_call(model, bs, extra), target)
    total = sum(a.reshape(a.shape[0], -1).sum(1) for a in attributions)
    steps = int(ig.get("n_steps", 50))
    return _assemble(
        attributions,
        xs,
        bs,
        output,
        baseline_output,
        total - (output - baseline_output),
        steps * int(nt.get("nt_samples", 5)),
        form,
        method=f"noise_tunnel:{nt.get('nt_type', 'smoothgrad')}",
        n_steps=steps,
        target=target,
        baseline=_baselines.describe(ig.get("baselines")),
        extras={"noise_tunnel": nt},
    )


def _expected(
    model: Any, xs: tuple, target: Any, form: Form, o: dict[str, Any], gen: torch.Generator
) -> Explanation:
    refs = o.get("baselines")
    if refs is None:
        raise ValueError("the expected-gradients explainer needs baselines= (a reference set)")
    extra = o.get("additional_forward_args")
    attributions, delta = ExpectedGradients(model).attribute(
        form(xs), generator=gen, target=target, return_convergence_delta=True, **o
    )
    attributions = _tuple(attributions)
    output = target_outputs(_call(model, xs, extra), target)
    total = sum(a.reshape(a.shape[0], -1).sum(1) for a in attributions)
    # EG's delta is against the reference set's mean output; F(x') is that mean.
    baseline_output = output - (total - delta)
    mean = tuple(
        r.mean(0, keepdim=True).expand_as(x) for r, x in zip(_tuple(refs), xs, strict=True)
    )
    n = o.get("n_samples", 50) if o.get("n_steps") is None else o["n_steps"] * len(_tuple(refs)[0])
    return _assemble(
        attributions,
        xs,
        mean,
        output,
        baseline_output,
        delta,
        int(n),
        form,
        method="expected_gradients",
        n_steps=int(o.get("n_steps") or 1),
        target=target,
        baseline=f"reference set of {len(_tuple(refs)[0])}",
    )


def _one_batch(
    explainer: str,
    model: Any,
    xs: tuple,
    target: Any,
    form: Form,
    o: dict[str, Any],
    gen: torch.Generator | None,
) -> Explanation:
    if gen is not None and "baselines" in o:
        o = {**o, "baselines": _seeded_baselines(o["baselines"], gen)}
    if explainer == "ig":
        return explain(model, form(xs), target=target, **o)
    if explainer == "guided-ig":
        return explain_guided(model, form(xs), target=target, **o)
    if explainer == "blur-ig":
        return explain_blur(model, form(xs), target=target, **o)
    if explainer == "saliency":
        return _saliency(model, xs, target, form, o)
    if explainer == "layer-ig":
        return _layer(model, xs, target, form, o)
    if gen is None:  # the loop below always passes one
        raise ValueError(f"explainer={explainer!r} needs a generator per example")
    if explainer == "noise-tunnel":
        return _noise_tunnel(model, xs, target, form, o, gen)
    return _expected(model, xs, target, form, o, gen)


def explain_batch(
    explainer: str,
    model: Any,
    inputs: tuple[torch.Tensor, ...],
    was_tuple: bool,
    target: Any,
    options: dict[str, Any],
    generators: list[torch.Generator] | None,
) -> list[Explanation]:
    """One Explanation for the batch, or, given ``generators``, one per example."""

    def form(t: tuple[torch.Tensor, ...]) -> Any:
        return t if was_tuple else t[0]

    if generators is None:
        return [_one_batch(explainer, model, inputs, target, form, options, None)]
    results = []
    for i, gen in enumerate(generators):
        t = target[i : i + 1] if isinstance(target, torch.Tensor) and target.dim() else target
        xs = tuple(x[i : i + 1] for x in inputs)
        results.append(_one_batch(explainer, model, xs, t, form, options, gen))
    return results
