"""Data files the command line reads: ``.npz``, ``.npy``, CSV, Parquet and image folders.

Values are used as they are (first axis = examples): preprocessing belongs in the model.

=====================  ====================================================================
path                   examples
=====================  ====================================================================
``data.npz``           the float array ``x``; integer labels ``y`` when present
``data.npy``           the array
``table.csv``          the rows; feature names from the header; ``label=COLUMN`` the labels
``table.parquet``      as CSV (needs pyarrow)
``folder/``            one image per file, one subfolder per class (as torchvision's
                       ImageFolder): float tensors (channels, height, width) in [0, 1]
=====================  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["IMAGE_SUFFIXES", "Loaded", "read_data"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class Loaded:
    """Examples read from a file: inputs, optional labels, optional feature names."""

    inputs: torch.Tensor
    labels: torch.Tensor | None = None
    feature_names: list[str] | None = None
    classes: list[str] = field(default_factory=list)


def _npz(path: Path) -> Loaded:
    with np.load(path, allow_pickle=False) as archive:
        if "x" not in archive.files:
            raise ValueError(f"{path}: an .npz needs an array 'x'; it holds {archive.files}")
        x = archive["x"]
        y = archive["y"] if "y" in archive.files else None
    if y is not None and (
        y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer)
    ):
        raise ValueError(f"{path}: 'y' must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    return Loaded(torch.from_numpy(x), None if y is None else torch.from_numpy(y).long())


def _table(path: Path, label: str | None) -> Loaded:
    import pandas as pd

    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as e:
            raise ValueError(f"{path}: reading Parquet needs pyarrow ({e})") from None
    else:
        frame = pd.read_csv(path)
    labels = None
    if label is not None:
        if label not in frame.columns:
            raise ValueError(f"label={label!r} is not a column of {path}: {list(frame.columns)}")
        labels = torch.as_tensor(frame.pop(label).to_numpy().copy()).long()
    numeric = frame.select_dtypes("number")
    if list(numeric.columns) != list(frame.columns):
        other = [c for c in frame.columns if c not in numeric.columns]
        raise ValueError(f"{path}: columns {other} are not numeric; pass --label for a label")
    x = torch.as_tensor(frame.to_numpy(dtype=np.float64))
    return Loaded(x, labels, [str(c) for c in frame.columns])


def _images(path: Path) -> Loaded:
    from PIL import Image

    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{path}: an image folder needs one subfolder per class")
    images, labels = [], []
    for k, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(file) as im:
                    array = np.asarray(im.convert("L" if im.mode in ("L", "1") else "RGB"))
                tensor = torch.from_numpy(array.copy()).float() / 255.0
                images.append(tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1))
                labels.append(k)
    if not images:
        raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in its subfolders")
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        raise ValueError(f"{path}: images differ in shape {sorted(shapes)[:3]}; resize them first")
    return Loaded(torch.stack(images), torch.tensor(labels), classes=classes)


def read_data(path: str | Path, *, label: str | None = None) -> Loaded:
    """The examples in ``path`` (a file or image folder, see the module's table)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data {str(path)!r} does not exist")
    if path.is_dir():
        return _images(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path)
    if suffix == ".npy":
        return Loaded(torch.from_numpy(np.load(path, allow_pickle=False)))
    if suffix in (".csv", ".parquet"):
        return _table(path, label)
    raise ValueError(
        f"data {str(path)!r}: unknown format {suffix!r}; use .npz, .npy, .csv, .parquet or "
        "a folder of images"
    )


def describe(loaded: Loaded) -> dict[str, Any]:
    """What the command line prints about the data it read."""
    return {
        "examples": int(loaded.inputs.shape[0]),
        "shape": list(loaded.inputs.shape[1:]),
        "labels": loaded.labels is not None,
    }
