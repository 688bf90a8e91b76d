"""Deletion and insertion curves (Petsiuk et al., 2018): does the output follow the ranking?

Rank the units (features, pixels or patches) by their summed attribution; remove
them from the input in that order (deletion: replace by a baseline) or add them to
the baseline in that order (insertion), and record the target output after each
step. With the most relevant first (``order="morf"``) a faithful attribution makes
the deletion curve fall fast (low area) and the insertion curve rise fast (high
area). All examples and steps are evaluated batched, on the inputs' device, in
chunks that fit ``max_memory``; the curves do not depend on the chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._engine import MIN_CHUNK_POINTS, TARGET_CHUNK_BYTES, default_budget
from .._inputs import TargetType, TensorOrTuple, as_inputs, check_callable, check_positive_int
from ..baselines import resolve
from ._common import as_tuple, check_matching, extra_args, target_output
from .road import NoisyLinearImputation, noisy_linear_impute, road

__all__ = ["PerturbationCurve", "deletion", "insertion"]

ORDERS = ("morf", "lerf")


@dataclass
class PerturbationCurve:
    """Per-example curves of the target output against the fraction of units moved."""

    kind: str
    """``"deletion"`` or ``"insertion"``."""
    order: str
    """``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first)."""
    fractions: torch.Tensor
    """Shape ``(steps + 1,)``: units moved over all units, 0 to 1."""
    curves: torch.Tensor
    """Shape ``(batch, steps + 1)``: the target output after each step, float64."""
    n_units: int
    """Units ranked per example (features, pixels or patches)."""

    @property
    def auc(self) -> torch.Tensor:
        """Shape ``(batch,)``: area under each curve over fractions 0..1 (trapezoid rule)."""
        return torch.trapezoid(self.curves, self.fractions, dim=1)

    @property
    def normalized_auc(self) -> torch.Tensor:
        """The area with each curve divided by its value before any step (``curves[:, 0]``)."""
        start = self.curves[:, :1]
        return torch.trapezoid(self.curves / start, self.fractions, dim=1)

    def plot(self, example: int | None = None, ax: Any = None) -> Any:
        """A matplotlib figure of the curves (one example, or all); needs matplotlib."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(4.5, 3.2))
        else:
            fig = ax.figure
        rows = range(self.curves.shape[0]) if example is None else [example]
        x = self.fractions.numpy()
        for i in rows:
            ax.plot(x, self.curves[i].numpy(), label=f"#{i}: AUC {float(self.auc[i]):.3g}")
        ax.set_xlabel(f"fraction of units {'removed' if self.kind == 'deletion' else 'inserted'}")
        ax.set_ylabel("target output")
        ax.set_title(f"{self.kind} ({self.order})")
        if len(rows) <= 8:
            ax.legend(fontsize="small")
        fig.tight_layout()
        return fig


def deletion(
    forward_func: Any,
    inputs: TensorOrTuple,
    attributions: Any,
    *,
    target: TargetType = None,
    baselines: object = "zeros",
    steps: int = 20,
    order: str = "morf",
    patch: int | tuple[int, int] | None = None,
    additional_forward_args: Any = None,
    max_memory: int | None = None,
) -> PerturbationCurve:
    """Deletion curves: replace the units by the baseline, most relevant first by default.

    Units are single features (``patch=None``), or for image inputs ``(batch, C, H, W)``
    or ``(batch, H, W)`` square patches of ``patch`` pixels (``patch=1``: pixels), all
    channels together; a unit's relevance is its summed (signed) attribution; ties keep
    the feature order. ``baselines`` is ``"zeros"``, ``"blur"``, ``"mean"`` (each
    example's mean, per channel for images), ``"road"`` or :func:`~integrad.metrics.road`
    (ROAD's noisy linear imputation of the removed pixels; images only), or anything
    :mod:`integrad.baselines` accepts. Step ``s`` of ``steps`` moves
    ``round(s · n_units / steps)`` units.
    ``attributions`` may be an :class:`~integrad.Explanation`.

    >>> import torch, integrad
    >>> from integrad.metrics import deletion
    >>> model = torch.nn.Linear(4, 1)
    >>> x = torch.ones(1, 4)
    >>> result = deletion(model, x, integrad.explain(model, x), steps=4)
    >>> result.curves.shape, result.auc.shape
    (torch.Size([1, 5]), torch.Size([1]))
    """
    return _curve(
        "deletion", forward_func, inputs, attributions, target, baselines, steps, order, patch,
        additional_forward_args, max_memory,
    )  # fmt: skip


def insertion(
    forward_func: Any,
    inputs: TensorOrTuple,
    attributions: Any,
    *,
    target: TargetType = None,
    baselines: object = "zeros",
    steps: int = 20,
    order: str = "morf",
    patch: int | tuple[int, int] | None = None,
    additional_forward_args: Any = None,
    max_memory: int | None = None,
) -> PerturbationCurve:
    """Insertion curves: start from the baseline and put the units back, in ranked order.

    Arguments as for :func:`deletion`; with ``order="morf"`` a faithful attribution
    gives a high area.
    """
    return _curve(
        "insertion", forward_func, inputs, attributions, target, baselines, steps, order, patch,
        additional_forward_args, max_memory,
    )  # fmt: skip


def _curve(
    kind: str,
    forward_func: Any,
    inputs: TensorOrTuple,
    attributions: Any,
    target: TargetType,
    baselines: object,
    steps: int,
    order: str,
    patch: int | tuple[int, int] | None,
    additional_forward_args: Any,
    max_memory: int | None,
) -> PerturbationCurve:
    check_callable(forward_func)
    check_positive_int(steps, "steps")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if max_memory is not None:
        check_positive_int(max_memory, "max_memory")
    xs, was_tuple = as_inputs(inputs)
    attrs = as_tuple(attributions, "attributions")
    check_matching(attrs, xs, "attributions")
    imputation = _imputation(baselines)
    refs = tuple(xs) if imputation is not None else _baselines(baselines, xs, was_tuple)
    maps = [_unit_map(x, patch) for x in xs]
    batch = xs[0].shape[0]
    offsets = [0]
    for m in maps:
        offsets.append(offsets[-1] + int(m.max()) + 1)
    n_units = offsets[-1]
    scores = torch.zeros(batch, n_units, dtype=torch.float64, device=xs[0].device)
    for a, m, start in zip(attrs, maps, offsets[:-1], strict=True):
        index = (m.reshape(-1) + start).to(a.device)
        scores.index_add_(1, index, a.detach().reshape(batch, -1).double())
    ranked = torch.argsort(-scores if order == "morf" else scores, dim=1, stable=True)
    rank = torch.empty_like(ranked).scatter_(
        1, ranked, torch.arange(n_units, device=ranked.device).expand(batch, -1)
    )
    counts = [round(s * n_units / steps) for s in range(steps + 1)]
    ranks = [
        rank[:, start + m.reshape(-1).to(rank.device)]
        for m, start in zip(maps, offsets[:-1], strict=True)
    ]

    args = extra_args(additional_forward_args)
    row_bytes = sum(x[0].numel() * x.element_size() for x in xs)
    device = xs[0].device
    budget = default_budget(device) if max_memory is None else max_memory
    # Points per model call on the CPU: within the budget (4x the inputs, for
    # activations) and near the engine's speed target, counting a forward's activations
    # as 16x the inputs (a CNN's first layers widen 1-3 channels to 16-64): larger chunks
    # leave the CPU's caches (bench/metrics.py: 2.5x slower on a 3x32x32 CNN with
    # everything at once). A GPU runs fastest on the largest chunk (as the engine's do)
    # whose activations, counted as 16x, fit the budget (there a share of free memory).
    activations = 16 * row_bytes
    if device.type == "cuda":
        per_chunk = max(1, budget // activations)
    else:
        by_speed = max(MIN_CHUNK_POINTS, TARGET_CHUNK_BYTES // activations)
        per_chunk = max(1, min(budget // (4 * row_bytes), by_speed))
    pairs = [(b, s) for b in range(batch) for s in range(steps + 1)]
    curves = torch.empty(batch * (steps + 1), dtype=torch.float64)
    if imputation is not None:
        generator = imputation.generator or torch.Generator().manual_seed(0)
        # One noise seed per (input, example, step): the draws do not depend on chunking.
        seeds = torch.randint(0, 2**62, (len(xs), batch, steps + 1), generator=generator)
    with torch.no_grad():
        for start in range(0, len(pairs), per_chunk):
            chunk = pairs[start : start + per_chunk]
            rows = torch.tensor([b for b, _ in chunk], device=xs[0].device)
            moved = torch.tensor([counts[s] for _, s in chunk], device=xs[0].device)
            points = tuple(
                _points(kind, x, ref, r, rows, moved)
                if imputation is None
                else _imputed(kind, x, r, rows, moved, imputation.noise, seeds[i], chunk)
                for i, (x, ref, r) in enumerate(zip(xs, refs, ranks, strict=True))
            )
            chunk_args = tuple(
                a.index_select(0, rows.to(a.device))
                if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == batch
                else a
                for a in args
            )
            out = target_output(
                forward_func, points, _rows_target(target, batch, chunk), chunk_args
            )
            curves[start : start + len(chunk)] = out.detach().double().cpu()
    fractions = torch.tensor(counts, dtype=torch.float64) / n_units
    return PerturbationCurve(kind, order, fractions, curves.reshape(batch, steps + 1), n_units)


def _points(
    kind: str,
    x: torch.Tensor,
    ref: torch.Tensor,
    rank: torch.Tensor,
    rows: torch.Tensor,
    moved: torch.Tensor,
) -> torch.Tensor:
    """The perturbed inputs of examples ``rows`` with ``moved`` units moved each."""
    shape = (len(rows),) + (1,) * (x.dim() - 1)
    hit = rank.index_select(0, rows).reshape((len(rows), *x.shape[1:])) < moved.reshape(shape)
    original, base = x.index_select(0, rows), ref.index_select(0, rows)
    if kind == "deletion":
        return torch.where(hit, base, original)
    return torch.where(hit, original, base)


def _imputed(
    kind: str,
    x: torch.Tensor,
    rank: torch.Tensor,
    rows: torch.Tensor,
    moved: torch.Tensor,
    noise: float,
    seeds: torch.Tensor,
    chunk: list[tuple[int, int]],
) -> torch.Tensor:
    """The points with the removed features filled by ROAD's noisy linear imputation."""
    if x.dim() not in (3, 4):
        raise ValueError(
            "baselines='road' needs image inputs of shape (batch, height, width) or (batch, "
            f"channels, height, width); got shape {tuple(x.shape)}"
        )
    shape = (len(rows),) + (1,) * (x.dim() - 1)
    hit = rank.index_select(0, rows).reshape((len(rows), *x.shape[1:])) < moved.reshape(shape)
    removed = hit if kind == "deletion" else ~hit
    original = x.index_select(0, rows)
    height, width = x.shape[-2:]
    planes = original.reshape(-1, height, width)
    per_plane = planes.shape[0] // len(rows)
    point_seeds = torch.tensor([int(seeds[b, s]) for b, s in chunk])
    # Each channel of a point draws from its own seed, derived from the point's.
    plane_seeds = (point_seeds[:, None] + torch.arange(per_plane)[None, :]).reshape(-1)
    filled = noisy_linear_impute(planes, removed.reshape(planes.shape), noise, plane_seeds)
    return filled.reshape(original.shape)


def _rows_target(target: TargetType, batch: int, chunk: list[tuple[int, int]]) -> Any:
    """The target for the chunk's points: per-example targets follow their example."""
    if isinstance(target, torch.Tensor) and target.numel() > 1:
        return target.reshape(-1)[[b for b, _ in chunk]]
    if isinstance(target, list):
        if len(target) != batch:
            raise ValueError(
                f"target has {len(target)} entries but the batch has {batch} examples; give "
                "one target per example, or a single int or tuple for all"
            )
        return [target[b] for b, _ in chunk]
    return target


def _unit_map(x: torch.Tensor, patch: int | tuple[int, int] | None) -> torch.Tensor:
    """Each feature's unit index, shaped like one example (features, pixels or patches)."""
    features = x.shape[1:]
    if patch is None:
        return torch.arange(math.prod(features)).reshape(features)
    size = (patch, patch) if isinstance(patch, int) else patch
    if not (
        isinstance(size, tuple)
        and len(size) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in size)
    ):
        raise ValueError(f"patch must be None, an int >= 1 or a pair of them, got {patch!r}")
    if x.dim() not in (3, 4):
        raise ValueError(
            "patch needs image inputs of shape (batch, height, width) or (batch, channels, "
            f"height, width); got shape {tuple(x.shape)}"
        )
    height, width = int(x.shape[-2]), int(x.shape[-1])
    across = -(-width // size[1])
    rows = torch.arange(height) // size[0]
    cols = torch.arange(width) // size[1]
    grid = rows[:, None] * across + cols[None, :]
    return grid.expand(features) if x.dim() == 4 else grid


def _imputation(baselines: object) -> NoisyLinearImputation | None:
    if isinstance(baselines, str) and baselines == "road":
        return road()
    return baselines if isinstance(baselines, NoisyLinearImputation) else None


def _baselines(
    baselines: object, xs: tuple[torch.Tensor, ...], was_tuple: bool
) -> tuple[torch.Tensor, ...]:
    if isinstance(baselines, str) and baselines == "mean":
        return tuple(_example_mean(x) for x in xs)
    return resolve(baselines, xs, was_tuple)


def _example_mean(x: torch.Tensor) -> torch.Tensor:
    """Each example's mean, per channel for ``(batch, C, H, W)`` images."""
    dims = tuple(range(2, x.dim())) if x.dim() == 4 else tuple(range(1, x.dim()))
    return x.mean(dim=dims, keepdim=True).expand(x.shape).contiguous()
