"""Token-level data for text explanations: baseline token ids, word pieces, pooled states.

Core, below every method and view: nothing here computes attributions or draws.

>>> import torch
>>> from types import SimpleNamespace
>>> tok = SimpleNamespace(pad_token_id=0, unk_token_id=100, mask_token_id=103,
...                       all_special_ids=[0, 100, 101, 102, 103])
>>> token_baselines(torch.tensor([[101, 7592, 2088, 102, 0]]), tok, kind="mask")
tensor([[101, 103, 103, 102,   0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "BASELINE_KINDS",
    "TOKEN_KINDS",
    "TextAttribution",
    "mean_pool",
    "merge_word_pieces",
    "token_baselines",
]

TOKEN_KINDS: tuple[str, ...] = ("pad", "unk", "mask")

BASELINE_KINDS: tuple[str, ...] = (*TOKEN_KINDS, "zero")


def token_baselines(input_ids: torch.Tensor, tokenizer: Any, kind: str = "pad") -> torch.Tensor:
    """Baseline token ids: every ordinary token replaced by the ``kind`` token.


    Special tokens ([CLS], [SEP], padding, …) keep their ids, so the baseline differs
    from the input only where the text is; use the result as ``baselines`` of
    :class:`integrad.LayerIntegratedGradients` at the word-embedding layer, with the
    attention mask passed unchanged in ``additional_forward_args``.
    """
    if kind not in TOKEN_KINDS:
        raise ValueError(
            f"kind={kind!r} is not a token baseline; choose one of {list(TOKEN_KINDS)}"
        )
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point():
        raise TypeError("input_ids must be an integer tensor of token ids")
    token = getattr(tokenizer, f"{kind}_token_id", None)
    if token is None:
        raise ValueError(f"the tokenizer has no {kind} token (its {kind}_token_id is None)")
    keep = _special(input_ids, tokenizer)
    return torch.where(keep, input_ids, torch.full_like(input_ids, int(token)))


def _special(input_ids: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=input_ids.dtype)
    return torch.isin(input_ids, special.to(input_ids.device))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding: mean of the hidden states over unmasked tokens."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1)


def merge_word_pieces(
    tokens: Sequence[str], scores: torch.Tensor, word_ids: Sequence[int | None] | None = None
) -> tuple[list[str], torch.Tensor]:
    """Words and their scores: the pieces of a word are joined and their scores added.


    ``word_ids`` (from a fast tokenizer's ``encoding.word_ids()``) says which word each
    token belongs to (None for special tokens, which stay on their own); without it,
    WordPiece's ``##`` prefix marks a continuation.


    >>> words, s = merge_word_pieces(["[CLS]", "un", "##bel", "##ievable", "!"],
    ...                              torch.tensor([0.0, 1.0, 2.0, 3.0, -1.0]))
    >>> words, s.tolist()
    (['[CLS]', 'unbelievable', '!'], [0.0, 6.0, -1.0])
    """
    if len(tokens) != len(scores):
        raise ValueError(f"{len(tokens)} tokens but {len(scores)} scores; give one per token")
    if word_ids is not None and len(word_ids) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(word_ids)} word_ids")
    words: list[str] = []
    groups: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if word_ids is not None:
            joins = i > 0 and word_ids[i] is not None and word_ids[i] == word_ids[i - 1]
        else:
            joins = bool(words) and tok.startswith("##")
        piece = tok[2:] if tok.startswith("##") and (joins or word_ids is not None) else tok
        if joins:
            words[-1] += piece
            groups[-1].append(i)
        else:
            words.append(piece)
            groups.append([i])
    merged = torch.stack([scores[g].sum() for g in groups]) if groups else scores[:0]
    return words, merged


@dataclass
class TextAttribution:
    """Token attributions of one text, with the completeness check and the prediction.

    What Captum's ``VisualizationDataRecord`` holds, by integrad's names: ``scores``
    (``word_attributions``), ``predicted`` and ``predicted_probability`` (``pred_class``,
    ``pred_prob``), ``label`` (``true_class``), ``target`` (``attr_class``),
    :attr:`attribution_score` (``attr_score``), ``tokens`` (``raw_input_ids``) and
    ``delta`` (``convergence_score``); plus F(x), F(x') and the names of the classes.
    """

    text: str
    tokens: list[str]
    """Tokens as the tokenizer wrote them, padding left out."""
    scores: torch.Tensor
    """Shape ``(len(tokens),)``: attribution per token, summed over the embedding."""
    word_ids: list[int | None]
    output: float
    """F(x): the explained output at the text."""
    baseline_output: float
    """F(x'): the explained output at the baseline."""
    delta: float
    """``sum(scores) - (output - baseline_output)``."""
    baseline: str = "pad"
    label: int | str | None = None
    """The true label, as the caller gave it (``labels=``); None when not given."""
    target: int | tuple[int, ...] | None = None
    """The explained output's index (the attributed class); None for a one-value output."""
    predicted: int | None = None
    """The model's top class, where its output has one row of several classes."""
    probability: float | None = None
    """The probability of ``target`` (softmax of logits); None unless the outputs' kind is known."""
    predicted_probability: float | None = None
    """The probability of ``predicted``, as ``probability``."""
    label_names: dict[int, str] | None = None
    """Class index -> name (a HuggingFace model's ``config.id2label``), for display."""
    explained: str = "the explained output"
    """What F is, in words (e.g. "logit of the attribution label", "cosine similarity")."""

    @property
    def attribution_score(self) -> float:
        """The sum of the token scores (Captum's ``attr_score``): F(x) - F(x') + delta."""
        return float(self.scores.sum())

    def name(self, index: int | str | tuple[int, ...] | None) -> str:
        """A class index as its name when ``label_names`` has one; "-" for None."""
        if index is None:
            return "-"
        if isinstance(index, int) and self.label_names and index in self.label_names:
            return self.label_names[index]
        return str(index)

    @property
    def words(self) -> tuple[list[str], torch.Tensor]:
        """Words and their scores (pieces merged, special tokens on their own)."""
        return merge_word_pieces(self.tokens, self.scores, self.word_ids)

    def units(self, level: str = "word") -> tuple[list[str], torch.Tensor]:
        if level == "word":
            return self.words
        if level == "token":
            return self.tokens, self.scores
        raise ValueError(f"level={level!r} must be 'word' or 'token'")
