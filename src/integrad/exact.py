"""Exact Integrated Gradients for piecewise-linear networks (``method="exact"``).

Along the straight path from x' to x, every layer input of a network built from affine
layers and piecewise-linear activations is piecewise affine in α, so the gradient is
constant between switching points and IG is a finite sum (Sotoudeh & Thakur 2019,
"ExactLine"):

    IG = (x − x') ⊙ Σ_segments length × ∂F/∂x at the segment's midpoint.

Hooks record, at every evaluated point, the input of each piecewise-linear module
(ReLU-like: on which side of its kinks each element lies; MaxPool: which element of
each window is the largest). Activation regions are convex, so a segment whose ends lie
in one closed region is linear. Otherwise the first module, in execution order, whose
pattern differs has an affine input on the segment (every module before it agrees), so
its switching points follow exactly from the two ends' values: the segment is split
there and the parts examined again, every segment of every example in one batch. The
parts agree on that module (for a ReLU-like one; a max-pooling window may change hands
more than once) and on all before it, so only later modules are compared again.

A segment whose first difference is the last module call, a ReLU-like one, needs no
forward pass at its switching points: its regions differ only in that call's derivative
(the model is affine after it). It is a *host*: one gradient at its midpoint, taken with
that call's derivative replaced by its length-weighted mean over the host, equals the
sum over its regions (each element's input is affine there, so the mean is closed-form:
the midpoint's derivative, or for an element crossing a kink, the average over its own
pieces).

Cost per example, with R regions crossed and H hosts: H ≤ R forward+backward evaluations
(``n_evals``; a 2×64 ReLU MLP: ~27 for ~50 regions) and at most about H + 1 forward-only
ones (both ends and the switching points of every module but the last,
``Explanation.n_forward``). Every host is checked: the rise of F over each of its
halves, from the gradient with its halves' own mean derivatives in the last call, must
match F at its ends (evaluated) and at its midpoint (from the gradient pass) to ~1e-12
of the output's scale in float64; a nonlinearity the hooks cannot see
(``torch.sigmoid`` or ``F.relu`` called in ``forward``) is refused, not integrated
wrongly. Results are exact up to rounding in the inputs' dtype: use a float64 model and
inputs for 1e-9 accuracy. In float32 (measured: ~1e-4 relative error on a CNN, 1e-6 on an
MLP) switching points closer than ~64 ulps to a path point are merged, and the check only
catches nonlinearity above ~2e-3 of the output's scale.

>>> import torch, integrad
>>> model = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
>>> with torch.no_grad():  # f(x) = relu(x - 1) + 2 relu(x - 3)
...     _ = model[0].weight.fill_(1.0), model[0].bias.copy_(torch.tensor([-1.0, -3.0]))
...     _ = model[2].weight.copy_(torch.tensor([[1.0, 2.0]])), model[2].bias.zero_()
>>> exp = integrad.explain(model.double(), torch.tensor([[5.0]], dtype=torch.float64),
...                        method="exact")
>>> exp.attributions, exp.extras["regions"], exp.n_evals  # one gradient for 3 regions
(tensor([[8.]], dtype=torch.float64), tensor([3]), tensor([1]))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules import batchnorm, conv, dropout, padding, pooling

from ._engine import Engine
from ._hooks import call_scope
from ._hosts import Hosts, Override, to_hosts
from ._modules import is_smooth_module, owner
from ._regions import Kinks, Recorder, Segments, Store, kinks

_AFFINE = (
    nn.Linear, conv._ConvNd, batchnorm._BatchNorm, dropout._DropoutNd, nn.Flatten,
    nn.Unflatten, nn.Identity, pooling._AvgPoolNd, pooling._AdaptiveAvgPoolNd,
    padding._ConstantPadNd, padding._ReflectionPadNd, padding._ReplicationPadNd,
    padding._CircularPadNd, nn.PixelShuffle, nn.PixelUnshuffle, nn.Upsample,
    nn.ChannelShuffle, nn.Fold, nn.Unfold,
)  # fmt: skip
_NOT_PIECEWISE_LINEAR = (
    nn.Hardswish, nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)  # fmt: skip
"""Refused by name besides the smooth modules: these hold affine parts but are not affine."""
_CHECK_TOL = 1 << 14
"""Each segment's linearity check allows this many ulps of the output's scale."""
_MAX_ROUNDS = 256


def model_of(forward_func: Callable[..., Any]) -> nn.Module:
    """The module whose layers ``forward_func`` runs, or ValueError."""
    model = owner(forward_func)
    if model is not None:
        return model
    raise ValueError(
        "method='exact' needs forward_func to be an nn.Module (or a method of one) so that "
        f"its activation patterns can be recorded; got {type(forward_func).__name__}"
    )


def check_model(forward_func: Callable[..., Any]) -> None:
    """Refuse, before any work, a model that is not affine + piecewise-linear in eval mode."""
    for name, m in model_of(forward_func).named_modules():
        where = (
            f"module {name!r} ({type(m).__name__})" if name else f"the model ({type(m).__name__})"
        )
        leaf = next(m.children(), None) is None
        if is_smooth_module(m) or isinstance(m, _NOT_PIECEWISE_LINEAR):
            reason = "is smooth, not piecewise-linear"
        elif m.training and isinstance(m, (batchnorm._BatchNorm, dropout._DropoutNd, nn.RReLU)):
            reason = "is in training mode (call model.eval())"
        elif isinstance(m, batchnorm._BatchNorm) and m.running_mean is None:
            reason = "uses batch statistics (track_running_stats=False)"
        elif isinstance(m, pooling._MaxPoolNd) or kinks(m) is not None:
            continue
        elif leaf and not isinstance(m, _AFFINE):
            reason = "is not a known affine or piecewise-linear layer"
        else:
            continue
        raise ValueError(f"method='exact' needs a piecewise-linear model; {where} {reason}")


@dataclass(frozen=True)
class TooManyRegions:
    """:func:`exact`'s answer when an example crosses more than ``max_regions``: F at the
    inputs and at the baselines, already evaluated, for whoever integrates instead."""

    output: torch.Tensor
    baseline_output: torch.Tensor


def exact(
    engine: Engine, max_regions: int | None = None
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor, torch.Tensor] | TooManyRegions:
    """``(∫₀¹ ∂F/∂x dα, F(x), F(x'), regions)`` per example, exactly, evaluated on ``engine``.

    ``forward_func`` must have passed :func:`check_model`. With ``max_regions``,
    :class:`TooManyRegions` as soon as some example is seen to cross more regions (before
    any gradient is taken). Refuses a model that computes in half precision.
    """
    _check_precision(engine.problem.inputs[0])
    with call_scope():  # the hooks ignore other threads' forward passes
        recorder = Recorder(model_of(engine.problem.forward_func))
        try:
            found = _regions(engine, recorder, max_regions)
        finally:
            recorder.remove()
        if isinstance(found, TooManyRegions):
            return found
        hosts, regions, output, baseline_output = found
        grads = _integrate(engine, recorder, hosts)
    return grads, output, baseline_output, regions


def _check_precision(x: torch.Tensor) -> None:
    """Exact IG needs float32 or float64: half precision (the inputs', or the one
    ``torch.autocast`` runs the model in) rounds the crossings into the wrong regions."""
    kind = x.device.type
    dtype, how = x.dtype, "inputs of dtype"
    if torch.is_autocast_enabled(kind):
        dtype, how = torch.get_autocast_dtype(kind), "torch.autocast in"
    if torch.finfo(dtype).eps > torch.finfo(torch.float32).eps:
        raise ValueError(
            f"method='exact' needs a model that computes in float32 or float64, got {how} "
            f"{dtype}: half-precision rounding puts the crossings into the wrong activation "
            "regions (tens of percent off); compute in float32, or use n_steps= or tolerance="
        )


def _regions(
    engine: Engine, recorder: Recorder, max_regions: int | None = None
) -> tuple[Hosts, torch.Tensor, torch.Tensor, torch.Tensor] | TooManyRegions:
    """Split every example's path until each segment lies in one activation region.

    A segment cut at every switching point of its first differing call agrees on that
    call and every one before it between the cuts, so only the later calls are compared
    again. A segment whose first difference is the last recorded call, a ReLU-like one,
    is final as it is (a host): the model is affine after that call, so its regions
    differ only in that call's derivative, which the crossings give without a forward
    pass. Returns the hosts, the regions per example, F(x) and F(x').
    """
    batch = engine.problem.batch
    x = engine.problem.inputs[0]
    min_len = 64 * torch.finfo(x.dtype).eps
    rows = torch.arange(batch)
    zero, one = torch.zeros(batch, dtype=torch.float64), torch.ones(batch, dtype=torch.float64)
    store, values = _evaluate(engine, recorder, rows.repeat(2), torch.cat([zero, one]))
    f0, f1 = values[:batch], values[batch:]
    seg = Segments.of(rows, zero, one, rows, rows + batch, f0, f1, torch.zeros_like(rows))
    last = len(recorder.calls) - 1
    whole = torch.tensor([isinstance(kind, Kinks) for _, kind in recorder.calls], dtype=torch.bool)
    spread = last >= 0 and bool(whole[last])
    done: list[Hosts] = []
    regions = torch.zeros(batch, dtype=torch.long)
    for _ in range(_MAX_ROUNDS):
        first, opposite = _first_difference(recorder, store, seg)
        final = (first < 0) | (seg.e - seg.s <= min_len)
        if bool(final.all()):
            done.append(to_hosts(recorder, store, seg, spread, None))
            regions += torch.bincount(seg.row, minlength=batch)
            return Hosts.cat(done), regions, f1.to(x), f0.to(x)
        at = (~final).nonzero().squeeze(1)
        number = torch.full((len(seg),), -1)
        number[at] = torch.arange(int(at.numel()))
        opn, first = seg.take(at), first[at]
        which, alpha, halved, cross = _switches(
            recorder, store, seg, opn, opposite, number, last if spread else -1
        )
        # A ReLU-like call's input is affine on the segment: every crossing is found. A
        # max-pooling window may change hands more than once: it is compared again.
        known = torch.where(halved | ~whole[first], first, first + 1)
        blind = (first == last) & (known > first)
        if max_regions is not None:
            seen = regions + torch.bincount(torch.cat([seg.row, opn.row[which]]), minlength=batch)
            if int(seen.max()) > max_regions:
                return TooManyRegions(f1, f0)
        cut = blind[which]
        finals = final.nonzero().squeeze(1)
        ends = Segments.cat([seg.take(finals), opn.take(blind.nonzero().squeeze(1))])
        if cross is not None:  # the blind segments' crossings, numbered as in ends
            h, q, t = cross
            on = blind[h]
            rank = int(finals.numel()) + torch.cumsum(blind, 0) - 1
            cross = (rank[h[on]], q[on.to(q.device)], t[on.to(t.device)])
        if len(ends):
            done.append(to_hosts(recorder, store, ends, spread, cross))
            regions += torch.bincount(torch.cat([ends.row, opn.row[which[cut]]]), minlength=batch)
        rest = ~blind
        if not bool(rest.any()):
            return Hosts.cat(done), regions, f1.to(x), f0.to(x)
        renumber = torch.cumsum(rest, 0) - 1
        opn, known = opn.take(rest.nonzero().squeeze(1)), known[rest]
        which, alpha = renumber[which[~cut]], alpha[~cut]
        # Calls that every open segment agrees on are never compared again: not recorded.
        new, new_values = _evaluate(engine, recorder, opn.row[which], alpha, int(known.min()))
        seg, store = _split(opn, store, which, alpha, new, new_values, known)
    raise ValueError(
        f"method='exact' did not separate the activation regions in {_MAX_ROUNDS} rounds; "
        "the model is probably not piecewise-linear in its inputs"
    )


def _evaluate(
    engine: Engine, recorder: Recorder, rows: torch.Tensor, alphas: torch.Tensor, skip: int = 0
) -> tuple[Store, torch.Tensor]:
    """Recorded module inputs (but of the first ``skip`` calls) and the target output at
    path points (forward passes only)."""
    chunks, values = [], []
    for r, value in engine.forward_chunks(rows, alphas, before=recorder.begin):
        chunks.append(recorder.take(int(r.numel()), skip))
        values.append(value.double().cpu())  # bookkeeping stays on the CPU
    store = [
        tuple(_cat(parts) for parts in zip(*(c[i] for c in chunks), strict=True))
        for i in range(len(recorder.calls))
    ]
    return store, torch.cat(values)


def _cat(parts: Any, rows: list[torch.Tensor] | None = None) -> torch.Tensor:
    """``torch.cat`` of ``parts`` (of their ``rows`` if given) in one copy, or none."""
    if rows is None:
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    out = parts[0].new_empty((sum(int(r.numel()) for r in rows), *parts[0].shape[1:]))
    start = 0
    for part, r in zip(parts, rows, strict=True):
        torch.index_select(part, 0, r.to(part.device), out=out[start : start + int(r.numel())])
        start += int(r.numel())
    return out


def _first_difference(
    recorder: Recorder, store: Store, seg: Segments
) -> tuple[torch.Tensor, dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Per segment, the first module call whose pattern differs between its ends (or -1),
    and per such call ``c``: ``(segments, where they differ)`` (see ``opposite``)."""
    n = len(seg)
    first = torch.full((n,), -1)
    open_ = torch.arange(n)
    known, ps, pe = seg.known, seg.ps, seg.pe
    found = {}
    start, top = (int(known.min()), int(known.max())) if n else (0, 0)
    for c, (_, kind) in enumerate(recorder.calls):
        if c < start:  # known to agree on every segment
            continue
        check = open_ if c >= top else open_[known[open_] <= c]
        if not check.numel():
            continue
        opposite = kind.opposite(store[c], ps[check], pe[check])
        differs = (opposite.amin(1) < 0).nonzero().squeeze(1)
        if differs.numel() == check.numel():  # all differ: no selection to copy
            first[check] = c
            found[c] = (check, opposite)
            break
        if differs.numel():
            sel = check[differs.cpu()]
            first[sel] = c
            found[c] = (sel, opposite.index_select(0, differs))
            open_ = open_[first[open_] < 0]
    return first, found


def _switches(
    recorder: Recorder,
    store: Store,
    seg: Segments,
    opn: Segments,
    opposite: dict[int, tuple[torch.Tensor, torch.Tensor]],
    number: torch.Tensor,
    spread: int,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
]:
    """Switching points ``(open segment, alpha)`` of the first differing call of each
    open segment ``opn`` (segment ``i`` of ``seg`` is open segment ``number[i]``, or -1),
    per open segment whether it was halved instead (no switching point found inside),
    and the crossings ``(open segment, element, t)`` of call ``spread``.

    Everything before that call agrees at both ends and regions are convex, so the
    call's input is affine on the segment: its kinks are crossed where linear
    interpolation between the ends' values says. Sorted by segment, then alpha.
    """
    found, ts = [], []
    cross = None
    every = len(opn) == len(seg)  # every segment open: the numbers are the identity
    for c, (sel, differs) in opposite.items():
        i, q, t = recorder.calls[c][1].crossings(store[c], seg.ps[sel], seg.pe[sel], differs)
        own, t = sel[i.cpu()], t.cpu()
        if not every:
            own = number[own]
            on = (own >= 0).nonzero().squeeze(1)
            own, t, q = own[on], t[on], q[on.to(q.device)]
        found.append(own)
        ts.append(t)
        if c == spread:
            cross = (own, q, t)
    which, t = (found[0], ts[0]) if len(found) == 1 else (torch.cat(found), torch.cat(ts))
    s, e = opn.s[which], opn.e[which]
    alpha = s + t * (e - s)
    inside = ((alpha > s) & (alpha < e)).nonzero().squeeze(1)
    which, alpha = which[inside], alpha[inside]
    # Never expected, but a segment must always shrink: halve one without a crossing.
    lost = torch.ones(len(opn), dtype=torch.bool)
    lost[which] = False
    if bool(lost.any()):
        lost_at = lost.nonzero().squeeze(1)
        which = torch.cat([which, lost_at])
        alpha = torch.cat([alpha, (opn.s[lost_at] + opn.e[lost_at]) / 2])
    order = torch.argsort(alpha, stable=True)
    order = order[torch.argsort(which[order], stable=True)]
    which, alpha = which[order], alpha[order]
    # Neurons switching at the same point need one evaluation.
    keep = torch.ones_like(which, dtype=torch.bool)
    keep[1:] = (which[1:] != which[:-1]) | (alpha[1:] > alpha[:-1])
    keep = keep.nonzero().squeeze(1)
    return which[keep], alpha[keep], lost, cross


def _parts(
    seg: Segments,
    which: torch.Tensor,
    alpha: torch.Tensor,
    ids: torch.Tensor,
    values: torch.Tensor,
    known: torch.Tensor,
) -> Segments:
    """Segments ``which`` cut at ``alpha`` (sorted by segment, then alpha), whose new
    points have ids ``ids`` and F ``values``; each part knows ``known[segment]`` calls."""
    head = torch.ones_like(which, dtype=torch.bool)
    head[1:] = which[1:] != which[:-1]
    tail = head.roll(-1)
    src = seg.take(which)
    # One part ends at each new point; it starts at the previous one or the segment's start.
    s = torch.where(head, src.s, alpha.roll(1))
    ps = torch.where(head, src.ps, ids.roll(1))
    fs = torch.where(head, src.fs, values.roll(1))
    parts = Segments.of(src.row, s, alpha, ps, ids, fs, values, known[which])
    end = src.take(tail.nonzero().squeeze(1))
    w = which[tail]
    rest = Segments.of(
        end.row, alpha[tail], end.e, ids[tail], end.pe, values[tail], end.fe, known[w]
    )
    return Segments.cat([parts, rest])


def _split(
    seg: Segments,
    store: Store,
    which: torch.Tensor,
    alpha: torch.Tensor,
    new: Store,
    values: torch.Tensor,
    known: torch.Tensor,
) -> tuple[Segments, Store]:
    """Cut the segments at the new points; keep only the points that still bound one."""
    recorded = [data for data in store if data]
    n_old = int(recorded[0][0].shape[0]) if recorded else int(seg.ints[:, 1:3].max()) + 1
    n_new = int(which.numel())
    out = _parts(seg, which, alpha, n_old + torch.arange(n_new), values, known)
    used = torch.zeros(n_old + n_new, dtype=torch.bool)
    used[out.ints[:, 1:3].flatten()] = True
    kept = used.nonzero().squeeze(1)
    n_kept_old = int(used[:n_old].sum())
    old, fresh = kept[:n_kept_old], kept[n_kept_old:] - n_old
    merged = [
        tuple(_cat([a, b], [old, fresh]) for a, b in zip(data, more, strict=True)) if more else ()
        for data, more in zip(store, new, strict=True)
    ]
    ints = out.ints.clone()
    ints[:, 1:3] = (torch.cumsum(used, 0) - 1)[out.ints[:, 1:3]]
    return Segments(ints, out.reals), merged


class _Slopes:
    """A gradient transform that keeps dF/dα = ∂F/∂x · (x − x') at each point, in order."""

    def __init__(self, diffs: tuple[torch.Tensor, ...], rows: torch.Tensor) -> None:
        self.diffs, self.rows, self.done = diffs, rows, 0
        self.parts: list[torch.Tensor] = []

    def __call__(self, grads: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        n = int(grads[0].shape[0])
        r = self.rows[self.done : self.done + n]
        self.done += n
        slope = sum(
            (g * d.index_select(0, r.to(d.device))).flatten(1).sum(1).double()
            for g, d in zip(grads, self.diffs, strict=True)
        )
        self.parts.append(torch.as_tensor(slope).cpu())
        return grads


def _integrate(engine: Engine, recorder: Recorder, hosts: Hosts) -> tuple[torch.Tensor, ...]:
    """Σ length × gradient at the midpoint, per example, after checking each host is
    what the recorded patterns say: affine in each region, continuous."""
    problem = engine.problem
    diffs = engine.diffs
    override = None
    if hosts.mean is not None:
        module = recorder.calls[-1][0]
        every = sum(m is module for m, _ in recorder.calls)
        override = Override(module, every, hosts.mean, hosts.bend_host, hosts.bend_element)
    slopes = _Slopes(diffs, hosts.row)
    length = hosts.e - hosts.s
    try:
        result = engine.gradients(hosts.row, (hosts.s + hosts.e) / 2, length, transform=slopes)
    finally:
        if override is not None:
            override.remove()
    slope, f_mid = torch.cat(slopes.parts), result.outputs.double().cpu()
    # The rise of F over each half of a host: the mean slope times the half length, but
    # the half's own mean derivative in the last call (c · Δ derivative ⊙ its input's rise).
    half = slope * length / 2
    lean = torch.zeros_like(half)
    if override is not None and hosts.bend.numel():
        lean.index_add_(0, hosts.bend_host, (override.kept.double() * hosts.bend).cpu() / 2)
    off = torch.maximum(
        (f_mid - hosts.fs - (half + lean)).abs(), (hosts.fe - f_mid - (half - lean)).abs()
    )
    # Tolerance: ulps of the largest |F| and |dF/dα| seen on the example's path.
    steep = slope.abs() + 2 * lean.abs() / length
    size = torch.stack([hosts.fs.abs(), hosts.fe.abs(), f_mid.abs(), steep]).amax(0)
    zeros = torch.zeros(problem.batch, dtype=torch.float64)
    scale = zeros.scatter_reduce(0, hosts.row, size, "amax")
    tol = _CHECK_TOL * torch.finfo(problem.inputs[0].dtype).eps * scale[hosts.row]
    bad = (off > tol).nonzero().squeeze(1)
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            "method='exact' needs a piecewise-linear model, but the output is not linear "
            f"on a segment where every activation module keeps its pattern (example "
            f"{int(hosts.row[i])}, alpha in [{float(hosts.s[i]):.6g}, {float(hosts.e[i]):.6g}], "
            f"off by {float(off[i]):.3g}): forward probably applies a nonlinearity that is not "
            "a module (torch.sigmoid, F.relu, ...); use modules such as nn.ReLU, nn.MaxPool2d"
        )
    return result.sums
