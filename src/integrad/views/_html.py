"""Pieces of the HTML views: escaping, inline PNGs, colour bars, what each example explains.

Shared by the report (:mod:`integrad.views.report`), the notebook summary
(:mod:`integrad.views.notebook`) and the dataset report. Every picture is a
``data:`` URI and every colour comes from :mod:`integrad.views._png`, so the pages
hold no external reference. Colours carry text at WCAG AA contrast (:func:`ink`).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _png

if TYPE_CHECKING:
    from ..explanation import Explanation

SIGN_WORDS = "red raises F, blue lowers it, white is 0"
"""The sign convention, said on every page (Captum's visualize_image_attr: green is positive)."""
BAR_WIDTH = 241
"""Colour-bar columns; odd, so the middle column is exactly 0 on a diverging bar."""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(rgb: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 RGB array."""
    return "data:image/png;base64," + base64.b64encode(_png.encode_png(rgb)).decode("ascii")


def img(rgb: np.ndarray, caption: str, alt: str | None = None) -> str:
    """A ``<figure>`` with the inline PNG at its own pixel size and ``caption`` below."""
    h, w = rgb.shape[:2]
    return (
        f'<figure><img src="{data_uri(rgb)}" width="{w}" height="{h}" '
        f'alt="{escape(alt or caption)}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def tr(*cells: str, header: bool = False) -> str:
    """A table row; a cell given as ``"num:..."`` is right-aligned monospace."""
    tag = "th" if header else "td"
    out = []
    for cell in cells:
        if cell.startswith("num:"):
            out.append(f'<{tag} class="num">{cell[4:]}</{tag}>')
        else:
            out.append(f"<{tag}>{cell}</{tag}>")
    return "<tr>" + "".join(out) + "</tr>"


def rgb_css(colour: Any) -> str:
    r, g, b = (int(c) for c in np.asarray(colour).ravel()[:3])
    return f"rgb({r}, {g}, {b})"


def _luminance(colour: Any) -> float:
    c = np.asarray(colour, dtype=np.float64).ravel()[:3] / 255
    linear = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast(first: Any, second: Any) -> float:
    """WCAG contrast ratio of two RGB colours (1 to 21; AA body text needs 4.5)."""
    a, b = sorted((_luminance(first), _luminance(second)))
    return (b + 0.05) / (a + 0.05)


def ink(background: Any) -> str:
    """Black or white text, whichever contrasts more (never below 4.58 on any colour)."""
    black = contrast(background, (0, 0, 0))
    return "#000" if black >= contrast(background, (255, 255, 255)) else "#fff"


def cell_style(value: float, limit: float) -> str:
    """``background`` (diverging colour of ``value`` at ``limit``) and ``color`` (ink) CSS."""
    colour = _png.diverging(np.array([value]), limit)[0]
    return f"background: {rgb_css(colour)}; color: {ink(colour)}"


def colour_bar(limit: float, sign: str = "all", *, label: str = "") -> np.ndarray:
    """A legend picture: the colour map as a bar with its numeric limits, uint8 RGB.

    ``sign="all"``: the diverging map from ``-limit`` (blue, lowers F) through 0 (white)
    to ``+limit`` (red, raises F); ``"absolute"``: white (0) to purple (``limit``), for
    |attribution| maps. With Pillow the numbers and ``label`` are drawn in the picture;
    without it the picture has the bar and tick marks only, and the pages say the
    numbers beside it (they always do, in the caption).
    """
    if sign not in ("all", "absolute"):
        raise ValueError(f"sign={sign!r}; a colour bar is 'all' or 'absolute'")
    if sign == "all":
        bar = _png.diverging(np.linspace(-1.0, 1.0, BAR_WIDTH), 1.0)
        ticks = [(0, "left", f"{-limit:.3g} lowers F"), (BAR_WIDTH // 2, "centre", "0")]
        ticks.append((BAR_WIDTH - 1, "right", f"+{limit:.3g} raises F"))
    else:
        bar = _png.sequential(np.linspace(0.0, 1.0, BAR_WIDTH), 1.0)
        ticks = [(0, "left", "0"), (BAR_WIDTH - 1, "right", f"{limit:.3g}")]
    pad = 2
    body = np.full((14 + 5, BAR_WIDTH + 2 * pad, 3), _png.WHITE, dtype=np.uint8)
    body[:14, pad : pad + BAR_WIDTH] = np.broadcast_to(bar[None], (14, BAR_WIDTH, 3))
    for column, _, _ in ticks:
        body[14:19, pad + column] = 0
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return body
    height = 16
    canvas = Image.new("RGB", (body.shape[1], body.shape[0] + 2 * height), (255, 255, 255))
    canvas.paste(Image.fromarray(body, "RGB"), (0, height))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    draw.text((pad, 2), label, fill=(0, 0, 0), font=font)
    for column, align, text in ticks:
        width = draw.textlength(text, font=font)
        x = {"left": 0.0, "centre": column + pad - width / 2, "right": canvas.width - width}
        draw.text((x[align], body.shape[0] + height + 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def units(exp: Explanation) -> str:
    """The unit attributions are in: F's (they sum to F(x) − F(x'))."""
    return {"logits": "logit units", "probabilities": "probability units"}.get(
        exp.output_kind or "", "units of F"
    )


def target_of(exp: Explanation, i: int) -> Any:
    """The output index explained for example ``i`` (an int, a tuple, or None)."""
    target, batch = exp.target, int(exp.delta.numel())
    if isinstance(target, torch.Tensor):
        target = target.tolist() if target.numel() != 1 else int(target.item())
    if isinstance(target, list) and len(target) == batch:
        target = target[i]
    if isinstance(target, list):
        target = tuple(target)
    return target


def _class(c: Any, class_names: Sequence[str] | None) -> str:
    name = ""
    if class_names is not None and isinstance(c, int) and 0 <= c < len(class_names):
        name = f" ({class_names[c]})"
    return f"class {c}{name}"


def what_f_is(exp: Explanation, i: int, class_names: Sequence[str] | None = None) -> str:
    """F in words for example ``i``: "logit of class 3 (cat)", "output 2", "the output"."""
    target = target_of(exp, i)
    if exp.predicted is not None:
        of = {"logits": "logit of ", "probabilities": "probability of "}
        return of.get(exp.output_kind or "", "score of ") + _class(
            0 if target is None else target, class_names
        )
    return "the model output" if target is None else f"output {target}"


def facts(exp: Explanation, i: int, class_names: Sequence[str] | None = None) -> list[str]:
    """What a reader needs of example ``i``: prediction, F(x), F(x'), delta (as text)."""
    out = []
    if exp.predicted is not None:
        predicted = f"predicted {_class(int(exp.predicted[i]), class_names)}"
        if exp.predicted_probability is not None:
            predicted += f" with probability {float(exp.predicted_probability[i]):.3g}"
        out.append(predicted)
    if exp.probability is not None:
        out.append(f"probability of the explained class {float(exp.probability[i]):.3g}")
    output, base = float(exp.output[i]), float(exp.baseline_output[i])
    out += [f"F(x) = {output:.4g}", f"F(x′) = {base:.4g}", f"F(x) − F(x′) = {output - base:.4g}"]
    relative = float(exp.relative_delta[i])
    out.append(
        f"completeness delta = {float(exp.delta[i]):.3g} ({relative:.2g} of |F(x) − F(x′)|)"
    )
    if exp.error_estimate is not None and exp.converged is not None:
        met = "met" if bool(exp.converged[i]) else "NOT met"
        out.append(
            f"estimated error {float(exp.error_estimate[i]):.3g}, tolerance {exp.tolerance:g} "
            f"{met}"
        )
    return out


def summary_table(exp: Explanation, rows: Sequence[int], *, with_sum: bool = False) -> str:
    """The per-example table: F(x), F(x′), delta, relative delta, predictions, tolerance."""
    head = ["#", "F(x)", "F(x′)", *(["sum of attributions"] if with_sum else [])]
    head += ["delta", "|delta| / |F(x) − F(x′)|"]
    if exp.predicted is not None:
        head.append("predicted")
    if exp.probability is not None and exp.predicted_probability is not None:
        head += ["p(explained)", "p(predicted)"]
    tolerated = exp.error_estimate is not None and exp.converged is not None
    if tolerated:
        head += ["est. error", "converged"]
    body = []
    for i in rows:
        output, base, delta = float(exp.output[i]), float(exp.baseline_output[i]), exp.delta[i]
        cells = [str(i), f"num:{output:.5g}", f"num:{base:.5g}"]
        if with_sum:
            cells.append(f"num:{float(delta) + output - base:.5g}")
        cells += [f"num:{float(delta):.3g}", f"num:{float(exp.relative_delta[i]):.3g}"]
        if exp.predicted is not None:
            cells.append(f"num:{int(exp.predicted[i])}")
        if exp.probability is not None and exp.predicted_probability is not None:
            cells += [
                f"num:{float(exp.probability[i]):.3g}",
                f"num:{float(exp.predicted_probability[i]):.3g}",
            ]
        if exp.error_estimate is not None and exp.converged is not None:
            cells += [f"num:{float(exp.error_estimate[i]):.3g}", str(bool(exp.converged[i]))]
        body.append(tr(*cells))
    return tr(*head, header=True) + "".join(body)
