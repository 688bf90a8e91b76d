"""The path engine: every method in the family evaluates the model here.

A method describes *which* path points it needs — for each point an example
(row), a position ``alpha`` on the straight line from baseline to input and a
weight — and the engine evaluates them in chunks: builds the points, runs the
model, selects the target, takes ``torch.autograd.grad`` with respect to the
points only, and accumulates ``weight × gradient`` per example. It never holds
more than one chunk of path points and their autograd graph.

Chunk sizes: with ``internal_batch_size`` the engine follows Captum (each chunk
holds ``max(1, internal_batch_size // batch)`` steps of every example). Otherwise
it measures, with a forward pass on a few inputs, how many bytes of activations
autograd saves per path point, and sizes the following chunks to stay within ``max_memory``
(default :data:`DEFAULT_MAX_MEMORY`) and near :data:`TARGET_CHUNK_BYTES`, the size
at which CPU forward+backward runs fastest (see ``bench/chunks.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._inputs import ExtraArgs, Target, as_inputs, check_callable, not_a_tensor
from ._modules import owner
from .baselines import resolve as resolve_baselines
from .quadrature import Rule

DEFAULT_MAX_MEMORY = 1 << 30
"""Default ``max_memory``: 1 GiB for one chunk's path points and saved activations."""

TARGET_CHUNK_BYTES = 12 << 20
"""Preferred activation bytes per chunk when memory allows (fastest on CPUs measured)."""

MIN_CHUNK_POINTS = 32
"""Never split below this many points for speed alone (per-call overhead dominates)."""

_PROBE_POINTS = 4

Points = tuple[torch.Tensor, ...] | Callable[[slice], tuple[torch.Tensor, ...]]
"""Explicit path points (one row per point) or a builder of the points of one chunk."""

PointTransform = Callable[
    [slice, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]
]
"""``(part, points, grads) -> grads``: per-chunk reweighting of the gradients."""


@dataclass(frozen=True)
class PathProblem:
    """A resolved request: what every method hands to the engine."""

    forward_func: Callable[..., Any]
    inputs: tuple[torch.Tensor, ...]
    baselines: tuple[torch.Tensor, ...]
    target: Target
    extra: ExtraArgs
    model: nn.Module | None = None
    """The caller's model when ``forward_func`` wraps it (layer and neuron IG); else the
    module ``forward_func`` is or is a method of."""

    @property
    def owner(self) -> nn.Module | None:
        return self.model if self.model is not None else owner(self.forward_func)

    @property
    def batch(self) -> int:
        return int(self.inputs[0].shape[0])

    @classmethod
    def build(
        cls,
        forward_func: Callable[..., Any],
        inputs: object,
        baselines: object,
        target: object,
        additional_forward_args: object,
    ) -> tuple[PathProblem, bool]:
        """Validate the public argument forms; also says whether inputs were a tuple."""
        check_callable(forward_func)
        xs, was_tuple = as_inputs(inputs)
        batch = int(xs[0].shape[0])
        problem = cls(
            forward_func,
            xs,
            resolve_baselines(baselines, xs, was_tuple),
            Target(target, batch),
            ExtraArgs.of(additional_forward_args, batch),
        )
        warn_if_training(forward_func)
        return problem, was_tuple


@dataclass(frozen=True)
class PathGradients:
    """Per-example sums of ``weight × gradient`` and the target output at every point."""

    sums: tuple[torch.Tensor, ...]
    outputs: torch.Tensor


def completeness_delta(
    attributions: tuple[torch.Tensor, ...], output: torch.Tensor, baseline_output: torch.Tensor
) -> torch.Tensor:
    """Captum's convergence delta per example: ``Σ attributions − (F(x) − F(x'))``."""
    batch = int(output.shape[0])
    total = sum(a.reshape(batch, -1).sum(dim=1).to(output.dtype) for a in attributions)
    return total - (output - baseline_output)


class CompletenessWarning(UserWarning):
    """Some example's attributions miss ``F(x) - F(x')`` by more than 5%.

    Raised (as a warning, once per call) by the quadrature methods: :func:`integrad.explain`,
    ``IntegratedGradients``, ``LayerIntegratedGradients`` and ``NeuronIntegratedGradients``.
    Silence it with ``warnings.filterwarnings("ignore", category=CompletenessWarning)``.
    """


COMPLETENESS_LIMIT = 0.05
"""Relative completeness gap above which the quadrature methods warn (the IG paper's 5%)."""


def warn_if_incomplete(
    delta: torch.Tensor, output: torch.Tensor, baseline_output: torch.Tensor, n_steps: int
) -> None:
    """Warn with :class:`CompletenessWarning` if some example's gap exceeds 5% of its change.

    Gaps within rounding of the outputs (64 ulps of their magnitude) never count, so an
    example whose output does not change along the path does not warn for a zero-ish sum.
    """
    gap = delta.detach().abs().double()
    change = (output - baseline_output).detach().abs().double()
    scale = torch.maximum(output.detach().abs(), baseline_output.detach().abs()).double()
    eps = torch.finfo(output.dtype).eps if output.is_floating_point() else 0.0
    bad = gap > COMPLETENESS_LIMIT * change + 64 * eps * scale
    if not bool(bad.any()):
        return
    relative = torch.where(bad, gap / change, torch.zeros_like(gap))
    worst = int(torch.argmax(relative))
    warnings.warn(
        f"attributions miss completeness by more than {COMPLETENESS_LIMIT:.0%} for "
        f"{int(bad.sum())} of {gap.numel()} example(s); worst is example {worst}: |delta| = "
        f"{float(gap[worst]):.3g} against F(x) - F(x') = "
        f"{float((output - baseline_output)[worst]):.3g} ({float(relative[worst]):.1%}). The path "
        f"integral is not resolved with n_steps={n_steps}: use more steps, tolerance= to "
        "integrate each example to an accuracy, or method='exact' for piecewise-linear models",
        CompletenessWarning,
        stacklevel=user_stacklevel(),
    )


def copies(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Copies that an Explanation can own: it never shares storage with the caller's tensors."""
    return tuple(t.detach().clone() for t in tensors)


def _training_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Dropout/BatchNorm modules left in training mode, with their names."""
    coupled = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    return [
        (f"{name} ({type(m).__name__})" if name else type(m).__name__, m)
        for name, m in model.named_modules()
        if m.training and isinstance(m, coupled)
    ]


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside integrad.

    Call it in the function that warns. Entry points reach the warning through
    different depths (``explain``, a class's ``attribute``, layer IG), so no fixed
    number names the user's line for all of them.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package + os.sep
    ):
        frame = frame.f_back
        level += 1
    return level


def warn_if_training(forward_func: Callable[..., Any]) -> None:
    model = owner(forward_func)
    modules = [] if model is None else _training_modules(model)
    if modules:
        names = [name for name, _ in modules]
        kinds = {isinstance(m, nn.modules.dropout._DropoutNd) for _, m in modules}
        effects = []
        if True in kinds:
            effects.append("Dropout is random, so attributions change from call to call")
        if False in kinds:
            effects.append(
                "train-mode BatchNorm normalises with the statistics of each chunk of path "
                "points, so attributions depend on batching (its running statistics are "
                "left as they were)"
            )
        warnings.warn(
            f"the model is in training mode with {len(names)} such module(s) "
            f"({', '.join(names[:5])}{' …' if len(names) > 5 else ''}): "
            f"{'; '.join(effects)}. Call model.eval() first unless this is intended.",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )


class _SavedBytes:
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

        One matrix product per input (examples × points by points × features) sums the
        chunk in the wide dtype; it is faster than a weighted ``index_add_`` of the
        widened gradients (measured: 53 vs 123 ms for 512 points of 3×64×64).
        """
        points = int(rows.numel())
        device = self.sums[0].device
        examples, inverse = torch.unique(rows.to(device), return_inverse=True)
        for acc, g in zip(self.sums, grads, strict=True):
            mix = torch.zeros(int(examples.numel()), points, dtype=acc.dtype, device=device)
            mix[inverse, torch.arange(points, device=device)] = weights.to(device, acc.dtype)
            flat = g.reshape(points, -1).to(acc.dtype)
            acc.index_add_(0, examples, (mix @ flat).view(-1, *acc.shape[1:]))

    def result(self) -> tuple[torch.Tensor, ...]:
        return tuple(s.to(x.dtype) for s, x in zip(self.sums, self.like, strict=True))


def _wide(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.device.type == "mps" or x.dtype == torch.float64 else torch.float64


class Engine:
    """Evaluates gradients of the target output at path points, chunk by chunk."""

    def __init__(
        self,
        problem: PathProblem,
        max_memory: int | None = None,
        internal_batch_size: int | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> None:
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
        self.grad_kwargs = dict(grad_kwargs or {})
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
            raise ValueError(
                f"max_memory must be a positive int (bytes) or None, got {max_memory!r}"
            )
        self.problem = problem
        self.max_memory = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
        self.internal_batch_size = internal_batch_size
        self.bytes_per_point: float | None = None
        self.chunks_run = 0
        self.evals = torch.zeros(problem.batch, dtype=torch.long)
        """Forward+backward evaluations per example so far."""
        self.forwards = torch.zeros(problem.batch, dtype=torch.long)
        """Forward-only evaluations per example so far."""
        self._recount = False
        self._called = False
        self._flat_target: torch.Tensor | None = None
        self._target_tail: torch.Size | None = None
        self._diffs = tuple(x - b for x, b in zip(problem.inputs, problem.baselines, strict=True))

    # -- chunking ---------------------------------------------------------------------

    def _fixed_chunk(self) -> int | None:
        if self.internal_batch_size is None:
            return None
        return max(1, self.internal_batch_size // self.problem.batch) * self.problem.batch

    def _auto_chunk(self) -> int:
        per_point = max(self.bytes_per_point or 1.0, 1.0)
        by_memory = int(self.max_memory // per_point)
        by_speed = max(MIN_CHUNK_POINTS, int(TARGET_CHUNK_BYTES // per_point))
        return max(1, min(by_memory, by_speed))

    def chunk_points(self) -> int:
        """Points per chunk the engine will use (measuring the model first if needed)."""
        fixed = self._fixed_chunk()
        if fixed is not None:
            return fixed
        self._measure()
        return self._auto_chunk()

    def _measure(self) -> None:
        if self.bytes_per_point is None:
            remembered = _remembered(self.problem)
            if remembered is None:
                self._probe()
            else:
                self.bytes_per_point = remembered
                self._recount = True

    def _chunks(self, total: int) -> Iterator[slice]:
        fixed = self._fixed_chunk()
        if fixed is None:
            self._measure()
        start = 0
        while start < total:
            size = fixed
            if size is None:
                # Equal chunks: a small remainder chunk runs at a poor rate.
                left = total - start
                size = -(-left // -(-left // self._auto_chunk()))
            yield slice(start, min(total, start + size))
            start += size

    def _probe(self) -> None:
        """Measure the autograd memory of one path point with a forward on a few inputs.

        The graph is dropped without a backward; the forward also surfaces a bad output
        or target before any real work. The figure is remembered for the same model
        and input shapes, and re-measured on the first real chunk of later calls.
        """
        rows = torch.arange(min(self.problem.batch, _PROBE_POINTS))
        counter = _SavedBytes(int(rows.numel()))
        with torch.enable_grad(), kept_buffers(self.problem.owner):
            points = tuple(p.requires_grad_() for p in self.points(rows, torch.ones(rows.numel())))
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
                out = self._forward(points, rows)
            self._differentiable(self._select(out, rows))
        self._measured(counter, points)

    def _measured(self, counter: _SavedBytes, points: tuple[torch.Tensor, ...]) -> None:
        # Points, their gradients and the saved activations live together.
        points_bytes = sum(p.nbytes for p in points)
        self.bytes_per_point = (counter.total + 2 * points_bytes) / counter.rows
        _remember(self.problem, self.bytes_per_point)

    # -- evaluation -------------------------------------------------------------------

    def points(self, rows: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Path points ``x'_r + alpha (x_r - x'_r)`` for examples ``rows``."""
        out = []
        for base, diff in zip(self.problem.baselines, self._diffs, strict=True):
            a = alphas.to(device=diff.device, dtype=diff.dtype).view(-1, *([1] * (diff.dim() - 1)))
            r = rows.to(diff.device)
            out.append(torch.addcmul(base.index_select(0, r), a, diff.index_select(0, r)))
        return tuple(out)

    def _forward(self, points: tuple[torch.Tensor, ...], rows: torch.Tensor) -> Any:
        """``forward_func`` at path points of examples ``rows``, with their extra arguments.

        Call it inside :func:`kept_buffers` (which must also cover the backward pass). A
        shape error on the first call is re-raised as a ``ValueError`` that says what
        integrad passed the model (an unbatched input, or features of the wrong size).
        """
        first, self._called = not self._called, True
        try:
            return self.problem.forward_func(*points, *self.problem.extra.at(rows))
        except RuntimeError as err:
            if first and _SHAPE_ERROR.search(str(err)):
                raise ValueError(_shape_hint(self.problem.inputs, points, err)) from err
            raise

    def _select(self, output: object, rows: torch.Tensor) -> torch.Tensor:
        n = int(rows.numel())
        if not isinstance(output, torch.Tensor):
            raise ValueError(not_a_tensor(output))
        if output.dim() == 0 or output.shape[0] != n:
            raise ValueError(
                f"forward_func returned shape {tuple(output.shape)} for a batch of {n} path "
                "points; its first dimension must be that batch"
            )
        tail = output.shape[1:]
        if self._target_tail != tail:
            self._flat_target = self.problem.target.flat_index(tail)
            self._target_tail = tail
        flat = output.reshape(n, -1)
        if self._flat_target is None:
            selected = flat[:, 0]
        else:
            index = self._flat_target.to(output.device).index_select(0, rows.to(output.device))
            selected = flat.gather(1, index.unsqueeze(1)).squeeze(1)
        finite = torch.isfinite(selected.detach())
        if not bool(finite.all()):
            bad = sorted(set(rows.to(finite.device)[~finite].tolist()))
            raise ValueError(
                f"forward_func returned a non-finite target output (NaN or Inf) for example(s) "
                f"{bad[:10]} at a path point; the attributions would be NaN. Check the model "
                "and the inputs and baselines of those examples"
            )
        return selected

    def target_values(self, output: object, rows: torch.Tensor) -> torch.Tensor:
        """The target output, detached, from a ``forward_func`` output for examples ``rows``."""
        return self._select(output, rows).detach()

    def integrate(self, quad: Rule, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Per example, the rule's weighted sum of gradients along the whole path.

        ``rows`` (default: every example) are the examples to integrate; the sums of the
        others stay 0. Points go node-major (every example at the first node, then the
        next), as Captum. Nodes, weights and row indices are made chunk by chunk, so a
        rule of any size costs one chunk of memory.
        """
        rows = torch.arange(self.problem.batch) if rows is None else rows
        m = int(rows.numel())

        def part_of(part: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            first, last = part.start // m, (part.stop - 1) // m + 1
            alphas, weights = quad.nodes(first, last)
            index = torch.arange(part.start, part.stop)
            node = index // m - first
            return rows[index % m], alphas[node], weights[node]

        return self._accumulate(m * quad.n, part_of, None).sums

    def ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The target output at the inputs and at the baselines, forward passes only."""
        batch = self.problem.batch
        alphas = torch.cat([torch.ones(batch), torch.zeros(batch)]).double()
        values = self.outputs(torch.arange(batch).repeat(2), alphas)
        return values[:batch], values[batch:]

    def outputs(self, rows: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        """The target output at path points, forward passes only (no gradients)."""
        return self._values(rows, lambda part: self.points(rows[part], alphas[part]))

    def outputs_at(self, rows: torch.Tensor, points: Points) -> torch.Tensor:
        """As :meth:`outputs`, at points the method chooses (see :meth:`gradients_at`)."""
        return self._values(rows, self._builder(rows, points))

    def _values(
        self, rows: torch.Tensor, build: Callable[[slice], tuple[torch.Tensor, ...]]
    ) -> torch.Tensor:
        values = []
        with torch.no_grad(), kept_buffers(self.problem.owner):
            for part in self._chunks(int(rows.numel())):
                r = rows[part]
                out = self._forward(build(part), r)
                values.append(self._select(out, r).detach())
                self.forwards.index_add_(0, r, torch.ones_like(r))
        return torch.cat(values)

    def _builder(
        self, rows: torch.Tensor, points: Points
    ) -> Callable[[slice], tuple[torch.Tensor, ...]]:
        if not isinstance(points, tuple):
            return points
        total = int(rows.numel())
        for i, (p, x) in enumerate(zip(points, self.problem.inputs, strict=True)):
            if p.shape[0] != total or p.shape[1:] != x.shape[1:]:
                raise ValueError(
                    f"points[{i}] has shape {tuple(p.shape)}; expected {total} rows of "
                    f"features {tuple(x.shape[1:])}"
                )
        return lambda part: tuple(p[part] for p in points)

    def forward_chunks(
        self,
        rows: torch.Tensor,
        alphas: torch.Tensor,
        before: Callable[[], None] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """As :meth:`outputs`, but yields each chunk's ``(rows, target outputs)`` in turn.

        ``before`` is called right before each chunk's forward pass (after any memory
        probe), so a caller whose hooks record what the model computes sees exactly one
        chunk's records between ``before`` and the yield.
        """
        for part in self._chunks(int(rows.numel())):
            r = rows[part]
            if before is not None:
                before()
            with torch.no_grad(), kept_buffers(self.problem.owner):
                out = self._forward(self.points(r, alphas[part]), r)
                value = self._select(out, r).detach()
            self.forwards.index_add_(0, r, torch.ones_like(r))
            yield r, value

    def gradients(
        self,
        rows: torch.Tensor,
        alphas: torch.Tensor,
        weights: torch.Tensor,
        transform: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
    ) -> PathGradients:
        """Sum over points of ``weight × d target / d point``, per example.

        ``rows``, ``alphas`` and ``weights`` have one entry per path point. The sums
        have the inputs' shapes; ``outputs`` holds the target output at each point.
        ``transform``, if given, maps each chunk's gradients (one row per point)
        before they are weighted, for methods that reweight features per point.
        """
        return self._accumulate(
            int(rows.numel()),
            lambda part: (rows[part], alphas[part], weights[part]),
            None if transform is None else lambda part, points, grads: transform(grads),
        )

    def gradients_at(
        self,
        rows: torch.Tensor,
        points: Points,
        weights: torch.Tensor,
        transform: PointTransform | None = None,
    ) -> PathGradients:
        """As :meth:`gradients`, at points the method chooses instead of the straight line.

        ``points`` is a tuple of tensors shaped like the inputs with one row per path
        point, or a callable ``part -> tuple`` that builds the points ``part`` (a slice
        of ``rows``) when their chunk comes, so that a long path is never held whole.
        ``transform(part, points, grads)`` maps the chunk's gradients before they are
        weighted; it sees the chunk's (detached) points, for paths whose direction
        changes from point to point.
        """
        build = self._builder(rows, points)
        return self._accumulate(
            int(rows.numel()), lambda part: (rows[part], None, weights[part]), transform, build
        )

    def _accumulate(
        self,
        total: int,
        part_of: Callable[[slice], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]],
        transform: PointTransform | None,
        build: Callable[[slice], tuple[torch.Tensor, ...]] | None = None,
    ) -> PathGradients:
        """``part_of(part)`` gives a chunk's rows, alphas (straight path) and weights.

        Weighted gradients are summed in float64 (``Accumulator``), so the rounding error
        of a sum over n points does not grow with n in float32.
        """
        sums = Accumulator(self.problem.inputs)
        outputs = []
        heap = _Heap()
        for part in self._chunks(total):
            r, alphas, w = part_of(part)
            if build is not None:
                points = build(part)
            else:
                assert alphas is not None  # straight-path sources always give alphas
                points = self.points(r, alphas)
            grads, value = self._gradient_chunk(r, points)
            if transform is not None:
                grads = transform(part, points, grads)
            self.chunks_run += 1
            heap.settle(int((self.bytes_per_point or 0) * r.numel()))
            outputs.append(value)
            sums.add(r, grads, w)
            self.evals.index_add_(0, r, torch.ones_like(r))
        result = sums.result()
        for i, s in enumerate(result):
            if not bool(torch.isfinite(s).all()):
                bad = torch.nonzero(~torch.isfinite(s.reshape(s.shape[0], -1)).all(dim=1))
                raise ValueError(
                    f"the gradients of forward_func are not finite (NaN or Inf) for input {i} "
                    f"of example(s) {bad.flatten().tolist()[:10]} on the path; the attributions "
                    "would be NaN. Check the model for operations whose gradient is undefined at "
                    "some path point (sqrt or norm at 0, log of 0, division by 0)"
                )
        return PathGradients(result, torch.cat(outputs) if outputs else torch.empty(0))

    def _gradient_chunk(
        self, rows: torch.Tensor, built: tuple[torch.Tensor, ...]
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        counter = _SavedBytes(int(rows.numel()))
        with torch.enable_grad(), kept_buffers(self.problem.owner):
            # Detached leaves: autograd never reaches (or writes to) the caller's tensors.
            points = tuple(p.detach().requires_grad_() for p in built)
            with _counting(counter if self._recount else None):
                out = self._forward(points, rows)
            selected = self._differentiable(self._select(out, rows))
            if self._recount:
                self._recount = False
                self._measured(counter, points)
            grads = torch.autograd.grad(
                selected.sum(), points, allow_unused=True, **self.grad_kwargs
            )
        if all(g is None for g in grads):
            raise ValueError(
                "the output of forward_func does not depend on any of the inputs; nothing "
                "to attribute"
            )
        dense = tuple(
            torch.zeros_like(p) if g is None else g for p, g in zip(points, grads, strict=True)
        )
        return dense, selected.detach()

    @staticmethod
    def _differentiable(selected: torch.Tensor) -> torch.Tensor:
        if not selected.requires_grad:
            raise ValueError(
                "the output of forward_func does not depend on the inputs (it carries no "
                "gradient); check that the model uses the inputs you pass and that it "
                "does not detach them or run under torch.no_grad()"
            )
        return selected


_SHAPE_ERROR = re.compile(r"shape|size|dimension|channels|mat1|mat2|expected", re.IGNORECASE)


def _shape_hint(
    inputs: tuple[torch.Tensor, ...], points: tuple[torch.Tensor, ...], err: Exception
) -> str:
    """The message for a model that failed on the path points integrad built."""
    given = ", ".join(str(tuple(x.shape)) for x in inputs)
    passed = ", ".join(str(tuple(p.shape)) for p in points)
    return (
        f"forward_func raised on a chunk of path points of shape {passed}, built from inputs "
        f"of shape {given}: {err}. Inputs are batch first: each row along dimension 0 is one "
        "example with the feature shape the model expects. For a single example, add the "
        "batch dimension with x.unsqueeze(0); check the number and shape of the features"
    )


@contextmanager
def kept_buffers(model: nn.Module | None) -> Iterator[None]:
    """Restore the buffers of ``model``'s training-mode modules after the block.

    Train-mode BatchNorm updates ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` on every forward pass; an explanation must not. The block
    must also hold the backward pass (autograd checks the saved buffers' versions).
    """
    saved = (
        []
        if model is None
        else [
            (b, b.detach().clone())
            for m in model.modules()
            if m.training
            for b in m.buffers(recurse=False)
        ]
    )
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


@contextmanager
def _counting(counter: _SavedBytes | None) -> Iterator[None]:
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


def _remembered(problem: PathProblem) -> float | None:
    key = _memory_key(problem)
    return None if key is None else _MEMORY.get(key[0], {}).get(key[1])


def _remember(problem: PathProblem, bytes_per_point: float) -> None:
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


class _Heap:
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
