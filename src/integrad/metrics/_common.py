"""What the metrics share: chunking the perturbation samples, calling the model, forms.

Captum's metrics expand every example ``k`` times (example-major, as
``repeat_interleave``) and process the samples in chunks of ``k`` per example; the
chunk sizes here are Captum's, so a perturbation that draws from torch's global
random state draws the same numbers in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from .._inputs import Target, TensorOrTuple, check_positive_int, repeat_per_example
from ..explanation import Explanation


def sample_chunks(batch: int, n_perturb_samples: int, max_examples_per_batch: object) -> list[int]:
    """Samples per example in each chunk: Captum's ``_divide_and_aggregate_metrics`` sizes.

    Each chunk holds ``max_examples_per_batch // batch`` samples of every example (at
    least 1, at most ``n_perturb_samples``); the last one holds what is left.
    """
    check_positive_int(n_perturb_samples, "n_perturb_samples")
    if max_examples_per_batch is None:
        return [n_perturb_samples]
    check_positive_int(max_examples_per_batch, "max_examples_per_batch")
    per_chunk = min(max(cast(int, max_examples_per_batch) // batch, 1), n_perturb_samples)
    sizes = [per_chunk] * (n_perturb_samples // per_chunk)
    if n_perturb_samples % per_chunk:
        sizes.append(n_perturb_samples % per_chunk)
    return sizes


def expanded(tensors: tuple[torch.Tensor, ...], k: int) -> tuple[torch.Tensor, ...]:
    """Every example repeated ``k`` times in a row."""
    return tuple(t.repeat_interleave(k, dim=0) for t in tensors)


def as_tuple(value: object, where: str) -> tuple[torch.Tensor, ...]:
    """A tensor or tuple of tensors (or an Explanation's attributions) as a tuple."""
    if isinstance(value, Explanation):
        value = value.attributions
    items = value if isinstance(value, tuple) else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, torch.Tensor):
            name = f"{where}[{i}]" if isinstance(value, tuple) else where
            raise TypeError(f"{name} must be a torch.Tensor, got {type(item).__name__}")
    return items


def check_matching(
    tensors: tuple[torch.Tensor, ...], reference: tuple[torch.Tensor, ...], where: str
) -> None:
    """Raise ``ValueError`` naming ``where`` unless it has the reference's count and shapes."""
    if len(tensors) != len(reference):
        raise ValueError(
            f"{where} has {len(tensors)} tensor(s) but the inputs have {len(reference)}"
        )
    for i, (t, x) in enumerate(zip(tensors, reference, strict=True)):
        if t.shape != x.shape:
            name = f"{where}[{i}]" if len(reference) > 1 else where
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but the inputs' is {tuple(x.shape)}"
            )


def form(tensors: tuple[torch.Tensor, ...]) -> TensorOrTuple:
    """Captum's calling form: the one tensor alone, several as a tuple."""
    return tensors[0] if len(tensors) == 1 else tensors


def extra_args(additional_forward_args: object) -> tuple[Any, ...]:
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def target_output(
    forward_func: Callable[..., Any],
    inputs: tuple[torch.Tensor, ...],
    target: object,
    args: tuple[Any, ...],
) -> torch.Tensor:
    """``forward_func(*inputs, *args)`` at ``target``: one value per example, shape ``(n,)``."""
    return Target(target, int(inputs[0].shape[0])).select(forward_func(*inputs, *args))


def repeated(value: Any, batch: int, k: int) -> Any:
    """A per-example argument (target, extra arguments, baselines) for ``k`` copies each."""
    return repeat_per_example(value, batch, k)
