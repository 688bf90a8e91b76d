"""The result of an attribution: attributions with their certificate and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ._inputs import TensorOrTuple


@dataclass
class Explanation:
    """Attributions of one batch, with the completeness check and how they were made.

    ``delta`` is Captum's convergence delta, per example and signed:
    ``sum(attributions) - (output - baseline_output)``. It is always computed from
    the integrated gradients multiplied by ``inputs - baselines``, so it stays a true
    completeness check even when ``multiply_by_inputs=False``.
    """

    attributions: TensorOrTuple
    """Same structure and shapes as ``inputs``."""
    delta: torch.Tensor
    """Shape ``(batch,)``: sum of attributions minus ``output - baseline_output``."""
    output: torch.Tensor
    """Shape ``(batch,)``: the target output F(x)."""
    baseline_output: torch.Tensor
    """Shape ``(batch,)``: the target output F(x') at the baselines."""
    n_evals: torch.Tensor
    """Shape ``(batch,)``: forward+backward model evaluations at path points, per example."""
    method: str
    n_steps: int
    inputs: TensorOrTuple
    baselines: TensorOrTuple
    target: Any
    baseline: str = "zeros"
    """A short description of the ``baselines`` argument as given."""
    multiply_by_inputs: bool = True
    n_forward: torch.Tensor | None = None
    """Shape ``(batch,)``: forward-only model evaluations per example (ends, IDGI, …)."""
    error_estimate: torch.Tensor | None = None
    """Tolerance mode: estimated relative L2 error of each example's attributions."""
    converged: torch.Tensor | None = None
    """Tolerance mode: whether each example met the tolerance within ``max_steps``."""
    tolerance: float | None = None
    """The requested accuracy, in tolerance mode."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Method-specific details (e.g. chunking) that do not warrant their own field."""

    @property
    def relative_delta(self) -> torch.Tensor:
        """``|delta| / |output - baseline_output|`` per example (inf where that is 0)."""
        return self.delta.abs() / (self.output - self.baseline_output).abs()

    def __repr__(self) -> str:
        n = int(self.delta.numel())
        worst = float(self.delta.abs().max()) if n else 0.0
        shapes = (
            [tuple(a.shape) for a in self.attributions]
            if isinstance(self.attributions, tuple)
            else tuple(self.attributions.shape)
        )
        return (
            f"Explanation(method={self.method!r}, n_steps={self.n_steps}, batch={n}, "
            f"attributions={shapes}, baseline={self.baseline!r}, max|delta|={worst:.3g}, "
            f"evals/example={float(self.n_evals.double().mean()):.4g})"
        )
