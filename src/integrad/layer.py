"""Layer Integrated Gradients: the path runs in a layer's activation space.

The model is run on the inputs and on the baselines to record the layer's output
(or input), the straight path is taken between those two activations, and at every
path point a forward hook swaps the point in for the layer's activation while the
rest of the model runs as usual. Everything else — chunking, targets, extra
arguments, state restoration — is the shared engine's. Hooks are removed in
``finally`` blocks, also when the model raises.

Inputs may be token ids (any integer dtype): only the layer's activations are
interpolated, never the inputs or ``additional_forward_args`` (an attention mask
passed there reaches the model unchanged).

Upstream reuse (the private ``_layer_paths`` module says how): where it is safe and
pays, everything upstream of the layer runs once per chunk of one example's path points
instead of once per point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ._captum import GradientAttribution, check_device_ids
from ._checks import completeness_delta, kept_buffers, warn_if_incomplete, warn_if_training
from ._engine import Engine, PathProblem
from ._hooks import call_scope, scoped
from ._inputs import (
    ExtraArgs,
    Target,
    TargetType,
    TensorOrTuple,
    as_inputs,
    check_callable,
    check_flag,
)
from ._layer_paths import Evaluate, NotReusable, attributable, swap
from ._modules import owner
from .baselines import resolve as resolve_baselines
from .quadrature import check_method, rule
from .tolerance import check_tolerance, integrate_to_tolerance

__all__ = ["LayerIntegratedGradients"]

LayerAttributions = TensorOrTuple | list[TensorOrTuple]


class LayerIntegratedGradients(GradientAttribution):
    """Captum-compatible layer IG on the integrad engine.

    ``layer`` is a module or a list of modules; for a list, all layers' activations
    move together on one path and the result is a list with one entry per layer. A
    layer whose output (or positional inputs, with ``attribute_to_layer_input``) is
    a tuple of tensors gets a tuple of attributions. The convergence delta is in
    terms of the model's output: the sum of all attributions minus
    ``F(inputs) - F(baselines)``.

    ``reuse_upstream`` (keyword, default True) evaluates everything upstream of the
    layer once per chunk instead of once per path point where that is safe and pays
    (see the module docstring); after a call, ``reused_upstream`` says whether it did.
    Listed layers are swapped independently: a layer whose output only feeds another
    listed layer gets zero attributions (Captum raises there). ``grad_kwargs`` are
    passed to ``torch.autograd.grad``; ``device_ids`` (Captum's, for DataParallel
    replicas) must be None.

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> lig = integrad.LayerIntegratedGradients(model, model[1])
    >>> lig.attribute(torch.ones(2, 3), target=0).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module | list[nn.Module],
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        check_callable(forward_func)
        check_device_ids(device_ids)
        check_flag(multiply_by_inputs, "multiply_by_inputs")
        layers = layer if isinstance(layer, list) else [layer]
        if not layers:
            raise ValueError("layer is an empty list; pass a module or a list of modules")
        for i, m in enumerate(layers):
            if not isinstance(m, nn.Module):
                where = f"layer[{i}]" if isinstance(layer, list) else "layer"
                raise TypeError(f"{where} must be a torch.nn.Module, got {type(m).__name__}")
        self.forward_func = forward_func
        self.layer = layer
        self.device_ids = device_ids
        self.multiply_by_inputs = multiply_by_inputs
        self.reused_upstream: bool | None = None
        self.error_estimate: torch.Tensor | None = None
        self.converged: torch.Tensor | None = None
        self.n_evals: torch.Tensor | None = None
        """After a call: forward+backward evaluations per example."""
        """Whether the last call evaluated the upstream once per chunk (None before a call)."""

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @staticmethod
    def interpolate(
        layer_attribution: torch.Tensor,
        interpolate_dims: int | tuple[int, ...],
        interpolate_mode: str = "nearest",
    ) -> torch.Tensor:
        """Captum's upsampling of 3-, 4- or 5-d layer attributions to ``interpolate_dims``.

        >>> import torch, integrad
        >>> up = integrad.LayerIntegratedGradients.interpolate(torch.ones(1, 2, 4, 4), (8, 8))
        >>> up.shape
        torch.Size([1, 2, 8, 8])
        """
        if not isinstance(layer_attribution, torch.Tensor) or layer_attribution.dim() not in (
            3,
            4,
            5,
        ):
            shape = getattr(layer_attribution, "shape", type(layer_attribution).__name__)
            raise ValueError(
                f"layer_attribution must be a 3-, 4- or 5-d tensor (batch, channels, ...), "
                f"got {shape}"
            )
        return nn.functional.interpolate(layer_attribution, interpolate_dims, mode=interpolate_mode)

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: object = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
        *,
        max_memory: int | None = None,
        reuse_upstream: bool = True,
        tolerance: float | None = None,
        max_steps: int | None = None,
    ) -> LayerAttributions | tuple[LayerAttributions, torch.Tensor]:
        """Attributions shaped like the layer's output (or input); delta in model outputs.

        ``inputs`` may hold integer token ids; ``baselines`` then are token ids too
        (see :func:`integrad.text.token_baselines`). ``tolerance`` (and ``max_steps``)
        integrate each example until its estimated error is within ``tolerance``, as in
        :func:`integrad.explain`; the per-example estimates and flags are then kept in
        ``self.error_estimate`` and ``self.converged``.
        """
        for flag, name in (
            (return_convergence_delta, "return_convergence_delta"),
            (attribute_to_layer_input, "attribute_to_layer_input"),
            (reuse_upstream, "reuse_upstream"),
        ):
            check_flag(flag, name)
        check_tolerance(tolerance, max_steps, method)
        check_method(method, n_steps)
        xs, bs = _model_inputs(inputs, baselines)
        batch = int(xs[0].shape[0])
        target_ = Target(target, batch)
        extra = ExtraArgs.of(additional_forward_args, batch)
        warn_if_training(self.forward_func)
        with call_scope():  # this call's hooks ignore other threads' forward passes
            return self._attribute(
                xs, bs, target_, extra, n_steps, method, internal_batch_size,
                return_convergence_delta, attribute_to_layer_input, grad_kwargs,
                max_memory, reuse_upstream, tolerance, max_steps,
            )  # fmt: skip

    def _attribute(
        self,
        xs: tuple[torch.Tensor, ...],
        bs: tuple[torch.Tensor, ...],
        target_: Target,
        extra: ExtraArgs,
        n_steps: int,
        method: str,
        internal_batch_size: int | None,
        return_convergence_delta: bool,
        attribute_to_layer_input: bool,
        grad_kwargs: dict[str, Any] | None,
        max_memory: int | None,
        reuse_upstream: bool,
        tolerance: float | None,
        max_steps: int | None,
    ) -> LayerAttributions | tuple[LayerAttributions, torch.Tensor]:
        batch = int(xs[0].shape[0])
        layers = self.layer if isinstance(self.layer, list) else [self.layer]
        model = owner(self.forward_func)
        act_x, out_x, upstream = self._record(xs, extra.args, attribute_to_layer_input)
        act_b, out_b, _ = self._record(bs, extra.args, attribute_to_layer_input)
        counts = [len(a) for a in act_x]
        flat_x = tuple(t for acts in act_x for t in acts)
        flat_b = tuple(t for acts in act_b for t in acts)
        self._check_activations(flat_x, flat_b, counts, batch, attribute_to_layer_input)
        spans = [sum(counts[:i]) for i in range(len(counts) + 1)]

        @contextmanager
        def swapped(points: Sequence[torch.Tensor]) -> Iterator[None]:
            with swap(layers, points, spans, attribute_to_layer_input):
                yield

        device = flat_x[0].device
        model_args = ExtraArgs.of((torch.arange(batch, device=device), *xs, *extra.args), batch)
        quad = rule(method, n_steps)

        def run(reuse: bool) -> tuple[tuple[torch.Tensor, ...], Engine, bool]:
            evaluate = Evaluate(self.forward_func, swapped, len(flat_x), len(xs), reuse)
            tag = ("layer", tuple(id(m) for m in layers), attribute_to_layer_input, reuse)
            problem = PathProblem(
                evaluate, flat_x, flat_b, target_, model_args, model, (self.forward_func, tag)
            )
            engine = Engine(
                problem,
                max_memory=max_memory,
                internal_batch_size=internal_batch_size,
                grad_kwargs=grad_kwargs,
            )
            if tolerance is not None:
                tolerated = integrate_to_tolerance(engine, tolerance, max_steps)
                self.error_estimate, self.converged = tolerated.error_estimate, tolerated.converged
                return tolerated.grads, engine, evaluate.reused
            # One example per engine call makes every chunk hold a single distinct row,
            # unless that would cut the chunks well below the engine's choice (a slower
            # rate than the upstream saves). With one example, every chunk has one row.
            if not reuse or batch == 1 or 2 * quad.n < engine.chunk_points():
                return engine.integrate(quad), engine, evaluate.reused
            sums = [torch.zeros_like(t) for t in flat_x]
            for row in range(batch):
                part = engine.integrate(quad, torch.tensor([row], device=device))
                for acc, s in zip(sums, part, strict=True):
                    acc.add_(s)
            return tuple(sums), engine, evaluate.reused

        # Nothing but lookups upstream (a word embedding): nothing to save. Tolerance mode
        # runs rungs over all pending examples at once, so takes the plain path.
        reuse = reuse_upstream and upstream > 0 and tolerance is None
        try:
            grads, engine, self.reused_upstream = run(reuse=reuse)
        except NotReusable:
            grads, engine, self.reused_upstream = run(reuse=False)

        self.n_evals = engine.evals.clone()
        integrated = tuple(g * (x - b) for g, x, b in zip(grads, flat_x, flat_b, strict=True))
        chosen = integrated if self.multiply_by_inputs else grads
        per_layer: list[TensorOrTuple] = [
            chosen[spans[i]] if counts[i] == 1 else tuple(chosen[spans[i] : spans[i + 1]])
            for i in range(len(layers))
        ]
        attributions: LayerAttributions = (
            per_layer if isinstance(self.layer, list) else per_layer[0]
        )
        rows = torch.arange(batch, device=device)
        ends = engine.target_values(out_x, rows), engine.target_values(out_b, rows)
        delta = completeness_delta(integrated, *ends)
        if tolerance is None:  # tolerance mode reports its own certificate
            warn_if_incomplete(delta, *ends, n_steps)
        if not return_convergence_delta:
            return attributions
        return attributions, delta

    def _record(
        self, xs: tuple[torch.Tensor, ...], extra: tuple[Any, ...], layer_input: bool
    ) -> tuple[list[tuple[torch.Tensor, ...]], Any, int]:
        """Each layer's activation when the model runs on ``xs``, the model output, and
        how many weighted modules (not embedding lookups) ran before the first activation."""
        layers = self.layer if isinstance(self.layer, list) else [self.layer]
        seen: list[list[Any]] = [[] for _ in layers]
        ran = [0]
        upstream: list[int] = []
        handles = []

        def keeper(i: int) -> Callable[..., None]:
            def keep(_: nn.Module, args: tuple[Any, ...], output: Any = None) -> None:
                seen[i].append(args if layer_input else output)
                upstream.append(ran[0])

            return keep

        def count(m: nn.Module, _args: Any, _out: Any) -> None:
            if not isinstance(m, nn.Embedding) and next(m.children(), None) is None:
                ran[0] += next(m.parameters(recurse=False), None) is not None

        try:
            handles.append(nn.modules.module.register_module_forward_hook(scoped(count)))
            for i, m in enumerate(layers):
                hook = scoped(keeper(i))
                handles.append(
                    m.register_forward_pre_hook(hook)
                    if layer_input
                    else m.register_forward_hook(hook)
                )
            with torch.no_grad(), kept_buffers(owner(self.forward_func)):
                output = self.forward_func(*xs, *extra)
        finally:
            for h in handles:
                h.remove()
        acts = []
        for i, values in enumerate(seen):
            where = f"layer[{i}]" if isinstance(self.layer, list) else "layer"
            if not values:
                raise ValueError(
                    f"{where} was not called by forward_func; pass a layer the model uses"
                )
            if len(values) > 1:
                raise ValueError(
                    f"{where} was called {len(values)} times in one forward pass; layer "
                    "attribution needs a layer that runs once per forward"
                )
            acts.append(_as_tensors(values[0], where, layer_input))
        return acts, output, min(upstream)

    @staticmethod
    def _check_activations(
        flat_x: tuple[torch.Tensor, ...],
        flat_b: tuple[torch.Tensor, ...],
        counts: list[int],
        batch: int,
        layer_input: bool,
    ) -> None:
        kind = "input" if layer_input else "output"
        if len(flat_x) != len(flat_b):
            raise ValueError(
                f"the layers' {kind}s have a different structure for inputs and baselines"
            )
        for x, b in zip(flat_x, flat_b, strict=True):
            if x.dim() == 0 or x.shape[0] != batch:
                raise ValueError(
                    f"the layer's {kind} has shape {tuple(x.shape)}; its first dimension "
                    f"must be the batch ({batch})"
                )
            if x.shape != b.shape:
                raise ValueError(
                    f"the layer's {kind} has shape {tuple(x.shape)} for the inputs but "
                    f"{tuple(b.shape)} for the baselines; they must match"
                )


def _as_tensors(value: Any, where: str, layer_input: bool) -> tuple[torch.Tensor, ...]:
    """The floating-point tensors of a layer's output or positional inputs.

    Other entries (None, masks, ids) are not on the path: they pass through unchanged.
    """
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    tensors = tuple(t.detach() for t in items if attributable(t))
    if not tensors:
        kind = "positional inputs" if layer_input else "output"
        found = ", ".join(
            f"{type(t).__name__}({t.dtype})" if isinstance(t, torch.Tensor) else type(t).__name__
            for t in items
        )
        raise ValueError(
            f"the {kind} of {where} holds no floating-point tensor ({found or 'nothing'}); "
            "the path needs floating-point activations (attribute to an embedding's output "
            "rather than its token-id input)"
        )
    return tensors


def _model_inputs(
    inputs: object, baselines: object
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Inputs of any real dtype (token ids included) and baselines of the same dtypes."""
    xs, was_tuple = as_inputs(inputs, integer_ok=True)
    if all(x.is_floating_point() for x in xs):
        return xs, resolve_baselines(baselines, xs, was_tuple)
    if callable(baselines) and not isinstance(baselines, torch.Tensor):
        baselines = baselines(xs if was_tuple else xs[0])
    specs = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
    if len(specs) != len(xs):
        raise ValueError(
            f"baselines has {len(specs)} entries but inputs has {len(xs)}; give one per input"
        )
    out = []
    for i, (spec, x) in enumerate(zip(specs, xs, strict=True)):
        where = f"baselines[{i}]" if was_tuple else "baselines"
        if x.is_floating_point():
            out.append(resolve_baselines(spec, (x,), False)[0])
        else:
            out.append(_discrete_baseline(spec, x, where))
    return xs, tuple(out)


def _discrete_baseline(spec: object, x: torch.Tensor, where: str) -> torch.Tensor:
    """Baseline for integer (e.g. token-id) inputs: None (zeros), an int or a tensor."""
    if spec is None:
        return torch.zeros_like(x)
    if isinstance(spec, bool) or not isinstance(spec, (int, float, torch.Tensor)):
        raise TypeError(
            f"{where} for integer inputs of dtype {x.dtype} must be None, an int or a tensor "
            f"of ids, got {type(spec).__name__}"
        )
    if isinstance(spec, float) and not (math.isfinite(spec) and spec.is_integer()):
        raise ValueError(f"{where} is {spec}; integer inputs need an integer baseline")
    if isinstance(spec, torch.Tensor) and spec.is_floating_point():
        raise TypeError(
            f"{where} has dtype {spec.dtype} but the inputs are {x.dtype}; pass baseline ids "
            "of an integer dtype"
        )
    if isinstance(spec, (int, float)):
        return torch.full_like(x, int(spec))
    try:
        shape = torch.broadcast_shapes(spec.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"{where} of shape {tuple(spec.shape)} does not broadcast to the input's shape "
            f"{tuple(x.shape)}; use the input's shape, or 1 for the batch dimension"
        )
    return spec.detach().to(device=x.device, dtype=x.dtype).expand(x.shape).contiguous()
