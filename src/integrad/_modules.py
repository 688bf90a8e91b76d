"""What integrad reads from a model's modules: which module a ``forward_func`` runs, and
which of its nonlinearities are smooth or kinked.

Tolerance mode picks its ladder from these lists (:func:`integrad.tolerance.is_smooth`)
and exact mode vets a model against them (:func:`integrad.exact.check_model`), so the
two always agree on what a module is.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import textwrap
import types
from typing import Any

import torch
from torch import nn
from torch.nn.modules import pooling

SMOOTH = (
    nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Mish, nn.Softplus, nn.Softmax, nn.LogSoftmax,
    nn.Softmin, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid, nn.LayerNorm, nn.GroupNorm,
    nn.LocalResponseNorm,
)  # fmt: skip
"""Analytic nonlinearities: Gauss–Legendre converges exponentially through them."""

SMOOTH_NAMES = frozenset({"GELUActivation", "NewGELUActivation", "FastGELUActivation"})
"""HuggingFace's GELU modules, known by name so that transformers need not be imported."""

KINKED = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink, nn.Threshold, pooling._MaxPoolNd,
    pooling._AdaptiveMaxPoolNd, nn.ELU, nn.SELU, nn.CELU,
)  # fmt: skip
"""Modules whose derivative (ELU with α = 1 and CELU: its second derivative) jumps: through
them the IG integrand is not smooth and every rule converges only algebraically."""

KINKED_CALLS = frozenset({
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "hardtanh", "hardtanh_",
    "hardswish", "hardsigmoid", "elu", "elu_", "selu", "selu_", "celu", "celu_", "rrelu",
    "prelu", "threshold", "threshold_", "hardshrink", "softshrink", "max_pool1d",
    "max_pool2d", "max_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "abs", "abs_", "absolute", "clamp", "clamp_", "clip", "clip_",
    "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "max", "min", "amax",
    "amin", "topk",
})  # fmt: skip
"""Functions and tensor methods with a kink, as a ``forward`` may call them (``F.relu(x)``,
``x.clamp(min=0)``, ``torch.abs(x)``, ``x.max(dim=1)`` pooling). A call that only picks
indices or bounds a mask is counted too: that costs evaluations, never a certificate.
``where`` is left out (it masks far more often than it kinks)."""


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


SHARP_BETA = 20.0
"""``nn.Softplus`` steeper than this (a smoothed ReLU, as in explanation-robustness work)
bends within 1/20 of a unit: too sharp for the smooth ladder's first rungs to see."""


def is_smooth_module(m: nn.Module) -> bool:
    """A smooth nonlinearity; recurrent layers count when their activations are tanh/sigmoid."""
    if isinstance(m, nn.RNNBase):
        return getattr(m, "nonlinearity", "tanh") != "relu"
    return (isinstance(m, SMOOTH) and not is_sharp_module(m)) or type(m).__name__ in SMOOTH_NAMES


def is_sharp_module(m: nn.Module) -> bool:
    """Smooth, but with a bend so narrow that low-order rules can miss it together (a
    ``nn.Softplus`` with ``beta`` over :data:`SHARP_BETA`)."""
    return isinstance(m, nn.Softplus) and float(m.beta) > SHARP_BETA


def is_kinked_module(m: nn.Module) -> bool:
    """A module whose derivative jumps: one of :data:`KINKED`, ``nn.RNN(nonlinearity="relu")``,
    a transformer layer with ReLU (PyTorch's default), or a module of a class outside PyTorch
    whose ``forward`` calls one of :data:`KINKED_CALLS`."""
    if isinstance(m, nn.RNNBase):
        return getattr(m, "nonlinearity", "tanh") == "relu"
    if isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return getattr(m, "activation_relu_or_gelu", 0) == 1 or calls_kinks(m.activation)
    if isinstance(m, KINKED):
        return True
    own = type(m).__module__.split(".")[0] == "torch"
    return not own and calls_kinks(type(m).forward)


def calls_kinks(func: Any) -> bool:
    """Whether the source of ``func`` (a function, method or lambda) calls a kinked function
    (:data:`KINKED_CALLS`). False where there is no Python source to read."""
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    return code is not None and _source_calls_kinks(code)


@functools.lru_cache(maxsize=512)
def _source_calls_kinks(code: types.CodeType) -> bool:
    """Cached per code object, which keeps no closure (nor the model in it) alive."""
    try:
        source = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError, IndexError):  # no source kept, or its file changed since
        return False
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # a lambda's line, cut out of a longer expression
        return any(name in KINKED_CALLS for name in re.findall(r"(\w+)\s*\(", source))
    # A lambda's source is its whole line: read only the lambdas on it.
    lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    roots = lambdas if code.co_name == "<lambda>" and lambdas else [tree]
    for node in (n for root in roots for n in ast.walk(root)):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in KINKED_CALLS:
                return True
    return False
