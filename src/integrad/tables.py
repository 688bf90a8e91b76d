"""Tables: explain rows of a model on tabular data, with baselines from training data.

The drawing and ranking (``ranked``, ``global_importance``, ``bar_chart``,
``importance_chart``) live in :mod:`integrad.views.tables` and are importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._modules import first_parameter
from .explanation import Explanation
from .integrated_gradients import explain
from .views.tables import bar_chart, global_importance, importance_chart, ranked

__all__ = ["bar_chart", "global_importance", "importance_chart", "ranked", "tabular"]

_BASELINES = ("mean", "median", "zeros")


def _matrix(data: Any, name: str) -> tuple[np.ndarray, list[str] | None]:
    """A 2-d float array and, for a DataFrame, its column names."""
    columns = None
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        columns = [str(c) for c in data.columns]
        data = data.to_numpy()
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    array = np.asarray(data)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-d (rows, features), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    return array.astype(np.float64), columns


def tabular(
    model: Any,
    rows: Any,
    *,
    training_data: Any = None,
    baseline: str | Any = "mean",
    feature_names: Sequence[str] | None = None,
    target: Any = None,
    **explain_kwargs: Any,
) -> Explanation:
    """Integrated Gradients of ``model`` on table rows, with a baseline from training data.

    ``rows`` and ``training_data`` are numpy arrays, DataFrames or tensors of shape
    ``(n, features)``. ``baseline`` is ``"mean"`` or ``"median"`` of ``training_data``,
    ``"zeros"``, or one row of values. Feature names come from ``feature_names``, else
    the DataFrame's columns, else ``x0, x1, ...``. Inputs take the model's dtype and
    device. The result's ``kind`` is ``"table"`` and its ``extras`` hold ``feature_names``;
    ``explain_kwargs`` (``target``, ``n_steps``, ``output_kind``, ...) go to
    :func:`integrad.explain`.
    """

    x, columns = _matrix(rows, "rows")
    n_features = x.shape[1]
    names = list(feature_names) if feature_names is not None else columns
    names = names or [f"x{j}" for j in range(n_features)]
    if len(names) != n_features:
        raise ValueError(f"feature_names has {len(names)} names for {n_features} features")
    if isinstance(baseline, str):
        if baseline not in _BASELINES:
            raise ValueError(f"baseline={baseline!r}; choose one of {list(_BASELINES)} or a row")
        if baseline == "zeros":
            values, description = np.zeros(n_features), "zeros"
        else:
            if training_data is None:
                raise ValueError(f"baseline={baseline!r} needs training_data")
            train, _ = _matrix(training_data, "training_data")
            if train.shape[1] != n_features:
                raise ValueError(
                    f"training_data has {train.shape[1]} features but rows have {n_features}"
                )
            reduce = np.mean if baseline == "mean" else np.median
            values = reduce(train, axis=0)
            description = f"{baseline} of training data (n={train.shape[0]})"
    else:
        values, _ = _matrix(baseline, "baseline")
        if values.shape != (1, n_features):
            raise ValueError(f"baseline must be one row of {n_features} values, got {values.shape}")
        values, description = values[0], "given row"
    parameter = first_parameter(model)  # rows take the model's dtype and device
    dtype, device = (
        (torch.float32, torch.device("cpu"))
        if parameter is None
        else (parameter.dtype, parameter.device)
    )
    inputs = torch.as_tensor(x, dtype=dtype, device=device)
    baselines = torch.as_tensor(values, dtype=dtype, device=device).expand_as(inputs).contiguous()
    exp = explain(model, inputs, baselines=baselines, target=target, kind="table", **explain_kwargs)
    exp.baseline = description
    exp.extras["feature_names"] = names
    return exp
