"""Text: token baselines, word-piece merging on MiniLM, HTML and ANSI colours, similarity."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from integrad import text
from integrad.text import TextAttribution
from integrad.views import text as text_view

SIMILAR = ("A man is playing a guitar.", "Someone plays music on stage.")


def test_token_baselines_keep_special_tokens_and_padding(minilm):
    tokenizer, _ = minilm
    enc = tokenizer(["the cat sat", "hello"], padding=True, return_tensors="pt")
    ids = enc["input_ids"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    assert special[:, 0].all() and (ids[1] == tokenizer.pad_token_id).any()
    for kind in ("pad", "unk", "mask"):
        base = text.token_baselines(ids, tokenizer, kind)
        assert torch.equal(base[special], ids[special])
        assert (base[~special] == getattr(tokenizer, f"{kind}_token_id")).all()
    with pytest.raises(ValueError, match=r"kind='eos' is not a token baseline"):
        text.token_baselines(ids, tokenizer, "eos")


def test_word_pieces_of_real_minilm_tokens_sum_into_words(minilm):
    tokenizer, _ = minilm
    enc = tokenizer(["unbelievably good tokenization"], return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert "##bly" in tokens  # the word really is split into pieces
    scores = torch.arange(len(tokens), dtype=torch.float64)
    words, merged = text.merge_word_pieces(tokens, scores, enc.word_ids(0))
    assert words == ["[CLS]", "unbelievably", "good", "tokenization", "[SEP]"]
    pieces = [i for i, t in enumerate(tokens) if 0 < i < tokens.index("good")]
    assert merged[1] == scores[pieces].sum()
    assert merged.sum() == scores.sum()
    # Without word ids, the ## prefix gives the same words.
    assert text.merge_word_pieces(tokens, scores)[0] == words


def known() -> TextAttribution:
    tokens = ["[CLS]", "good", "<b>bad</b>", "plain", "great", "[SEP]"]
    scores = torch.tensor([0.0, 0.5, -1.0, 0.0, 0.25, 0.0])
    return TextAttribution(
        text="good <b>bad</b> plain great",
        tokens=tokens,
        scores=scores,
        word_ids=[None, 0, 1, 2, 3, None],
        output=1.0,
        baseline_output=0.25,
        delta=0.0,
    )


class Spans(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.spans: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "span" and values.get("class") == "tok" and "data-score" in values:
            self._open = {**values, "text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None


def test_html_carries_every_token_with_the_colour_of_its_sign():
    attribution = known()
    parser = Spans()
    parser.feed(text.html(attribution, level="token"))
    assert [s["text"] for s in parser.spans] == attribution.tokens  # escaped and restored
    for span, score in zip(parser.spans, attribution.scores.tolist(), strict=True):
        r, g, b, alpha = re.search(r"rgba\((\d+), (\d+), (\d+), ([\d.]+)\)", span["style"]).groups()
        assert float(span["data-score"]) == pytest.approx(score)
        assert float(alpha) == pytest.approx(abs(score) / 1.0, abs=1e-3)  # max |score| is 1
        if score > 0:
            assert (int(r), int(g), int(b)) == text_view.POSITIVE
        elif score < 0:
            assert (int(r), int(g), int(b)) == text_view.NEGATIVE


def test_picture_paints_each_word_in_the_colour_of_its_sign():
    pytest.importorskip("PIL")
    a = TextAttribution(
        "up down flat",
        ["up", "down", "flat"],
        torch.tensor([1.0, -1.0, 0.0]),
        [0, 1, 2],
        1.0,
        1.0,
        0.0,
    )
    rgb = text.picture(a, level="token", width=400)
    assert rgb.dtype == np.uint8 and rgb.shape[1] == 400 and rgb.shape[2] == 3
    pos = np.argwhere((rgb == np.array(text_view.POSITIVE, dtype=np.uint8)).all(axis=2))
    neg = np.argwhere((rgb == np.array(text_view.NEGATIVE, dtype=np.uint8)).all(axis=2))
    assert len(pos) > 100 and len(neg) > 100  # whole word boxes, at full strength
    assert pos[:, 1].max() < neg[:, 1].min()  # "up" is painted left of "down"
    # The zero-score word sits on white: no tinted pixel right of "down"'s box.
    right = rgb[:, neg[:, 1].max() + 1 :]
    tinted = (np.abs(right.astype(int) - right.mean(axis=2, keepdims=True)) > 10).any(axis=2)
    assert not tinted.any()


def test_terminal_colours_by_sign():
    attribution = known()
    line = text.terminal(attribution, level="token", ansi=True)
    found = re.findall(r"\x1b\[30;48;2;(\d+);(\d+);(\d+)m(.*?)\x1b\[0m", line)
    assert [t for *_, t in found] == attribution.tokens
    for (r, g, b, _), score in zip(found, attribution.scores.tolist(), strict=True):
        r, g, b = int(r), int(g), int(b)
        if score > 0:
            assert r > b
        elif score < 0:
            assert b > r
        else:
            assert (r, g, b) == (255, 255, 255)


def test_terminal_shows_control_characters_in_tokens_instead_of_obeying_them():
    attribution = known()
    attribution.tokens[1:4] = ["\x1b[2Jgone", "ring\x07\x9b31m", "\u202eevil\r\n"]
    line = text.terminal(attribution, level="token", ansi=True)
    # Only the colour sequences integrad writes reach the terminal ...
    outside = re.sub(r"\x1b\[30;48;2;\d+;\d+;\d+m|\x1b\[0m", "", line)
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in outside)
    # ... the tokens' own control characters are shown, and colours still follow the signs.
    found = re.findall(r"\x1b\[30;48;2;(\d+);(\d+);(\d+)m(.*?)\x1b\[0m", line)
    shown = [t for *_, t in found]
    assert shown[1:4] == ["\\x1b[2Jgone", "ring\\x07\\x9b31m", "\\u202eevil\\x0d\\x0a"]
    assert shown[0] == "[CLS]" and int(found[2][2]) > int(found[2][0])


def test_terminal_writes_plain_text_unless_stdout_is_a_terminal(monkeypatch):
    attribution = known()
    attribution.tokens[1] = "\x1b[2Jgone"
    plain = text.terminal(attribution, level="token", ansi=False)
    assert "\x1b" not in plain
    scores = attribution.scores.tolist()
    expected = [f"{t}[{s:+.2g}]" for t, s in zip(attribution.tokens, scores, strict=True)]
    expected[1] = expected[1].replace("\x1b", "\\x1b")
    assert plain.split(" ") == expected
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert text.terminal(attribution, level="token") == text.terminal(
        attribution, level="token", ansi=True
    )
    monkeypatch.setenv("NO_COLOR", "1")
    assert text.terminal(attribution, level="token") == plain
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert text.terminal(attribution, level="token") == plain
    with pytest.raises(TypeError, match="ansi must be True, False or None, got 'yes'"):
        text.terminal(attribution, ansi="yes")  # type: ignore[arg-type]


def test_similarity_use_case_is_complete(minilm):
    tokenizer, model = minilm
    first, second = text.explain_similarity(model, tokenizer, *SIMILAR, n_steps=24)
    enc = tokenizer(list(SIMILAR), padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():

        def embed(input_ids: torch.Tensor) -> torch.Tensor:
            out = model(input_ids=input_ids, attention_mask=mask)
            return text.mean_pool(out.last_hidden_state, mask)

        pooled = embed(ids)
        base = embed(text.token_baselines(ids, tokenizer, "pad"))
    cos = torch.nn.functional.cosine_similarity
    for i, a in enumerate((first, second)):
        other = pooled[1 - i]
        assert a.output == pytest.approx(float(cos(pooled[i], other, dim=0)), abs=1e-5)
        assert a.baseline_output == pytest.approx(float(cos(base[i], other, dim=0)), abs=1e-5)
        change = a.output - a.baseline_output
        assert float(a.scores.sum()) - change == pytest.approx(a.delta, abs=1e-5)
        assert abs(a.delta) < 0.01 * abs(change)
        assert a.scores[0] == 0 and a.scores[-1] == 0  # [CLS] and [SEP] are kept
    words, scores = first.words
    assert words[int(scores.argmax())] in {"guitar", "playing", "man"}


def test_explain_text_zero_embedding_baseline(minilm):
    tokenizer, model = minilm
    [a] = text.explain_text(
        model, tokenizer, ["a short sentence"], target=3, baseline="zero", n_steps=16
    )
    assert a.tokens[0] == "[CLS]" and a.scores[0] == 0 and a.baseline == "zero"
    assert abs(a.delta) < 0.02 * abs(a.output - a.baseline_output)
    with pytest.raises(ValueError, match=r"baseline='blank' is not known"):
        text.explain_text(model, tokenizer, ["x"], target=0, baseline="blank")


def test_import_integrad_does_not_import_transformers():
    code = "import sys, integrad; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
