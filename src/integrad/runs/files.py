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
``sentences.txt``      one text per line (blank lines skipped), read by :func:`read_texts`
``sentences.jsonl``    one object per line: ``{"text": ..., "label": K}`` (label optional)
=====================  ====================================================================

Texts need the model's tokenizer: :func:`encode` turns them into the two inputs
``(input_ids, attention_mask)`` of :class:`TextModel`, which a run explains with layer
IG at the word embeddings, against :func:`token_baselines` (as :mod:`integrad.text`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .._tokens import TOKEN_KINDS
from .._tokens import token_baselines as _token_baselines

__all__ = [
    "IMAGE_SUFFIXES",
    "TEXT_SUFFIXES",
    "Loaded",
    "TextModel",
    "encode",
    "read_data",
    "read_texts",
    "token_baselines",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TEXT_SUFFIXES = (".txt", ".jsonl")


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
    if suffix in TEXT_SUFFIXES:
        raise ValueError(
            f"data {str(path)!r} holds texts: they need the model's tokenizer (read_texts, "
            "and a factory that returns (model, tokenizer))"
        )
    raise ValueError(
        f"data {str(path)!r}: unknown format {suffix!r}; use .npz, .npy, .csv, .parquet, "
        ".txt, .jsonl or a folder of images"
    )


def read_texts(path: str | Path) -> tuple[list[str], torch.Tensor | None]:
    """The texts in a ``.txt`` (one per line) or ``.jsonl`` file, and the JSONL's labels.

    Labels are all or nothing: every line of a JSONL has an integer ``"label"``, or none.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data {str(path)!r} does not exist")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: no texts (the file is empty)")
    if path.suffix.lower() != ".jsonl":
        return [line.strip() for line in lines], None
    texts, labels = [], []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{path}: line {number} is not JSON ({e})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise ValueError(f'{path}: line {number} needs {{"text": "..."}}, got {line[:80]!r}')
        label = entry.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
            raise ValueError(f"{path}: line {number} has label={label!r}; labels are class numbers")
        texts.append(entry["text"])
        labels.append(label)
    given = [label is not None for label in labels]
    if any(given) and not all(given):
        raise ValueError(f"{path}: line {given.index(False) + 1} has no label but others do")
    return texts, torch.tensor(labels) if all(given) else None


def encode(texts: list[str], tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of ``texts``, padded to the longest (truncated to the
    model's maximum length): the inputs of :class:`TextModel`, one row per text."""
    enc = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


class TextModel(nn.Module):
    """A HuggingFace model as ``(input_ids, attention_mask) -> outputs``.

    The outputs are the model's logits; a model without a classification head (no
    ``.logits``, e.g. a sentence encoder) raises, as :func:`integrad.text.explain_text`.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if getattr(out, "logits", None) is None:
            raise ValueError(
                "TextModel: the model has no classification head (its output has no .logits, "
                "e.g. a sentence encoder), and a run explains class scores; give (the --model "
                "factory: return) a model whose output has .logits, e.g. a classifier on the "
                "mean-pooled embedding (integrad.text.mean_pool)"
            )
        return cast(torch.Tensor, out.logits)

    def embeddings_name(self) -> str:
        """The dotted name of the word-embedding layer (for layer IG)."""
        embedding = self.model.get_input_embeddings()  # type: ignore[operator]
        for name, module in self.named_modules():
            if module is embedding:
                return name
        raise ValueError("the model's get_input_embeddings() is not one of its submodules")


def token_baselines(tokenizer: Any, kind: str = "pad") -> Any:
    """Baselines for :class:`TextModel`'s inputs: ordinary tokens replaced by ``kind``.

    Special tokens and the attention mask are kept (see :func:`integrad.text.token_baselines`).
    """
    if kind not in TOKEN_KINDS:
        raise ValueError(f"baselines={kind!r} for texts; choose one of {list(TOKEN_KINDS)}")

    def baselines(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        ids, mask = inputs
        return _token_baselines(ids, tokenizer, kind), mask

    baselines.__qualname__ = f"token_baselines[{kind}]"  # what the run's configuration records
    return baselines


def describe(loaded: Loaded) -> dict[str, Any]:
    """What the command line prints about the data it read."""
    return {
        "examples": int(loaded.inputs.shape[0]),
        "shape": list(loaded.inputs.shape[1:]),
        "labels": loaded.labels is not None,
    }
