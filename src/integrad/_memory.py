"""Memory of a path evaluation: what a path point costs, and sums that do not lose bits.

:class:`Accumulator` sums weighted gradients in float64; ``SavedBytes`` measures the
activations autograd keeps per point (remembered per model and input signature);
:class:`ChunkPolicy` turns that into points per chunk; ``Heap`` keeps glibc's heap from
creeping up over hundreds of chunks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ._problem import PathProblem

DEFAULT_MAX_MEMORY = 1 << 30
"""Default ``max_memory`` off CUDA: 1 GiB for one chunk's path points and saved activations."""

CUDA_SHARE = 0.5
"""Default ``max_memory`` on CUDA: this share of the device memory free when a call starts
(what the driver reports free plus what torch's allocator holds unused). A share, not all of
it, so that transient buffers of the backward pass fit, and so that several processes on one
GPU can each run; a process that must share more tightly passes its own ``max_memory``."""

TARGET_CHUNK_BYTES = 12 << 20
"""Off CUDA, the first of the two chunk sizes tried aims at this many activation bytes."""

HEAP_WARMUP = 3
"""Chunks a :class:`Heap` watches before it trims: the resident size's steady state."""

MIN_CHUNK_POINTS = 8
"""Off CUDA, the first size tried holds at least this many points (per-call overhead).
Measured best chunks (docs/benchmarks.md): 8 points of a ResNet-18 at 224 px (20 MiB of
activations per point), 16 of a 64-px CNN (2 MiB), 16–48 of MiniLM (1.5 MiB); models that
small start at the minimum and the search climbs from there."""

BIG_CHUNK_TARGETS = 4
"""A guess holding more than this many byte targets is searched downward first."""

LEAST_CHUNK_POINTS = 4
"""Off CUDA, the search tries no chunk smaller than this."""

WINDOW = 4
"""Timings kept per chunk size after its warm-up: the best of these is its rate."""

RECHECK = 32
"""Chunks at the winning size after which one of its neighbours is timed again."""

TIMINGS = 2
"""Chunks timed per size after its first, which pays the size's set-up (oneDNN kernels for
a new batch shape, fresh pages: measured 1.5–2.5× a warm chunk of a 64-px CNN) and is not
counted; the fastest of the others counts."""


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

        Where the batch is small against the chunk's gradients (node-major chunks of a
        small batch), one matrix product per input (examples × points by points × features,
        zero where a point is another example's) sums it in
        the wide dtype, faster than a weighted ``index_add_`` of the widened gradients
        (measured: 53 vs 123 ms for 512 points of 3×64×64). With many examples and few
        features the mixing matrix would outgrow the gradients: then ``index_add_``.
        """
        points = int(rows.numel())
        device = self.sums[0].device
        rows = rows.to(device)
        w = weights.to(device, self.sums[0].dtype)
        for acc, g in zip(self.sums, grads, strict=True):
            flat = g.reshape(points, -1).to(acc.dtype)
            if acc.shape[0] * points <= flat.numel():
                mix = torch.zeros(acc.shape[0], points, dtype=acc.dtype, device=device)
                mix[rows, torch.arange(points, device=device)] = w.to(acc.dtype)
                acc.add_((mix @ flat).view(acc.shape))
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


def default_budget(device: torch.device) -> int:
    """``max_memory`` when the caller gives none: see :data:`CUDA_SHARE`."""
    if device.type != "cuda":
        return DEFAULT_MAX_MEMORY
    free, _ = torch.cuda.mem_get_info(device)
    unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return max(1, int(CUDA_SHARE * (free + unused)))


@dataclass
class Timings:
    """How fast chunk sizes ran, per model and input signature (see :class:`ChunkPolicy`)."""

    sizes: dict[int, list[float]] = field(default_factory=dict)
    """Per size, seconds per point of its chunks: the first (its warm-up), then the latest
    :data:`WINDOW` others."""
    since: int = 0
    """Chunks run at the winning size since a neighbour was last timed again."""
    upward: bool = False
    """Which neighbour the next check times again (they take turns)."""

    def record(self, size: int, per_point: float) -> None:
        times = self.sizes.setdefault(size, [])
        times.append(per_point)
        if len(times) > 1 + WINDOW:
            del times[1]

    def rate(self, size: int) -> float | None:
        """The best of the size's latest timings after its warm-up; None before two."""
        times = self.sizes.get(size, [])
        return min(times[1:]) if len(times) > TIMINGS else None


class ChunkPolicy:
    """Points per chunk, from the bytes a point costs, the memory budget and the clock.

    On CUDA the chunk fills the budget: a GPU runs fastest on the largest batch it can
    hold. Off CUDA the best chunk depends on the model, the machine's caches and its load
    (measured in docs/benchmarks.md: 8–32 points of a 64-px CNN, thousands of a small
    MLP, a few of a ResNet-18), so chunk sizes are timed, in seconds per point: each on
    :data:`TIMINGS` chunks after a first that warms it up, the best of its latest
    :data:`WINDOW` counting. The search starts at a guess aimed at
    :data:`TARGET_CHUNK_BYTES` (at least :data:`MIN_CHUNK_POINTS`), then tries its double
    (its half first where the guess holds over :data:`BIG_CHUNK_TARGETS` byte targets),
    moving on from the fastest size so far until both its neighbours are slower:
    a climb over sizes a factor of two apart, never above the budget nor below
    :data:`LEAST_CHUNK_POINTS`. The winner's chunks stay timed, and every
    :data:`RECHECK` of them one neighbour is timed again, so a choice made under a
    passing load (or a slow first chunk) is revisited. Every timed chunk is part of the
    path (no work is thrown away), and the timings are remembered with the bytes per point
    (per model and input signature), so a search that a short call leaves unfinished goes
    on in the next and a settled one costs nothing. Chunking only reorders a float64 sum
    and batches the model differently: results agree with any other chunking to rounding.
    """

    def __init__(self, budget: int, fill: bool, timings: Timings | None = None) -> None:
        self.budget = budget
        self.fill = fill
        self.timings = Timings() if timings is None else timings
        self.clock: Callable[[], float] = time.perf_counter

    def by_memory(self, bytes_per_point: float) -> int:
        return max(1, int(self.budget // max(bytes_per_point, 1.0)))

    def first(self, bytes_per_point: float) -> int:
        """The guess: the byte target's size (or, filling, the budget's)."""
        most = self.by_memory(bytes_per_point)
        if self.fill:
            return most
        by_speed = max(MIN_CHUNK_POINTS, int(TARGET_CHUNK_BYTES // max(bytes_per_point, 1.0)))
        return max(1, min(most, by_speed))

    def best(self, bytes_per_point: float) -> int | None:
        """The fastest size with a rate (:meth:`Timings.rate`) within the budget, if any."""
        most = self.by_memory(bytes_per_point)
        rates = {s: self.timings.rate(s) for s in self.timings.sizes if s <= most}
        known = {s: r for s, r in rates.items() if r is not None}
        return min(known, key=lambda s: (known[s], s)) if known else None

    def _neighbours(self, best: int, bytes_per_point: float, most: int) -> list[int]:
        guess = self.first(bytes_per_point)
        # Bigger chunks are the likelier win unless the guess already holds several times
        # the byte target (a ResNet-18 at 224 px: 8 points of 20 MiB) or the budget's worth.
        upward = (
            guess < self.by_memory(bytes_per_point)
            and guess * bytes_per_point <= BIG_CHUNK_TARGETS * TARGET_CHUNK_BYTES
        )
        up = min(2 * best, most) if best < most else None
        down = max(best // 2, LEAST_CHUNK_POINTS) if best > LEAST_CHUNK_POINTS else None
        return [s for s in ((up, down) if upward else (down, up)) if s is not None]

    def trial(self, bytes_per_point: float, total: int) -> int | None:
        """The size to time next on a path of ``total`` points while the search is on;
        None once it has settled (the fastest size's neighbours are slower, or out of
        bounds) and no check of a neighbour is due."""
        most = min(self.by_memory(bytes_per_point), total)
        unfinished = [s for s in self.timings.sizes if s <= most and self.timings.rate(s) is None]
        if unfinished:
            return min(unfinished)
        best = self.best(bytes_per_point)
        if best is None:
            return min(self.first(bytes_per_point), most)
        neighbours = self._neighbours(best, bytes_per_point, most)
        for size in neighbours:
            if size not in self.timings.sizes:
                return size
        if self.timings.since >= RECHECK and neighbours:
            self.timings.since, self.timings.upward = 0, not self.timings.upward
            up = [s for s in neighbours if s > best]
            down = [s for s in neighbours if s < best]
            return (up or down)[0] if self.timings.upward else (down or up)[0]
        return None

    def size(self, bytes_per_point: float) -> int:
        """Points per chunk once the search has settled (or without one): its winner, else
        the guess."""
        best = self.best(bytes_per_point)
        return self.first(bytes_per_point) if best is None else best

    def slices(
        self, total: int, bytes_per_point: Callable[[], float], timed: bool
    ) -> Iterator[slice]:
        """Chunks covering ``range(total)``; ``timed`` lets them search and check sizes.

        A chunk's time is from its yield to the next request: the caller's work on it.
        A path no longer than the guess is one chunk, untimed. The path's last stretch
        shorter than two chunks goes in equal chunks, untimed: a small remainder chunk
        would run at a poor rate.
        """
        start = 0
        # A path that the guess takes in one chunk runs so: nothing to gain, and repeated
        # calls then give bit-identical results.
        timed = timed and not self.fill and total > self.first(bytes_per_point())
        while start < total:
            left = total - start
            trial = self.trial(bytes_per_point(), total) if timed else None
            settled = trial is None
            size = self.size(bytes_per_point()) if trial is None else trial
            if settled and (left < 2 * size or not timed):
                size = -(-left // -(-left // size))
                yield slice(start, start + size)
                start += size
                continue
            began = self.clock()
            yield slice(start, start + min(size, left))
            if size <= left:  # the path's last bit, cut short, says nothing of the size
                self.timings.record(size, (self.clock() - began) / size)
                self.timings.since += settled
            start += min(size, left)


@dataclass
class Remembered:
    """What a model costs per path point, and how fast chunk sizes ran (see ChunkPolicy)."""

    bytes_per_point: float
    timings: Timings = field(default_factory=Timings)
    on_chunk: bool = False
    """Whether ``bytes_per_point`` was counted on a real chunk (else on the probe's few
    points: the next call counts again)."""


# Remembered per model and input signature so that repeated calls (a dataset explained
# batch by batch) skip the probe and the trial; weak keys never keep a model alive.
_MEMORY: weakref.WeakKeyDictionary[Any, dict[Hashable, Remembered]] = weakref.WeakKeyDictionary()


def _memory_key(problem: PathProblem) -> tuple[Any, Hashable] | None:
    func, tag = problem.remembered_as or (problem.forward_func, None)
    owner, code = (
        (func.__self__, func.__func__)
        if hasattr(func, "__self__") and hasattr(func, "__func__")
        else (func, None)
    )
    signature = (
        code,
        tag,
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


def remembered(problem: PathProblem) -> Remembered | None:
    key = _memory_key(problem)
    return None if key is None else _MEMORY.get(key[0], {}).get(key[1])


def remember(problem: PathProblem, bytes_per_point: float, on_chunk: bool) -> Remembered | None:
    """Record a measured cost per point; the entry (None if the problem cannot be a key)."""
    key = _memory_key(problem)
    if key is None:
        return None
    entries = _MEMORY.setdefault(key[0], {})
    known = entries.get(key[1])
    if known is None:
        known = entries[key[1]] = Remembered(bytes_per_point, on_chunk=on_chunk)
    else:
        known.bytes_per_point, known.on_chunk = bytes_per_point, on_chunk
    return known


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
    steps on a CNN). The first :data:`HEAP_WARMUP` chunks of a size show the steady
    state (glibc keeps a freed chunk's pages for the next one, so the resident size
    settles about one chunk above where it started, give or take a chunk); once the
    process grows by a chunk (or the swing seen, if larger) beyond the largest size seen
    then, the free pages go back with
    ``malloc_trim``. Trimming any earlier would hand back pages the next chunk needs
    again: measured on a 64-px CNN, trimming every chunk costs 10–16% in page faults.
    """

    def __init__(self) -> None:
        self.ceiling: int | None = None
        self.largest = 0
        self.seen = 0
        self.peak = 0
        self.low = 0

    def settle(self, chunk_bytes: int) -> None:
        if _TRIM is None:
            return
        resident = _resident_bytes()
        if chunk_bytes > self.largest:
            # The first chunk, or a larger one than before (after a timed trial): watch
            # the steady state again.
            self.largest, self.seen, self.ceiling = chunk_bytes, 0, None
        if self.ceiling is None:
            self.peak = resident if self.seen == 0 else max(self.peak, resident)
            self.low = resident if self.seen == 0 else min(self.low, resident)
            self.seen += 1
            if self.seen >= HEAP_WARMUP:
                # A chunk (or the swing seen, if larger) above the steady state's peak.
                self.ceiling = self.peak + max(self.largest, self.peak - self.low)
        elif resident > self.ceiling:
            _TRIM(0)
