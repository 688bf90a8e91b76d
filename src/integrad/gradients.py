"""Plain gradients and gradient × input, the baselines IG is compared with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._captum import Futureless, GradientAttribution
from ._engine import Engine, PathProblem
from ._inputs import TargetType, TensorOrTuple, check_callable, check_flag, same_form

__all__ = ["InputXGradient", "Saliency"]


def _input_gradients(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    target: TargetType,
    additional_forward_args: Any,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], bool]:
    """``(gradients, inputs, was_tuple)``: the target's gradient at the inputs themselves."""
    problem, was_tuple = PathProblem.build(
        forward_func, inputs, None, target, additional_forward_args
    )
    batch = problem.batch
    # From a zero baseline the path point at alpha = 1 is exactly the input.
    device = problem.inputs[0].device
    ones = torch.ones(batch, dtype=torch.float64, device=device)
    grads = Engine(problem).gradients(torch.arange(batch, device=device), ones, ones).sums
    return grads, problem.inputs, was_tuple


class Saliency(Futureless, GradientAttribution):
    """The gradient of the target with respect to the inputs (Simonyan et al., 2013).

    Captum-compatible: ``abs=True`` (the default) returns its absolute value.

    >>> import torch, integrad
    >>> model = torch.nn.Linear(3, 2)
    >>> integrad.Saliency(model).attribute(torch.ones(1, 3), target=0, abs=False).shape
    torch.Size([1, 3])
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_callable(forward_func)
        self.forward_func = forward_func

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        abs: bool = True,
        additional_forward_args: Any = None,
    ) -> TensorOrTuple:
        check_flag(abs, "abs")
        grads, _, was_tuple = _input_gradients(
            self.forward_func, inputs, target, additional_forward_args
        )
        return same_form(tuple(g.abs() for g in grads) if abs else grads, was_tuple)


class InputXGradient(Futureless, GradientAttribution):
    """Gradient × input (Shrikumar et al., 2016): IG's integrand at the input, times x.

    >>> import torch, integrad
    >>> model = torch.nn.Linear(3, 1)
    >>> x = torch.tensor([[1.0, 2.0, 3.0]])
    >>> torch.allclose(integrad.InputXGradient(model).attribute(x), model.weight * x)
    True
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        check_callable(forward_func)
        self.forward_func = forward_func

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> TensorOrTuple:
        grads, xs, was_tuple = _input_gradients(
            self.forward_func, inputs, target, additional_forward_args
        )
        return same_form(tuple(g * x for g, x in zip(grads, xs, strict=True)), was_tuple)
