"""Perturbation functions for the Captum metrics that draw from a ``torch.Generator``.

Captum's perturbations draw from torch's global random state, so two runs agree
only if the caller seeds it alike and nothing else draws in between. Each factory
here returns a perturbation function holding its own generator (a CPU generator
seeded 0 unless one is given): rerunning with a fresh generator seeded alike gives
the same numbers, whatever else the program draws. Noise is drawn on the
generator's device in the inputs' dtype, then moved to the inputs' device.

* :func:`gaussian` and :func:`subset` for :func:`~integrad.metrics.infidelity`
  (they return ``(perturbations, perturbed_inputs)``);
* :func:`uniform` for :func:`~integrad.metrics.sensitivity_max` (perturbed inputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .._inputs import TensorOrTuple
from ._common import as_tuple

__all__ = ["gaussian", "subset", "uniform"]

Pair = tuple[TensorOrTuple, TensorOrTuple]


def _own_generator(generator: object) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator)}")
    return generator


def _check_scale(value: object, name: str, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (0 < value <= upper and math.isfinite(value)):
        bound = "a finite number > 0" if upper == math.inf else f"in (0, {upper:g}]"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def _draw(
    x: torch.Tensor, generator: torch.Generator, fill: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    raw = torch.empty(x.shape, dtype=dtype, device=generator.device)
    return fill(raw).to(x.device)


def _same_form(items: list[torch.Tensor], like: object) -> TensorOrTuple:
    return tuple(items) if isinstance(like, tuple) else items[0]


def gaussian(stdev: float, generator: torch.Generator | None = None) -> Callable[..., Pair]:
    """Infidelity's noise perturbation: ``I ~ N(0, stdev²)`` per feature, inputs ``x − I``.

    For local attributions (gradients, ``multiply_by_inputs=False``): with the exact
    gradient of a linear model the infidelity is 0.

    >>> import torch
    >>> perturb = gaussian(0.5, generator=torch.Generator().manual_seed(1))
    >>> noise, moved = perturb(torch.ones(2, 3))
    >>> torch.equal(moved, 1 - noise)
    True
    """
    sigma = _check_scale(stdev, "stdev")
    own = _own_generator(generator)

    def perturb(inputs: TensorOrTuple, baselines: Any = None) -> Pair:
        xs = as_tuple(inputs, "inputs")
        noise = [_draw(x, own, lambda t: t.normal_(0.0, sigma, generator=own)) for x in xs]
        moved = [x - n for x, n in zip(xs, noise, strict=True)]
        return _same_form(noise, inputs), _same_form(moved, inputs)

    return perturb


def subset(fraction: float = 0.5, generator: torch.Generator | None = None) -> Callable[..., Pair]:
    """Infidelity for global attributions (IG, input × gradient): remove random features.

    Each feature is set to its baseline (0 without baselines) with probability
    ``fraction``; the perturbation is the binary mask (0 where input and baseline
    agree), so ``Iᵀa`` is the attribution of the removed features and the infidelity
    is Sensitivity-n's squared error: completeness, checked on random subsets.

    >>> import torch
    >>> mask, moved = subset(0.5, generator=torch.Generator().manual_seed(0))(torch.ones(1, 4))
    >>> torch.equal(moved, 1 - mask)
    True
    """
    p = _check_scale(fraction, "fraction", upper=1.0)
    own = _own_generator(generator)

    def perturb(inputs: TensorOrTuple, baselines: Any = None) -> Pair:
        xs = as_tuple(inputs, "inputs")
        refs = (0.0,) * len(xs) if baselines is None else baselines
        refs = refs if isinstance(refs, tuple) else (refs,)
        masks, moved = [], []
        for x, ref in zip(xs, refs, strict=True):
            drop = _draw(x, own, lambda t: t.bernoulli_(p, generator=own))
            ref_t = torch.as_tensor(ref, dtype=x.dtype, device=x.device).expand_as(x)
            moved.append(torch.where(drop.bool(), ref_t, x))
            masks.append(drop * (x != ref_t))
        return _same_form(masks, inputs), _same_form(moved, inputs)

    return perturb


def uniform(generator: torch.Generator | None = None) -> Callable[..., TensorOrTuple]:
    """Sensitivity's perturbation: ``x + U(−r, r)`` per feature, ``r = perturb_radius``.

    The generator-backed twin of Captum's ``default_perturb_func``; ``sensitivity_max``
    passes its ``perturb_radius``.

    >>> import torch
    >>> moved = uniform(torch.Generator().manual_seed(0))(torch.zeros(1, 5), 0.1)
    >>> bool(moved.abs().max() <= 0.1)
    True
    """
    own = _own_generator(generator)

    def perturb(inputs: TensorOrTuple, perturb_radius: float = 0.02) -> TensorOrTuple:
        r = _check_scale(perturb_radius, "perturb_radius")
        xs = as_tuple(inputs, "inputs")
        moved = [x + _draw(x, own, lambda t: t.uniform_(-r, r, generator=own)) for x in xs]
        return _same_form(moved, inputs)

    return perturb
