"""Synthetic ground truth: when the relevant features are known, how much attribution lands there?

Build a task whose target depends on known features only (``sensor_series``: the
demo's three sensors, the target reads a window of sensor 0 and one of sensor 1;
sensor 2 is noise), train or build a model on it, explain, and measure

* relevance mass (Arras et al., 2022): the share of ``|attribution|`` on the relevant
  features; chance is their share of all features;
* relevance rank: the share of the ``k`` largest ``|attributions|`` that are relevant,
  ``k`` the number of relevant features.

A model can ignore part of the ground truth, so these bound the method only together
with a model known to use it (a linear model with zero weights elsewhere, exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._common import as_tuple

__all__ = ["GroundTruthCheck", "ground_truth_check", "sensor_series"]


@dataclass
class GroundTruthCheck:
    """Per example: how the attributions sit on the known relevant features."""

    mass: torch.Tensor
    """Shape ``(batch,)``: share of ``|attribution|`` on the relevant features (0 to 1)."""
    rank: torch.Tensor
    """Shape ``(batch,)``: share of the top-``k`` features by ``|attribution|`` that are
    relevant, ``k`` = number of relevant features (ties keep the feature order)."""
    chance: float
    """The relevant features' share of all features: both scores of random attributions."""


def ground_truth_check(attributions: Any, relevant: Any) -> GroundTruthCheck:
    """Relevance mass and rank accuracy of ``attributions`` against a ``relevant`` mask.

    ``relevant`` is a bool tensor (or tuple, like the attributions) shaped like one
    example (shared by all) or like the attributions (per example). ``attributions``
    may be an :class:`~integrad.Explanation`.

    >>> import torch
    >>> check = ground_truth_check(torch.tensor([[3.0, -1.0, 0.0, 0.0]]),
    ...                            torch.tensor([True, False, False, False]))
    >>> check.mass.tolist(), check.rank.tolist(), check.chance
    ([0.75], [1.0], 0.25)
    """
    attrs = as_tuple(attributions, "attributions")
    masks = as_tuple(relevant, "relevant")
    if len(masks) != len(attrs):
        raise ValueError(
            f"relevant has {len(masks)} tensor(s) but the attributions have {len(attrs)}"
        )
    batch = attrs[0].shape[0]
    flat_masks = []
    for i, (a, m) in enumerate(zip(attrs, masks, strict=True)):
        name = f"relevant[{i}]" if len(attrs) > 1 else "relevant"
        if m.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor, got dtype {m.dtype}")
        if m.shape == a.shape[1:]:
            m = m.expand(a.shape)
        elif m.shape != a.shape:
            raise ValueError(
                f"{name} has shape {tuple(m.shape)}; it must be one example's "
                f"{tuple(a.shape[1:])} or the attributions' {tuple(a.shape)}"
            )
        flat_masks.append(m.reshape(batch, -1).to(a.device))
    size = torch.cat([a.detach().reshape(batch, -1).abs().double() for a in attrs], 1)
    mask = torch.cat(flat_masks, 1)
    k = mask.sum(1)
    if bool((k == 0).any()):
        raise ValueError("relevant marks no feature for some example: nothing to measure")
    total = size.sum(1)
    mass = torch.where(total > 0, (size * mask).sum(1) / total.clamp(min=1e-300), 0.0)
    order = torch.argsort(-size, dim=1, stable=True)
    top = torch.arange(size.shape[1], device=size.device)[None, :] < k[:, None]
    rank = (mask.gather(1, order) & top).sum(1).double() / k.double()
    chance = float(k.double().mean()) / size.shape[1]
    return GroundTruthCheck(mass.cpu(), rank.cpu(), chance)


def sensor_series(
    n: int, steps: int = 48, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The demo's sensor task: ``(x, y, relevant)``, ``x`` of shape ``(n, steps, 3)``.

    Three random walks; ``y`` is the mean of sensor 0 over steps 30..35 minus that of
    sensor 1 over steps 8..13, so ``relevant`` (``(steps, 3)``, bool) marks those 12
    features; sensor 2 never matters.
    """
    if steps < 36:
        raise ValueError(f"steps must be >= 36 (the target reads steps 30..35), got {steps}")
    noise = torch.randn(n, steps, 3, generator=generator)
    x = torch.cumsum(noise, dim=1) / steps**0.5
    y = x[:, 30:36, 0].mean(1) - x[:, 8:14, 1].mean(1)
    relevant = torch.zeros(steps, 3, dtype=torch.bool)
    relevant[30:36, 0] = True
    relevant[8:14, 1] = True
    return x, y, relevant
