"""IDGI: Integrated Decision Gradients' noise-reduced path integral (Yang, Wang, Bilgic 2023).

Along the straight path with nodes ``α_j = j/n`` (j = 0..n), IDGI credits the observed
change of the output between consecutive nodes, ``Δf_j = f(α_{j+1}) − f(α_j)``, to the
features in proportion to their squared gradient at ``α_j``:

    attr += g_j² · Δf_j / Σ_i g_{j,i}²

so the attributions sum to ``f(x) − f(x')`` exactly (the Δf telescope) at any n. Cost:
n forward+backward evaluations plus n+1 forward-only ones. Because completeness holds
by construction, the delta says nothing about accuracy here.
"""

from __future__ import annotations

import torch

from ._engine import Engine
from .quadrature import rule


def idgi(
    engine: Engine, n_steps: int
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    """``(attributions, F(x), F(x'))`` by IDGI with ``n_steps`` intervals, on ``engine``."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int for method='idgi', got {n_steps!r}")
    batch = engine.problem.batch
    # Node-major, as the integrating rules; the trapezoid's n + 1 nodes are j/n, the left
    # rule's n nodes j/n for j < n. Only the output changes (one number per point) are held.
    nodes = rule("riemann_trapezoid", n_steps + 1)
    values = engine.outputs_along(nodes).reshape(n_steps + 1, batch)
    change = (values[1:] - values[:-1]).reshape(-1).double()
    sums = engine.integrate(
        rule("riemann_left", n_steps), weights=change, transform=_share_of_squares
    )
    return sums, values[-1], values[0]


def _share_of_squares(grads: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Each point's squared gradient over its total, across every input; 0 where all vanish."""
    squares = tuple(g * g for g in grads)
    total = sum(s.reshape(s.shape[0], -1).sum(dim=1) for s in squares)
    assert isinstance(total, torch.Tensor)
    inverse = torch.where(total > 0, 1.0 / total, torch.zeros_like(total))
    return tuple(s * inverse.view(-1, *([1] * (s.dim() - 1))) for s in squares)
