"""Normalising the public argument forms once, at the entry point.

Inputs become a tuple of detached floating tensors, targets become a per-example
index into the flattened model output, and extra forward arguments become a tuple
that knows which of its tensors ride along with the path points. Every error here
names the argument and the offending value or shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch

TensorOrTuple: TypeAlias = torch.Tensor | tuple[torch.Tensor, ...]
TargetType: TypeAlias = (
    int | tuple[int, ...] | torch.Tensor | Sequence[int] | Sequence[tuple[int, ...]] | None
)


def as_inputs(inputs: object, integer_ok: bool = False) -> tuple[tuple[torch.Tensor, ...], bool]:
    """``(tensors, was_tuple)``: validated, detached copies-by-reference of the inputs.

    ``integer_ok`` admits integer inputs (token ids, for layer attribution) as they are.
    """
    was_tuple = isinstance(inputs, tuple)
    items = inputs if isinstance(inputs, tuple) else (inputs,)
    if not items:
        raise ValueError("inputs is an empty tuple; pass a tensor or a tuple of tensors")
    out = []
    for i, x in enumerate(items):
        where = f"inputs[{i}]" if was_tuple else "inputs"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{where} must be a torch.Tensor, got {type(x).__name__}")
        if not (x.is_floating_point() or x.is_complex() or integer_ok):
            raise TypeError(
                f"{where} has dtype {x.dtype}: gradients need floating-point inputs. For token "
                "ids or other discrete inputs, attribute at the embedding layer instead "
                "(layer attribution) and pass the embedded inputs here"
            )
        if x.is_complex():
            raise TypeError(f"{where} has complex dtype {x.dtype}; only real inputs are supported")
        if x.dim() == 0:
            raise ValueError(f"{where} is a scalar; inputs need a leading batch dimension")
        if x.is_floating_point():
            check_finite(x, where)
        out.append(x.detach())
    batch = out[0].shape[0]
    for i, x in enumerate(out):
        if x.shape[0] != batch:
            shapes = [tuple(t.shape) for t in out]
            raise ValueError(
                f"inputs must share the batch size; inputs[{i}] has {x.shape[0]} rows but "
                f"inputs[0] has {batch} (shapes {shapes})"
            )
    if batch == 0:
        raise ValueError("inputs have batch size 0; there is nothing to attribute")
    return tuple(out), was_tuple


def check_callable(forward_func: object) -> None:
    """Raise ``TypeError`` unless ``forward_func`` can be called."""
    if not callable(forward_func):
        raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")


def check_flag(value: object, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is True or False.

    A string such as ``"no"`` is truthy: taking it as a flag would silently invert
    the caller's intent.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


KINDS = ("image", "text", "table", "timeseries")
"""The kinds of input a view is drawn for (``Explanation.kind``)."""
OUTPUT_KINDS = ("logits", "probabilities")
"""What the model's outputs are, when the caller says (``Explanation.output_kind``)."""


def check_kind(kind: object, inputs: tuple[torch.Tensor, ...]) -> str | None:
    """``kind`` when it is None or one of :data:`KINDS` and fits the inputs' shape.

    Images are ``(batch, channels, height, width)`` or grayscale ``(batch, height, width)``,
    tables ``(batch, features)``, series ``(batch, time)`` or ``(batch, time, features)``;
    text is whatever the model takes (token embeddings, usually ``(batch, tokens, dim)``).
    """
    if kind is None:
        return None
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not a kind of input; choose one of {list(KINDS)}")
    ranks = {"image": (3, 4), "table": (2,), "timeseries": (2, 3)}.get(kind)
    if ranks is not None:
        for i, x in enumerate(inputs):
            if x.dim() not in ranks:
                where = f"inputs[{i}]" if len(inputs) > 1 else "inputs"
                raise ValueError(
                    f"kind={kind!r} needs {where} with {' or '.join(map(str, ranks))} "
                    f"dimensions (batch first), got shape {tuple(x.shape)}"
                )
    return kind


def check_output_kind(output_kind: object) -> str | None:
    """``output_kind`` when it is None, ``"logits"`` or ``"probabilities"``."""
    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise ValueError(
            f"output_kind={output_kind!r} must be None, 'logits' (probabilities by softmax) "
            "or 'probabilities'"
        )
    return output_kind


def not_a_tensor(output: object) -> str:
    """The error message for a ``forward_func`` that returned ``output``, not a tensor.

    HuggingFace models return a ``ModelOutput`` (a dict) or a tuple: the message
    shows the one-line wrapper that picks the tensor to explain.
    """
    kind = type(output).__name__
    if isinstance(output, Mapping):
        keys = [str(k) for k in output]
        key = "logits" if "logits" in keys else (keys[0] if keys else "logits")
        pick = f".{key}" if hasattr(output, key) and key.isidentifier() else f"[{key!r}]"
        return (
            f"forward_func returned a {kind} with keys {keys}, not a tensor; pass a function "
            f"that returns the tensor to explain, e.g. forward_func=lambda *a: model(*a){pick}"
        )
    if isinstance(output, (tuple, list)):
        return (
            f"forward_func must return a tensor, got {kind} of {len(output)}; pass a function "
            "that returns the tensor to explain, e.g. forward_func=lambda *a: model(*a)[0]"
        )
    return (
        f"forward_func must return a tensor, got {kind}; wrap the model so it returns the "
        "output tensor to explain"
    )


def check_positive_int(value: object, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_engine_options(
    grad_kwargs: object, internal_batch_size: object, max_memory: object
) -> None:
    """The path engine's options: ``grad_kwargs`` for ``torch.autograd.grad`` (not the
    arguments integrad sets), a positive ``internal_batch_size`` and ``max_memory``, or None."""
    if grad_kwargs is not None and not (
        isinstance(grad_kwargs, dict) and all(isinstance(k, str) for k in grad_kwargs)
    ):
        raise TypeError(
            f"grad_kwargs must be a dict of keyword arguments for torch.autograd.grad, "
            f"got {type(grad_kwargs).__name__}"
        )
    reserved = sorted(set(grad_kwargs or {}) & {"outputs", "inputs", "allow_unused"})
    if reserved:
        raise ValueError(
            f"grad_kwargs may not set {reserved}: integrad chooses the outputs, the inputs "
            "(the path points) and allow_unused itself"
        )
    if internal_batch_size is not None and (
        isinstance(internal_batch_size, bool)
        or not isinstance(internal_batch_size, int)
        or internal_batch_size < 1
    ):
        raise ValueError(
            f"internal_batch_size must be a positive int or None, got {internal_batch_size!r}"
        )
    if max_memory is not None and (
        isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory < 1
    ):
        raise ValueError(f"max_memory must be a positive int (bytes) or None, got {max_memory!r}")


def check_points(
    points: tuple[torch.Tensor, ...], total: int, inputs: tuple[torch.Tensor, ...]
) -> None:
    """Path points a method chose: ``total`` rows of each input's features."""
    for i, (p, x) in enumerate(zip(points, inputs, strict=True)):
        if p.shape[0] != total or p.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"points[{i}] has shape {tuple(p.shape)}; expected {total} rows of features "
                f"{tuple(x.shape[1:])}"
            )


def flat_rows(tensors: TensorOrTuple) -> torch.Tensor:
    """One float64 row per example: every feature of every tensor, flattened and joined."""
    parts = tensors if isinstance(tensors, tuple) else (tensors,)
    return torch.cat([t.reshape(t.shape[0], -1).double() for t in parts], dim=1)


def check_finite(x: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(f"{where} holds non-finite values ({n_nan} NaN, {n_inf} Inf)")


def same_form(tensors: tuple[torch.Tensor, ...], was_tuple: bool) -> TensorOrTuple:
    """Back to the caller's form: a tuple for tuple inputs, else the single tensor."""
    return tensors if was_tuple else tensors[0]


def broadcast_baseline(value: object, x: torch.Tensor, where: str) -> torch.Tensor:
    """A scalar or tensor baseline, expanded to ``x``'s shape, dtype and device."""
    if isinstance(value, bool):
        raise TypeError(f"{where} must be a number or tensor, got bool {value}")
    if isinstance(value, complex):
        raise TypeError(f"{where} is complex ({value}); baselines must be real, like the inputs")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}; baselines must be finite")
        return torch.full_like(x, float(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{where} must be None, a number, a tensor, a baseline name or a callable; "
            f"got {type(value).__name__}"
        )
    if value.is_complex():
        raise TypeError(
            f"{where} has complex dtype {value.dtype}; baselines must be real, like the inputs"
        )
    if not value.is_floating_point():
        value = value.to(x.dtype)
    try:
        shape = torch.broadcast_shapes(value.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"{where} of shape {tuple(value.shape)} does not broadcast to the input's shape "
            f"{tuple(x.shape)}; use the input's shape, or 1 for the batch dimension"
        )
    check_finite(value, where)
    return value.detach().to(device=x.device, dtype=x.dtype).expand(x.shape).contiguous()


@dataclass(frozen=True)
class ExtraArgs:
    """``additional_forward_args`` as a tuple; batch tensors are indexed with the path points."""

    args: tuple[Any, ...]
    batched: tuple[bool, ...]

    @classmethod
    def of(cls, additional_forward_args: object, batch: int) -> ExtraArgs:
        if additional_forward_args is None:
            return cls((), ())
        args = (
            additional_forward_args
            if isinstance(additional_forward_args, tuple)
            else (additional_forward_args,)
        )
        batched = tuple(
            isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == batch for a in args
        )
        return cls(args, batched)

    def at(self, rows: torch.Tensor) -> tuple[Any, ...]:
        """The arguments for path points that belong to examples ``rows``."""
        return tuple(
            a.index_select(0, rows.to(a.device)) if b else a
            for a, b in zip(self.args, self.batched, strict=True)
        )


class Target:
    """A target in any of Captum's forms, resolved to one flat output index per example."""

    def __init__(self, target: object, batch: int) -> None:
        self.raw = target
        self.batch = batch
        self.per_example: list[tuple[int, ...]] | None
        if target is None:
            self.per_example = None
            return
        if isinstance(target, torch.Tensor):
            if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
                raise ValueError(f"target tensor must hold integers, got dtype {target.dtype}")
            if target.numel() == 1:
                # Captum: a one-element tensor is one index, applied to every example.
                target = int(target.item())
            elif target.dim() == 1:
                target = [int(t) for t in target.tolist()]
            else:
                raise ValueError(
                    "target tensor must hold one int (for every example) or be 1-d with one "
                    f"per example, got shape {tuple(target.shape)}"
                )
        if _is_int(target):
            self.per_example = [(int(target),)] * batch  # type: ignore[call-overload]
        elif isinstance(target, tuple) and all(_is_int(t) for t in target):
            self.per_example = [tuple(int(t) for t in target)] * batch
        elif isinstance(target, list):
            if len(target) != batch:
                raise ValueError(
                    f"target has {len(target)} entries but the batch has {batch} examples; "
                    "give one target per example, or a single int or tuple for all"
                )
            rows: list[tuple[int, ...]] = []
            for t in target:
                if _is_int(t):
                    rows.append((int(t),))
                elif isinstance(t, tuple) and all(_is_int(v) for v in t):
                    rows.append(tuple(int(v) for v in t))
                else:
                    raise ValueError(f"target entries must be ints or tuples of ints, got {t!r}")
            self.per_example = rows
        else:
            raise ValueError(
                "target must be None, an int, a tuple of ints, a list or 1-d tensor with one "
                f"per example, or a list of tuples; got {target!r}"
            )

    def flat_index(self, tail: torch.Size) -> torch.Tensor | None:
        """Per-example index into an output row of shape ``tail``, flattened.

        ``None`` means the whole row, which must then hold a single value.
        """
        if self.per_example is None:
            if math.prod(tail) != 1:
                raise ValueError(
                    f"target=None needs one output value per example, but forward_func "
                    f"returned rows of shape {tuple(tail)}; pass a target"
                )
            return None
        flat = []
        for index in self.per_example:
            if len(index) != len(tail):
                raise ValueError(
                    f"target {index if len(index) > 1 else index[0]!r} has {len(index)} "
                    f"index(es) but the output rows have shape {tuple(tail)}; the target "
                    "must select exactly one value per example"
                )
            position = 0
            for i, size in zip(index, tail, strict=True):
                if not -size <= i < size:
                    raise ValueError(
                        f"target {index if len(index) > 1 else index[0]!r} is out of range "
                        f"for output rows of shape {tuple(tail)}"
                    )
                position = position * size + (i % size)
            flat.append(position)
        return torch.tensor(flat, dtype=torch.long)

    def select(self, output: object, sum_rows: bool = False) -> torch.Tensor:
        """The target's value in each example's row of ``output``: shape ``(batch,)``.

        With ``target=None`` a row must hold one value, unless ``sum_rows`` (Captum's
        convergence delta sums each row then).
        """
        rows = check_output(output, self.batch, "examples")
        flat = rows.reshape(self.batch, -1)
        if self.per_example is None and sum_rows:
            return flat.sum(1)
        index = self.flat_index(rows.shape[1:])
        if index is None:
            return flat[:, 0]
        return flat.gather(1, index.to(rows.device).unsqueeze(1)).squeeze(1)


def check_output(output: object, n: int, what: str) -> torch.Tensor:
    """``output`` if it is a tensor with ``n`` rows (``what``: the rows' name in errors)."""
    if not isinstance(output, torch.Tensor):
        raise ValueError(not_a_tensor(output))
    if output.dim() == 0 or output.shape[0] != n:
        raise ValueError(
            f"forward_func returned shape {tuple(output.shape)} for a batch of {n} {what}; "
            "its first dimension must be that batch"
        )
    return output


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def repeat_per_example(value: Any, batch: int, k: int) -> Any:
    """Repeat a per-example value for ``k`` consecutive copies of each example.

    Tensors and lists with one entry per example are repeated (example-major);
    tuples are handled element by element, except an all-int tuple (a target index);
    anything shared by all examples is returned as is.
    """
    if isinstance(value, torch.Tensor):
        per_example = value.dim() > 0 and value.shape[0] == batch
        return value.repeat_interleave(k, dim=0) if per_example else value
    if isinstance(value, list) and len(value) == batch:
        return [v for v in value for _ in range(k)]
    if isinstance(value, tuple) and not all(_is_int(v) for v in value):
        return tuple(repeat_per_example(v, batch, k) for v in value)
    return value
