"""``integrad.compare``: several methods (or baselines) on the same inputs, scored alike.

Each method is an ``explain_func(inputs, target=...)`` returning attributions (a tensor, a
tuple, or an :class:`~integrad.Explanation`); each is timed, and each metric runs with
the same random draws for every method (one seed per call), so the columns compare
methods, not luck. Explanations also give their completeness delta and model
evaluations per example; raw tensors leave those NaN.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._inputs import TargetType, TensorOrTuple, as_inputs, check_callable, check_positive_int
from ..explanation import Explanation
from . import perturbations
from ._common import as_tuple, check_matching
from .curves import deletion, insertion
from .infidelity import infidelity
from .sensitivity import sensitivity_max

__all__ = ["BETTER", "METRICS", "Comparison", "compare"]

MetricFunc = Callable[..., torch.Tensor]

METRICS = ("deletion", "insertion", "infidelity", "sensitivity")
"""Built-in metrics: deletion / insertion AUC (lower / higher is better), infidelity on
random subsets set to the baselines (the Explanation's own, else zeros;
:func:`~integrad.metrics.perturbations.subset`, lower is better) and
``sensitivity_max`` (reruns the method; lower is better)."""

BETTER = {
    "deletion": "lower",
    "insertion": "higher",
    "infidelity": "lower",
    "sensitivity": "lower",
    "completeness delta": "lower",
    "evaluations per example": "lower",
    "seconds per example": "lower",
}
"""Which direction is better in each column of :meth:`Comparison.table` (custom metrics: unsaid)."""


@dataclass
class Comparison:
    """What :func:`compare` measured, per method and example."""

    explanations: dict[str, Any]
    """The methods' answers as returned (Explanation, tensor or tuple)."""
    scores: dict[str, dict[str, torch.Tensor]]
    """``scores[method][metric]``: shape ``(batch,)``, float64."""
    delta: dict[str, torch.Tensor]
    """Per method, ``|completeness delta|`` per example; NaN where the method gives none."""
    evaluations: dict[str, torch.Tensor]
    """Per method, model evaluations (forward+backward) per example; NaN where unknown."""
    seconds: dict[str, float]
    """Per method, wall-clock seconds of the explanation call, per example."""
    inputs: TensorOrTuple | None = None
    """The inputs explained (what :meth:`to_html` draws the attributions over)."""

    def rows(self) -> dict[str, dict[str, float]]:
        """``rows[method][column]``: :meth:`table`'s numbers without pandas."""
        rows = {}
        for name, scores in self.scores.items():
            row = {metric: float(values.mean()) for metric, values in scores.items()}
            row["completeness delta"] = float(self.delta[name].mean())
            row["evaluations per example"] = float(self.evaluations[name].mean())
            row["seconds per example"] = self.seconds[name]
            rows[name] = row
        return rows

    def table(self) -> Any:
        """One pandas DataFrame, a row per method: the means over examples (needs pandas)."""
        import pandas as pd

        frame = pd.DataFrame.from_dict(self.rows(), orient="index")
        frame.index.name = "method"
        return frame

    def to_html(
        self,
        path: str | Path,
        *,
        examples: int | Sequence[int] = 4,
        kind: str | None = None,
        feature_names: Sequence[str] | None = None,
        title: str = "integrad: methods compared",
        **options: Any,
    ) -> Path:
        """A self-contained page: the table (which direction is better per column), then pictures.

        For image inputs each example shows the input, then every method's signed
        heatmap under ONE colour limit with its legend; for tables a features × methods
        table coloured by sign; otherwise the table only. ``examples``: how many (the
        first ones) or which; ``kind`` (``"image"``, ``"table"``): default the
        Explanations' own, else 4-d inputs are images and 2-d ones tables. ``options``
        (``clip``, ``percentile``, ``scale``) go to the pictures. No script, no
        external reference: pictures are inline PNGs.
        """
        from ..views import comparison as view

        answers = list(self.explanations.values())
        given = [a for a in answers if isinstance(a, Explanation)]
        xs = None if self.inputs is None else as_inputs(self.inputs)[0]
        one = xs is not None and len(xs) == 1
        if kind is None:
            kind = next((e.kind for e in given if e.kind is not None), None)
        if kind is None and xs is not None and one:
            kind = {4: "image", 2: "table"}.get(xs[0].dim())
        batch = len(next(iter(self.delta.values())))
        shown = range(min(examples, batch)) if isinstance(examples, int) else list(examples)
        for i in shown:
            if not 0 <= i < batch:
                raise ValueError(f"examples: {i} is out of range for a batch of {batch}")
        attributions = {n: as_tuple(a, n)[0] for n, a in self.explanations.items()} if one else None
        html = view.page(
            self.rows(),
            better=BETTER,
            inputs=xs[0] if xs is not None and one else None,
            attributions=attributions,
            kind=kind,
            examples=shown,
            feature_names=feature_names,
            output_kind=next((e.output_kind for e in given if e.output_kind), None),
            title=title,
            notes=[
                "Means over the examples; the best value of each column in bold. "
                f"{len(answers)} methods on {batch} examples."
            ],
            **options,
        )
        return view.write(path, html)


def compare(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    *,
    target: TargetType = None,
    methods: Mapping[str, Callable[..., Any]],
    metrics: Sequence[str] | Mapping[str, MetricFunc] = ("deletion", "insertion", "infidelity"),
    steps: int = 20,
    patch: int | tuple[int, int] | None = None,
    curve_baselines: object = "zeros",
    n_perturb_samples: int = 10,
    generator: torch.Generator | None = None,
    max_memory: int | None = None,
) -> Comparison:
    """Explain ``inputs`` with each of ``methods`` and score every answer with ``metrics``.

    ``methods`` maps a name to ``explain_func(inputs, target=target)``. ``metrics`` names
    built-ins from :data:`integrad.metrics.compare.METRICS` or maps names to
    ``metric(forward_func, inputs,
    attributions, target)`` returning one value per example. ``steps``, ``patch`` and
    ``curve_baselines`` go to the deletion and insertion curves (``"road"`` included);
    ``n_perturb_samples`` to infidelity and sensitivity. ``generator`` draws one seed that
    every method's metrics reuse; ``None``: seed 0.

    >>> import torch, integrad
    >>> model = torch.nn.Linear(4, 1).double()
    >>> x = torch.rand(3, 4, dtype=torch.float64)
    >>> result = integrad.compare(model, x, methods={
    ...     "IG": lambda x, target: integrad.explain(model, x, target=target),
    ...     "random": lambda x, target: torch.randn_like(x)})
    >>> list(result.table().index)
    ['IG', 'random']
    """
    check_callable(forward_func)
    if not isinstance(methods, Mapping) or not methods:
        raise ValueError(
            f"methods must be a non-empty dict of name -> explain_func, got {methods!r}"
        )
    for name, func in methods.items():
        if not callable(func):
            raise TypeError(f"methods[{name!r}] must be callable, got {type(func).__name__}")
    chosen = _metrics(metrics)
    check_positive_int(steps, "steps")
    check_positive_int(n_perturb_samples, "n_perturb_samples")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    xs, _ = as_inputs(inputs)
    batch = xs[0].shape[0]
    seed = 0 if generator is None else int(torch.randint(0, 2**62, (1,), generator=generator))

    def fresh() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    def curve_kwargs() -> dict[str, Any]:
        return {"target": target, "steps": steps, "patch": patch, "max_memory": max_memory}

    builtin: dict[str, MetricFunc] = {
        "deletion": lambda f, x, a, t: (
            deletion(f, x, a, baselines=_fresh_road(curve_baselines, seed), **curve_kwargs()).auc
        ),
        "insertion": lambda f, x, a, t: (
            insertion(f, x, a, baselines=_fresh_road(curve_baselines, seed), **curve_kwargs()).auc
        ),
        "infidelity": lambda f, x, a, t: infidelity(
            f,
            perturbations.subset(0.3, fresh()),
            x,
            a,
            # An Explanation's features are removed to its own baselines.
            baselines=a.baselines if isinstance(a, Explanation) else None,
            target=t,
            n_perturb_samples=n_perturb_samples,
        ),
    }

    explanations: dict[str, Any] = {}
    scores: dict[str, dict[str, torch.Tensor]] = {}
    delta: dict[str, torch.Tensor] = {}
    evaluations: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    nan = torch.full((batch,), math.nan, dtype=torch.float64)
    for name, func in methods.items():
        start = time.perf_counter()
        answer = func(inputs, target=target)
        seconds[name] = (time.perf_counter() - start) / batch
        attributions = as_tuple(answer, f"the answer of methods[{name!r}]")
        check_matching(attributions, xs, f"the attributions of methods[{name!r}]")
        explanations[name] = answer
        if isinstance(answer, Explanation):
            delta[name] = answer.delta.detach().abs().double().cpu()
            evaluations[name] = answer.n_evals.detach().double().cpu()
        else:
            delta[name], evaluations[name] = nan.clone(), nan.clone()
        scores[name] = {}
        for metric, score in chosen.items():
            if metric == "sensitivity":
                values = sensitivity_max(
                    func, inputs, perturb_func=perturbations.uniform(fresh()),
                    n_perturb_samples=n_perturb_samples, target=target,
                )  # fmt: skip
            else:
                values = (score or builtin[metric])(forward_func, inputs, answer, target)
            scores[name][metric] = _per_example(values, batch, metric)
    return Comparison(explanations, scores, delta, evaluations, seconds, inputs)


def _metrics(metrics: object) -> dict[str, MetricFunc | None]:
    """Name -> custom function, or ``None`` for a built-in."""
    if isinstance(metrics, Mapping):
        for name, func in metrics.items():
            if not callable(func):
                raise TypeError(f"metrics[{name!r}] must be callable, got {type(func).__name__}")
        return dict(metrics)
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise TypeError(f"metrics must be a sequence of names or a dict, got {metrics!r}")
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; the built-in ones are {METRICS}")
    return dict.fromkeys(metrics)


def _fresh_road(baselines: object, seed: int) -> object:
    """ROAD's noise drawn alike for every method: a fresh generator per call."""
    from .road import NoisyLinearImputation, road

    if isinstance(baselines, str) and baselines == "road":
        return road(generator=torch.Generator().manual_seed(seed))
    if isinstance(baselines, NoisyLinearImputation):
        return road(baselines.noise, torch.Generator().manual_seed(seed))
    return baselines


def _per_example(values: object, batch: int, metric: str) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.shape != (batch,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(
            f"metric {metric!r} must give one value per example, shape ({batch},); got {shape}"
        )
    return values.detach().double().cpu()
