"""ROAD's noisy linear imputation (Rong et al., 2022): removal that leaks less through its shape.

Replacing removed pixels by a constant leaves the removal mask visible, and a model can
read the mask itself (the attribution's shape) instead of the missing information.
ROAD fills each removed pixel with the weighted mean of its eight neighbours (1/6 for
the four direct ones, 1/12 for the diagonals, renormalised at the border), neighbours
that are themselves removed included: a sparse linear system whose solution is the
smoothest fill given the kept pixels; then adds Gaussian noise to the filled pixels.

Here the system is solved matrix-free by conjugate gradients on all image planes of a
chunk at once (the operator is a 3×3 convolution restricted to the removed pixels, and
symmetric positive definite whenever a plane keeps a pixel), in float64, on the inputs'
device. A plane with nothing kept has no unique fill: it gets its own mean. The noise
comes from a ``torch.Generator``, one seed per (example, step), so the curves do not
depend on how the points are chunked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["NoisyLinearImputation", "noisy_linear_impute", "road"]

# Rong et al.'s neighbour weights: 1/6 for the direct neighbours, 1/12 for the diagonals.
_STENCIL = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))


@dataclass(frozen=True)
class NoisyLinearImputation:
    """A ``baselines`` value for :func:`~integrad.metrics.deletion` and ``insertion``."""

    noise: float = 0.01
    """Standard deviation of the Gaussian noise added to the filled pixels (ROAD: 0.01)."""
    generator: torch.Generator | None = None
    """Source of the noise seeds; ``None``: a generator seeded with 0."""


def road(noise: float = 0.01, generator: torch.Generator | None = None) -> NoisyLinearImputation:
    """ROAD removal for deletion/insertion curves: ``baselines=road(0.01, generator)``.

    ``baselines="road"`` is ``road()``: noise 0.01 (ROAD's, for inputs in [0, 1]) from a
    generator seeded with 0.
    """
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return NoisyLinearImputation(float(noise), generator)


def noisy_linear_impute(
    planes: torch.Tensor,
    removed: torch.Tensor,
    noise: float = 0.0,
    seeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fill the ``removed`` pixels of ``(n, H, W)`` planes by ROAD's neighbour system.

    With ``noise > 0``, plane ``i`` adds ``noise`` times standard normal draws from a
    generator seeded with ``seeds[i]`` to its filled pixels. Kept pixels are returned
    unchanged; the result has the planes' dtype.

    >>> import torch
    >>> planes = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 9.0, 3.0], [3.0, 3.0, 3.0]]])
    >>> removed = torch.zeros(1, 3, 3, dtype=torch.bool)
    >>> removed[0, 1, 1] = True
    >>> noisy_linear_impute(planes, removed)[0, 1, 1].item()  # (1/6)(3+3) + (1/12)(3+3)
    1.5
    """
    if planes.dim() != 3 or removed.shape != planes.shape:
        raise ValueError(
            f"planes must be (n, H, W) and removed the same shape; got {tuple(planes.shape)} "
            f"and {tuple(removed.shape)}"
        )
    x = planes.double()
    hole = removed.to(device=x.device, dtype=torch.bool)
    kernel = torch.tensor(_STENCIL, dtype=torch.float64, device=x.device)[None, None]

    def neighbours(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v[:, None], kernel, padding=1)[:, 0]

    holes = hole.double()
    # In-bounds weight per pixel: 1 inside, less at the border.
    total = neighbours(torch.ones_like(x[:1]))
    rhs = neighbours(torch.where(hole, 0.0, x)) * holes

    def system(v: torch.Tensor) -> torch.Tensor:
        return (total * v - neighbours(v)) * holes

    filled = _conjugate_gradients(system, rhs, int(hole.flatten(1).sum(1).max()))
    empty = ~(~hole).flatten(1).any(1)
    if bool(empty.any()):
        # Nothing kept: every constant solves the system; take the plane's own mean.
        filled[empty] = x[empty].mean(dim=(1, 2), keepdim=True).expand_as(x[empty])
    if noise > 0:
        if seeds is None or seeds.shape != (x.shape[0],):
            raise ValueError(f"noise needs one seed per plane: seeds of shape ({x.shape[0]},)")
        draws = torch.empty_like(x)
        for i, seed in enumerate(seeds.tolist()):
            g = torch.Generator(device=x.device).manual_seed(int(seed))
            draws[i] = torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=x.device)
        filled = filled + noise * draws
    return torch.where(hole, filled, x).to(planes.dtype)


def _conjugate_gradients(
    system: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    max_iterations: int,
    tolerance: float = 1e-12,
) -> torch.Tensor:
    """Solve ``system(v) = rhs`` for each plane at once (``system`` symmetric positive)."""
    v = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    norm = (residual * residual).flatten(1).sum(1)
    stop = tolerance**2 * norm.clamp(min=1e-300)
    for _ in range(max(1, max_iterations)):
        active = norm > stop
        if not bool(active.any()):
            break
        applied = system(direction)
        curvature = (direction * applied).flatten(1).sum(1)
        step = torch.where(active & (curvature > 0), norm / curvature, 0.0)
        v = v + step[:, None, None] * direction
        residual = residual - step[:, None, None] * applied
        new_norm = (residual * residual).flatten(1).sum(1)
        ratio = torch.where(active, new_norm / norm.clamp(min=1e-300), 0.0)
        direction = residual + ratio[:, None, None] * direction
        norm = new_norm
    return v
