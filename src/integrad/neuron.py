"""Neuron Integrated Gradients: IG of one hidden neuron's activation w.r.t. the inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._captum import GradientAttribution, check_device_ids
from ._checks import completeness_silenced, kept_buffers
from ._hooks import call_scope, scoped
from ._inputs import TensorOrTuple, check_callable, check_flag
from ._modules import owner
from .integrated_gradients import _Run

__all__ = ["NeuronIntegratedGradients"]

NeuronSelector = (
    int
    | tuple[int | slice, ...]
    | Callable[[torch.Tensor | tuple[torch.Tensor, ...]], torch.Tensor]
)


class NeuronIntegratedGradients(GradientAttribution):
    """Captum-compatible neuron IG: the model's output is replaced by one neuron of ``layer``.

    ``neuron_selector`` takes Captum's forms: an int (index after the batch dimension),
    a tuple of ints and slices (with a slice, the selected neurons are summed per
    example), or a callable that maps the layer's activation (a tuple if the layer has
    several tensors) to one value per example, or to one aggregate value for the
    batch, such as a sum. An aggregate is taken of each example's rows on their own,
    which for sums over examples is what Captum computes. ``device_ids`` (Captum's, for
    DataParallel replicas) must be None.

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> nig = integrad.NeuronIntegratedGradients(model, model[1])
    >>> nig.attribute(torch.ones(2, 3), neuron_selector=2).shape
    torch.Size([2, 3])
    >>> nig.attribute(torch.ones(2, 3), neuron_selector=(slice(0, 2),)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        check_callable(forward_func)
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
        check_device_ids(device_ids)
        check_flag(multiply_by_inputs, "multiply_by_inputs")
        self.forward_func = forward_func
        self.layer = layer
        self.device_ids = device_ids
        self.multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTuple,
        neuron_selector: NeuronSelector,
        baselines: object = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        attribute_to_neuron_input: bool = False,
    ) -> TensorOrTuple:
        """Attributions shaped like ``inputs``."""
        _check_selector(neuron_selector)
        check_flag(attribute_to_neuron_input, "attribute_to_neuron_input")

        def neuron(*args: Any) -> torch.Tensor:
            seen: list[tuple[torch.Tensor, ...]] = []

            def keep(_: nn.Module, layer_args: tuple[Any, ...], output: Any) -> None:
                value = layer_args if attribute_to_neuron_input else output
                items = value if isinstance(value, (tuple, list)) else (value,)
                tensors = tuple(t for t in items if isinstance(t, torch.Tensor))
                if not tensors:
                    kind = "inputs" if attribute_to_neuron_input else "output"
                    raise ValueError(
                        f"neuron attribution needs the layer's {kind} to hold a tensor, got "
                        f"{type(value).__name__}"
                    )
                seen.append(tensors)

            handle = self.layer.register_forward_hook(scoped(keep))
            try:
                self.forward_func(*args)
            finally:
                handle.remove()
            if not seen:
                raise ValueError(
                    "layer was not called by forward_func; pass a layer the model uses"
                )
            return _select(seen[0], neuron_selector)

        # Hooks of this call ignore other threads' forward passes; train-mode buffers are
        # restored once the last backward pass is done.
        with call_scope(), kept_buffers(owner(self.forward_func)):
            return self._explain(
                neuron, inputs, baselines, additional_forward_args, n_steps, method,
                internal_batch_size, attribute_to_neuron_input,
            )  # fmt: skip

    def _explain(
        self,
        neuron: Callable[..., torch.Tensor],
        inputs: TensorOrTuple,
        baselines: object,
        additional_forward_args: Any,
        n_steps: int,
        method: str,
        internal_batch_size: int | None,
        to_input: bool,
    ) -> TensorOrTuple:
        # ``neuron`` is made afresh each call: the cost per point and the chunk timings are
        # remembered under the caller's model and this layer instead.
        run = _Run(
            neuron, inputs, baselines, None, additional_forward_args, n_steps, method,
            internal_batch_size, None,
            model=owner(self.forward_func),
            remembered_as=(self.forward_func, ("neuron", id(self.layer), to_input)),
        )  # fmt: skip
        if not completeness_silenced():
            run.completeness()  # F(x), F(x') at the neuron, for the completeness guard
        return run.attributions(self.multiply_by_inputs)


def _check_selector(selector: object) -> None:
    if callable(selector) or _is_index(selector):
        return
    if (
        isinstance(selector, tuple)
        and selector
        and all(_is_index(i) or isinstance(i, slice) for i in selector)
    ):
        return
    raise TypeError(
        "neuron_selector must be an int, a tuple of ints and slices, or a callable, got "
        f"{selector!r}"
    )


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _select(activations: tuple[torch.Tensor, ...], selector: NeuronSelector) -> torch.Tensor:
    """One value per example (per path point) from the layer's activation(s)."""
    batch = int(activations[0].shape[0])
    if callable(selector):
        value = _call(selector, activations)
        if value.numel() == 1 and batch > 1:
            # One aggregate for the batch (Captum differentiates it as it is): for an
            # aggregate that adds over examples, each example's share is its rows' own.
            return torch.cat(
                [
                    _call(selector, tuple(a[i : i + 1] for a in activations)).reshape(1)
                    for i in range(batch)
                ]
            )
        return value
    if len(activations) != 1:
        raise ValueError(
            f"the layer has {len(activations)} tensors; select a neuron with a callable "
            "neuron_selector that takes their tuple"
        )
    (activation,) = activations
    index = (selector,) if isinstance(selector, int) else selector
    sliced = any(isinstance(i, slice) for i in index)
    dims = activation.dim() - 1
    if len(index) > dims or (len(index) < dims and not sliced):
        raise ValueError(
            f"neuron_selector {selector!r} has {len(index)} index(es) but the activation has "
            f"shape {tuple(activation.shape)} (batch first)"
        )
    for i, size in zip(index, activation.shape[1:], strict=False):
        if isinstance(i, int) and not -size <= i < size:
            raise ValueError(
                f"neuron_selector {selector!r} is out of range for activation shape "
                f"{tuple(activation.shape)}"
            )
    full: tuple[slice | int, ...] = (slice(None), *index)
    selected = activation[full]
    # Captum: a slice selects several neurons, and their sum is attributed.
    return selected.reshape(batch, -1).sum(1) if sliced else selected


def _call(
    selector: Callable[[torch.Tensor | tuple[torch.Tensor, ...]], torch.Tensor],
    activations: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    value = selector(activations if len(activations) > 1 else activations[0])
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"the neuron_selector callable must return a tensor, got {type(value).__name__}"
        )
    return value
