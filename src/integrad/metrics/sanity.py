"""Model-parameter randomization (Adebayo et al., NeurIPS 2018): do attributions need the model?

Re-initialise the model's layers, from the top down (``"cascading"``: each step adds
the next layer below) or one at a time (``"independent"``), explain the same inputs
again, and compare with the original attributions: Spearman rank correlation of the
absolute (and the signed) attributions and, for images, SSIM of the normalised
absolute maps. A method that passes shows correlations that fall as more of the
model is randomized; one that keeps them high explains the input, not the model.
The caller's model is never touched: every randomization works on a deep copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._inputs import TargetType, TensorOrTuple, as_inputs, check_callable
from ..baselines import gaussian_blur
from ._common import as_tuple, check_matching

__all__ = ["RandomizationCheck", "randomization_check", "spearman", "ssim"]

MODES = ("cascading", "independent")


@dataclass
class RandomizationCheck:
    """Similarity to the original attributions after each randomization, per example."""

    mode: str
    layers: list[str]
    """Row ``i``'s randomized layer (cascading: it and every layer listed before it)."""
    spearman_abs: torch.Tensor
    """Shape ``(layers, batch)``: rank correlation of ``|attributions|``."""
    spearman: torch.Tensor
    """Shape ``(layers, batch)``: rank correlation of the signed attributions."""
    ssim: torch.Tensor | None
    """Shape ``(layers, batch)``: SSIM of the normalised ``|attributions|`` maps (images)."""

    def table(self) -> Any:
        """A pandas DataFrame, one row per layer: the means over examples (needs pandas)."""
        import pandas as pd

        data: dict[str, Any] = {
            "layer": self.layers,
            "spearman_abs": self.spearman_abs.mean(1).tolist(),
            "spearman": self.spearman.mean(1).tolist(),
        }
        if self.ssim is not None:
            data["ssim"] = self.ssim.mean(1).tolist()
        return pd.DataFrame(data).set_index("layer")

    def plot(self, ax: Any = None) -> Any:
        """Adebayo et al.'s figure: similarity against the randomized layer (needs matplotlib).

        Returns a Figure not registered with pyplot (it displays once in a notebook);
        draws into ``ax`` when given.
        """
        from ..views._png import new_figure

        if ax is None:
            fig = new_figure((max(4.5, 0.9 * len(self.layers) + 2.0), 3.4))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        steps = list(range(len(self.layers)))
        series = [("Spearman |a|", self.spearman_abs), ("Spearman a", self.spearman)]
        if self.ssim is not None:
            series.append(("SSIM |a|", self.ssim))
        for name, values in series:
            mean, std = values.mean(1).numpy(), values.std(1, unbiased=False).numpy()
            ax.plot(steps, mean, marker="o", label=f"{name} (mean ± sd over examples)")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        ax.set_xticks(steps, self.layers, rotation=45, ha="right")
        cascade = "randomized from the output down to this layer"
        ax.set_xlabel(cascade if self.mode == "cascading" else "the one layer randomized")
        ax.set_ylabel("similarity to the original\nattributions (1 = unchanged)")
        ax.set_title(
            f"{self.mode} randomization check\n(a faithful method's attributions fall towards 0)",
            fontsize=9,
        )
        ax.axhline(0.0, color="gray", linewidth=0.5)
        ax.legend(fontsize="x-small")
        return fig


def randomization_check(
    model: nn.Module,
    explain_func: Callable[..., Any],
    inputs: TensorOrTuple,
    *,
    target: TargetType = None,
    mode: str = "cascading",
    generator: torch.Generator | None = None,
) -> RandomizationCheck:
    """Explain ``inputs`` with randomized copies of ``model`` and compare with the original.

    ``explain_func(model, inputs, target=target)`` returns attributions (a tensor, a
    tuple or an :class:`~integrad.Explanation`). The layers are the modules that own
    parameters, in registration order; a randomized layer's parameters are redrawn
    from ``generator`` (a CPU generator seeded 0 if None) as normal noise with each
    parameter's own standard deviation (a constant parameter's: its magnitude, so a
    fresh BatchNorm is not zeroed; zero stays zero). The target stays fixed.

    >>> import torch, integrad
    >>> from integrad.metrics import randomization_check
    >>> torch.manual_seed(0); model = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))  # doctest: +ELLIPSIS
    <...>
    >>> check = randomization_check(model, lambda m, x, target: integrad.explain(m, x),
    ...                             torch.randn(3, 4))
    >>> check.layers, tuple(check.spearman_abs.shape)
    (['2', '0'], (2, 3))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_callable(explain_func)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator)}")
    own = torch.Generator().manual_seed(0) if generator is None else generator
    xs, _ = as_inputs(inputs)
    layers = [
        name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))
    ]
    if not layers:
        raise ValueError("model has no parameters: there is nothing to randomize")
    layers.reverse()  # from the top down

    def explain(m: nn.Module) -> tuple[torch.Tensor, ...]:
        result = as_tuple(explain_func(m, inputs, target=target), "explain_func's result")
        check_matching(result, xs, "explain_func's result")
        return tuple(r.detach() for r in result)

    original = explain(model)
    image = len(xs) == 1 and xs[0].dim() in (3, 4)
    rows_abs, rows, rows_ssim = [], [], []
    work = copy.deepcopy(model)
    for name in layers:
        if mode == "independent":
            work = copy.deepcopy(model)
        _randomize(work.get_submodule(name), own)
        current = explain(work)
        rows_abs.append(spearman(_flat(original, True), _flat(current, True)))
        rows.append(spearman(_flat(original, False), _flat(current, False)))
        if image:
            rows_ssim.append(ssim(_image(original[0]), _image(current[0])))
    return RandomizationCheck(
        mode,
        layers,
        torch.stack(rows_abs),
        torch.stack(rows),
        torch.stack(rows_ssim) if image else None,
    )


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    """Redraw the module's own parameters: normal noise with each one's standard deviation."""
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            values = p.detach().double()
            spread = values.std() if p.numel() > 1 else values.abs()
            # A constant parameter (a fresh BatchNorm's weight of ones) has no spread: use
            # its magnitude, or the layer would be zeroed and the model made constant.
            spread = torch.where(spread > 0, spread, values.abs().mean())
            device = generator.device
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64, device=device)
            noise = noise * spread.to(device)
            p.copy_(noise.to(device=p.device, dtype=p.dtype))


def _flat(attributions: tuple[torch.Tensor, ...], absolute: bool) -> torch.Tensor:
    flat = torch.cat([a.reshape(a.shape[0], -1).double().cpu() for a in attributions], dim=1)
    return flat.abs() if absolute else flat


def _image(attributions: torch.Tensor) -> torch.Tensor:
    """``|a|`` summed over channels, scaled to [0, 1] per example: shape ``(batch, H, W)``."""
    a = attributions.double().cpu().abs()
    a = a.sum(1) if a.dim() == 4 else a
    top = a.flatten(1).amax(1).reshape(-1, 1, 1)
    return a / torch.where(top > 0, top, torch.ones_like(top))


def _ranks(row: torch.Tensor) -> torch.Tensor:
    """Ranks from 1, ties sharing their average rank (as scipy.stats.rankdata)."""
    _, inverse, counts = torch.unique(row, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()
    return (last - (counts.double() - 1) / 2)[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b``.

    Ties get their average rank; a constant row correlates 0 with anything.

    >>> spearman(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[10.0, 30.0, 20.0]]))
    tensor([0.5000], dtype=torch.float64)
    """
    out = []
    for x, y in zip(a.double(), b.double(), strict=True):
        rx, ry = _ranks(x), _ranks(y)
        rx, ry = rx - rx.mean(), ry - ry.mean()
        scale = (rx.square().sum() * ry.square().sum()).sqrt()
        out.append(torch.where(scale > 0, (rx * ry).sum() / scale, torch.zeros_like(scale)))
    return torch.stack(out)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity (Wang et al., 2004) of image pairs, shape ``(batch,)``.

    Gaussian window of standard deviation 1.5 pixels, constants ``K1 = 0.01``,
    ``K2 = 0.03``, borders replicated; ``a`` and ``b`` are ``(batch, H, W)``.
    """
    a, b = a.double(), b.double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def window(t: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(t, 1.5)

    mu_a, mu_b = window(a), window(b)
    var_a = window(a * a) - mu_a.square()
    var_b = window(b * b) - mu_b.square()
    cov = window(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)
    )
    return index.flatten(1).mean(1)
