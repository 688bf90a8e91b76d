"""A stored run read back: :class:`Run`, one Explanation per example, and dataset summaries."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..explanation import PER_EXAMPLE as _PER_EXAMPLE
from ..explanation import Explanation
from .explainers import stored_baselines
from .sources import Source
from .store import Store

__all__ = ["UNKNOWN", "Run", "concat", "example"]

UNKNOWN: Any = object()
"""The baselines of a run that did not store its inputs, before anyone says what they are."""

COLUMNS = (
    "id",
    "label",
    "target",
    "output",
    "baseline_output",
    "delta",
    "relative_delta",
    "n_evals",
    "converged",
    "error_estimate",
    "seconds",
)
"""The columns of :meth:`Run.summary`: F(x) is ``output``, F(x') ``baseline_output``."""


def _rows_of(value: Any, batch: int, pick: Any) -> Any:
    """``value`` restricted to examples ``pick`` where it is per example, else as it is."""
    if isinstance(value, tuple):
        return tuple(_rows_of(v, batch, pick) for v in value)
    if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == batch:
        return value[pick]
    return value


def example(exp: Explanation, row: int) -> Explanation:
    """Example ``row`` of a batch Explanation, keeping a batch dimension of 1."""
    batch = int(exp.delta.shape[0])
    pick = slice(row, row + 1)
    changes = {
        f: _rows_of(getattr(exp, f), batch, pick)
        for f in _PER_EXAMPLE
        if getattr(exp, f) is not None
    }
    changes["target"] = _rows_of(exp.target, batch, pick)
    changes["extras"] = {k: _rows_of(v, batch, pick) for k, v in exp.extras.items()}
    return dataclasses.replace(exp, **changes)


def _cat(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, tuple):
        return tuple(_cat([v[i] for v in values]) for i in range(len(first)))
    if isinstance(first, torch.Tensor) and first.dim() >= 1:
        return torch.cat(values)
    return first


def concat(parts: Sequence[Explanation]) -> Explanation:
    """Explanations of consecutive examples as one batch (provenance from the first)."""
    changes = {
        f: _cat([getattr(p, f) for p in parts])
        for f in _PER_EXAMPLE
        if getattr(parts[0], f) is not None
    }
    changes["target"] = _cat([p.target for p in parts])
    changes["n_steps"] = max(p.n_steps for p in parts)
    return dataclasses.replace(parts[0], **changes)


class Run:
    """The explanations of a dataset, stored in a run directory (see :func:`integrad.run`).

    ``len(run)`` is the number of examples in the data; ``run[i]`` the Explanation of
    example ``i`` (batch dimension 1), read from its shard through the safe loader. A
    run made with ``store_inputs=False`` reads each example's inputs from ``data`` (a
    :class:`~integrad.runs.sources.Source` of the same data) and rebuilds its baselines
    from ``baselines`` (the run's ``baselines=`` option).
    """

    def __init__(
        self,
        store: Store,
        cache: int = 4,
        data: Source | None = None,
        baselines: Any = UNKNOWN,
    ) -> None:
        self.store = store
        self._data = data
        self._baselines = baselines
        self._where = {
            i: (k, row) for k, s in enumerate(store.shards) for row, i in enumerate(s.ids)
        }
        self._cache: OrderedDict[str, Explanation] = OrderedDict()
        self._cache_size = cache

    @property
    def path(self) -> Any:
        return self.store.path

    @property
    def config(self) -> dict[str, Any]:
        """The recorded configuration: explainer, target, seed and options."""
        return dict(self.store.manifest["config"])

    @property
    def done(self) -> int:
        """How many examples are explained."""
        return len(self._where)

    @property
    def complete(self) -> bool:
        return self.done == len(self)

    def __len__(self) -> int:
        return self.store.n_examples

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Run({str(self.path)!r}, explainer={c['explainer']!r}, target={c['target']!r}, "
            f"{self.done}/{len(self)} examples explained)"
        )

    def _shard(self, k: int) -> Explanation:
        name = self.store.shards[k].name
        if name not in self._cache:
            self._cache[name] = self.store.load(self.store.shards[k])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(name)
        return self._cache[name]

    def __getitem__(self, i: int) -> Explanation:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"a run is indexed by example id (an int), got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"example {i} is out of range for a run of {n} examples")
        i %= n
        if i not in self._where:
            raise KeyError(
                f"example {i} is not explained yet ({self.done} of {n} are); run the same "
                "call again to resume"
            )
        k, row = self._where[i]
        exp = example(self._shard(k), row)
        return exp if self.stores_inputs else self._with_inputs(exp, i)

    @property
    def stores_inputs(self) -> bool:
        """Whether the shards hold inputs and baselines (else they come from the data)."""
        return self.store.manifest["config"].get("store_inputs", True) is not False

    def _with_inputs(self, exp: Explanation, i: int) -> Explanation:
        where = f"the run in {str(self.path)!r} did not store its inputs (store_inputs=False)"
        if self._data is None:
            raise ValueError(f"{where}: open it with integrad.open_run(path, data=...)")
        if self._baselines is UNKNOWN:
            raise ValueError(f"{where}: pass its baselines= to integrad.open_run with the data")
        names = exp.extras.get("input_dtypes")
        dtypes = [getattr(torch, n, None) if isinstance(n, str) else None for n in names or []]
        batch = next(iter(self._data.batches([i], 1)))
        if len(dtypes) != len(batch.inputs) or not all(isinstance(d, torch.dtype) for d in dtypes):
            raise ValueError(f"{where}, and its shard records input dtypes {names!r}")
        xs = tuple(x.to(d) for x, d in zip(batch.inputs, dtypes, strict=True))
        explainer = self.config["explainer"]
        was_tuple = bool(self.store.manifest.get("was_tuple"))
        bs = stored_baselines(explainer, self._baselines, xs, was_tuple)
        return dataclasses.replace(
            exp,
            inputs=xs if was_tuple else xs[0],
            baselines=bs if was_tuple else bs[0],
        )

    def shards(self) -> list[tuple[list[int], Explanation]]:
        """Every shard as (example ids, batch Explanation), in the order written.

        As stored: in a run made with ``store_inputs=False`` their inputs and baselines
        are one-byte placeholders (``run[i]`` has the data's).
        """
        return [(s.ids, self._shard(k)) for k, s in enumerate(self.store.shards)]

    def summary(self) -> Any:
        """A pandas DataFrame, one row per explained example, sorted by id (needs pandas).

        Columns: id, label, target, output (F(x)), baseline_output (F(x')), delta,
        relative_delta, n_evals, converged, error_estimate, seconds. Read from the
        journal alone, without loading any shard.
        """
        import pandas as pd

        rows: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for s in self.store.shards:
            for c in COLUMNS:
                rows[c].extend(s.rows.get(c, [None] * len(s.ids)))
        return pd.DataFrame(rows).sort_values("id", kind="stable").reset_index(drop=True)

    def to_html(self, path: str | Path, **options: Any) -> Path:
        """Write the dataset report (:func:`integrad.views.dataset.to_html`); needs pandas.

        Histograms of deltas and costs, the worst-converged examples, the most and least
        confident examples drawn in their kind's view, the mean attribution per class.
        """
        from ..views.dataset import to_html

        rows = self.summary().astype(object).where(lambda f: f.notna(), None).to_dict("list")
        batches = ((s.ids, self._shard(k)) for k, s in enumerate(self.store.shards))
        return to_html(path, rows, self.__getitem__, batches, **options)

    def global_importance(
        self, *, feature_names: Sequence[str] | None = None, as_frame: bool | None = None
    ) -> Any:
        """Features by mean |attribution| over every explained example (streamed by shard).

        The columns are those of :func:`integrad.tables.global_importance`: feature,
        mean_abs_attribution, mean_attribution, share. Features are the flattened
        attributions (all inputs concatenated); names default to the shards' feature
        names, else ``x0, x1, ...``.
        """
        from ..views.tables import global_importance

        total_abs: torch.Tensor | None = None
        total = torch.zeros(())
        n = 0
        names = feature_names
        for _, exp in self.shards():
            parts = exp.attributions if isinstance(exp.attributions, tuple) else (exp.attributions,)
            flat = torch.cat([a.reshape(a.shape[0], -1).double() for a in parts], dim=1)
            total_abs = flat.abs().sum(0) if total_abs is None else total_abs + flat.abs().sum(0)
            total = total + flat.sum(0)
            n += flat.shape[0]
            names = names or exp.extras.get("feature_names")
        if total_abs is None:
            raise ValueError("the run has no explained example yet")
        # Two rows, (mean + mean|.|) and (mean - mean|.|), have exactly this run's means.
        mean_abs, mean = total_abs / n, total / n
        pair = torch.stack([mean + mean_abs, mean - mean_abs])
        two = Explanation(
            attributions=pair,
            delta=torch.zeros(2),
            output=torch.zeros(2),
            baseline_output=torch.zeros(2),
            n_evals=torch.zeros(2, dtype=torch.long),
            method="run",
            n_steps=0,
            inputs=pair,
            baselines=pair,
            target=None,
        )
        return global_importance(two, feature_names=names, as_frame=as_frame)
