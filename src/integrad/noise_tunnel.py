"""Noise tunnel: average any attribution method over noisy copies of the inputs.

SmoothGrad (Smilkov et al., 2017) is ``NoiseTunnel(Saliency(model))``; with
``IntegratedGradients`` it is SmoothGrad-IG. Noise is drawn from a ``torch.Generator``
only, and samples are processed ``nt_samples_batch_size`` at a time and combined
with running sums, so memory does not grow with ``nt_samples``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch

from ._inputs import (
    TensorOrTuple,
    as_inputs,
    check_positive_int,
    repeat_per_example,
    same_form,
)

__all__ = ["NT_TYPES", "NoiseTunnel"]

NT_TYPES: tuple[str, ...] = ("smoothgrad", "smoothgrad_sq", "vargrad")


class _Method(Protocol):
    def attribute(self, inputs: Any, *args: Any, **kwargs: Any) -> Any: ...


class NoiseTunnel:
    """Captum-compatible noise tunnel over an integrad attribution method.

    ``nt_type``: ``"smoothgrad"`` (mean attribution), ``"smoothgrad_sq"`` (mean of
    squares) or ``"vargrad"`` (variance). ``stdevs`` is the noise's standard deviation,
    one number or one per input; with ``relative=True`` it is a fraction of each
    example's value range instead of an absolute level.

    >>> import torch, integrad
    >>> model = torch.nn.Linear(3, 2)
    >>> nt = integrad.NoiseTunnel(integrad.Saliency(model))
    >>> nt.attribute(torch.ones(4, 3), target=1, nt_samples=8, stdevs=0.1).shape
    torch.Size([4, 3])
    """

    def __init__(self, attribution_method: _Method) -> None:
        if not callable(getattr(attribution_method, "attribute", None)):
            raise TypeError(
                "attribution_method must have an attribute() method, e.g. "
                f"integrad.Saliency(model); got {type(attribution_method).__name__}"
            )
        self.attribution_method = attribution_method

    def attribute(
        self,
        inputs: TensorOrTuple,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        generator: torch.Generator | None = None,
        relative: bool = False,
        **kwargs: Any,
    ) -> TensorOrTuple | tuple[TensorOrTuple, torch.Tensor]:
        """Aggregated attributions shaped like ``inputs``.

        Other keyword arguments go to the wrapped method's ``attribute``; per-example
        ``target``, ``baselines`` and ``additional_forward_args`` are repeated for each
        noisy copy. With ``return_convergence_delta=True`` the deltas of every sample
        come back too, shape ``(batch * nt_samples,)``, example-major.
        """
        xs, was_tuple = as_inputs(inputs)
        if nt_type not in NT_TYPES:
            raise ValueError(f"nt_type={nt_type!r} is not known; choose one of {list(NT_TYPES)}")
        check_positive_int(nt_samples, "nt_samples")
        if nt_samples_batch_size is not None:
            check_positive_int(nt_samples_batch_size, "nt_samples_batch_size")
        sigmas = _stdevs(stdevs, len(xs))
        batch = int(xs[0].shape[0])
        gen = generator if generator is not None else torch.Generator(xs[0].device).manual_seed(0)
        scales = tuple(
            _row_ranges(x) * s if relative else torch.full_like(x[:, :1].flatten(1), s)
            for x, s in zip(xs, sigmas, strict=True)
        )
        want_delta = bool(kwargs.get("return_convergence_delta", False))
        group = nt_samples_batch_size or nt_samples
        stats: list[_Moments] | None = None
        deltas = []
        for start in range(0, nt_samples, group):
            k = min(group, nt_samples - start)
            noisy = tuple(_noisy(x, scale, k, gen) for x, scale in zip(xs, scales, strict=True))
            result = self.attribution_method.attribute(
                same_form(noisy, was_tuple), **_repeat_kwargs(kwargs, batch, k)
            )
            if want_delta:
                result, delta = result
                deltas.append(delta.reshape(batch, k))
            parts = result if isinstance(result, tuple) else (result,)
            grouped = [a.reshape(batch, k, *a.shape[1:]) for a in parts]
            if stats is None:
                stats = [_Moments.of(a) for a in grouped]
            else:
                for m, a in zip(stats, grouped, strict=True):
                    m.merge(_Moments.of(a))
        assert stats is not None  # nt_samples >= 1
        if nt_type == "smoothgrad":
            out = tuple(m.mean for m in stats)
        elif nt_type == "smoothgrad_sq":
            out = tuple(m.m2 / m.n + m.mean**2 for m in stats)
        else:
            out = tuple(m.m2 / m.n for m in stats)
        attributions = same_form(out, was_tuple)
        if want_delta:
            return attributions, torch.cat(deltas, dim=1).reshape(-1)
        return attributions


class _Moments:
    """Count, mean and sum of squared deviations over samples (dim 1), mergeable."""

    def __init__(self, n: int, mean: torch.Tensor, m2: torch.Tensor) -> None:
        self.n, self.mean, self.m2 = n, mean, m2

    @classmethod
    def of(cls, samples: torch.Tensor) -> _Moments:
        mean = samples.mean(dim=1)
        return cls(samples.shape[1], mean, ((samples - mean.unsqueeze(1)) ** 2).sum(dim=1))

    def merge(self, other: _Moments) -> None:
        # Chan et al.'s pairwise update: M2 stays a sum of squares, so never negative.
        n = self.n + other.n
        shift = other.mean - self.mean
        self.m2 = self.m2 + other.m2 + shift**2 * (self.n * other.n / n)
        self.mean = self.mean + shift * (other.n / n)
        self.n = n


def _stdevs(stdevs: object, n_inputs: int) -> tuple[float, ...]:
    values = stdevs if isinstance(stdevs, tuple) else (stdevs,) * n_inputs
    if len(values) != n_inputs:
        raise ValueError(f"stdevs has {len(values)} entries but there are {n_inputs} inputs")
    out = []
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
            raise ValueError(f"stdevs must be finite numbers >= 0, got {stdevs!r}")
        out.append(float(s))
    return tuple(out)


def _row_ranges(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)
    return (flat.amax(dim=1) - flat.amin(dim=1)).unsqueeze(1)


def _noisy(x: torch.Tensor, scale: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` noisy copies of every example, example-major: shape ``(batch * k, ...)``."""
    copies = x.repeat_interleave(k, dim=0)
    noise = torch.randn(copies.shape, generator=gen, device=x.device, dtype=x.dtype)
    per_copy = scale.repeat_interleave(k, dim=0).view(-1, *([1] * (x.dim() - 1)))
    return copies + noise * per_copy


def _repeat_kwargs(kwargs: dict[str, Any], batch: int, k: int) -> dict[str, Any]:
    per_example = ("target", "baselines", "additional_forward_args")
    return {
        key: repeat_per_example(v, batch, k) if key in per_example else v
        for key, v in kwargs.items()
    }
