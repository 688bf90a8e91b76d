"""Which view suits an explanation, and :meth:`Explanation.plot`'s dispatch.

The kind of input is ``extras["kind"]`` when the producer set it (:func:`integrad.tables.tabular`
sets ``"table"``; a text explanation carries ``"text"``), else it is read from the shape
of the inputs: 4-d ``(batch, channels, height, width)`` is an image, 3-d
``(batch, time, features)`` a time series, 2-d ``(batch, features)`` a table.

>>> import torch, integrad
>>> kind_of(integrad.explain(torch.nn.Flatten(), torch.ones(2, 1, 4, 4), target=0))
'image'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .explanation import Explanation

__all__ = ["KINDS", "kind_of", "plot"]

KINDS = ("image", "table", "timeseries", "text")


def kind_of(exp: Explanation) -> str:
    """``"image"``, ``"table"``, ``"timeseries"`` or ``"text"`` for ``exp``'s inputs."""
    kind = exp.extras.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"extras['kind']={kind!r} is not one of {list(KINDS)}")
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
    dims = inputs.dim()
    if dims == 4:
        return "image"
    if dims == 3:
        return "timeseries"
    if dims == 2:
        return "table"
    raise ValueError(
        f"no view for inputs of shape {tuple(inputs.shape)}; pass kind= one of {list(KINDS)}"
    )


def plot(exp: Explanation, kind: str | None = None, *, example: int = 0, **options: Any) -> Any:
    """A matplotlib figure of ``exp``'s ``example`` in the view for ``kind`` (default: guessed)."""
    kind = kind or kind_of(exp)
    if kind == "image":
        from .images import figure

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
