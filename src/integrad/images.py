"""Images: explain a batch from several baselines; the pixel views are importable from here.

The drawing (``heatmap``, ``overlay``, ``gallery``, …) lives in :mod:`integrad.views.images`;
``comparison`` in :mod:`integrad.views.comparison`, whose rendering also draws the page of
:meth:`integrad.metrics.Comparison.to_html`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from . import baselines as _baselines
from .explanation import Explanation
from .integrated_gradients import explain
from .views.comparison import comparison
from .views.image_figures import figure, normalized, visualize_image_attr
from .views.images import (
    aggregate_channels,
    channel_axis_of,
    gallery,
    heatmap,
    image_rgb,
    masked,
    outlier_limit,
    overlay,
    shared_limit,
    side_by_side,
)

__all__ = [
    "aggregate_channels",
    "baseline_methods",
    "channel_axis_of",
    "compare_baselines",
    "comparison",
    "figure",
    "gallery",
    "heatmap",
    "image_rgb",
    "masked",
    "normalized",
    "outlier_limit",
    "overlay",
    "shared_limit",
    "side_by_side",
    "visualize_image_attr",
]


def baseline_methods(
    forward_func: Any, baselines: Mapping[str, object] | None = None, **kwargs: Any
) -> dict[str, Callable[..., Explanation]]:
    """One ``explain_func(inputs, target=...)`` per baseline, named by the baseline.

    What :func:`compare_baselines` runs, and what :func:`integrad.compare` takes as
    ``methods=`` to score the baselines (deletion, insertion, infidelity, …) and draw
    them side by side (``.to_html``). ``baselines`` maps a name to anything
    :func:`integrad.explain` takes as baselines; default zeros, blur, noise (uniform) and
    mean (the batch's own mean unless given as ``integrad.baselines.mean(training_data)``).
    ``kwargs`` go to every call (``kind="image"`` unless given).

    >>> import torch, integrad
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> x = torch.rand(2, 1, 4, 4)
    >>> methods = integrad.images.baseline_methods(model, n_steps=8)
    >>> result = integrad.compare(model, x, target=1, methods=methods, metrics=("deletion",))
    >>> list(result.table().index)
    ['zeros', 'blur', 'noise', 'mean']
    """
    if "target" in kwargs:
        raise TypeError("baseline_methods takes no target: the methods are called with one")
    kwargs.setdefault("kind", "image")

    def method(baseline: object) -> Callable[..., Explanation]:
        def explain_func(inputs: torch.Tensor, target: Any = None) -> Explanation:
            b = _baselines.mean(inputs) if baseline is _BATCH_MEAN else baseline
            return explain(forward_func, inputs, baselines=b, target=target, **kwargs)

        return explain_func

    if baselines is None:
        baselines = {"zeros": "zeros", "blur": "blur", "noise": "uniform", "mean": _BATCH_MEAN}
    return {name: method(b) for name, b in baselines.items()}


_BATCH_MEAN = object()
"""The default ``"mean"`` baseline: the mean of the batch being explained."""


def compare_baselines(
    forward_func: Any,
    inputs: torch.Tensor,
    baselines: Mapping[str, object] | None = None,
    *,
    target: Any = None,
    **kwargs: Any,
) -> dict[str, Explanation]:
    """Explain ``inputs`` once per baseline: :func:`baseline_methods`, run; name -> Explanation.

    Default baselines zeros, blur, noise (uniform) and mean; ``kwargs`` go to every
    :func:`integrad.explain` call. :func:`comparison` draws the answer; to score the
    baselines too, ``integrad.compare(forward_func, inputs, target=target,
    methods=baseline_methods(forward_func, baselines, **kwargs))`` returns a Comparison
    whose ``explanations`` are this dict and whose ``to_html`` draws the same pictures.
    """
    methods = baseline_methods(forward_func, baselines, **kwargs)
    return {name: method(inputs, target=target) for name, method in methods.items()}
