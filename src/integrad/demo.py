"""The main job: explain a small CNN trained on scikit-learn's digits, then show every view.

``python -m integrad.demo --out out/demo`` trains the CNN in seconds (or reuses the
cached weights) and explains a few test digits with Integrated Gradients. F is the
logit of each digit's predicted class k, the baseline a black image; per example it
prints the label, k and its probability, F(x), F(baseline), the sum of attributions
and the completeness delta, and writes a PNG (input | signed | absolute | overlay,
red raises F, blue lowers it). Then it writes one example of each view (see
:mod:`integrad.demo_views`): image views of the digits, a ranked table and bar chart
for a breast-cancer MLP, a time-series view, HTML reports and a saved explanation.
Everything goes under ``--out``; ``--readme docs/images`` (``make readme-images``)
also copies the README's pictures there. Needs the ``demo`` extra (scikit-learn;
matplotlib and Pillow for the figures).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .integrated_gradients import explain
from .views import images
from .views._png import write_png


def digits_cnn() -> nn.Module:
    """The demo's architecture: two 3×3 convolutions, max-pooling, two linear layers."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def digits_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits scaled to [0, 1]: train images, labels, test images, labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(data.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=0.2, random_state=seed, stratify=data.target
    )
    tr, te = torch.from_numpy(idx_train), torch.from_numpy(idx_test)
    return images[tr], labels[tr], images[te], labels[te]


def train_digits_cnn(seed: int = 0, epochs: int = 15, cache: Path | None = None) -> nn.Module:
    """Train (or load from ``cache``) the digits CNN; returns it in eval mode."""
    model = digits_cnn()
    if cache is not None and cache.exists():
        model.load_state_dict(torch.load(cache, weights_only=True))
        return model.eval()
    torch.manual_seed(seed)
    model = digits_cnn()
    x_train, y_train, _, _ = digits_data(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cache)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--examples", type=int, default=6)
    parser.add_argument("--n-steps", type=int, default=64)
    parser.add_argument("--no-views", action="store_true", help="only the digit heatmaps")
    parser.add_argument("--readme", type=Path, default=None, help="write README pictures here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    model = train_digits_cnn(cache=args.out / "digits_cnn.pt")
    _, _, x_test, y_test = digits_data()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"digits CNN: test accuracy {accuracy:.1%} on {len(y_test)} digits")

    x = x_test[: args.examples]
    with torch.no_grad():
        predicted = model(x).argmax(1)
    exp = explain(
        model, x, target=predicted, n_steps=args.n_steps, kind="image", output_kind="logits"
    )
    print(f"Integrated Gradients, {exp.method} rule, {exp.n_steps} steps")
    print(f"F(x) = the logit of the predicted class k; baseline x' = {exp.baseline} (black image)")
    print(
        f"{'#':>2} {'label':>5} {'k':>2} {'p(k)':>6} {'F(x)':>9} {'F(baseline)':>11} "
        f"{'sum attr':>9} {'delta':>10}"
    )
    attributions = exp.attributions
    if not isinstance(attributions, torch.Tensor) or exp.probability is None:
        raise TypeError("the digits explanation has one input tensor and probabilities")
    totals = attributions.flatten(1).sum(1)
    for i in range(len(x)):
        print(
            f"{i:2d} {int(y_test[i]):5d} {int(predicted[i]):2d} {exp.probability[i].item():6.3f} "
            f"{exp.output[i].item():9.4f} {exp.baseline_output[i].item():11.4f} "
            f"{totals[i].item():9.4f} {exp.delta[i].item():10.2e}"
        )
        path = write_png(
            args.out / f"digit_{i}_label{int(y_test[i])}.png", images.side_by_side(exp, i)
        )
    print("delta = sum attr - (F(x) - F(baseline)); p(k) = softmax probability of class k")
    print(
        f"heatmaps (input | signed | absolute | overlay; red raises F, blue lowers it) "
        f"in {path.parent}/"
    )
    if not args.no_views:
        from .demo_views import write_views

        write_views(model, exp, y_test[: len(x)], args.out / "views", readme=args.readme)
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
