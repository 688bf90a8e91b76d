"""Time series: the per-step and per-feature views, importable from here.

They live in :mod:`integrad.views.timeseries`; this name is kept because the README and
earlier releases show it.
"""

from .views.timeseries import bars, figure, heatmap, per_feature, per_time

__all__ = ["bars", "figure", "heatmap", "per_feature", "per_time"]
