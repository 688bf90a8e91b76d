"""Layer Integrated Gradients: the path runs in a layer's activation space.

The model is run on the inputs and on the baselines to record the layer's output
(or input), the straight path is taken between those two activations, and at every
path point a forward hook swaps the point in for the layer's activation while the
rest of the model runs as usual. Everything else — chunking, targets, extra
arguments, state restoration — is the shared engine's. Hooks are removed in
``finally`` blocks, also when the model raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ._engine import Engine, PathProblem
from ._inputs import ExtraArgs, TargetType, TensorOrTuple
from .quadrature import check_method, rule

__all__ = ["LayerIntegratedGradients"]


class LayerIntegratedGradients:
    """Captum-compatible layer IG on the integrad engine.

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> lig = integrad.LayerIntegratedGradients(model, model[1])
    >>> lig.attribute(torch.ones(2, 3), target=0).shape
    torch.Size([2, 4])
    """

    def __init__(
        self, forward_func: Callable[..., Any], layer: nn.Module, multiply_by_inputs: bool = True
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
        self.forward_func = forward_func
        self.layer = layer
        self.multiply_by_inputs = multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

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
        *,
        max_memory: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attributions shaped like the layer's output (or input); delta in model outputs."""
        check_method(method, n_steps)
        problem, _ = PathProblem.build(
            self.forward_func, inputs, baselines, target, additional_forward_args
        )
        extra = problem.extra.args
        act_x = self._record(problem.inputs, extra, attribute_to_layer_input)
        act_base = self._record(problem.baselines, extra, attribute_to_layer_input)
        batch = problem.batch
        if act_x.shape[0] != batch:
            raise ValueError(
                f"the layer's {'input' if attribute_to_layer_input else 'output'} has shape "
                f"{tuple(act_x.shape)}; its first dimension must be the batch ({batch})"
            )

        def swapped(point: torch.Tensor, *rest: Any) -> Any:
            with self._swap(point, attribute_to_layer_input):
                return self.forward_func(*rest)

        layer_problem = PathProblem(
            swapped,
            (act_x,),
            (act_base,),
            problem.target,
            ExtraArgs.of((*problem.inputs, *extra), batch),
        )
        engine = Engine(
            layer_problem, max_memory=max_memory, internal_batch_size=internal_batch_size
        )
        grads = engine.integrate(rule(method, n_steps))[0]
        integrated = grads * (act_x - act_base)
        attributions = integrated if self.multiply_by_inputs else grads
        if not return_convergence_delta:
            return attributions
        output, baseline_output = Engine(problem).ends()
        change = output - baseline_output
        return attributions, integrated.reshape(batch, -1).sum(1).to(change.dtype) - change

    def _record(
        self, xs: tuple[torch.Tensor, ...], extra: tuple[Any, ...], layer_input: bool
    ) -> torch.Tensor:
        """The layer's activation when the model runs on ``xs`` (no gradients)."""
        seen: list[torch.Tensor] = []

        def keep(_: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            seen.append(_single(args if layer_input else output, layer_input))

        handle = self.layer.register_forward_hook(keep)
        try:
            with torch.no_grad():
                self.forward_func(*xs, *extra)
        finally:
            handle.remove()
        if not seen:
            raise ValueError("layer was not called by forward_func; pass a layer the model uses")
        return seen[0].detach()

    @contextmanager
    def _swap(self, point: torch.Tensor, layer_input: bool) -> Iterator[None]:
        if layer_input:
            handle = self.layer.register_forward_pre_hook(lambda m, args: (point, *args[1:]))
        else:
            handle = self.layer.register_forward_hook(lambda m, args, output: point)
        try:
            yield
        finally:
            handle.remove()


def _single(value: Any, layer_input: bool) -> torch.Tensor:
    if isinstance(value, tuple) and len(value) >= 1 and layer_input:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"the layer's {'input' if layer_input else 'output'} is a "
            f"{type(value).__name__}; layer attribution needs a single tensor"
        )
    return value
