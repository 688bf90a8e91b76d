"""The Monte Carlo core shared by Expected Gradients and GradientShap.

Both methods explain each example with ``n`` samples: sample ``s`` of example ``e``
is row ``e * n + s`` of an expanded batch (example-major, Captum's layout). A row
draws a reference from the reference set, optional Gaussian noise on the input,
and a position ``alpha`` on the line from the reference to the (noisy) input; its
attribution is ``(x̃ - x') ⊙ ∇F(x' + alpha (x̃ - x'))``. Rows are evaluated in
groups of consecutive rows sized from the memory budget, never all at once.

The draws come from one of two sources, both consumed row by row in row order, so
that the grouping never changes what is drawn:

- :class:`GeneratorDraws`: a ``torch.Generator``, one call per row and quantity.
- :class:`GlobalDraws`: the global NumPy and torch random states in Captum's order
  (NumPy ``choice`` of references per input, torch normal noise per input, NumPy
  uniform alphas), so that seeded alike integrad and Captum agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ._checks import completeness_delta
from ._engine import Engine, PathProblem
from ._inputs import ExtraArgs, Target, broadcast_baseline
from ._memory import Heap
from .quadrature import Rule

__all__ = [
    "GeneratorDraws",
    "GlobalDraws",
    "RowDraws",
    "check_stdevs",
    "reference_sets",
    "sample_attributions",
]

_ROW_COPIES = 8
"""Row-sized tensors a group holds besides the engine's chunk (counted): inputs, noise,
noisy inputs, references, the engine's differences, gradient sums, contributions and
one temporary."""

_BLOCK = 16
"""torch's CPU normal sampler fills blocks of 16 and redraws a ragged tail, so a long
draw equals consecutive shorter ones only if these are multiples of 16 and none but
the first is shorter than 16."""


@dataclass(frozen=True)
class RowDraws:
    """What rows ``start:stop`` drew: a reference index and noise per input, alphas.

    ``alphas`` are float64; rows that integrate the whole path ignore them.
    """

    index: tuple[torch.Tensor, ...]
    noise: tuple[torch.Tensor | None, ...]
    alphas: torch.Tensor


class Draws(Protocol):
    def take(self, start: int, stop: int) -> RowDraws: ...

    def finish(self) -> None: ...


def check_stdevs(stdevs: object, n_inputs: int) -> tuple[float, ...]:
    """One finite standard deviation >= 0 per input, from a number or a tuple."""
    values = stdevs if isinstance(stdevs, tuple) else (stdevs,) * n_inputs
    if len(values) != n_inputs:
        raise ValueError(f"stdevs has {len(values)} entries but there are {n_inputs} inputs")
    out = []
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
            raise ValueError(f"stdevs must be finite numbers >= 0, got {stdevs!r}")
        out.append(float(s))
    return tuple(out)


def reference_sets(
    baselines: object, xs: tuple[torch.Tensor, ...], was_tuple: bool, same_size: bool
) -> tuple[torch.Tensor, ...]:
    """One reference set ``(K, *features)`` per input, on the input's dtype and device.

    ``same_size`` asks every set to hold the same K (references drawn jointly).
    """
    items = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(items) != len(xs):
        raise ValueError(
            f"baselines has {len(items)} reference sets but inputs has {len(xs)} tensors"
        )
    refs = []
    for i, (r, x) in enumerate(zip(items, xs, strict=True)):
        where = f"baselines[{i}]" if was_tuple else "baselines"
        if not isinstance(r, torch.Tensor) or r.dim() != x.dim() or r.shape[0] < 1:
            got = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
            raise ValueError(
                f"{where} must be a reference set: a tensor of shape (K, *features) with "
                f"features {tuple(x.shape[1:])}, got {got}"
            )
        shape = (r.shape[0], *x.shape[1:])
        refs.append(
            broadcast_baseline(r, torch.empty(shape, dtype=x.dtype, device=x.device), where)
        )
    if same_size and len({int(r.shape[0]) for r in refs}) != 1:
        raise ValueError(f"the reference sets differ in size: {[int(r.shape[0]) for r in refs]}")
    return tuple(refs)


class GeneratorDraws:
    """Draws from a ``torch.Generator``, one row at a time.

    ``references``: ``"joint"`` (one reference index per row for every input, so the
    parts of a tuple reference stay together), ``"independent"`` (one per input, as
    Captum) or ``"cycle"`` (row ``r`` takes reference ``r mod K``, nothing drawn, no
    alphas: the deterministic average over the set).
    """

    def __init__(
        self,
        generator: torch.Generator,
        xs: tuple[torch.Tensor, ...],
        n_refs: tuple[int, ...],
        stdevs: tuple[float, ...],
        references: str,
    ) -> None:
        self.gen, self.xs, self.n_refs = generator, xs, n_refs
        self.stdevs, self.references = stdevs, references
        self.device = generator.device

    def take(self, start: int, stop: int) -> RowDraws:
        index: list[list[int]] = [[] for _ in self.xs]
        noise: list[list[torch.Tensor]] = [[] for _ in self.xs]
        alphas: list[float] = []
        for r in range(start, stop):
            if self.references == "cycle":
                for i, k in enumerate(self.n_refs):
                    index[i].append(r % k)
            elif self.references == "joint":
                pick = self._int(self.n_refs[0])
                for i in range(len(self.xs)):
                    index[i].append(pick)
            else:
                for i, k in enumerate(self.n_refs):
                    index[i].append(self._int(k))
            for i, (x, s) in enumerate(zip(self.xs, self.stdevs, strict=True)):
                if s > 0:
                    shape = (1, *x.shape[1:])
                    draw = torch.randn(shape, generator=self.gen, device=self.device, dtype=x.dtype)
                    noise[i].append(draw * s)
            if self.references != "cycle":
                alphas.append(float(torch.rand((), generator=self.gen, device=self.device)))
        return RowDraws(
            tuple(torch.tensor(ix, dtype=torch.long) for ix in index),
            tuple(
                torch.cat(n).to(x.device) if n else None
                for n, x in zip(noise, self.xs, strict=True)
            ),
            torch.tensor(alphas, dtype=torch.float64).reshape(-1),
        )

    def _int(self, high: int) -> int:
        return int(torch.randint(high, (), generator=self.gen, device=self.device))

    def finish(self) -> None:
        return None


class _NormalStream:
    """Hands out, in pieces, the values of one ``torch.randn(total)`` on the CPU."""

    def __init__(self, gen: torch.Generator, total: int, dtype: torch.dtype) -> None:
        self.gen, self.total, self.dtype = gen, total, dtype
        self.drawn = 0
        self.buffer = torch.empty(0, dtype=dtype)

    def take(self, count: int) -> torch.Tensor:
        while self.buffer.numel() < count:
            self._draw(count - self.buffer.numel())
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out

    def skip(self) -> None:
        while self.drawn < self.total:
            self._draw(1 << 20)
            self.buffer = self.buffer[:0]

    def _draw(self, wanted: int) -> None:
        left = self.total - self.drawn
        size = max(_BLOCK, -(-wanted // _BLOCK) * _BLOCK)
        if left - size < _BLOCK:
            size = left
        fresh = torch.randn(size, generator=self.gen, dtype=self.dtype)
        self.drawn += size
        self.buffer = torch.cat([self.buffer, fresh])


class GlobalDraws:
    """Captum's draws from the global random states, row by row.

    Captum's GradientShap draws, in this order: ``np.random.choice(K_i, rows)`` for
    each input's reference set, ``torch.normal`` noise for each input (the whole
    expanded batch, in the default dtype), then ``np.random.uniform(0, 1, rows)``. The
    NumPy draws are one number per row and are made up front; the noise is read in
    pieces from private CPU generators started where each input's draw would start,
    and the global torch state is left where Captum leaves it.
    """

    def __init__(
        self,
        xs: tuple[torch.Tensor, ...],
        n_refs: tuple[int, ...],
        stdevs: tuple[float, ...],
        n: int,
    ) -> None:
        rows = int(xs[0].shape[0]) * n
        self.xs, self.stdevs = xs, stdevs
        self.index = tuple(torch.from_numpy(np.random.choice(k, rows)).long() for k in n_refs)
        dtype = torch.get_default_dtype()
        state = torch.get_rng_state()
        self.streams = []
        for i, x in enumerate(xs):
            gen = torch.Generator()
            gen.set_state(state)
            stream = _NormalStream(gen, rows * math.prod(x.shape[1:]), dtype)
            self.streams.append(stream)
            if i + 1 < len(xs):  # the next input's draw starts where this one ends
                positioner = torch.Generator()
                positioner.set_state(state)
                ahead = _NormalStream(positioner, stream.total, dtype)
                ahead.skip()
                state = positioner.get_state()
        self.alphas = torch.from_numpy(np.random.uniform(0.0, 1.0, rows))

    def take(self, start: int, stop: int) -> RowDraws:
        noise = []
        for x, s, stream in zip(self.xs, self.stdevs, self.streams, strict=True):
            values = stream.take((stop - start) * math.prod(x.shape[1:]))
            noise.append((values * s).view(stop - start, *x.shape[1:]).to(x.device, x.dtype))
        return RowDraws(
            tuple(ix[start:stop] for ix in self.index), tuple(noise), self.alphas[start:stop]
        )

    def finish(self) -> None:
        torch.set_rng_state(self.streams[-1].gen.get_state())


def _group_rows(problem: PathProblem, max_memory: int | None, limit: int | None) -> int:
    """Rows per group: the engine's chunk, less room for the group's own row copies."""
    engine = Engine(problem, max_memory=max_memory)
    chunk = engine.chunk_points()
    row_bytes = sum(x[0].nbytes for x in problem.inputs)
    per_row = (engine.bytes_per_point or 0.0) + _ROW_COPIES * row_bytes
    rows = max(1, min(chunk, int(engine.max_memory // max(per_row, 1.0))))
    return rows if limit is None else max(1, min(rows, limit))


def sample_attributions(
    forward_func: Any,
    xs: tuple[torch.Tensor, ...],
    refs: tuple[torch.Tensor, ...],
    target: Target,
    extra: ExtraArgs,
    n: int,
    draws: Draws,
    multiply_by_inputs: bool = True,
    quadrature: Rule | None = None,
    max_memory: int | None = None,
    group_limit: int | None = None,
    row_deltas: bool = False,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """Mean attribution over ``n`` rows per example, and on request one delta per row.

    With ``quadrature`` each row integrates the whole path from its reference by that
    rule (no alphas); otherwise it takes the gradient at its drawn alpha. A row's
    delta is ``Σ (x̃ - x') ⊙ gradient − (F(x̃) − F(x'))``, Captum's per-sample
    convention, multiplied by the inputs even when the attributions are not.
    """
    batch = int(xs[0].shape[0])
    total_rows = batch * n
    totals = [torch.zeros_like(x) for x in xs]
    deltas: list[torch.Tensor] | None = [] if row_deltas else None
    group: int | None = None
    heap = Heap()  # one per call: each group's engine sees only its own chunk
    start = 0
    while start < total_rows:
        size = min(total_rows - start, 4 if group is None else group)
        stop = start + size
        drawn = draws.take(start, stop)
        examples = torch.arange(start, stop) // n
        copies = tuple(x.index_select(0, examples.to(x.device)) for x in xs)
        copies = tuple(c if e is None else c + e for c, e in zip(copies, drawn.noise, strict=True))
        starts = tuple(
            r.index_select(0, ix.to(r.device)) for r, ix in zip(refs, drawn.index, strict=True)
        )
        per_row = None if target.per_example is None else [target.per_example[e] for e in examples]
        problem = PathProblem(
            forward_func,
            copies,
            starts,
            Target(per_row, size),
            ExtraArgs(extra.at(examples), extra.batched),
        )
        if group is None:  # the first rows also size the groups after them
            group = _group_rows(problem, max_memory, group_limit)
        engine = Engine(problem, max_memory=max_memory)
        device = copies[0].device
        rows = torch.arange(size, device=device)
        if quadrature is None:
            ones = torch.ones(size, dtype=torch.float64, device=device)
            sums = engine.gradients(rows, drawn.alphas.to(device), ones).sums
        else:
            sums = engine.integrate(quadrature)
        global_parts = tuple(g * (c - s) for g, c, s in zip(sums, copies, starts, strict=True))
        for acc, part in zip(totals, global_parts if multiply_by_inputs else sums, strict=True):
            acc.index_add_(0, examples.to(acc.device), part)
        if deltas is not None:  # from the multiplied parts always: a completeness check
            f_x, f_ref = engine.ends()
            deltas.append(completeness_delta(global_parts, f_x, f_ref))
        heap.settle(sum(c.nbytes for c in copies) * _ROW_COPIES)
        start = stop
    draws.finish()
    means = tuple(t / n for t in totals)
    return means, None if deltas is None else torch.cat(deltas)
