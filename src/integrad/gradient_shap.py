"""GradientShap with Captum's signature, draws and delta convention.

GradientShap (Lundberg & Lee, 2017, as Captum implements it) explains each example
with ``n_samples`` samples: a reference drawn from the baselines' distribution (for
tuple inputs, independently for each input, as Captum), Gaussian noise of ``stdevs``
on the input, and a uniform α; a sample's attribution is
``(x̃ - x') ⊙ ∇F(x' + α(x̃ - x'))`` and the result is their mean. It runs on the same
sampling core as :class:`~integrad.ExpectedGradients` (``_sampling.py``), in groups
sized to ``max_memory``.

Randomness: with ``generator=None`` the draws come from the global NumPy and torch
random states in Captum's order, so that ``torch.manual_seed`` and ``np.random.seed``
set alike before both calls make integrad and Captum agree to float tolerance (for
inputs on the CPU). A ``torch.Generator`` passed as ``generator=`` is integrad's
addition: reproducible results without touching global state.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ._captum import Futureless, GradientAttribution
from ._checks import warn_if_training
from ._inputs import (
    ExtraArgs,
    Target,
    TargetType,
    TensorOrTuple,
    as_inputs,
    check_callable,
    check_positive_int,
    same_form,
)
from ._sampling import (
    Draws,
    GeneratorDraws,
    GlobalDraws,
    check_stdevs,
    reference_sets,
    sample_attributions,
)

__all__ = ["GradientShap"]

Baselines = torch.Tensor | tuple[torch.Tensor, ...] | Callable[..., Any]


class GradientShap(Futureless, GradientAttribution):
    """Captum's ``GradientShap``, memory-bounded.

    The delta, on request, is Captum's: one per drawn sample, shape
    ``(batch * n_samples,)`` ordered example by example, each
    ``Σ (x̃ - x') ⊙ gradient − (F(x̃) − F(x'))``: multiplied by the inputs even with
    ``multiply_by_inputs=False``, so that it stays a completeness check.

    >>> import torch, integrad
    >>> model = torch.nn.Linear(3, 1)
    >>> gs = integrad.GradientShap(model)
    >>> refs = torch.randn(20, 3)
    >>> gen = torch.Generator().manual_seed(0)
    >>> attr, delta = gs.attribute(
    ...     torch.ones(2, 3), refs, n_samples=8, return_convergence_delta=True, generator=gen
    ... )
    >>> attr.shape, delta.shape
    (torch.Size([2, 3]), torch.Size([16]))
    """

    def __init__(self, forward_func: Callable[..., Any], multiply_by_inputs: bool = True) -> None:
        check_callable(forward_func)
        if not isinstance(multiply_by_inputs, bool):
            raise TypeError(
                f"multiply_by_inputs must be a bool, got {type(multiply_by_inputs).__name__}"
            )
        self.forward_func = forward_func
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Baselines,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        *,
        generator: torch.Generator | None = None,
        max_memory: int | None = None,
    ) -> TensorOrTuple | tuple[TensorOrTuple, torch.Tensor]:
        """Attributions shaped like ``inputs`` (and the per-sample deltas on request).

        ``baselines``: the baselines' distribution, a tensor ``(K, *features)``, a tuple
        of them for tuple inputs (each its own K), or a callable that returns one: called
        with no arguments if it takes none, else with ``inputs``. ``max_memory`` bounds
        the bytes of one group of samples (default 1 GiB).
        """
        xs, was_tuple = as_inputs(inputs)
        if callable(baselines) and not isinstance(baselines, torch.Tensor):
            baselines = _call(baselines, inputs)
        refs = reference_sets(baselines, xs, was_tuple, same_size=False)
        check_positive_int(n_samples, "n_samples")
        sigmas = check_stdevs(stdevs, len(xs))
        batch = int(xs[0].shape[0])
        goal = Target(target, batch)  # validates the form before any draw
        extra = ExtraArgs.of(additional_forward_args, batch)
        warn_if_training(self.forward_func)
        n_refs = tuple(int(r.shape[0]) for r in refs)
        draws: Draws
        if generator is None:
            draws = GlobalDraws(xs, n_refs, sigmas, n_samples)
        else:
            if not isinstance(generator, torch.Generator):
                raise TypeError(
                    f"generator must be a torch.Generator or None, got {type(generator).__name__}"
                )
            draws = GeneratorDraws(generator, xs, n_refs, sigmas, "independent")
        attributions, deltas = sample_attributions(
            self.forward_func,
            xs,
            refs,
            goal,
            extra,
            n_samples,
            draws,
            multiply_by_inputs=self._multiply_by_inputs,
            max_memory=max_memory,
            row_deltas=return_convergence_delta,
        )
        result = same_form(attributions, was_tuple)
        if deltas is None:
            return result
        return result, deltas


def _call(baselines: Callable[..., Any], inputs: TensorOrTuple) -> Any:
    """Captum's rule: a callable that takes no parameters is called bare, else with inputs."""
    try:
        takes_nothing = not inspect.signature(baselines).parameters
    except (TypeError, ValueError):  # builtins without a signature
        takes_nothing = False
    return baselines() if takes_nothing else baselines(inputs)
