"""What exact mode records of a piecewise-linear network (:mod:`integrad.exact`).

:class:`Recorder` hooks every ReLU-like module (the side of its kinks each input element
is on) and MaxPool (which elements of each window are maximal) during the forward passes
that locate the switching points. :class:`Override` hooks the last recorded module call
during the gradient pass, replacing its elementwise derivative by a given one (the
length-weighted mean over the regions a segment crosses) and keeping the gradient that
reaches its output, for the linearity check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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

    def take(self, n: int) -> list[Data]:
        """This chunk's records, one per module call; the calls must repeat."""
        calls = [(m, kind) for m, kind, _ in self.chunk]
        if not self.calls:
            self.calls = calls
            self.shapes = [z.shape[1:] for _, _, z in self.chunk]
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
            out.append(kind.record(z.flatten(1) if isinstance(kind, Kinks) else z))
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def derivative(
    module: nn.Module, z: torch.Tensor, shape: torch.Size, element: torch.Tensor | None = None
) -> torch.Tensor:
    """A ReLU-like module's derivative at inputs ``z`` (overwritten): flattened points of
    ``shape``, or single values of the flattened elements ``element``.

    As PyTorch's backward defines it, also on a kink (ReLU: 0 at 0; Hardtanh: 0 at
    its bounds; Softshrink: 0 at ±lambd); PReLU's slopes are per channel (dim 1).
    """

    def above(v: torch.Tensor) -> torch.Tensor:  # 1 where v > 0, else 0 (fast on CPU)
        return v.sign_().clamp_(min=0)

    if isinstance(module, nn.ReLU):
        return above(z)
    if isinstance(module, (nn.LeakyReLU, nn.RReLU, nn.PReLU)):
        if isinstance(module, nn.LeakyReLU):
            slope: float | torch.Tensor = module.negative_slope
        elif isinstance(module, nn.RReLU):  # eval mode (check_model): the mean slope
            slope = (module.lower + module.upper) / 2
        else:
            slope = module.weight.detach().to(z)
            if slope.numel() > 1:
                slope = slope.view(-1, *[1] * (len(shape) - 1)).expand(shape).flatten()
                slope = slope if element is None else slope[element.to(slope.device)]
        return above(z).mul_(1 - slope).add_(slope)
    if isinstance(module, nn.Hardtanh):
        return above(module.max_val - z).mul_(above(z.sub_(module.min_val)))
    if isinstance(module, nn.Softshrink):
        return above(-module.lambd - z).add_(above(z.sub_(module.lambd)))
    raise TypeError(f"integrad internal error: {type(module).__name__} is not ReLU-like")


class _Through(torch.autograd.Function):
    """``v``'s value, with ``slopes ⊙`` the output gradient as the gradient of ``u``."""

    @staticmethod
    def forward(
        ctx: Any, u: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor, seen: Override
    ) -> torch.Tensor:
        ctx.slopes, ctx.seen, ctx.start = slopes, seen, seen.done - int(u.shape[0])
        return v.view_as(v)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ctx.seen.reached(ctx.start, grad)
        return grad * ctx.slopes, None, None, None


class Override:
    """Gradient-pass hooks on the last recorded call of ``module``, the ``every``-th call.

    Its output keeps its value, but its derivative becomes ``slopes`` (one flattened
    row per point, in the order the points come). The gradient that reaches that output
    is kept at the flattened elements ``element`` of the points ``point`` (:attr:`kept`;
    0 where none reaches). Open inside :func:`~integrad._hooks.call_scope`.
    """

    def __init__(
        self,
        module: nn.Module,
        every: int,
        slopes: torch.Tensor,
        point: torch.Tensor,
        element: torch.Tensor,
    ) -> None:
        self.every, self.slopes, self.calls, self.done = every, slopes, 0, 0
        self.point, self.element = point.to(slopes.device), element.to(slopes.device)
        self.kept = torch.zeros(int(point.numel()), dtype=slopes.dtype, device=slopes.device)
        self.u: torch.Tensor | None = None
        self.handles = [module.register_forward_pre_hook(scoped(self._pre))]
        try:
            self.handles.append(module.register_forward_hook(scoped(self._post)))
        except BaseException:
            self.remove()
            raise

    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        self.calls += 1
        if self.calls % self.every:
            return None
        self.u = args[0]
        x = args[0].detach()
        # The module computes the value only; its gradient comes from the slopes.
        return (x.clone() if getattr(module, "inplace", False) else x, *args[1:])

    def _post(self, module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> Any:
        if self.calls % self.every or self.u is None:
            return None
        u, self.u = self.u, None
        n = int(u.shape[0])
        slopes = self.slopes[self.done : self.done + n].view_as(u)
        self.done += n
        if not u.requires_grad:
            return None
        return _Through.apply(u, out, slopes, self)

    def reached(self, start: int, grad: torch.Tensor) -> None:
        """The gradient at the output of the points from ``start`` on, during backward."""
        mine = ((self.point >= start) & (self.point < start + int(grad.shape[0]))).nonzero()
        at = mine.squeeze(1)
        flat = grad.detach().flatten(1)
        self.kept[at] = flat[self.point[at] - start, self.element[at]]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
