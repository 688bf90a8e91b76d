"""PIC (SIC/AIC): every number as PAIR saliency's ``saliency/metrics/pic.py`` computes it."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from integrad.metrics import pic, random_mask


@pytest.fixture
def pair_pic(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """PAIR's pic.py (numpy, scipy, PIL only), loaded from its file; np.trapz left numpy 2.4."""
    pytest.importorskip("scipy")
    spec = importlib.util.find_spec("saliency")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the saliency package is not installed: pip install --no-deps saliency")
    path = os.path.join(spec.submodule_search_locations[0], "metrics", "pic.py")
    module_spec = importlib.util.spec_from_file_location("_pair_pic", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    return module


def blobs(batch: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """uint8 images with smooth structure plus texture, so blurring loses information."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, channels, 4, 4, generator=g, dtype=torch.float64)
    smooth = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    texture = torch.rand(batch, channels, size, size, generator=g, dtype=torch.float64)
    return (255 * (0.7 * smooth + 0.3 * texture)).round().to(torch.uint8)


def model(channels: int, size: int, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh(), nn.Flatten(),
        nn.Linear(3 * size * size, classes),
    ).double().eval()  # fmt: skip


def pair_results(
    pair: ModuleType, net: nn.Module, images: torch.Tensor, maps: torch.Tensor,
    masks: torch.Tensor, classes: torch.Tensor, kind: str, **kwargs: Any,
) -> list[Any]:  # fmt: skip
    """PAIR's compute_pic_metric per image, its error message where it raises."""
    results: list[Any] = []
    for b in range(images.shape[0]):
        channels_last = images[b].movedim(0, -1).numpy()
        image = channels_last[..., 0] if channels_last.shape[-1] == 1 else channels_last

        def pred(batch: np.ndarray, b: int = b) -> list[float]:
            x = torch.from_numpy(batch).double() / 255
            x = x.unsqueeze(1) if x.dim() == 3 else x.movedim(-1, 1)
            with torch.no_grad():
                logits = net(x)
            if kind == "sic":
                return logits.softmax(-1)[:, classes[b]].tolist()
            return (logits.argmax(-1) == classes[b]).double().tolist()

        try:
            results.append(
                pair.compute_pic_metric(image, maps[b].numpy(), masks[b].numpy(), pred, **kwargs)
            )
        except pair.ComputePicMetricError as error:
            results.append(error)
    return results


@pytest.mark.parametrize(
    ("channels", "kind", "keep_monotonous", "seed"),
    [(3, "sic", True, 3), (1, "sic", False, 1), (3, "aic", True, 1)],
)
def test_curves_match_pair_saliency(
    pair_pic: ModuleType, channels: int, kind: str, keep_monotonous: bool, seed: int
) -> None:
    """Target: the predicted class. Seeds picked so that PAIR keeps >= 2 images and skips some."""
    size, batch = 16, 6
    net = model(channels, size)
    images = blobs(batch, channels, size, seed=seed)
    g = torch.Generator().manual_seed(7)
    maps = torch.rand(batch, size, size, generator=g, dtype=torch.float64)
    masks = torch.stack([random_mask(size, size, 0.05, generator=g) for _ in range(batch)])
    thresholds = [0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75]
    result = pic(
        net, images, maps, kind=kind, random_masks=masks,
        thresholds=thresholds, min_pred_value=0.0, keep_monotonous=keep_monotonous,
        num_data_points=200, preprocess=lambda u: u.double() / 255,
    )  # fmt: skip
    with torch.no_grad():
        classes = net(images.double() / 255).argmax(-1)
    expected = pair_results(
        pair_pic, net, images, maps, masks, classes, kind, saliency_thresholds=thresholds,
        min_pred_value=0.0, keep_monotonous=keep_monotonous, num_data_points=200,
    )  # fmt: skip
    kept = skipped = 0
    for b, theirs in enumerate(expected):
        if isinstance(theirs, Exception):
            assert result.skipped[b] is not None
            assert torch.isnan(result.curves[b]).all()
            skipped += 1
            continue
        kept += 1
        assert result.skipped[b] is None
        np.testing.assert_allclose(result.predictions[b].numpy(), theirs.predictions, rtol=1e-12)
        np.testing.assert_allclose(result.curve_x.numpy(), theirs.curve_x, rtol=0, atol=0)
        np.testing.assert_allclose(result.curves[b].numpy(), theirs.curve_y, rtol=1e-12, atol=1e-12)
        assert float(result.auc[b]) == pytest.approx(float(theirs.auc), rel=1e-12)
    assert kept >= 2 and (skipped >= 1 or kind == "sic")
    curves = [r for r in expected if not isinstance(r, Exception)]
    for method in ("median", "mean"):
        theirs = pair_pic.aggregate_individual_pic_results(curves, method=method)
        curve, auc = result.aggregate(method)
        np.testing.assert_allclose(curve.numpy(), theirs.curve_y, rtol=1e-12, atol=1e-12)
        assert auc == pytest.approx(float(theirs.auc), rel=1e-12)


def test_blurred_images_match_pair(pair_pic: ModuleType) -> None:
    """The interpolation (one triangulation for all channels) is PAIR's per-channel griddata."""
    from integrad.metrics.pic import _blurred

    images = blobs(2, 3, 12, seed=3)
    g = torch.Generator().manual_seed(1)
    for b in range(2):
        mask = random_mask(12, 12, 0.1, generator=g).numpy()
        image = images[b].movedim(0, -1).numpy()
        np.testing.assert_array_equal(
            _blurred(image, mask), pair_pic.create_blurred_image(image, mask)
        )


def test_generator_masks_are_reproducible_and_errors_name_the_argument() -> None:
    net = model(1, 8)
    images = blobs(2, 1, 8, seed=0)
    maps = torch.rand(2, 8, 8)
    runs = [
        pic(net, images, maps, generator=torch.Generator().manual_seed(5), min_pred_value=0.0,
            preprocess=lambda u: u.double() / 255, num_data_points=50)
        for _ in range(2)
    ]  # fmt: skip
    torch.testing.assert_close(runs[0].entropies, runs[1].entropies)
    torch.testing.assert_close(runs[0].curves, runs[1].curves, equal_nan=True)
    mask = random_mask(10, 10, 0.25, generator=torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and int(mask.sum()) == 25
    with pytest.raises(ValueError, match="images must be uint8"):
        pic(net, images.double(), maps)
    with pytest.raises(ValueError, match=r"saliency has shape \(2, 7, 8\)"):
        pic(net, images, torch.rand(2, 7, 8))
    with pytest.raises(ValueError, match="kind must be one of"):
        pic(net, images, maps, kind="xic")
    with pytest.raises(ValueError, match=r"random_masks must be a \(2, 8, 8\) tensor"):
        pic(net, images, maps, random_masks=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="target must be None, an int or 2 ints"):
        pic(net, images, maps, target=[1, 2, 3], preprocess=lambda u: u.double() / 255)
    with pytest.raises(ValueError, match="fraction must be in"):
        random_mask(4, 4, 1.5)


def test_plot_draws_each_curve_and_the_aggregate_with_their_areas() -> None:
    import matplotlib.pyplot as plt

    net = model(1, 8)
    result = pic(net, blobs(3, 1, 8, seed=2), torch.rand(3, 8, 8), min_pred_value=0.0,
                 generator=torch.Generator().manual_seed(1),
                 preprocess=lambda u: u.double() / 255, num_data_points=40)  # fmt: skip
    valid = torch.nonzero(result.valid).flatten().tolist()
    assert valid, "the test needs at least one curve"
    before = plt.get_fignums()
    fig = result.plot()
    assert plt.get_fignums() == before  # not a pyplot figure
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == len(valid) + 1
    for line, i in zip(lines[:-1], valid, strict=True):
        np.testing.assert_array_equal(line.get_xdata(), result.curve_x.numpy())
        np.testing.assert_array_equal(line.get_ydata(), result.curves[i].numpy())
    curve, area = result.aggregate("median")
    np.testing.assert_array_equal(lines[-1].get_ydata(), curve.numpy())
    assert lines[-1].get_linewidth() > lines[0].get_linewidth()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-1] == f"median: AUC {area:.3f}"
    assert labels[0] == f"#{valid[0]}: AUC {float(result.auc[valid[0]]):.3f}"
    assert ax.get_xlabel() and ax.get_ylabel() == "normalised softmax"
    from integrad.views._png import new_figure

    mine = new_figure((3, 3))
    target_ax = mine.add_subplot()
    assert result.plot(ax=target_ax, aggregate="mean") is mine and target_ax.get_lines()
