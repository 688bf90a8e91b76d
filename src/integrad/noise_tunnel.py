"""Noise tunnel: average any attribution method over noisy copies of the inputs.

SmoothGrad (Smilkov et al., 2017) is ``NoiseTunnel(Saliency(model))``; with
``IntegratedGradients`` it is SmoothGrad-IG. Noise is drawn from a ``torch.Generator``
only, one draw per sample (every example at once) so that grouping never changes it.
Samples go to the wrapped method in groups sized from the inputs and ``max_memory``
(forwarded to the wrapped method when it takes it) and are combined with running
moments, so memory does not grow with ``nt_samples``; ``nt_samples_batch_size``
caps a group and changes nothing else.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import torch

from ._captum import Futureless
from ._engine import default_budget
from ._inputs import (
    TensorOrTuple,
    as_inputs,
    check_positive_int,
    repeat_per_example,
    same_form,
)
from ._sampling import check_stdevs

__all__ = ["NT_TYPES", "NoiseTunnel"]

NT_TYPES: tuple[str, ...] = ("smoothgrad", "smoothgrad_sq", "vargrad")

_GROUP_SHARE = 16
"""A group's noisy inputs take at most this fraction of ``max_memory``: the wrapped
method holds a few more row-sized tensors per noisy row (its baselines, differences,
attributions) besides its own chunk, which it bounds itself."""


class _Method(Protocol):
    def attribute(self, inputs: Any, *args: Any, **kwargs: Any) -> Any: ...


class NoiseTunnel(Futureless):
    """Captum-compatible noise tunnel over an integrad attribution method.

    ``nt_type``: ``"smoothgrad"`` (mean attribution), ``"smoothgrad_sq"`` (mean of
    squares) or ``"vargrad"`` (variance). ``stdevs`` is the noise's standard deviation,
    one number or one per input; with ``relative=True`` it is a fraction of each
    example's value range instead of an absolute level. With
    ``draw_baseline_from_distrib=True`` the ``baselines`` keyword is a distribution
    (a tensor ``(K, *features)`` per input) and every noisy sample draws its own.

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
        self.forward_func = getattr(attribution_method, "forward_func", None)

    @property
    def multiplies_by_inputs(self) -> bool:
        """As Captum: whatever the wrapped method says (False if it says nothing)."""
        return bool(getattr(self.attribution_method, "multiplies_by_inputs", False))

    def has_convergence_delta(self) -> bool:
        has = getattr(self.attribution_method, "has_convergence_delta", None)
        return bool(has()) if callable(has) else False

    def attribute(
        self,
        inputs: TensorOrTuple,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        *,
        generator: torch.Generator | None = None,
        relative: bool = False,
        **kwargs: Any,
    ) -> TensorOrTuple | tuple[TensorOrTuple, torch.Tensor]:
        """Aggregated attributions shaped like ``inputs``.

        Other keyword arguments go to the wrapped method's ``attribute``; per-example
        ``target``, ``baselines`` and ``additional_forward_args`` are repeated for each
        noisy copy. ``generator`` defaults to one seeded 0, so calls repeat. With
        ``return_convergence_delta=True`` the deltas of every sample come back too,
        shape ``(batch * nt_samples,)``, example-major.
        """
        xs, was_tuple = as_inputs(inputs)
        if nt_type not in NT_TYPES:
            raise ValueError(f"nt_type={nt_type!r} is not known; choose one of {list(NT_TYPES)}")
        check_positive_int(nt_samples, "nt_samples")
        if nt_samples_batch_size is not None:
            check_positive_int(nt_samples_batch_size, "nt_samples_batch_size")
        if not isinstance(draw_baseline_from_distrib, bool):
            raise TypeError(
                "draw_baseline_from_distrib must be a bool, got "
                f"{type(draw_baseline_from_distrib).__name__}"
            )
        sigmas = check_stdevs(stdevs, len(xs))
        batch = int(xs[0].shape[0])
        gen = generator if generator is not None else torch.Generator(xs[0].device).manual_seed(0)
        scales = tuple(
            _row_ranges(x) * s
            if relative
            else torch.full((batch,), s, dtype=x.dtype, device=x.device)
            for x, s in zip(xs, sigmas, strict=True)
        )
        want_delta = bool(kwargs.get("return_convergence_delta", False))
        if want_delta and not self.has_convergence_delta():
            raise ValueError(
                f"return_convergence_delta=True but {type(self.attribution_method).__name__} "
                "has no convergence delta"
            )
        kwargs = dict(kwargs)
        distributions = None
        if draw_baseline_from_distrib:
            if kwargs.get("baselines") is None:
                raise ValueError(
                    "draw_baseline_from_distrib=True needs baselines=: a distribution of "
                    "baselines, a tensor (K, *features) per input"
                )
            distributions = _distributions(kwargs.pop("baselines"), xs, was_tuple)
        budget = kwargs.get("max_memory") or default_budget(xs[0].device)
        if "max_memory" in kwargs and not _accepts(self.attribution_method, "max_memory"):
            kwargs.pop("max_memory")
        group = _samples_per_group(xs, int(budget))
        if nt_samples_batch_size is not None:
            group = min(group, nt_samples_batch_size)
        stats: list[_Moments] = []
        deltas = []
        for start in range(0, nt_samples, group):
            k = min(group, nt_samples - start)
            noisy, drawn = _draw(xs, scales, distributions, k, gen)
            call = _repeat_kwargs(kwargs, batch, k)
            if drawn is not None:
                call["baselines"] = drawn if was_tuple else drawn[0]
            result = self.attribution_method.attribute(same_form(noisy, was_tuple), **call)
            if want_delta:
                result, delta = result
                deltas.append(delta.reshape(batch, k))
            parts = result if isinstance(result, tuple) else (result,)
            grouped = [_Moments.of(a.reshape(batch, k, *a.shape[1:])) for a in parts]
            if not stats:
                stats = grouped
            else:
                for m, g in zip(stats, grouped, strict=True):
                    m.merge(g)
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


def _row_ranges(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)
    return flat.amax(dim=1) - flat.amin(dim=1)


def _accepts(method: object, name: str) -> bool:
    try:
        params = inspect.signature(method.attribute).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _samples_per_group(xs: tuple[torch.Tensor, ...], budget: int) -> int:
    batch_bytes = sum(x.nbytes for x in xs)
    return max(1, budget // (_GROUP_SHARE * max(batch_bytes, 1)))


def _distributions(
    baselines: object, xs: tuple[torch.Tensor, ...], was_tuple: bool
) -> tuple[torch.Tensor | float, ...]:
    """Captum's forms for a baselines distribution: per input a tensor (K, *features)
    to draw from, or a number used as it is."""
    items = baselines if isinstance(baselines, tuple) else (baselines,)
    if len(items) != len(xs):
        raise ValueError(f"baselines has {len(items)} entries but inputs has {len(xs)} tensors")
    out: list[torch.Tensor | float] = []
    for i, (b, x) in enumerate(zip(items, xs, strict=True)):
        where = f"baselines[{i}]" if was_tuple else "baselines"
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            out.append(float(b))
        elif (
            isinstance(b, torch.Tensor)
            and b.dim() == x.dim()
            and b.shape[1:] == x.shape[1:]
            and b.shape[0] >= 1
        ):
            out.append(b.detach().to(device=x.device, dtype=x.dtype))
        else:
            got = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise ValueError(
                f"{where} must be a distribution of baselines for draw_baseline_from_distrib: "
                f"a tensor (K, *{tuple(x.shape[1:])}) or a number; got {got}"
            )
    return tuple(out)


def _draw(
    xs: tuple[torch.Tensor, ...],
    scales: tuple[torch.Tensor, ...],
    distributions: tuple[torch.Tensor | float, ...] | None,
    k: int,
    gen: torch.Generator,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor | float, ...] | None]:
    """``k`` samples: noisy copies (and drawn baselines) of every example, example-major.

    Each sample draws its noise for every input, then a baseline index per
    distribution, so a sample's draws do not depend on how samples are grouped.
    """
    batch = int(xs[0].shape[0])
    noise: list[list[torch.Tensor]] = [[] for _ in xs]
    picks: list[list[torch.Tensor]] = [[] for _ in distributions or ()]
    active = [bool((scale > 0).any()) for scale in scales]
    for _ in range(k):
        for i, x in enumerate(xs):
            if active[i]:
                # Drawn where the generator lives (a CPU generator serves CUDA inputs too).
                draw = torch.randn(x.shape, generator=gen, device=gen.device, dtype=x.dtype)
                noise[i].append(draw.to(x.device))
        for i, d in enumerate(distributions or ()):
            if isinstance(d, torch.Tensor):
                picks[i].append(
                    torch.randint(int(d.shape[0]), (batch,), generator=gen, device=gen.device)
                )
    noisy = []
    for x, scale, drawn in zip(xs, scales, noise, strict=True):
        copies = x.repeat_interleave(k, dim=0)
        if drawn:
            per_row = scale.repeat_interleave(k).view(-1, *([1] * (x.dim() - 1)))
            # (k, batch, ...) -> example-major rows (batch * k, ...)
            stacked = torch.stack(drawn).transpose(0, 1).reshape(copies.shape)
            copies = copies + stacked * per_row
        noisy.append(copies)
    if distributions is None:
        return tuple(noisy), None
    drawn_baselines: list[torch.Tensor | float] = []
    for d, p in zip(distributions, picks, strict=True):
        if isinstance(d, torch.Tensor):
            index = torch.stack(p).transpose(0, 1).reshape(-1).to(d.device)
            drawn_baselines.append(d.index_select(0, index))
        else:
            drawn_baselines.append(d)
    return tuple(noisy), tuple(drawn_baselines)


def _repeat_kwargs(kwargs: dict[str, Any], batch: int, k: int) -> dict[str, Any]:
    per_example = ("target", "baselines", "additional_forward_args")
    return {
        key: repeat_per_example(v, batch, k) if key in per_example else v
        for key, v in kwargs.items()
    }
