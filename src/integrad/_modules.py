"""What integrad reads from a model's modules: which module a ``forward_func`` runs, and
which of its nonlinearities are smooth or kinked.

Tolerance mode picks its ladder from these lists (:func:`integrad.tolerance.is_smooth`)
and exact mode vets a model against them (:func:`integrad.exact.check_model`), so the
two always agree on what a module is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules import pooling

SMOOTH = (
    nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Mish, nn.Softplus, nn.ELU, nn.CELU, nn.SELU,
    nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid,
    nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
)  # fmt: skip
"""Nonlinearities with a continuous derivative: Gauss–Legendre converges exponentially."""

SMOOTH_NAMES = frozenset({"GELUActivation", "NewGELUActivation", "FastGELUActivation"})
"""HuggingFace's GELU modules, known by name so that transformers need not be imported."""

KINKED = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink, nn.Threshold, pooling._MaxPoolNd,
    pooling._AdaptiveMaxPoolNd,
)  # fmt: skip
"""Modules whose derivative jumps: through them the IG integrand is piecewise constant."""


def owner(forward_func: Any) -> nn.Module | None:
    """The module ``forward_func`` is, or whose bound method it is; None for a function."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    module = getattr(forward_func, "__self__", None)
    return module if isinstance(module, nn.Module) else None


def first_parameter(forward_func: Any) -> torch.Tensor | None:
    """The first parameter of the module ``forward_func`` runs: where and in what dtype the
    model computes. None for a function or a module without parameters."""
    module = owner(forward_func)
    return None if module is None else next(iter(module.parameters()), None)


def is_smooth_module(m: nn.Module) -> bool:
    """A smooth nonlinearity; recurrent layers count when their activations are tanh/sigmoid."""
    if isinstance(m, nn.RNNBase):
        return getattr(m, "nonlinearity", "tanh") != "relu"
    return isinstance(m, SMOOTH) or type(m).__name__ in SMOOTH_NAMES


def is_kinked_module(m: nn.Module) -> bool:
    """A module whose derivative jumps (also ``nn.RNN(nonlinearity="relu")``)."""
    if isinstance(m, nn.RNNBase):
        return getattr(m, "nonlinearity", "tanh") == "relu"
    return isinstance(m, KINKED)
