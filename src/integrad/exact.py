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
more than once) and on all before it, so only later modules are compared again; cut at
the last module's switching points, they need no forward pass at all (the model is
affine after it).

Cost per example, with R regions crossed: R forward+backward evaluations (``n_evals``)
and at most about R + 1 forward-only ones (both ends and the switching points of every
module but the last, ``Explanation.n_forward``). Every segment is checked: its affine
model, F at the midpoint ± the midpoint gradient times (e − s)(x − x')/2, must give F at
each end where F was evaluated, and agree with the next segment's at their shared end, to
~1e-12 of the output's scale in float64; a nonlinearity the hooks cannot see
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
>>> exp.attributions, exp.extras["regions"], exp.n_evals
(tensor([[8.]], dtype=torch.float64), tensor([3]), tensor([3]))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules import batchnorm, conv, dropout, padding, pooling

from ._engine import Engine
from ._hooks import call_scope, scoped
from ._modules import is_smooth_module, owner

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
_PATTERN_TOL = 64
"""Elements within this many ulps of the layer's scale of a kink count as on it."""
_CHECK_TOL = 1 << 14
"""Each segment's linearity check allows this many ulps of the output's scale."""
_MAX_ROUNDS = 256


def _kinks(module: nn.Module) -> tuple[float, ...] | None:
    """Where an elementwise piecewise-linear module bends; None for other modules."""
    if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.RReLU)):
        return (0.0,)
    if isinstance(module, nn.Hardtanh):  # also ReLU6
        return (float(module.min_val), float(module.max_val))
    if isinstance(module, nn.Softshrink):
        return (-float(module.lambd), float(module.lambd))
    return None


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
        elif isinstance(m, pooling._MaxPoolNd) or _kinks(m) is not None:
            continue
        elif leaf and not isinstance(m, _AFFINE):
            reason = "is not a known affine or piecewise-linear layer"
        else:
            continue
        raise ValueError(f"method='exact' needs a piecewise-linear model; {where} {reason}")


_Data = tuple[torch.Tensor, ...]
"""What one module call recorded at a batch of points (first dimension: the points)."""


def _tolerance(scale: torch.Tensor) -> torch.Tensor:
    info = torch.finfo(scale.dtype)
    return (_PATTERN_TOL * info.eps * scale.clamp_min(info.tiny)).unsqueeze(-1)


@dataclass(frozen=True)
class _Kinks:
    """A ReLU-like module: the side of each kink that every input element is on."""

    at: tuple[float, ...]

    def record(self, z: torch.Tensor) -> _Data:
        """``(inputs, sides)``: -1 / +1 clearly below / above a kink, 0 on it (tolerance)."""
        tol = _tolerance(z.abs().amax(1).clamp_min(max(abs(v) for v in self.at)))
        if self.at == (0.0,):  # ReLU, LeakyReLU, PReLU: no copy of z shifted by 0
            return z, (z > tol).to(torch.int8) - (z < -tol).to(torch.int8)
        d = z.unsqueeze(-1) - torch.tensor(self.at, dtype=z.dtype, device=z.device)
        tol = tol.unsqueeze(-1)
        sides = (d > tol).to(torch.int8) - (d < -tol).to(torch.int8)
        return z, sides.flatten(1)

    def incompatible(self, data: _Data, ps: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        # Unless an element is clearly on opposite sides of a kink at the two ends, the
        # segment lies in one closed piece of every element.
        return (data[1][ps] * data[1][pe] < 0).any(1)

    def crossings(
        self, data: _Data, ps: torch.Tensor, pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(segment, t)`` for every kink crossed: where on the segment, as a fraction."""
        z, sides = data
        ps, pe = ps.to(z.device), pe.to(z.device)
        i, q = (sides[ps] * sides[pe] < 0).nonzero(as_tuple=True)
        k = len(self.at)
        at = torch.tensor(self.at, dtype=torch.float64, device=z.device)[q % k]
        ds = z[ps[i], q // k].double() - at
        de = z[pe[i], q // k].double() - at
        return i, ds / (ds - de)


@dataclass(frozen=True)
class _Windows:
    """A MaxPool module: which elements of each window are (within tolerance) its maximum."""

    def record(self, w: torch.Tensor) -> _Data:
        """``(windows, near-maximal elements, argmax)`` for windows ``(n, M, K)``."""
        top, argmax = w.max(-1)
        near = w >= top.unsqueeze(-1) - _tolerance(top.abs().amax(1)).unsqueeze(-1)
        return w, near, argmax

    def incompatible(self, data: _Data, ps: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        # Regions are convex: a maximiser shared by both ends is the maximum all along.
        return self._unshared(data, ps, pe).any(1)

    @staticmethod
    def _unshared(data: _Data, ps: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        return ~(data[1][ps] & data[1][pe]).any(-1)

    def crossings(
        self, data: _Data, ps: torch.Tensor, pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(segment, t)`` where each end's maximiser j overtakes the start's maximiser i."""
        w, _, argmax = data
        ps, pe = ps.to(w.device), pe.to(w.device)
        seg, window = self._unshared(data, ps, pe).nonzero(as_tuple=True)
        i, j = argmax[ps[seg], window].unsqueeze(-1), argmax[pe[seg], window].unsqueeze(-1)
        ws, we = w[ps[seg], window].double(), w[pe[seg], window].double()
        gap_s = (ws.gather(-1, i) - ws.gather(-1, j)).squeeze(-1)
        gap_e = (we.gather(-1, i) - we.gather(-1, j)).squeeze(-1)
        return seg, gap_s / (gap_s - gap_e)


def _pool_windows(pool: nn.Module, u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``(n, windows, window size)``: the inputs of every max of a MaxPoolNd, in order."""
    d = 1 if isinstance(pool, nn.MaxPool1d) else 2 if isinstance(pool, nn.MaxPool2d) else 3
    if u.dim() != d + 2:
        raise ValueError(
            f"method='exact': {type(pool).__name__} got an input of shape {tuple(u.shape)}; "
            "the model must keep the batch dimension first"
        )
    size = [int(v) for v in out.shape[2:]]

    def each(v: Any) -> list[int]:
        return [int(a) for a in (v if isinstance(v, (tuple, list)) else [v] * d)]

    k, p, dil = each(pool.kernel_size), each(pool.padding), each(pool.dilation)
    s = each(pool.stride or pool.kernel_size)
    pads: list[int] = []
    for i in reversed(range(d)):
        span = (size[i] - 1) * s[i] + (k[i] - 1) * dil[i] + 1
        pads += [p[i], max(p[i], span - u.shape[2 + i] - p[i])]
    w = nn.functional.pad(u, pads, value=-torch.inf)
    for i in range(d):
        w = w.unfold(2 + i, (k[i] - 1) * dil[i] + 1, s[i])
    step: list[Any] = [Ellipsis, *(slice(None, None, v) for v in dil)]
    crop: list[Any] = [slice(None), slice(None), *(slice(0, v) for v in size)]
    return w[tuple(step)][tuple(crop)].reshape(u.shape[0], -1, int(torch.tensor(k).prod()))


class _Recorder:
    """Hooks that record each piecewise-linear module call's input, one chunk at a time."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: list[tuple[nn.Module, _Kinks | _Windows]] = []
        self.chunk: list[tuple[nn.Module, _Kinks | _Windows, torch.Tensor]] = []
        self.handles: list[Any] = []
        try:
            for m in model.modules():
                kinks = _kinks(m)
                if isinstance(m, pooling._MaxPoolNd):
                    self.handles.append(m.register_forward_hook(scoped(self._pool)))
                elif kinks is not None:
                    # Before the call: an in-place ReLU overwrites its input.
                    hook = self._kinked(m, _Kinks(kinks))
                    self.handles.append(m.register_forward_pre_hook(scoped(hook)))
        except BaseException:
            self.remove()
            raise

    def _kinked(self, m: nn.Module, kind: _Kinks) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            z = args[0].detach().flatten(1)
            self.chunk.append((module, kind, z.clone() if getattr(module, "inplace", 0) else z))

        return hook

    def _pool(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        out = out[0] if isinstance(out, tuple) else out
        self.chunk.append((module, _Windows(), _pool_windows(module, args[0].detach(), out)))

    def begin(self) -> None:
        self.chunk = []

    def take(self, n: int) -> list[_Data]:
        """This chunk's records, one per module call; the calls must repeat."""
        calls = [(m, kind) for m, kind, _ in self.chunk]
        if not self.calls:
            self.calls = calls
        if [m for m, _ in calls] != [m for m, _ in self.calls]:
            raise ValueError(
                "method='exact' needs the model to call the same activation modules on every "
                "forward pass; the calls changed between path points"
            )
        out = []
        for m, kind, z in self.chunk:
            if z.shape[0] != n:
                raise ValueError(
                    f"method='exact': {type(m).__name__} received {z.shape[0]} rows for a "
                    f"batch of {n} path points; the model must keep the batch dimension first"
                )
            out.append(kind.record(z))
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


@dataclass(frozen=True)
class _Segments:
    """Path segments ``[s, e]`` of examples ``row``: ends' point ids in the store, F there.

    An end that was never evaluated (a switching point of the last recorded call, see
    :func:`_regions`) has point id -1 and F = NaN.
    """

    row: torch.Tensor
    s: torch.Tensor
    e: torch.Tensor
    ps: torch.Tensor
    pe: torch.Tensor
    fs: torch.Tensor
    fe: torch.Tensor
    known: torch.Tensor
    """Leading module calls whose pattern is known to agree on the whole segment."""

    def take(self, index: torch.Tensor) -> _Segments:
        return _Segments(*(t[index] for t in self.__dict__.values()))

    @staticmethod
    def cat(parts: list[_Segments]) -> _Segments:
        return _Segments(
            *(torch.cat(ts) for ts in zip(*(p.__dict__.values() for p in parts), strict=True))
        )


_Store = list[_Data]
"""Per recorded module call, what it recorded at every stored point."""


def exact(
    engine: Engine, max_regions: int | None = None
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(∫₀¹ ∂F/∂x dα, F(x), F(x'), regions)`` per example, exactly, evaluated on ``engine``.

    ``forward_func`` must have passed :func:`check_model`. With ``max_regions``, None as
    soon as some example is seen to cross more regions (before any gradient is taken).
    """
    with call_scope():  # the recorder ignores other threads' forward passes
        recorder = _Recorder(model_of(engine.problem.forward_func))
        try:
            found = _regions(engine, recorder, max_regions)
        finally:
            recorder.remove()
    if found is None:
        return None
    done, output, baseline_output = found
    grads, regions = _integrate(engine, done)
    return grads, output, baseline_output, regions


def _regions(
    engine: Engine, recorder: _Recorder, max_regions: int | None = None
) -> tuple[_Segments, torch.Tensor, torch.Tensor] | None:
    """Split every example's path until each segment lies in one activation region.

    A segment cut at every switching point of its first differing call agrees on that
    call and every one before it between the cuts, so only the later calls are compared
    again; after the last recorded call the model is affine, so a segment whose first
    difference is there is final once cut, without a forward pass at the cuts.
    """
    batch = engine.problem.batch
    min_len = 64 * torch.finfo(engine.problem.inputs[0].dtype).eps
    rows = torch.arange(batch)
    zero, one = torch.zeros(batch, dtype=torch.float64), torch.ones(batch, dtype=torch.float64)
    store, values = _evaluate(engine, recorder, rows.repeat(2), torch.cat([zero, one]))
    f0, f1 = values[:batch], values[batch:]
    seg = _Segments(rows, zero, one, rows, rows + batch, f0, f1, torch.zeros_like(rows))
    last = len(recorder.calls) - 1
    done = []
    for _ in range(_MAX_ROUNDS):
        first = _first_difference(recorder, store, seg)
        final = (first < 0) | (seg.e - seg.s <= min_len)
        done.append(seg.take(final))
        seg, first = seg.take(~final), first[~final]
        if seg.row.numel() == 0:
            x = engine.problem.inputs[0]
            return _Segments.cat(done), f1.to(x), f0.to(x)
        which, alpha, halved = _switches(recorder, store, seg, first)
        if max_regions is not None:
            rows_seen = torch.cat([*(d.row for d in done), seg.row, seg.row[which]])
            if int(torch.bincount(rows_seen).max()) > max_regions:
                return None
        # A ReLU-like call's input is affine on the segment: every crossing is found. A
        # max-pooling window may change hands more than once: it is compared again.
        whole = torch.tensor([isinstance(kind, _Kinks) for _, kind in recorder.calls])
        known = torch.where(halved | ~whole[first], first, first + 1)
        blind = (first == last) & (known > first)
        cut = blind[which]
        nowhere, unknown = -torch.ones_like(which[cut]), torch.full_like(alpha[cut], torch.nan)
        done.append(_parts(seg, which[cut], alpha[cut], nowhere, unknown, known))
        if bool(blind.all()):
            seg = seg.take(~blind)
            continue
        renumber = torch.cumsum(~blind, 0) - 1
        seg, known = seg.take(~blind), known[~blind]
        which, alpha = renumber[which[~cut]], alpha[~cut]
        new, new_values = _evaluate(engine, recorder, seg.row[which], alpha)
        seg, store = _split(seg, store, which, alpha, new, new_values, known)
    raise ValueError(
        f"method='exact' did not separate the activation regions in {_MAX_ROUNDS} rounds; "
        "the model is probably not piecewise-linear in its inputs"
    )


def _evaluate(
    engine: Engine, recorder: _Recorder, rows: torch.Tensor, alphas: torch.Tensor
) -> tuple[_Store, torch.Tensor]:
    """Recorded module inputs and the target output at path points (forward passes only)."""
    chunks, values = [], []
    for r, value in engine.forward_chunks(rows, alphas, before=recorder.begin):
        chunks.append(recorder.take(int(r.numel())))
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


def _first_difference(recorder: _Recorder, store: _Store, seg: _Segments) -> torch.Tensor:
    """Per segment, the first module call whose pattern differs between its ends (or -1)."""
    first = torch.full((int(seg.row.numel()),), -1)
    open_ = torch.arange(int(seg.row.numel()))
    for c, (_, kind) in enumerate(recorder.calls):
        check = open_[seg.known[open_] <= c]
        if check.numel():
            differs = kind.incompatible(store[c], seg.ps[check], seg.pe[check]).cpu()
            first[check[differs]] = c
            open_ = open_[first[open_] < 0]
    return first


def _switches(
    recorder: _Recorder, store: _Store, seg: _Segments, first: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Switching points ``(segment index, alpha)`` of each segment's first differing call,
    and per segment whether it was halved instead (no switching point found inside).

    Everything before that call agrees at both ends and regions are convex, so the
    call's input is affine on the segment: its kinks are crossed where linear
    interpolation between the ends' values says. Sorted by segment, then alpha.
    """
    found, ts = [], []
    for c in first.unique().tolist():
        sel = (first == c).nonzero().squeeze(1)
        i, t = recorder.calls[c][1].crossings(store[c], seg.ps[sel], seg.pe[sel])
        found.append(sel[i.cpu()])
        ts.append(t.cpu())
    which, t = torch.cat(found), torch.cat(ts)
    alpha = seg.s[which] + t * (seg.e - seg.s)[which]
    inside = (alpha > seg.s[which]) & (alpha < seg.e[which])
    which, alpha = which[inside], alpha[inside]
    # Never expected, but a segment must always shrink: halve one without a crossing.
    lost = torch.ones(int(seg.row.numel()), dtype=torch.bool)
    lost[which] = False
    lost_idx = lost.nonzero().squeeze(1)
    which = torch.cat([which, lost_idx])
    alpha = torch.cat([alpha, (seg.s[lost_idx] + seg.e[lost_idx]) / 2])
    order = torch.argsort(alpha, stable=True)
    which, alpha = which[order], alpha[order]
    order = torch.argsort(which, stable=True)
    which, alpha = which[order], alpha[order]
    # Neurons switching at the same point need one evaluation.
    keep = torch.ones_like(which, dtype=torch.bool)
    keep[1:] = (which[1:] != which[:-1]) | (alpha[1:] > alpha[:-1])
    return which[keep], alpha[keep], lost


def _parts(
    seg: _Segments,
    which: torch.Tensor,
    alpha: torch.Tensor,
    ids: torch.Tensor,
    values: torch.Tensor,
    known: torch.Tensor,
) -> _Segments:
    """Segments ``which`` cut at ``alpha`` (sorted by segment, then alpha), whose new
    points have ids ``ids`` and F ``values``; each part knows ``known[segment]`` calls."""
    head = torch.ones_like(which, dtype=torch.bool)
    head[1:] = which[1:] != which[:-1]
    tail = torch.ones_like(head)
    tail[:-1] = head[1:]
    # One part ends at each new point; it starts at the previous one or the segment's start.
    s = torch.where(head, seg.s[which], alpha.roll(1))
    ps = torch.where(head, seg.ps[which], ids.roll(1))
    fs = torch.where(head, seg.fs[which], values.roll(1))
    parts = _Segments(seg.row[which], s, alpha, ps, ids, fs, values, known[which])
    w = which[tail]
    rest = _Segments(
        seg.row[w], alpha[tail], seg.e[w], ids[tail], seg.pe[w], values[tail], seg.fe[w], known[w]
    )
    return _Segments.cat([parts, rest])


def _split(
    seg: _Segments,
    store: _Store,
    which: torch.Tensor,
    alpha: torch.Tensor,
    new: _Store,
    values: torch.Tensor,
    known: torch.Tensor,
) -> tuple[_Segments, _Store]:
    """Cut the segments at the new points; keep only the points that still bound one."""
    n_old = int(store[0][0].shape[0]) if store else int(torch.cat([seg.ps, seg.pe]).max()) + 1
    out = _parts(seg, which, alpha, n_old + torch.arange(int(which.numel())), values, known)
    kept = torch.cat([out.ps, out.pe]).unique()
    old, fresh = kept[kept < n_old], kept[kept >= n_old] - n_old
    merged = [
        tuple(_cat([a, b], [old, fresh]) for a, b in zip(data, more, strict=True))
        for data, more in zip(store, new, strict=True)
    ]
    remap = torch.searchsorted(kept, torch.stack([out.ps, out.pe]))
    return _Segments(out.row, out.s, out.e, remap[0], remap[1], out.fs, out.fe, out.known), merged


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


def _integrate(engine: Engine, seg: _Segments) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Σ length × gradient at the midpoint, per example, after checking each segment is linear."""
    problem = engine.problem
    diffs = tuple(x - b for x, b in zip(problem.inputs, problem.baselines, strict=True))
    slopes = _Slopes(diffs, seg.row)
    length = seg.e - seg.s
    result = engine.gradients(seg.row, (seg.s + seg.e) / 2, length, transform=slopes)
    slope, f_mid = torch.cat(slopes.parts), result.outputs.double().cpu()
    # Each segment's affine model, F(mid) ± slope × length / 2, must give F where it was
    # evaluated and agree with the next segment's at their shared end (F is continuous).
    order = torch.argsort(seg.s, stable=True)
    order = order[torch.argsort(seg.row[order], stable=True)]
    half = slope * length / 2
    at_s, at_e = f_mid - half, f_mid + half
    off = torch.maximum((at_s - seg.fs).abs().nan_to_num(0), (at_e - seg.fe).abs().nan_to_num(0))
    s_sorted, e_sorted = at_s[order], at_e[order]
    same = seg.row[order][1:] == seg.row[order][:-1]
    joint = torch.where(same, (e_sorted[:-1] - s_sorted[1:]).abs(), 0.0)
    off[order[:-1]] = torch.maximum(off[order[:-1]], joint)
    # Tolerance: ulps of the largest |F| and |dF/dα| seen on the example's path.
    ends = torch.stack([seg.fs.abs(), seg.fe.abs()]).nan_to_num(0)
    size = torch.cat([ends, torch.stack([f_mid.abs(), slope.abs()])]).amax(0)
    scale = torch.zeros(problem.batch, dtype=torch.float64).scatter_reduce(0, seg.row, size, "amax")
    tol = _CHECK_TOL * torch.finfo(problem.inputs[0].dtype).eps * scale[seg.row]
    bad = (off > tol).nonzero().squeeze(1)
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            "method='exact' needs a piecewise-linear model, but the output is not linear "
            f"on a segment where every activation module keeps its pattern (example "
            f"{int(seg.row[i])}, alpha in [{float(seg.s[i]):.6g}, {float(seg.e[i]):.6g}], off "
            f"by {float(off[i]):.3g}): forward probably applies a nonlinearity that is not a "
            "module (torch.sigmoid, F.relu, ...); use modules such as nn.ReLU, nn.MaxPool2d"
        )
    return result.sums, torch.bincount(seg.row, minlength=problem.batch)
