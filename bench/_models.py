"""Models and inputs shared by the bench scripts (untrained weights: speed and memory only)."""

from __future__ import annotations

import torch
from torch import nn

from integrad import demo


def cnn64(seed: int = 0, size: int = 64) -> nn.Module:
    """A 3×64×64 CNN with BatchNorm, in eval mode: the memory target's model (or 3×size×size)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (size // 4) ** 2, 10),
    ).eval()


def digits_cnn(seed: int = 0) -> nn.Module:
    """The demo's model (``integrad.demo.digits_cnn``): a small CNN on 1×8×8 digits."""
    torch.manual_seed(seed)
    return demo.digits_cnn().eval()


def mlp(seed: int = 0, features: int = 30) -> nn.Module:
    """A tabular GELU MLP."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(features, 64),
        nn.GELU(),
        nn.Linear(64, 64),
        nn.GELU(),
        nn.Linear(64, 2),
    ).eval()


CASES = {
    "cnn64": (cnn64, (4, 3, 64, 64)),
    "digits_cnn": (digits_cnn, (16, 1, 8, 8)),
    "mlp": (mlp, (64, 30)),
}


def case(name: str) -> tuple[nn.Module, torch.Tensor]:
    make, shape = CASES[name]
    g = torch.Generator().manual_seed(1)
    return make(), torch.rand(shape, generator=g)
