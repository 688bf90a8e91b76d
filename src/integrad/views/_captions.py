"""What every view says in words: what was explained, the units, the scale, the completeness check.

The same sentences go into matplotlib titles, the captions under pixel layouts, the
HTML report, the notebook summary, the dataset report and the text views, so a reader
meets one vocabulary: F is the explained output (the target's value, in logit or
probability units when ``exp.output_kind`` says so), x' the baseline, red raises F and
blue lowers it. The strings are plain ASCII (plus ``±``) so that Pillow's default font
draws them.

>>> import torch, integrad
>>> exp = integrad.explain(torch.nn.Linear(3, 2), torch.ones(1, 3), target=1)
>>> headline(exp, 0, class_names=["cat", "dog"]).split(";")[0]
"Integrated Gradients (gausslegendre) of target 1 'dog'"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._inputs import Target

if TYPE_CHECKING:
    from ..explanation import Explanation

ClassNames = Sequence[str] | Mapping[int, str] | None

SIGN_NOTES = {
    "all": "red raises F, blue lowers it",
    "absolute": "white->purple = |a|, sign dropped",
    "positive": "red: raises F (negative parts hidden)",
    "negative": "blue: lowers F (positive parts hidden)",
}
SIGN_WORDS = f"{SIGN_NOTES['all']}, white is 0"
"""The sign convention of the HTML pages (Captum's visualize_image_attr: green is positive)."""
CAPTUM_SIGN_NOTES = {
    "all": "green raises F, red lowers it (Captum's colours)",
    "absolute": "white->blue = |a| (Captum's colours)",
    "positive": "green: raises F (Captum's colours)",
    "negative": "red: lowers F (Captum's colours)",
}


def target_of(exp: Explanation, example: int) -> tuple[int, ...] | None:
    """The output index explained for ``example`` (None: the one output per example)."""
    if exp.target is None:
        return None
    try:
        rows = Target(exp.target, len(exp.delta)).per_example
    except (TypeError, ValueError):
        return None
    return None if rows is None else rows[example]


def class_label(index: tuple[int, ...] | int, class_names: ClassNames) -> str:
    """``3 'three'`` when a name is known for class 3, else ``3``; tuples as ``(i, j)``."""
    key = index[0] if isinstance(index, tuple) and len(index) == 1 else index
    text = str(key) if isinstance(key, int) else str(tuple(key))
    if class_names is None or not isinstance(key, int):
        return text
    if isinstance(class_names, Mapping):
        name = class_names.get(key)
    else:
        name = class_names[key] if 0 <= key < len(class_names) else None
    return f"{text} {name!r}" if name is not None else text


NAMED_METHODS = {
    "guided": "Guided IG",
    "blur": "Blur IG",
    "idgi": "IDGI",
    "exact": "Integrated Gradients (exact)",
    "saliency": "Saliency",
}


def method_name(exp: Explanation) -> str:
    """The attribution method in words: ``Integrated Gradients (gausslegendre)``, ``Blur IG``."""
    method = str(exp.method)
    if method in NAMED_METHODS:
        return NAMED_METHODS[method]
    if method.startswith("layer:"):
        return f"Layer Integrated Gradients ({method.removeprefix('layer:')})"
    return f"Integrated Gradients ({method})"


def headline(exp: Explanation, example: int, class_names: ClassNames = None) -> str:
    """What was explained: method, target (and its probability), predicted class (and its)."""
    target = target_of(exp, example)
    what = "the output" if target is None else f"target {class_label(target, class_names)}"
    if exp.probability is not None:
        what += f" (p {float(exp.probability[example]):.2f})"
    text = f"{method_name(exp)} of {what}"
    if exp.predicted is not None:
        text += f"; predicted {class_label(int(exp.predicted[example]), class_names)}"
        if exp.predicted_probability is not None:
            text += f" (p {float(exp.predicted_probability[example]):.2f})"
    return text


def outputs(output: float, baseline_output: float) -> str:
    """``F(x) = ..., F(x') = ..., F(x) - F(x') = ...``: what the attributions add up to."""
    return (
        f"F(x) = {output:.4g}, F(x') = {baseline_output:.4g}, "
        f"F(x) - F(x') = {output - baseline_output:.4g}"
    )


def completeness(exp: Explanation, example: int) -> str:
    """F(x), F(x'), their difference and the delta of ``example``, with steps and baseline."""
    out, base = float(exp.output[example]), float(exp.baseline_output[example])
    return (
        f"{outputs(out, base)}, delta = {float(exp.delta[example]):.2g}; {exp.n_steps} steps, "
        f"baseline {exp.baseline}"
    )


def what_f_is(exp: Explanation, example: int, class_names: ClassNames = None) -> str:
    """F in words: ``logit of class 3 'cat'``, ``output 2``, ``the model output``."""
    target = target_of(exp, example)
    if exp.predicted is not None:
        of = {"logits": "logit", "probabilities": "probability"}.get(exp.output_kind or "", "score")
        return f"{of} of class {class_label(0 if target is None else target, class_names)}"
    return "the model output" if target is None else f"output {class_label(target, None)}"


def facts(exp: Explanation, example: int, class_names: ClassNames = None) -> list[str]:
    """What a reader needs of ``example``: prediction, F(x), F(x'), delta, the tolerance."""
    out = []
    if exp.predicted is not None:
        said = f"predicted class {class_label(int(exp.predicted[example]), class_names)}"
        if exp.predicted_probability is not None:
            said += f" with probability {float(exp.predicted_probability[example]):.3g}"
        out.append(said)
    if exp.probability is not None:
        out.append(f"probability of the explained class {float(exp.probability[example]):.3g}")
    out += outputs(float(exp.output[example]), float(exp.baseline_output[example])).split(", ")
    relative = float(exp.relative_delta[example])
    out.append(
        f"completeness delta = {float(exp.delta[example]):.3g} ({relative:.2g} of |F(x) - F(x')|)"
    )
    if exp.error_estimate is not None and exp.converged is not None:
        met = "met" if bool(exp.converged[example]) else "NOT met"
        out.append(
            f"estimated error {float(exp.error_estimate[example]):.3g}, tolerance "
            f"{exp.tolerance:g} {met}"
        )
    return out


def sign_note(sign: str, captum_colors: bool = False) -> str:
    """What the colours of a ``sign`` view mean (``sign``: all/absolute/positive/negative)."""
    return (CAPTUM_SIGN_NOTES if captum_colors else SIGN_NOTES)[sign]


def unit(output_kind: str | None = None) -> str:
    """The unit attributions are in: F's (they sum to F(x) - F(x')), named when known."""
    return {"logits": "logit units", "probabilities": "probability units"}.get(
        output_kind or "", "units of F"
    )


def units(
    sign: str, captum_colors: bool = False, output_kind: str | None = None, *, sep: str = ": "
) -> str:
    """A colour bar's label: the units (of ``output_kind``'s F) and the sign convention."""
    return f"attribution ({unit(output_kind)}){sep}{sign_note(sign, captum_colors)}"


def rule(clip: str | None, percentile: float) -> str:
    """How a colour limit was chosen (see :func:`integrad.views.images.outlier_limit`)."""
    if clip == "cumsum":
        return f"cumsum rule: the top {100 - percentile:g}% of sum |a| saturates"
    if clip == "percentile":
        return f"{percentile:g}th percentile of |a|"
    return "largest |a|"


def scale_note(limit: float | None, clip: str | None, percentile: float, scope: str) -> str:
    """The stated normalisation, e.g. ``colour limit ±0.12 shared across the gallery (...)``.

    ``scope`` is where the limit holds (``"shared across the gallery"``, ``"per image"``,
    ``"this image"``); ``limit=None`` when each image has its own.
    """
    value = "L" if limit is None else f"{limit:.3g}"
    return f"colour limit ±{value} {scope} ({rule(clip, percentile)})"


def describe_options(options: Mapping[str, Any]) -> tuple[str | None, float]:
    """The clipping rule and percentile a view's ``options`` ask for (their defaults else)."""
    return options.get("clip", "cumsum"), float(options.get("percentile", 98.0))
