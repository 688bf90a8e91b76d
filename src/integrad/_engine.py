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
autograd saves per path point, and :class:`~integrad._memory.ChunkPolicy` sizes the
chunks within ``max_memory`` (default :data:`DEFAULT_MAX_MEMORY`, or on CUDA a share of
the free device memory): on CUDA as large as the budget allows, elsewhere at the
fastest size a timed search over the first chunks finds (see ``bench/zoo.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from . import _memory
from ._checks import (
    SHAPE_ERROR,
    check_finite_gradients,
    check_finite_targets,
    dense_gradients,
    differentiable,
    kept_buffers,
    shape_hint,
    training_modules,
)
from ._inputs import check_engine_options, check_output, check_points
from ._memory import (
    DEFAULT_MAX_MEMORY,
    MIN_CHUNK_POINTS,
    TARGET_CHUNK_BYTES,
    Accumulator,
    ChunkPolicy,
    Heap,
    SavedBytes,
    counting,
    default_budget,
)
from ._problem import PathGradients, PathProblem, Points, PointTransform
from .explanation import prediction_fields
from .quadrature import Rule

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "MIN_CHUNK_POINTS",
    "TARGET_CHUNK_BYTES",
    "Engine",
    "PathGradients",
    "PathProblem",
    "default_budget",
]

_PROBE_POINTS = 4


class Engine:
    """Evaluates gradients of the target output at path points, chunk by chunk."""

    def __init__(
        self,
        problem: PathProblem,
        max_memory: int | None = None,
        internal_batch_size: int | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_engine_options(grad_kwargs, internal_batch_size, max_memory)
        self.grad_kwargs = dict(grad_kwargs or {})
        self.problem = problem
        device = problem.inputs[0].device
        self.max_memory = default_budget(device) if max_memory is None else max_memory
        self.policy = ChunkPolicy(self.max_memory, fill=device.type == "cuda")
        # A model in training mode (BatchNorm on chunk statistics) depends on the chunking:
        # keep it the same from call to call rather than timed.
        model = problem.owner
        # Only the CPU is timed: elsewhere kernels run asynchronously, so the clock would
        # time the launches (CUDA fills the budget instead; other devices take the guess).
        self._timed = device.type == "cpu" and (model is None or not training_modules(model))
        self.internal_batch_size = internal_batch_size
        self.bytes_per_point: float | None = None
        self.chunks_run = 0
        # Row indices may come on the CPU or the inputs' device: every use moves them.
        self.evals = torch.zeros(problem.batch, dtype=torch.long, device=device)
        """Forward+backward evaluations per example so far."""
        self.forwards = torch.zeros(problem.batch, dtype=torch.long, device=device)
        """Forward-only evaluations per example so far."""
        self._recount = False
        self._called = False
        self._kept = kept_buffers(problem.owner)
        self._flat_target: torch.Tensor | None = None
        self._target_tail: torch.Size | None = None
        self.at_inputs: torch.Tensor | None = None
        """``(batch, classes)``: the model's whole output at the inputs, kept by :meth:`ends`
        when the output has one row of several classes per example (else None)."""
        self.diffs = tuple(x - b for x, b in zip(problem.inputs, problem.baselines, strict=True))
        """Inputs minus baselines, per input (the straight path's direction)."""
        # Zero baselines (the default) need no adding: one tensor per chunk, not three.
        self._bases = tuple(None if bool((b == 0).all()) else b for b in problem.baselines)

    # -- chunking ---------------------------------------------------------------------

    def _fixed_chunk(self) -> int | None:
        if self.internal_batch_size is None:
            return None
        return max(1, self.internal_batch_size // self.problem.batch) * self.problem.batch

    def _per_point(self) -> float:
        return max(self.bytes_per_point or 1.0, 1.0)

    def chunk_points(self) -> int:
        """Points per chunk the engine will use (measuring the model first if needed)."""
        fixed = self._fixed_chunk()
        if fixed is not None:
            return fixed
        self._measure()
        return self.policy.size(self._per_point())

    def _measure(self, probe: bool = True) -> None:
        """The bytes per point (remembered, else probed, or with ``probe=False`` counted on
        the first chunk) and the chunk timings remembered for this model."""
        if self.bytes_per_point is None:
            remembered = _memory.remembered(self.problem)
            if remembered is None:
                if probe:
                    self._probe()
                else:
                    self._recount = True
            else:
                self.bytes_per_point = remembered.bytes_per_point
                self.policy.timings = remembered.timings
                self._recount = not remembered.on_chunk

    def _chunks(self, total: int, timed: bool = False) -> Iterator[slice]:
        """Slices of ``range(total)``, one per chunk; ``timed``: gradient chunks that may
        search sizes (see :class:`~integrad._memory.ChunkPolicy`)."""
        fixed = self._fixed_chunk()
        if fixed is not None:
            for start in range(0, total, fixed):
                yield slice(start, min(total, start + fixed))
            return
        self._measure()
        yield from self.policy.slices(total, self._per_point, timed)

    def _probe(self) -> None:
        """Measure the autograd memory of one path point with a forward on a few inputs.

        The graph is dropped without a backward; the forward also surfaces a bad output
        or target before any real work. The figure is remembered for the same model
        and input shapes, and counted again on the first real chunk of the next call.
        """
        device = self.evals.device
        rows = torch.arange(min(self.problem.batch, _PROBE_POINTS), device=device)
        counter = SavedBytes(int(rows.numel()))
        ones = torch.ones(rows.numel(), device=device)
        with torch.enable_grad(), self._kept:
            points = tuple(p.requires_grad_() for p in self.points(rows, ones))
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
                out = self._forward(points, rows)
            differentiable(self._select(out, rows))
        self._measured(counter, points, on_chunk=False)

    def _measured(
        self, counter: SavedBytes, points: tuple[torch.Tensor, ...], on_chunk: bool
    ) -> None:
        # Points, their gradients and the saved activations live together.
        points_bytes = sum(p.nbytes for p in points)
        self.bytes_per_point = (counter.total + 2 * points_bytes) / counter.rows
        known = _memory.remember(self.problem, self.bytes_per_point, on_chunk)
        if known is not None:  # the chunk timings go on in the next call
            self.policy.timings = known.timings

    # -- evaluation -------------------------------------------------------------------

    def points(self, rows: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Path points ``x'_r + alpha (x_r - x'_r)`` for examples ``rows``."""
        out = []
        for base, diff in zip(self._bases, self.diffs, strict=True):
            a = alphas.to(device=diff.device, dtype=diff.dtype).view(-1, *([1] * (diff.dim() - 1)))
            r = rows.to(diff.device)
            point = diff.index_select(0, r).mul_(a)
            out.append(point if base is None else point.add_(base.index_select(0, r)))
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
            if first and SHAPE_ERROR.search(str(err)):
                raise ValueError(shape_hint(self.problem.inputs, points, err)) from err
            raise

    def _select(self, output: object, rows: torch.Tensor) -> torch.Tensor:
        n = int(rows.numel())
        output = check_output(output, n, "path points")
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
        check_finite_targets(selected, rows)
        return selected

    def target_values(self, output: object, rows: torch.Tensor) -> torch.Tensor:
        """The target output, detached, from a ``forward_func`` output for examples ``rows``."""
        return self._select(output, rows).detach()

    def integrate(
        self,
        quad: Rule,
        rows: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        transform: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Per example, the rule's weighted sum of gradients along the whole path.

        ``rows`` (default: every example) are the examples to integrate; the sums of the
        others stay 0. Points go node-major (every example at the first node, then the
        next), as Captum. Nodes, weights and row indices are made chunk by chunk, so a
        rule of any size costs one chunk of memory. ``weights`` (one per point, node-major)
        replace the rule's weights; ``transform`` is as in :meth:`gradients`.
        """
        total, part_of = self._node_major(quad, rows, weights)
        return self._accumulate(
            total,
            part_of,
            None if transform is None else lambda part, points, grads: transform(grads),
        ).sums

    def outputs_along(self, quad: Rule, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The target output at the rule's nodes, node-major, forward passes only."""
        total, part_of = self._node_major(quad, rows, None)

        def chunk(part: slice) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            r, alphas, _ = part_of(part)
            return r, self.points(r, alphas)

        return self._values(total, chunk)

    def _node_major(
        self, quad: Rule, rows: torch.Tensor | None, weights: torch.Tensor | None
    ) -> tuple[int, Callable[[slice], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        if rows is None:
            rows = torch.arange(self.problem.batch, device=self.evals.device)
        m = int(rows.numel())
        if weights is not None and int(weights.numel()) != m * quad.n:
            raise ValueError(f"weights has {weights.numel()} entries for {m * quad.n} points")

        # Up to 2**16 nodes (1 MiB) are made once; larger rules chunk by chunk.
        whole = quad.nodes(0, quad.n) if quad.n <= 1 << 16 else None

        def part_of(part: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            first, last = part.start // m, (part.stop - 1) // m + 1
            if whole is None:
                alphas, rule_weights = quad.nodes(first, last)
            else:
                alphas, rule_weights = whole[0][first:last], whole[1][first:last]
            index = torch.arange(part.start, part.stop, device=alphas.device)
            node = index // m - first
            chosen = rule_weights[node] if weights is None else weights[part]
            return rows[index % m], alphas[node], chosen

        return m * quad.n, part_of

    def ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The target output at the inputs and at the baselines, forward passes only.

        Also keeps the whole output at the inputs in :attr:`at_inputs` when it is a
        ``(batch, classes)`` matrix, for :meth:`predictions`.
        """
        batch, device = self.problem.batch, self.evals.device
        alphas = torch.cat([torch.ones(batch), torch.zeros(batch)]).double().to(device)
        rows = torch.arange(batch, device=device).repeat(2)
        values = self._values(
            2 * batch,
            lambda part: (rows[part], self.points(rows[part], alphas[part])),
            self._keeper(batch),
        )
        return values[:batch], values[batch:]

    def _keeper(self, batch: int) -> Callable[[slice, torch.Tensor], None]:
        """A ``seen`` for :meth:`_values` that keeps the outputs of the first ``batch``
        points (the inputs) in :attr:`at_inputs` when they are rows of classes."""
        kept: list[torch.Tensor] = []

        def keep(part: slice, output: torch.Tensor) -> None:
            at_input = torch.arange(part.start, part.stop) < batch
            if output.dim() == 2 and output.shape[1] > 1 and bool(at_input.any()):
                kept.append(output.detach()[at_input.to(output.device)])
                if sum(len(k) for k in kept) == batch:
                    self.at_inputs = torch.cat(kept)

        return keep

    def predictions(self, output_kind: str | None) -> dict[str, Any]:
        """The Explanation's fields on what the model predicted (see :class:`Explanation`).

        ``predicted``: the top class per example; with ``output_kind`` ``"logits"``
        (softmax) or ``"probabilities"``, ``probability`` and ``predicted_probability``:
        those of the target and of the top class. All None when the outputs have no
        classes (regression, one output, or outputs of another shape). Reads what
        :meth:`ends` kept, else runs one forward pass at the inputs (counted in
        :attr:`forwards`).
        """
        tail = self._target_tail
        if self.at_inputs is None and tail is not None and len(tail) == 1 and tail[0] > 1:
            # The method took F(x) its own way: one forward pass at the inputs.
            batch, device = self.problem.batch, self.evals.device
            every = torch.arange(batch, device=device)
            ones = torch.ones(batch, dtype=torch.float64, device=device)
            self._values(
                batch,
                lambda part: (every[part], self.points(every[part], ones[part])),
                self._keeper(batch),
            )
        return prediction_fields(self.at_inputs, output_kind, self._flat_target)

    def outputs(self, rows: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        """The target output at path points, forward passes only (no gradients)."""
        return self._values(
            int(rows.numel()), lambda part: (rows[part], self.points(rows[part], alphas[part]))
        )

    def outputs_at(self, rows: torch.Tensor, points: Points) -> torch.Tensor:
        """As :meth:`outputs`, at points the method chooses (see :meth:`gradients_at`)."""
        build = self._builder(rows, points)
        return self._values(int(rows.numel()), lambda part: (rows[part], build(part)))

    def _values(
        self,
        total: int,
        chunk: Callable[[slice], tuple[torch.Tensor, tuple[torch.Tensor, ...]]],
        seen: Callable[[slice, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Forward passes over ``total`` points; ``chunk(part)`` gives their rows and points.

        ``seen(part, output)`` is shown each chunk's whole (checked) output.
        """
        values = []
        with torch.no_grad(), self._kept:
            for part in self._chunks(total):
                r, points = chunk(part)
                out = self._forward(points, r)
                values.append(self._select(out, r).detach())
                if seen is not None:
                    seen(part, check_output(out, int(r.numel()), "path points"))
                self._count(self.forwards, r)
        return torch.cat(values)

    def _builder(
        self, rows: torch.Tensor, points: Points
    ) -> Callable[[slice], tuple[torch.Tensor, ...]]:
        if not isinstance(points, tuple):
            return points
        check_points(points, int(rows.numel()), self.problem.inputs)
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
            with torch.no_grad(), self._kept:
                out = self._forward(self.points(r, alphas[part]), r)
                value = self._select(out, r).detach()
            self._count(self.forwards, r)
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
        heap = Heap()
        if self._fixed_chunk() is not None:  # no probe needed, but the heap wants the bytes
            self._measure(probe=False)
        for part in self._chunks(total, timed=self._timed):
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
            self._count(self.evals, r)
        result = sums.result()
        check_finite_gradients(result)
        if not outputs:
            return PathGradients(result, torch.empty(0, device=self.evals.device))
        return PathGradients(result, torch.cat(outputs))

    def _gradient_chunk(
        self, rows: torch.Tensor, built: tuple[torch.Tensor, ...]
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        counter = SavedBytes(int(rows.numel()))
        with torch.enable_grad(), self._kept:
            # Detached leaves: autograd never reaches (or writes to) the caller's tensors.
            points = tuple(p.detach().requires_grad_() for p in built)
            with counting(counter if self._recount else None):
                out = self._forward(points, rows)
            selected = differentiable(self._select(out, rows))
            if self._recount:
                self._recount = False
                self._measured(counter, points, on_chunk=True)
            grads = torch.autograd.grad(
                selected.sum(), points, allow_unused=True, **self.grad_kwargs
            )
        return dense_gradients(points, grads), selected.detach()

    @staticmethod
    def _count(counter: torch.Tensor, rows: torch.Tensor) -> None:
        rows = rows.to(counter.device)
        counter.index_add_(0, rows, torch.ones_like(rows))
