"""Neuron Integrated Gradients: IG of one hidden neuron's activation w.r.t. the inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._inputs import TensorOrTuple
from .integrated_gradients import explain

__all__ = ["NeuronIntegratedGradients"]

NeuronSelector = int | tuple[int, ...] | Callable[[torch.Tensor], torch.Tensor]


class NeuronIntegratedGradients:
    """Captum-compatible neuron IG: the model's output is replaced by one neuron of ``layer``.

    ``neuron_selector`` is an int (index after the batch dimension), a tuple index, or a
    callable mapping the layer's activation to one value per example.

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> nig = integrad.NeuronIntegratedGradients(model, model[1])
    >>> nig.attribute(torch.ones(2, 3), neuron_selector=2).shape
    torch.Size([2, 3])
    """

    def __init__(
        self, forward_func: Callable[..., Any], layer: nn.Module, multiply_by_inputs: bool = True
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
        self.forward_func = forward_func
        self.layer = layer
        self.multiply_by_inputs = multiply_by_inputs

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
        if not (callable(neuron_selector) or isinstance(neuron_selector, (int, tuple))):
            raise TypeError(
                "neuron_selector must be an int, a tuple of ints or a callable, got "
                f"{type(neuron_selector).__name__}"
            )

        def neuron(*args: Any) -> torch.Tensor:
            seen: list[torch.Tensor] = []

            def keep(_: nn.Module, layer_args: tuple[Any, ...], output: Any) -> None:
                value = layer_args[0] if attribute_to_neuron_input else output
                if not isinstance(value, torch.Tensor):
                    raise ValueError(
                        "neuron attribution needs the layer's activation to be a tensor"
                    )
                seen.append(value)

            handle = self.layer.register_forward_hook(keep)
            try:
                self.forward_func(*args)
            finally:
                handle.remove()
            if not seen:
                raise ValueError(
                    "layer was not called by forward_func; pass a layer the model uses"
                )
            return _select(seen[0], neuron_selector)

        return explain(
            neuron,
            inputs,
            baselines=baselines,
            additional_forward_args=additional_forward_args,
            n_steps=n_steps,
            method=method,
            internal_batch_size=internal_batch_size,
            multiply_by_inputs=self.multiply_by_inputs,
        ).attributions


def _select(activation: torch.Tensor, selector: NeuronSelector) -> torch.Tensor:
    if callable(selector):
        return selector(activation)
    index = (selector,) if isinstance(selector, int) else selector
    if len(index) != activation.dim() - 1:
        raise ValueError(
            f"neuron_selector {selector!r} has {len(index)} index(es) but the activation has "
            f"shape {tuple(activation.shape)} (batch first)"
        )
    for i, size in zip(index, activation.shape[1:], strict=True):
        if not -size <= i < size:
            raise ValueError(
                f"neuron_selector {selector!r} is out of range for activation shape "
                f"{tuple(activation.shape)}"
            )
    full: tuple[slice | int, ...] = (slice(None), *index)
    return activation[full]
