"""Images: explain a batch from several baselines; the pixel views are importable from here.

The drawing (``heatmap``, ``overlay``, ``gallery``, ``comparison``, …) lives in
:mod:`integrad.views.images`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from . import baselines as _baselines
from .explanation import Explanation
from .integrated_gradients import explain
from .views.image_figures import figure, normalized, visualize_image_attr
from .views.images import (
    aggregate_channels,
    channel_axis_of,
    comparison,
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


def compare_baselines(
    forward_func: Any,
    inputs: torch.Tensor,
    baselines: Mapping[str, object] | None = None,
    **kwargs: Any,
) -> dict[str, Explanation]:
    """Explain ``inputs`` once per baseline; default zeros, blur, noise (uniform), and mean.

    ``baselines`` maps a name to anything :func:`integrad.explain` takes as baselines
    (``"mean"`` is the batch's own mean unless given as
    ``integrad.baselines.mean(training_data)``); ``kwargs`` go to every call.
    """
    if baselines is None:
        baselines = {
            "zeros": "zeros",
            "blur": "blur",
            "noise": "uniform",
            "mean": _baselines.mean(inputs),
        }
    kwargs.setdefault("kind", "image")
    return {
        name: explain(forward_func, inputs, baselines=b, **kwargs) for name, b in baselines.items()
    }
