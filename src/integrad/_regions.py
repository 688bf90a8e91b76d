"""What exact mode records of a piecewise-linear network (:mod:`integrad.exact`).

:class:`Recorder` hooks every ReLU-like module (the side of its kinks each input element
is on) and MaxPool (which elements of each window are maximal) during the forward passes
that locate the switching points; :class:`Segments` are the pieces of the paths between
recorded points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn
from torch.nn.modules import pooling

from ._hooks import scoped

PATTERN_TOL = 64
"""Elements within this many ulps of the layer's scale of a kink count as on it."""

Data = tuple[torch.Tensor, ...]
"""What one module call recorded at a batch of points (first dimension: the points)."""


def kinks(module: nn.Module) -> tuple[float, ...] | None:
    """Where an elementwise piecewise-linear module bends; None for other modules."""
    if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.RReLU)):
        return (0.0,)
    if isinstance(module, nn.Hardtanh):  # also ReLU6
        return (float(module.min_val), float(module.max_val))
    if isinstance(module, nn.Softshrink):
        return (-float(module.lambd), float(module.lambd))
    return None


def _tolerance(scale: torch.Tensor) -> torch.Tensor:
    info = torch.finfo(scale.dtype)
    return (PATTERN_TOL * info.eps * scale.clamp_min(info.tiny)).unsqueeze(-1)


@dataclass(frozen=True)
class Kinks:
    """A ReLU-like module: the side of each kink that every input element is on."""

    at: tuple[float, ...]

    def record(self, z: torch.Tensor) -> Data:
        """``(inputs, sides)``: -1 / +1 clearly below / above a kink, 0 on it (tolerance)."""
        # The largest |z| per point, without a copy of z (aminmax: slower on CPU).
        top = torch.maximum(-z.amin(1), z.amax(1))
        tol = _tolerance(top.clamp_min(max(abs(v) for v in self.at)))
        if self.at == (0.0,):  # ReLU, LeakyReLU, PReLU: no copy of z shifted by 0
            return z, (z > tol).view(torch.int8) - (z < -tol).view(torch.int8)
        d = z.unsqueeze(-1) - torch.tensor(self.at, dtype=z.dtype, device=z.device)
        tol = tol.unsqueeze(-1)
        sides = (d > tol).view(torch.int8) - (d < -tol).view(torch.int8)
        return z, sides.flatten(1)

    def opposite(self, data: Data, ps: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        """Per segment ``(ps, pe)``, negative at the elements clearly on opposite sides of
        a kink at its two ends. Where none is, the segment lies in one closed piece of
        every element."""
        sides = data[1]
        ps, pe = ps.to(sides.device), pe.to(sides.device)
        return sides.index_select(0, ps) * sides.index_select(0, pe)

    def crossings(
        self, data: Data, ps: torch.Tensor, pe: torch.Tensor, opposite: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(segment, element, t)`` for every kink crossed (``opposite`` of these
        segments): where on the segment, as a fraction; by segment, then element."""
        z = data[0]
        ps, pe = ps.to(z.device), pe.to(z.device)
        i, q = (opposite < 0).nonzero(as_tuple=True)
        k = len(self.at)
        if k == 1:
            ds, de = z[ps[i], q].double() - self.at[0], z[pe[i], q].double() - self.at[0]
            return i, q, ds / (ds - de)
        at = torch.tensor(self.at, dtype=torch.float64, device=z.device)[q % k]
        ds = z[ps[i], q // k].double() - at
        de = z[pe[i], q // k].double() - at
        return i, q // k, ds / (ds - de)


@dataclass(frozen=True)
class Windows:
    """A MaxPool module: which elements of each window are (within tolerance) its maximum."""

    def record(self, w: torch.Tensor) -> Data:
        """``(windows, near-maximal elements, argmax)`` for windows ``(n, M, K)``."""
        top, argmax = w.max(-1)
        near = w >= top.unsqueeze(-1) - _tolerance(top.abs().amax(1)).unsqueeze(-1)
        return w, near, argmax

    def opposite(self, data: Data, ps: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        """Per segment ``(ps, pe)``, negative at the windows without a maximiser shared by
        both ends. Regions are convex: a maximiser shared by both ends is the maximum all
        along."""
        near = data[1]
        ps, pe = ps.to(near.device), pe.to(near.device)
        shared = (near.index_select(0, ps) & near.index_select(0, pe)).any(-1)
        return shared.view(torch.int8) - 1

    def crossings(
        self, data: Data, ps: torch.Tensor, pe: torch.Tensor, opposite: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(segment, window, t)`` where each end's maximiser j overtakes the start's i."""
        w, _, argmax = data
        ps, pe = ps.to(w.device), pe.to(w.device)
        seg, window = (opposite < 0).nonzero(as_tuple=True)
        i, j = argmax[ps[seg], window].unsqueeze(-1), argmax[pe[seg], window].unsqueeze(-1)
        ws, we = w[ps[seg], window].double(), w[pe[seg], window].double()
        gap_s = (ws.gather(-1, i) - ws.gather(-1, j)).squeeze(-1)
        gap_e = (we.gather(-1, i) - we.gather(-1, j)).squeeze(-1)
        return seg, window, gap_s / (gap_s - gap_e)


def pool_windows(pool: nn.Module, u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
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


class Recorder:
    """Hooks that record each piecewise-linear module call's input, one chunk at a time.

    Open it inside :func:`~integrad._hooks.call_scope`; :meth:`remove` the hooks after.
    """

    def __init__(self, model: nn.Module) -> None:
        self.calls: list[tuple[nn.Module, Kinks | Windows]] = []
        """Per module call of one forward pass, in order: the module and what it records."""
        self.shapes: list[torch.Size] = []
        """Per call, the shape of one point's input (a ReLU-like module's, unflattened)."""
        self.chunk: list[tuple[nn.Module, Kinks | Windows, torch.Tensor]] = []
        self.handles: list[Any] = []
        try:
            for m in model.modules():
                at = kinks(m)
                if isinstance(m, pooling._MaxPoolNd):
                    self.handles.append(m.register_forward_hook(scoped(self._pool)))
                elif at is not None:
                    # Before the call: an in-place ReLU overwrites its input.
                    hook = self._kinked(m, Kinks(at))
                    self.handles.append(m.register_forward_pre_hook(scoped(hook)))
        except BaseException:
            self.remove()
            raise

    def _kinked(self, m: nn.Module, kind: Kinks) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            z = args[0].detach()
            self.chunk.append((module, kind, z.clone() if getattr(module, "inplace", 0) else z))

        return hook

    def _pool(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        out = out[0] if isinstance(out, tuple) else out
        self.chunk.append((module, Windows(), pool_windows(module, args[0].detach(), out)))

    def begin(self) -> None:
        self.chunk = []

    def take(self, n: int, skip: int = 0) -> list[Data]:
        """This chunk's records, one per module call (empty for the first ``skip``, which
        no segment compares any more); the calls must repeat."""
        calls = [(m, kind) for m, kind, _ in self.chunk]
        if not self.calls:
            self.calls = calls
            self.shapes = [z.shape[1:] for _, _, z in self.chunk]
        if [m for m, _ in calls] != [m for m, _ in self.calls]:
            raise ValueError(
                "method='exact' needs the model to call the same activation modules on every "
                "forward pass; the calls changed between path points"
            )
        out: list[Data] = []
        for i, (m, kind, z) in enumerate(self.chunk):
            if z.shape[0] != n:
                raise ValueError(
                    f"method='exact': {type(m).__name__} received {z.shape[0]} rows for a "
                    f"batch of {n} path points; the model must keep the batch dimension first"
                )
            flat = z.flatten(1) if isinstance(kind, Kinks) else z
            out.append(() if i < skip else kind.record(flat))
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


Store = list[Data]
"""Per recorded module call, what it recorded at every stored point."""


@dataclass(frozen=True)
class Segments:
    """Path segments ``[s, e]`` of examples ``row``: ends' point ids in the store, F there,
    and ``known``, how many leading module calls agree on the whole segment. Packed in two
    tensors so that selecting segments is two index operations."""

    ints: torch.Tensor
    """``(n, 4)`` long: row, ps, pe, known."""
    reals: torch.Tensor
    """``(n, 4)`` float64: s, e, fs, fe."""

    @staticmethod
    def of(
        row: torch.Tensor,
        s: torch.Tensor,
        e: torch.Tensor,
        ps: torch.Tensor,
        pe: torch.Tensor,
        fs: torch.Tensor,
        fe: torch.Tensor,
        known: torch.Tensor,
    ) -> Segments:
        return Segments(torch.stack([row, ps, pe, known], 1), torch.stack([s, e, fs, fe], 1))

    def __len__(self) -> int:
        return int(self.ints.shape[0])

    @cached_property
    def _columns(self) -> tuple[torch.Tensor, ...]:
        return (*self.ints.unbind(1), *self.reals.unbind(1))

    row = property(lambda self: self._columns[0])
    ps = property(lambda self: self._columns[1])
    pe = property(lambda self: self._columns[2])
    known = property(lambda self: self._columns[3])
    s = property(lambda self: self._columns[4])
    e = property(lambda self: self._columns[5])
    fs = property(lambda self: self._columns[6])
    fe = property(lambda self: self._columns[7])

    def take(self, index: torch.Tensor) -> Segments:
        """The segments at ``index`` (indices, not a mask)."""
        return Segments(self.ints.index_select(0, index), self.reals.index_select(0, index))

    @staticmethod
    def cat(parts: list[Segments]) -> Segments:
        return Segments(torch.cat([p.ints for p in parts]), torch.cat([p.reals for p in parts]))
