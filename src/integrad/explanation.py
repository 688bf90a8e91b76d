"""The result of an attribution: attributions with their certificate and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
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
    kind: str | None = None
    """What the inputs are: ``"image"``, ``"text"``, ``"table"``, ``"timeseries"`` or None
    (unsaid). It chooses the view of :meth:`plot` and :meth:`to_html`."""
    output_kind: str | None = None
    """What the model's outputs are, as the caller said: ``"logits"``, ``"probabilities"``
    or None (scores of unknown scale, or a regression)."""
    predicted: torch.Tensor | None = None
    """Shape ``(batch,)``: the model's top class at the inputs, where its output has one
    row of several classes per example; None for one-output models and other shapes."""
    probability: torch.Tensor | None = None
    """Shape ``(batch,)``: the probability of the explained target (softmax of the logits,
    or the output itself for probabilities); None unless ``output_kind`` is set."""
    predicted_probability: torch.Tensor | None = None
    """Shape ``(batch,)``: the probability of the ``predicted`` class, as ``probability``."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Method-specific details (e.g. chunking) that do not warrant their own field."""

    @property
    def relative_delta(self) -> torch.Tensor:
        """``|delta| / |output - baseline_output|`` per example.

        inf where only the change is 0; 0 where the delta is 0 as well (0/0 is no error).
        """
        gap = self.delta.abs()
        return torch.where(gap == 0, 0.0, gap / (self.output - self.baseline_output).abs())

    def __repr__(self) -> str:
        return _describe(self)

    def _repr_html_(self) -> str:
        """Jupyter's view: provenance, the per-example table and up to four thumbnails.

        See :func:`integrad.views.notebook.summary`. There is no ``_repr_png_``: a
        notebook stores every ``_repr_*_`` it finds, so a PNG would double what the
        HTML already holds; ``plot()`` returns a figure that displays inline.
        """
        from .views.notebook import summary

        return summary(self)

    def save(self, path: str | Path) -> Path:
        """Write tensors (safetensors, else npz) and a JSON sidecar; see :mod:`integrad.io`.

        Returns the tensor file's path; :func:`integrad.load` reads it back exactly.
        """
        from .io import save

        return save(self, path)

    def plot(self, kind: str | None = None, *, example: int = 0, **options: Any) -> Any:
        """A matplotlib figure of one example, in the view that suits the input.

        ``kind`` is ``"image"`` (original | signed | absolute | overlay), ``"table"``
        (signed bar chart of the ranked features) or ``"timeseries"`` (per-step bars and a
        time × feature heatmap); by default it is guessed from the inputs' shape (see
        :func:`integrad.views.kind_of`). Text has no figure: use :meth:`to_html`. Needs
        matplotlib.
        """
        from .views import plot

        return plot(self, kind, example=example, **options)

    def to_html(self, path: str | Path, *, kind: str | None = None, **options: Any) -> Path:
        """Write a self-contained HTML report (inputs, attributions, deltas, provenance).

        Pictures are inline PNGs; there is no script, font or external reference, so
        the file reads offline in any browser. See :func:`integrad.views.report.to_html`.
        """
        from .views.report import to_html

        return to_html(self, path, kind=kind, **options)


PER_EXAMPLE = (
    "attributions",
    "inputs",
    "baselines",
    "delta",
    "output",
    "baseline_output",
    "n_evals",
    "n_forward",
    "error_estimate",
    "converged",
    "predicted",
    "probability",
    "predicted_probability",
)
"""The fields that hold one entry per example (batch first), when they are set."""

_KNOWN = {
    "attributions",
    "delta",
    "output",
    "baseline_output",
    "n_evals",
    "method",
    "n_steps",
    "inputs",
    "baselines",
    "target",
    "baseline",
    "multiply_by_inputs",
    "n_forward",
    "extras",
    "error_estimate",
    "converged",
    "tolerance",
    "kind",
    "output_kind",
    "predicted",
    "probability",
    "predicted_probability",
}


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, torch.Tensor):
        text = str(value.tolist()) if value.numel() <= 8 else f"tensor{tuple(value.shape)}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exp: Explanation) -> str:
    """The repr: provenance on the first line, then the completeness check per example."""
    n = int(exp.delta.numel())
    worst = float(exp.delta.abs().max()) if n else 0.0
    attributions = exp.attributions
    parts = attributions if isinstance(attributions, tuple) else (attributions,)
    shapes = ", ".join(f"{tuple(a.shape)} {str(a.dtype).removeprefix('torch.')}" for a in parts)
    lines = [
        f"Explanation(method={exp.method!r}, n_steps={exp.n_steps}, baseline={exp.baseline!r}, "
        f"target={_short(exp.target)}, multiply_by_inputs={exp.multiply_by_inputs}"
        + (f", kind={exp.kind!r}" if exp.kind else "")
        + (f", output_kind={exp.output_kind!r}" if exp.output_kind else "")
        + ")",
        f"  attributions: {shapes}",
    ]
    if n:
        relative = exp.relative_delta.double()
        finite = relative[torch.isfinite(relative)]
        rel = f", max relative {float(finite.max()):.3g}" if finite.numel() else ""
        lines.append(
            f"  completeness: max|delta|={worst:.3g}{rel} "
            f"(delta = sum of attributions - (F(x) - F(x')))"
        )
        est, conv = exp.error_estimate, exp.converged
        tolerated = est is not None and conv is not None
        if est is not None and conv is not None:
            lines.append(
                f"  tolerance={exp.tolerance:g}: {int(conv.sum())} of {n} converged, "
                f"estimated error up to {float(est.max()):.3g}"
            )
        lines.append(
            "  F is the explained output (the target's value); x_ is the baseline"
            + ("; p is its probability" if exp.probability is not None else "")
        )
        head = f"  {'#':>4} {'F(x)':>11} {'F(x_)':>11} {'delta':>11}"
        if exp.predicted is not None:
            head += f" {'predicted':>9}" + (
                f" {'p(target)':>9}" if exp.probability is not None else ""
            )
        lines.append(head + (f" {'est. error':>11} converged" if tolerated else ""))
        shown = min(n, 5)
        for i in range(shown):
            row = (
                f"  {i:>4} {float(exp.output[i]):>11.4g} {float(exp.baseline_output[i]):>11.4g} "
                f"{float(exp.delta[i]):>11.3g}"
            )
            if exp.predicted is not None:
                row += f" {int(exp.predicted[i]):>9}"
                if exp.probability is not None:
                    row += f" {float(exp.probability[i]):>9.3g}"
            if est is not None and conv is not None:
                row += f" {float(est[i]):>11.3g} {bool(conv[i])}"
            lines.append(row)
        if n > shown:
            lines.append(f"  ... {n - shown} more")
    evals = f"  evals/example={float(exp.n_evals.double().mean()):.4g}"
    if exp.n_forward is not None:
        evals += f", forward-only/example={float(exp.n_forward.double().mean()):.4g}"
    lines.append(evals)
    # Fields this function does not know (a subclass's, say) get one line each.
    for f in fields(exp):
        if f.name not in _KNOWN:
            lines.append(f"  {f.name}={_short(getattr(exp, f.name))}")
    return "\n".join(lines)


def prediction_fields(
    outputs: torch.Tensor | None, output_kind: str | None, target: torch.Tensor | None
) -> dict[str, Any]:
    """The Explanation's fields on what the model predicted, from its ``(batch, classes)``
    ``outputs`` at the inputs (None: no classes) and the per-example ``target`` class
    (None: class 0): ``predicted``, and with ``output_kind`` ``"logits"`` (softmax) or
    ``"probabilities"`` the ``probability`` of the target and ``predicted_probability``."""
    fields: dict[str, Any] = dict.fromkeys(("predicted", "probability", "predicted_probability"))
    fields["output_kind"] = output_kind
    if outputs is None:
        return fields
    predicted = fields["predicted"] = outputs.argmax(1)
    if output_kind is None:
        return fields
    chances = outputs.double().softmax(1) if output_kind == "logits" else outputs.double()
    index = torch.zeros_like(predicted) if target is None else target.to(outputs.device)
    picked = chances.gather(1, torch.stack([index, predicted], 1)).T.contiguous()
    fields["probability"], fields["predicted_probability"] = picked[0], picked[1]
    return fields
