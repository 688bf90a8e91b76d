"""Shared test models: small, deterministic, float64 where exactness is the point."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TwoInputs(nn.Module):
    """Tuple inputs, a batched extra tensor, a non-tensor extra flag and a 3-d output."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(5, 8, generator=g))
        self.b = nn.Parameter(torch.randn(6, 8, generator=g))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, shaped: bool = True
    ) -> torch.Tensor:
        h = torch.tanh(x @ self.a + y.flatten(1) @ self.b) * scale
        return h.view(-1, 2, 4) if shaped else h


@pytest.fixture
def two_inputs() -> TwoInputs:
    return TwoInputs().double()


def smooth_mlp(seed: int = 0, features: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Linear(features, 16),
            nn.Tanh(),
            nn.Linear(16, 16),
            nn.Softplus(),
            nn.Linear(16, classes),
        )
        .double()
        .eval()
    )


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    ).eval()
