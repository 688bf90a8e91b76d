"""What a method hands the engine (:class:`PathProblem`) and what it gets back
(:class:`PathGradients`): a resolved request, validated at the public boundary."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._checks import warn_if_training
from ._inputs import ExtraArgs, Target, as_inputs, check_callable
from ._modules import owner
from .baselines import resolve as resolve_baselines

__all__ = ["PathGradients", "PathProblem", "PointTransform", "Points"]

Points = tuple[torch.Tensor, ...] | Callable[[slice], tuple[torch.Tensor, ...]]
"""Explicit path points (one row per point) or a builder of the points of one chunk."""

PointTransform = Callable[
    [slice, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]
]
"""``(part, points, grads) -> grads``: per-chunk reweighting of the gradients."""


@dataclass(frozen=True)
class PathProblem:
    """A resolved request: what every method hands to the engine."""

    forward_func: Callable[..., Any]
    inputs: tuple[torch.Tensor, ...]
    baselines: tuple[torch.Tensor, ...]
    target: Target
    extra: ExtraArgs
    model: nn.Module | None = None
    """The caller's model when ``forward_func`` wraps it (layer and neuron IG); else the
    module ``forward_func`` is or is a method of."""
    remembered_as: tuple[Callable[..., Any], Hashable] | None = None
    """For a ``forward_func`` made afresh each call (layer IG's wrapper): the caller's
    function and a tag, under which the cost per point and chunk timings are remembered
    from call to call (else under ``forward_func`` itself)."""

    @property
    def owner(self) -> nn.Module | None:
        return self.model if self.model is not None else owner(self.forward_func)

    @property
    def batch(self) -> int:
        return int(self.inputs[0].shape[0])

    @classmethod
    def build(
        cls,
        forward_func: Callable[..., Any],
        inputs: object,
        baselines: object,
        target: object,
        additional_forward_args: object,
        model: nn.Module | None = None,
        remembered_as: tuple[Callable[..., Any], Hashable] | None = None,
    ) -> tuple[PathProblem, bool]:
        """Validate the public argument forms; also says whether inputs were a tuple.

        ``model`` and ``remembered_as`` as the fields of the same names.
        """
        check_callable(forward_func)
        xs, was_tuple = as_inputs(inputs)
        batch = int(xs[0].shape[0])
        problem = cls(
            forward_func,
            xs,
            resolve_baselines(baselines, xs, was_tuple),
            Target(target, batch),
            ExtraArgs.of(additional_forward_args, batch),
            model,
            remembered_as,
        )
        warn_if_training(forward_func)
        return problem, was_tuple


@dataclass(frozen=True)
class PathGradients:
    """Per-example sums of ``weight × gradient`` and the target output at every point."""

    sums: tuple[torch.Tensor, ...]
    outputs: torch.Tensor
