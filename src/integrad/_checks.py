"""Checks around every model call: completeness, the caller's model state, warnings.

The completeness delta and its guard (:class:`CompletenessWarning`), the training-mode
warning and the restoring of train-mode buffers, the message for a model that fails on
integrad's path points, and the stack level that points a warning at the user's line.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._modules import owner


def completeness_delta(
    attributions: tuple[torch.Tensor, ...], output: torch.Tensor, baseline_output: torch.Tensor
) -> torch.Tensor:
    """Captum's convergence delta per example: ``Σ attributions − (F(x) − F(x'))``."""
    batch = int(output.shape[0])
    total = sum(a.reshape(batch, -1).sum(dim=1).to(output.dtype) for a in attributions)
    return total - (output - baseline_output)


class CompletenessWarning(UserWarning):
    """Some example's attributions miss ``F(x) - F(x')`` by more than 5%.

    Raised (as a warning, once per call) by the quadrature methods: :func:`integrad.explain`,
    ``IntegratedGradients``, ``LayerIntegratedGradients`` and ``NeuronIntegratedGradients``.
    Silence it with ``warnings.filterwarnings("ignore", category=CompletenessWarning)``.
    """


COMPLETENESS_LIMIT = 0.05
"""Relative completeness gap above which the quadrature methods warn (the IG paper's 5%)."""


def completeness_silenced() -> bool:
    """Whether the warnings filters certainly ignore :class:`CompletenessWarning`.

    Only a filter for the category (or a base class) with no message, module or line
    condition counts; anything more specific may let a warning through, so then False.
    ``IntegratedGradients.attribute`` uses it to skip the forward passes that compute
    F(x) and F(x') for a warning nobody would see.
    """
    for action, message, category, module, lineno in warnings.filters:
        if not issubclass(CompletenessWarning, category):
            continue
        if (message is None or message.pattern == "") and module is None and lineno == 0:
            return action == "ignore"
        return False
    return False


def warn_if_incomplete(
    delta: torch.Tensor, output: torch.Tensor, baseline_output: torch.Tensor, n_steps: int
) -> None:
    """Warn with :class:`CompletenessWarning` if some example's gap exceeds 5% of its change.

    Gaps within rounding of the outputs (64 ulps of their magnitude) never count, so an
    example whose output does not change along the path does not warn for a zero-ish sum.
    """
    gap = delta.detach().abs().double()
    change = (output - baseline_output).detach().abs().double()
    scale = torch.maximum(output.detach().abs(), baseline_output.detach().abs()).double()
    eps = torch.finfo(output.dtype).eps if output.is_floating_point() else 0.0
    bad = gap > COMPLETENESS_LIMIT * change + 64 * eps * scale
    if not bool(bad.any()):
        return
    relative = torch.where(bad, gap / change, torch.zeros_like(gap))
    worst = int(torch.argmax(relative))
    warnings.warn(
        f"attributions miss completeness by more than {COMPLETENESS_LIMIT:.0%} for "
        f"{int(bad.sum())} of {gap.numel()} example(s); worst is example {worst}: |delta| = "
        f"{float(gap[worst]):.3g} against F(x) - F(x') = "
        f"{float((output - baseline_output)[worst]):.3g} ({float(relative[worst]):.1%}). The path "
        f"integral is not resolved with n_steps={n_steps}: use more steps, tolerance= to "
        "integrate each example to an accuracy, or method='exact' for piecewise-linear models",
        CompletenessWarning,
        stacklevel=user_stacklevel(),
    )


def copies(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Copies that an Explanation can own: it never shares storage with the caller's tensors."""
    return tuple(t.detach().clone() for t in tensors)


def training_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Dropout/BatchNorm modules left in training mode, with their names."""
    coupled = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    return [
        (f"{name} ({type(m).__name__})" if name else type(m).__name__, m)
        for name, m in model.named_modules()
        if m.training and isinstance(m, coupled)
    ]


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside integrad.

    Call it in the function that warns. Entry points reach the warning through
    different depths (``explain``, a class's ``attribute``, layer IG), so no fixed
    number names the user's line for all of them. Under ``python -m integrad.…`` the
    script run is integrad's own module, and the warning points at its line.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package + os.sep
    ):
        frame = frame.f_back
        level += 1
    # ``python -m integrad.…``: the caller is runpy's frozen code; the user's line is then
    # the module run as a script, integrad's outermost frame.
    return level - 1 if frame.f_code.co_filename.startswith("<frozen") else level


def warn_if_training(forward_func: Callable[..., Any]) -> None:
    model = owner(forward_func)
    modules = [] if model is None else training_modules(model)
    if modules:
        names = [name for name, _ in modules]
        kinds = {isinstance(m, nn.modules.dropout._DropoutNd) for _, m in modules}
        effects = []
        if True in kinds:
            effects.append("Dropout is random, so attributions change from call to call")
        if False in kinds:
            effects.append(
                "train-mode BatchNorm normalises with the statistics of each chunk of path "
                "points, so attributions depend on batching (its running statistics are "
                "left as they were)"
            )
        warnings.warn(
            f"the model is in training mode with {len(names)} such module(s) "
            f"({', '.join(names[:5])}{' …' if len(names) > 5 else ''}): "
            f"{'; '.join(effects)}. Call model.eval() first unless this is intended.",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )


SHAPE_ERROR = re.compile(r"shape|size|dimension|channels|mat1|mat2|expected", re.IGNORECASE)


def shape_hint(
    inputs: tuple[torch.Tensor, ...], points: tuple[torch.Tensor, ...], err: Exception
) -> str:
    """The message for a model that failed on the path points integrad built."""
    given = ", ".join(str(tuple(x.shape)) for x in inputs)
    passed = ", ".join(str(tuple(p.shape)) for p in points)
    return (
        f"forward_func raised on a chunk of path points of shape {passed}, built from inputs "
        f"of shape {given}: {err}. Inputs are batch first: each row along dimension 0 is one "
        "example with the feature shape the model expects. For a single example, add the "
        "batch dimension with x.unsqueeze(0); check the number and shape of the features"
    )


class kept_buffers:
    """Restore the buffers of ``model``'s training-mode modules after each ``with`` block.

    Train-mode BatchNorm updates ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` on every forward pass; an explanation must not. The block
    must also hold the backward pass (autograd checks the saved buffers' versions).
    The buffers are found once, so the engine can reuse one keeper for every chunk; an
    eval-mode model costs nothing per block.
    """

    def __init__(self, model: nn.Module | None) -> None:
        self.buffers = (
            []
            if model is None
            else [b for m in model.modules() if m.training for b in m.buffers(recurse=False)]
        )
        self.saved: list[list[torch.Tensor]] = []

    def __enter__(self) -> None:
        self.saved.append([b.detach().clone() for b in self.buffers])

    def __exit__(self, *exc: object) -> None:
        values = self.saved.pop()
        with torch.no_grad():
            for buffer, value in zip(self.buffers, values, strict=True):
                buffer.copy_(value)


def check_finite_targets(selected: torch.Tensor, rows: torch.Tensor) -> None:
    """Refuse a NaN or Inf target output at a path point, naming the examples ``rows`` hold."""
    finite = torch.isfinite(selected.detach())
    if not bool(finite.all()):
        bad = sorted(set(rows.to(finite.device)[~finite].tolist()))
        raise ValueError(
            f"forward_func returned a non-finite target output (NaN or Inf) for example(s) "
            f"{bad[:10]} at a path point; the attributions would be NaN. Check the model "
            "and the inputs and baselines of those examples"
        )


def check_finite_gradients(sums: tuple[torch.Tensor, ...]) -> None:
    """Refuse NaN or Inf in the summed gradients (one tensor per input), naming the examples."""
    for i, s in enumerate(sums):
        if not bool(torch.isfinite(s).all()):
            bad = torch.nonzero(~torch.isfinite(s.reshape(s.shape[0], -1)).all(dim=1))
            raise ValueError(
                f"the gradients of forward_func are not finite (NaN or Inf) for input {i} "
                f"of example(s) {bad.flatten().tolist()[:10]} on the path; the attributions "
                "would be NaN. Check the model for operations whose gradient is undefined at "
                "some path point (sqrt or norm at 0, log of 0, division by 0)"
            )


def differentiable(selected: torch.Tensor) -> torch.Tensor:
    """``selected`` (the target outputs at path points), refused if it carries no gradient."""
    if not selected.requires_grad:
        raise ValueError(
            "the output of forward_func does not depend on the inputs (it carries no "
            "gradient); check that the model uses the inputs you pass and that it "
            "does not detach them or run under torch.no_grad()"
        )
    return selected


def dense_gradients(
    points: tuple[torch.Tensor, ...], grads: tuple[torch.Tensor | None, ...]
) -> tuple[torch.Tensor, ...]:
    """``torch.autograd.grad``'s answer with zeros for the inputs the output does not use;
    refused if it uses none."""
    if all(g is None for g in grads):
        raise ValueError(
            "the output of forward_func does not depend on any of the inputs; nothing to attribute"
        )
    return tuple(
        torch.zeros_like(p) if g is None else g for p, g in zip(points, grads, strict=True)
    )
