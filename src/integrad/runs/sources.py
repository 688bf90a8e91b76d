"""The examples a run explains: tensors, arrays, Datasets and DataLoaders, by example id.

Every form becomes a :class:`Source`: ``n`` examples numbered ``0 .. n-1`` in the data's
order, batches of any chosen ids, optional integer labels, and a fingerprint that a
resumed run compares with the one it started from.

A Dataset item, or a DataLoader batch, is read as ``(inputs, label)`` when it is a
pair whose second element is an integer scalar (a 1-d integer tensor for a batch);
otherwise the whole item is the inputs (a tensor, or a tuple of tensors for a model
with several inputs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, SequentialSampler

__all__ = ["Batch", "Source", "source_of"]

_SAMPLED = 16
"""A Dataset's fingerprint hashes this many examples, spread evenly, besides its length."""


@dataclass(frozen=True)
class Batch:
    """Examples ``ids`` (in order): their inputs and, when known, their labels."""

    ids: list[int]
    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor | None


def _hash_tensor(h: Any, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.numpy().data)


def _as_tensor(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise TypeError(f"{where} must hold numbers, got a numpy array of dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{where} must be a tensor or numpy array, got {type(value).__name__}")


def _labels(labels: Any, n: int) -> torch.Tensor | None:
    if labels is None:
        return None
    tensor = _as_tensor(np.asarray(labels) if isinstance(labels, Sequence) else labels, "labels")
    if tensor.dim() != 1 or tensor.shape[0] != n or tensor.is_floating_point():
        raise ValueError(
            f"labels must be {n} integers (one per example), got a {tensor.dtype} tensor of "
            f"shape {tuple(tensor.shape)}"
        )
    return tensor.long()


class Source:
    """Examples held in memory: one tensor per model input, first axis = examples."""

    def __init__(
        self, inputs: tuple[torch.Tensor, ...], was_tuple: bool, labels: torch.Tensor | None
    ) -> None:
        self.inputs = inputs
        self.was_tuple = was_tuple
        self.labels = labels
        self.n = int(inputs[0].shape[0])

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"integrad.run.data:tensors")
        for t in self.inputs:
            _hash_tensor(h, t)
        if self.labels is not None:
            _hash_tensor(h, self.labels)
        return h.hexdigest()

    def batches(self, todo: Sequence[int], batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(todo), batch_size):
            ids = list(todo[start : start + batch_size])
            index = torch.tensor(ids, dtype=torch.long)
            labels = None if self.labels is None else self.labels[index]
            yield Batch(ids, tuple(t[index] for t in self.inputs), labels)


def _split_item(item: Any, where: str) -> tuple[tuple[torch.Tensor, ...], bool, Any]:
    """``(inputs, was_tuple, label or None)`` of one Dataset item or DataLoader batch."""
    if isinstance(item, (tuple, list)):
        parts = list(item)
        label = None
        if len(parts) == 2 and _is_label(parts[1]):
            parts, label = [parts[0]], parts[1]
            if isinstance(parts[0], (tuple, list)):
                inner = tuple(_as_tensor(p, f"{where} inputs") for p in parts[0])
                return inner, True, label
        tensors = tuple(_as_tensor(p, where) for p in parts)
        return tensors, len(tensors) > 1, label
    return (_as_tensor(item, where),), False, None


def _is_label(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, torch.Tensor):
        return value.dim() <= 1 and not value.is_floating_point() and value.dtype != torch.bool
    return False


class DatasetSource(Source):
    """A map-style Dataset, read item by item; batches are stacked items."""

    def __init__(self, dataset: Any, labels: Any) -> None:
        self.dataset = dataset
        self.n = len(dataset)
        if self.n == 0:
            raise ValueError("data is an empty Dataset; there is nothing to explain")
        _, self.was_tuple, label = _split_item(dataset[0], "data[0]")
        self.has_labels = label is not None
        self.labels = _labels(labels, self.n)

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"integrad.run.data:dataset")
        h.update(f"{type(self.dataset).__qualname__}:{self.n}".encode())
        for i in sorted({round(k * (self.n - 1) / (_SAMPLED - 1)) for k in range(_SAMPLED)}):
            inputs, _, label = _split_item(self.dataset[i], f"data[{i}]")
            for t in inputs:
                _hash_tensor(h, t)
            if label is not None:
                h.update(repr(int(label)).encode())
        if self.labels is not None:
            _hash_tensor(h, self.labels)
        return h.hexdigest()

    def batches(self, todo: Sequence[int], batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(todo), batch_size):
            ids = list(todo[start : start + batch_size])
            items = [_split_item(self.dataset[i], f"data[{i}]") for i in ids]
            inputs = tuple(
                torch.stack(parts) for parts in zip(*(it[0] for it in items), strict=True)
            )
            labels = self.labels[torch.tensor(ids)] if self.labels is not None else None
            if labels is None and self.has_labels:
                labels = torch.tensor([int(it[2]) for it in items], dtype=torch.long)
            yield Batch(ids, inputs, labels)


class LoaderSource(Source):
    """A DataLoader, iterated in its own order and batches; finished examples are skipped."""

    def __init__(self, loader: DataLoader, labels: Any) -> None:
        if isinstance(loader.dataset, IterableDataset):
            raise TypeError(
                "data is a DataLoader over an IterableDataset; a run needs numbered examples "
                "(a map-style Dataset) to resume"
            )
        sampler = getattr(loader.batch_sampler, "sampler", loader.sampler)
        if not isinstance(sampler, SequentialSampler):
            raise ValueError(
                "data is a DataLoader that does not read examples in order (shuffle=True or a "
                "custom sampler); pass shuffle=False so example ids stay the same on resume"
            )
        self.loader = loader
        self.n = len(loader.dataset)  # type: ignore[arg-type]
        self.labels = _labels(labels, self.n)
        self.was_tuple = _split_item(next(iter(loader)), "a batch of data")[1]

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"integrad.run.data:loader")
        h.update(DatasetSource(self.loader.dataset, self.labels).fingerprint().encode())
        return h.hexdigest()

    def batches(self, todo: Sequence[int], batch_size: int) -> Iterator[Batch]:
        wanted = set(todo)
        first = 0
        for item in self.loader:
            inputs, _, label = _split_item(item, "a batch of data")
            size = int(inputs[0].shape[0])
            ids = [i for i in range(first, first + size) if i in wanted]
            if ids:
                rows = torch.tensor([i - first for i in ids])
                labels = None if label is None else torch.as_tensor(label)[rows]
                if self.labels is not None:
                    labels = self.labels[torch.tensor(ids)]
                yield Batch(ids, tuple(t[rows] for t in inputs), labels)
            first += size


def source_of(data: Any, labels: Any = None) -> Source:
    """``data`` in any accepted form as a :class:`Source`."""
    if isinstance(data, DataLoader):
        return LoaderSource(data, labels)
    if isinstance(data, IterableDataset):
        raise TypeError("data is an IterableDataset; a run needs numbered examples to resume")
    if isinstance(data, (torch.Tensor, np.ndarray)):
        x = _as_tensor(data, "data")
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"data must have examples along its first axis, got {tuple(x.shape)}")
        return Source((x,), False, _labels(labels, int(x.shape[0])))
    if isinstance(data, tuple):
        if not data:
            raise ValueError("data is an empty tuple; give one tensor per model input")
        xs = tuple(_as_tensor(t, f"data[{i}]") for i, t in enumerate(data))
        sizes = [int(t.shape[0]) if t.dim() else 0 for t in xs]
        if len(set(sizes)) != 1 or sizes[0] == 0:
            raise ValueError(f"data's tensors must share a non-empty first axis, got {sizes}")
        return Source(xs, True, _labels(labels, sizes[0]))
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DatasetSource(data, labels)
    raise TypeError(
        "data must be a tensor, a tuple of tensors, a numpy array, a Dataset or a DataLoader, "
        f"got {type(data).__name__}"
    )
