"""Views: pictures, tables and pages drawn from Explanations (reads them, computes nothing).

Which view suits an explanation is its ``kind`` (``explain(..., kind=...)``; the domain
helpers :func:`integrad.tables.tabular`, :func:`integrad.images.compare_baselines` and
:func:`integrad.text.explain_text` set it). Without one, 4-d inputs ``(batch, channels,
height, width)`` are images and 2-d ``(batch, features)`` a table; 3-d inputs are
ambiguous — grayscale ``(batch, height, width)`` images and ``(batch, time, features)``
series look alike — so :func:`kind_of` asks for ``kind=``.

>>> import torch, integrad
>>> kind_of(integrad.explain(torch.nn.Flatten(), torch.ones(2, 1, 4, 4), target=0))
'image'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._inputs import KINDS

if TYPE_CHECKING:
    from ..explanation import Explanation

__all__ = ["KINDS", "kind_of", "plot"]


def kind_of(exp: Explanation, kind: str | None = None) -> str:
    """``kind`` if given, else ``exp.kind``, else what the inputs' shape says for sure."""
    kind = kind or exp.kind
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not a view; choose one of {list(KINDS)}")
        return str(kind)
    if "tokens" in exp.extras:
        return "text"
    inputs = exp.inputs
    if isinstance(inputs, tuple):
        if len(inputs) != 1:
            raise ValueError(
                f"cannot choose one view for {len(inputs)} inputs; pass kind= and "
                "explain each input on its own"
            )
        inputs = inputs[0]
    shape = tuple(inputs.shape)
    if len(shape) == 4:
        return "image"
    if len(shape) == 2:
        return "table"
    if len(shape) == 3:
        raise ValueError(
            f"inputs of shape {shape} may be grayscale images (batch, height, width) or "
            "series (batch, time, features); say which: explain(..., kind='image') or "
            "kind='timeseries', or plot(kind=...) / to_html(kind=...)"
        )
    raise ValueError(f"no view for inputs of shape {shape}; pass kind= one of {list(KINDS)}")


def plot(exp: Explanation, kind: str | None = None, *, example: int = 0, **options: Any) -> Any:
    """A matplotlib Figure of ``exp``'s ``example`` in the view for ``kind`` (default: guessed).

    ``options`` go to :func:`integrad.views.image_figures.figure` (``method``, ``sign``,
    ``cmap``, ``show_colorbar``, ``outlier_perc``, ``captum_colors``, ``ax``, ...),
    :func:`integrad.views.tables.bar_chart` (``top``, ``ax``, ...) or
    :func:`integrad.views.timeseries.figure` (``fig``, ...); all take ``class_names``
    and ``use_pyplot``. Every figure is titled with what was explained, has its scale
    in units of F with the sign convention (red raises F, blue lowers it), and states
    F(x), F(x') and the completeness delta. The Figure is not a pyplot one unless
    ``use_pyplot=True``: a notebook displays the returned value once; save it with
    ``fig.savefig(path)``.
    """
    kind = kind_of(exp, kind)
    if kind == "image":
        from .image_figures import figure

        return figure(exp, example, **options)
    if kind == "table":
        from .tables import bar_chart

        return bar_chart(exp, example, **options)
    if kind == "timeseries":
        from .timeseries import figure as series_figure

        return series_figure(exp, example, **options)
    if kind == "text":
        raise ValueError(
            "there is no matplotlib view for text; colour the tokens with exp.to_html(path) "
            "or integrad.text.html / integrad.text.terminal"
        )
    raise ValueError(f"kind={kind!r} is not a view; choose one of {list(KINDS)}")
