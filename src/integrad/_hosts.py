"""Hosts: exact mode's final segments, one gradient each (:mod:`integrad.exact`).

A segment whose regions differ only in the last recorded module call (ReLU-like) needs
one gradient: at its midpoint, with that call's derivative replaced by its mean over the
segment (:func:`to_hosts` computes it, :class:`Override` applies it in the gradient pass
and keeps the gradient reaching the call's output, for the linearity check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from ._hooks import scoped
from ._regions import Kinks, Recorder, Segments, Store


@dataclass(frozen=True)
class Hosts:
    """Final segments, each to take one gradient at its midpoint: F known at both ends.

    A host may span several regions that differ only in the last recorded call (a
    ReLU-like one). The gradient pass then uses ``mean``, that call's derivative
    averaged over the host per element (None when the last call is no ReLU-like one).
    Each element ``bend_element`` of host ``bend_host`` that crosses a kink there has
    ``bend``: its input's rise over the host times the change of its mean derivative
    from the whole host to its first half, for the linearity check.
    """

    row: torch.Tensor
    s: torch.Tensor
    e: torch.Tensor
    fs: torch.Tensor
    fe: torch.Tensor
    mean: torch.Tensor | None
    bend_host: torch.Tensor
    bend_element: torch.Tensor
    bend: torch.Tensor

    @staticmethod
    def cat(parts: list[Hosts]) -> Hosts:
        start = torch.tensor([0] + [int(p.row.numel()) for p in parts[:-1]]).cumsum(0)
        means = [p.mean for p in parts if p.mean is not None]
        return Hosts(
            torch.cat([p.row for p in parts]),
            torch.cat([p.s for p in parts]),
            torch.cat([p.e for p in parts]),
            torch.cat([p.fs for p in parts]),
            torch.cat([p.fe for p in parts]),
            torch.cat(means) if means else None,
            torch.cat([p.bend_host + int(o) for p, o in zip(parts, start, strict=True)]),
            torch.cat([p.bend_element for p in parts]),
            torch.cat([p.bend for p in parts]),
        )


def to_hosts(
    recorder: Recorder,
    store: Store,
    ends: Segments,
    spread: bool,
    cross: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
) -> Hosts:
    """Hosts ``ends``, whose elements ``cross = (host, element, t)`` cross a kink of the
    last recorded call at ``t``; if ``spread``, that call's derivative averaged over each.

    Each element's input is affine on a host: its mean derivative is the derivative at
    the host's midpoint unless it crosses a kink there, and then the length-weighted
    sum over its own pieces.
    """
    empty = torch.zeros(0, dtype=torch.long)
    if not spread:
        return Hosts(ends.row, ends.s, ends.e, ends.fs, ends.fe, None, empty, empty, empty)
    (module, called), shape, data = recorder.calls[-1], recorder.shapes[-1], store[-1]
    kind = cast(Kinks, called)  # spread: the last call is ReLU-like
    z = data[0]
    u0, u1 = z.index_select(0, ends.ps.to(z.device)), z.index_select(0, ends.pe.to(z.device))
    if cross is None or not cross[0].numel():
        mean = derivative(module, u0.add_(u1).mul_(0.5), shape)
        return Hosts(ends.row, ends.s, ends.e, ends.fs, ends.fe, mean, empty, empty, empty)
    h, q, t = cross
    h, t = h.to(z.device), t.to(z.device)
    if len(kind.at) > 1:  # an element may cross two kinks: in order along the path
        order = torch.argsort(t, stable=True)
        order = order[torch.argsort((h * z.shape[1] + q)[order], stable=True)]
        h, q, t = h[order], q[order], t[order]
    head = torch.ones_like(h, dtype=torch.bool)
    head[1:] = (h[1:] != h[:-1]) | (q[1:] != q[:-1])
    tail = head.roll(-1)
    group = torch.cumsum(head, 0) - 1
    a, b = u0[h, q], u1[h, q]
    mean = derivative(module, u0.add_(u1).mul_(0.5), shape)

    # Per crossing element, its mean derivative over the whole host and its first half.
    end = torch.tensor([[1.0], [0.5]], dtype=torch.float64, device=t.device)
    cut = torch.minimum(t.clamp(min=0.0), end)
    prev = torch.where(head, 0.0, cut.roll(1, 1))
    on = torch.lerp(a, b, torch.cat([prev + cut, cut + end]).to(a) / 2)
    slope = derivative(module, on, shape, q.expand(4, -1)).double()
    total = (cut - prev) * slope[:2] + torch.where(tail, (end - cut) * slope[2:], 0.0)
    sums = torch.zeros(2, int(group[-1]) + 1, dtype=torch.float64, device=t.device)
    whole, half = sums.index_add_(1, group, total).div_(end)
    hh, qq = h[head], q[head]
    mean[hh, qq] = whole.to(mean)
    bend = (half - whole).double() * (b - a)[head].double()
    return Hosts(ends.row, ends.s, ends.e, ends.fs, ends.fe, mean, hh.cpu(), qq, bend)


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
