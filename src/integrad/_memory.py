"""Memory of a path evaluation: what a path point costs, and sums that do not lose bits.

:class:`Accumulator` sums weighted gradients in float64; ``SavedBytes`` measures the
activations autograd keeps per point (remembered per model and input signature); ``Heap``
keeps glibc's heap from creeping up over hundreds of chunks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ._engine import PathProblem


class SavedBytes:
    """Counts the distinct activation storages autograd saves for backward."""

    def __init__(self, batch_rows: int) -> None:
        self.rows = batch_rows
        self.storages: dict[int, int] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        # Activations are computed from the points, so they (or the tensor they view)
        # have a grad_fn; parameters, buffers and the points themselves do not.
        root = t._base if t._base is not None else t
        if root.grad_fn is not None and t.dim() > 0 and t.shape[0] == self.rows:
            storage = t.untyped_storage()
            self.storages[storage.data_ptr()] = storage.nbytes()
        return t

    @staticmethod
    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    @property
    def total(self) -> int:
        return sum(self.storages.values())


class Accumulator:
    """Per-example sums of ``weight × gradient``, kept in float64.

    A float32 running sum over n path points loses about n ulps (measured: 1.3e-4 relative
    at n = 20000 on a linear model); summing float64 products keeps the result within a
    rounding of the exact sum at any n. (MPS has no float64: there the inputs' dtype.)
    """

    def __init__(self, like: tuple[torch.Tensor, ...]) -> None:
        self.like = like
        self.sums = tuple(torch.zeros(x.shape, dtype=_wide(x), device=x.device) for x in like)

    def add(
        self, rows: torch.Tensor, grads: tuple[torch.Tensor, ...], weights: torch.Tensor
    ) -> None:
        """Add ``Σ_p weights[p] · grads[p]`` to each example ``rows[p]`` of a chunk.

        Where the chunk holds few examples per point (node-major chunks of a small batch),
        one matrix product per input (examples × points by points × features) sums it in
        the wide dtype, faster than a weighted ``index_add_`` of the widened gradients
        (measured: 53 vs 123 ms for 512 points of 3×64×64). With many examples and few
        features the mixing matrix would outgrow the gradients: then ``index_add_``.
        """
        points = int(rows.numel())
        device = self.sums[0].device
        rows = rows.to(device)
        examples, inverse = torch.unique(rows, return_inverse=True)
        w = weights.to(device, self.sums[0].dtype)
        for acc, g in zip(self.sums, grads, strict=True):
            flat = g.reshape(points, -1).to(acc.dtype)
            if examples.numel() * points <= flat.numel():
                mix = torch.zeros(int(examples.numel()), points, dtype=acc.dtype, device=device)
                mix[inverse, torch.arange(points, device=device)] = w.to(acc.dtype)
                acc.index_add_(0, examples, (mix @ flat).view(-1, *acc.shape[1:]))
            else:
                acc.index_add_(0, rows, (flat * w.to(acc.dtype).unsqueeze(1)).view(g.shape))

    def result(self) -> tuple[torch.Tensor, ...]:
        return tuple(s.to(x.dtype) for s, x in zip(self.sums, self.like, strict=True))


def _wide(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.device.type == "mps" or x.dtype == torch.float64 else torch.float64


@contextmanager
def counting(counter: SavedBytes | None) -> Iterator[None]:
    if counter is None:
        yield
        return
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        yield


# Bytes per path point, remembered per model and input signature so that repeated calls
# (a dataset explained batch by batch) skip the probe; weak keys never keep a model alive.
_MEMORY: weakref.WeakKeyDictionary[Any, dict[Hashable, float]] = weakref.WeakKeyDictionary()


def _memory_key(problem: PathProblem) -> tuple[Any, Hashable] | None:
    func = problem.forward_func
    owner, code = (
        (func.__self__, func.__func__)
        if hasattr(func, "__self__") and hasattr(func, "__func__")
        else (func, None)
    )
    signature = (
        code,
        tuple((tuple(x.shape[1:]), x.dtype, x.device) for x in problem.inputs),
        tuple(
            (tuple(a.shape[1:]), a.dtype) if b else (type(a), getattr(a, "shape", None))
            for a, b in zip(problem.extra.args, problem.extra.batched, strict=True)
        ),
    )
    try:
        weakref.ref(owner)
        hash(signature)
    except TypeError:
        return None
    return owner, signature


def remembered(problem: PathProblem) -> float | None:
    key = _memory_key(problem)
    return None if key is None else _MEMORY.get(key[0], {}).get(key[1])


def remember(problem: PathProblem, bytes_per_point: float) -> None:
    key = _memory_key(problem)
    if key is not None:
        _MEMORY.setdefault(key[0], {})[key[1]] = bytes_per_point


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def _resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Heap:
    """Keeps the process from growing with the number of chunks.

    Every chunk frees what the one before it allocated, but glibc's heap fragments
    over hundreds of chunks and the resident size creeps up (measured: +70% after 4096
    steps on a CNN). When it has grown by half a chunk since the first chunk, hand
    the free pages back with ``malloc_trim``; that happens rarely, so costs nothing
    measurable (trimming after every chunk costs 16% through page faults).
    """

    def __init__(self) -> None:
        self.ceiling: int | None = None

    def settle(self, chunk_bytes: int) -> None:
        if _TRIM is None:
            return
        resident = _resident_bytes()
        if self.ceiling is None:
            self.ceiling = resident + chunk_bytes // 2
        elif resident > self.ceiling:
            _TRIM(0)
