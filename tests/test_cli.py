"""The ``integrad`` command line: data formats, exit codes, Ctrl-C and resume, info."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import integrad
from integrad.cli import main

SRC = str(Path(integrad.__file__).resolve().parents[1])

MODEL = """
import time, torch

def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))

class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = build()

    def forward(self, x):
        time.sleep(0.05)
        return self.net(x)

def slow():
    return Slow()

def images():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 5 * 5, 2))

def broken():
    return torch.nn.Linear(7, 2)

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "a", "mat",
         "dog", "ran", "good", "bad", "##s"]

def bert():
    # A one-layer BERT with random weights and a tokenizer built offline: fast, no download.
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16, max_position_embeddings=32)
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})
    return BertForSequenceClassification(config).eval(), tokenizer
"""

X = np.random.default_rng(0).random((11, 4)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])


def _model(name: str = "build") -> torch.nn.Module:
    namespace: dict[str, object] = {}
    exec(MODEL, namespace)
    return namespace[name]().eval()  # type: ignore[operator]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with a model module (a unique name per test) and the data, as the cwd."""
    name = f"tiny_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODEL)
    np.savez(tmp_path / "data.npz", x=X, y=Y)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    return tmp_path, name


def _cli(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "integrad", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _all(out: Path) -> torch.Tensor:
    run = integrad.open_run(out)
    return torch.cat([run[i].attributions for i in range(len(run))])


def test_run_then_info_in_a_subprocess(workdir):
    folder, name = workdir
    args = ["run", "--model", f"{name}:build", "--data", "data.npz", "--out", "out"]
    p = _cli(folder, *args, "--target", "label", "--n-steps", "16", "--batch-size", "4")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert "11 of 11 examples explained" in stdout
    assert "integrad run: 11/11 examples (100%)" in stderr  # plain lines, not a terminal
    model = _model()
    want = integrad.explain(model, torch.from_numpy(X), target=torch.from_numpy(Y), n_steps=16)
    torch.testing.assert_close(_all(folder / "out"), want.attributions)
    info = _cli(folder, "info", "out")
    assert info.communicate(timeout=60)[0].startswith(f"run {'out'!r}: 11 of 11")
    assert info.returncode == 0
    # The same command with another option is refused: exit 2, naming the option.
    p = _cli(folder, *args, "--target", "label", "--n-steps", "32", "--batch-size", "4")
    stderr = p.communicate(timeout=120)[1]
    assert p.returncode == 2 and "options.n_steps: 16 -> 32" in stderr


def test_ctrl_c_stops_after_the_batch_with_130_then_resumes(workdir):
    folder, name = workdir
    args = [
        "run",
        "--model",
        f"{name}:slow",
        "--data",
        "data.npz",
        "--out",
        "out",
        "--batch-size",
        "2",
        "--n-steps",
        "4",
    ]
    p = _cli(folder, *args)
    assert p.stderr is not None
    assert p.stderr.readline().startswith("integrad run: 2/11")  # the first batch is stored
    p.send_signal(signal.SIGINT)
    rest = p.communicate(timeout=120)[1]
    assert p.returncode == 130, rest
    assert "the same command again to resume" in rest
    run = integrad.open_run(folder / "out")
    assert 2 <= run.done < 11
    again = _cli(folder, *args)
    again.communicate(timeout=120)
    assert again.returncode == 0 and integrad.open_run(folder / "out").complete


def test_csv_with_a_label_column(workdir):
    folder, name = workdir
    header = "a,b,c,d,kind\n"
    rows = "".join(",".join(map(str, [*x, y])) + "\n" for x, y in zip(X, Y, strict=True))
    (folder / "table.csv").write_text(header + rows)
    args = ["--data", "table.csv", "--label", "kind", "--target", "label", "--out", "csv"]
    assert main(["run", "--model", f"{name}:build", *args, "--no-progress"]) == 0
    run = integrad.open_run(folder / "csv")
    assert run.summary()["label"].tolist() == Y.tolist()
    assert run[0].extras["feature_names"] == ["a", "b", "c", "d"]
    assert list(run.global_importance(as_frame=False)[0]) == [
        "feature",
        "mean_abs_attribution",
        "mean_attribution",
        "share",
    ]


def test_no_store_inputs_reads_them_back_from_the_data(workdir):
    folder, name = workdir
    base = ["run", "--model", f"{name}:build", "--data", "data.npz", "--no-progress"]
    assert main([*base, "--out", "lean", "--no-store-inputs", "--baselines", "max_entropy"]) == 0
    assert main([*base, "--out", "full", "--baselines", "max_entropy"]) == 0
    lean = integrad.open_run(folder / "lean", data="data.npz")
    full = integrad.open_run(folder / "full")
    for i in range(len(X)):
        for field in ("attributions", "inputs", "baselines"):
            torch.testing.assert_close(getattr(lean[i], field), getattr(full[i], field))
    with pytest.raises(ValueError, match="did not store its inputs"):
        integrad.open_run(folder / "lean")[0]


def test_npy_gives_the_npz_results(workdir):
    folder, name = workdir
    np.save(folder / "x.npy", X)
    for data, out in (("x.npy", "a"), ("data.npz", "b")):
        code = main(
            [
                "run",
                "--model",
                f"{name}:build",
                "--data",
                data,
                "--out",
                out,
                "--target",
                "1",
                "--no-progress",
            ]
        )
        assert code == 0
    torch.testing.assert_close(_all(folder / "a"), _all(folder / "b"), rtol=0, atol=0)


def test_image_folder(workdir):
    from PIL import Image

    folder, name = workdir
    rng = np.random.default_rng(1)
    for k, cls in enumerate(["cat", "dog"]):
        (folder / "images" / cls).mkdir(parents=True)
        for j in range(2 + k):
            pixels = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "images" / cls / f"{j}.png")
    args = [
        "run",
        "--model",
        f"{name}:images",
        "--data",
        "images",
        "--out",
        "img",
        "--target",
        "label",
        "--explainer",
        "blur-ig",
        "--n-steps",
        "8",
        "--no-progress",
    ]
    assert main(args) == 0
    run = integrad.open_run(folder / "img")
    assert len(run) == 5 and run.summary()["label"].tolist() == [0, 0, 1, 1, 1]
    assert run[4].inputs.shape == (1, 3, 5, 5) and float(run[4].inputs.max()) <= 1.0


def test_parquet_reads_or_names_pyarrow(workdir, capsys):
    pd = pytest.importorskip("pandas")
    folder, name = workdir
    args = ["run", "--model", f"{name}:build", "--data", "t.parquet", "--out", "p", "--no-progress"]
    try:
        pd.DataFrame(X, columns=list("abcd")).to_parquet(folder / "t.parquet")
    except ImportError:
        (folder / "t.parquet").write_bytes(b"PAR1")
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2
        assert "reading Parquet needs pyarrow" in capsys.readouterr().err
        return
    assert main(args) == 0
    assert integrad.open_run(folder / "p")[0].extras["feature_names"] == list("abcd")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nocolon"], "must be MODULE:FACTORY"),
        (["--model", "no_such_module_xyz:build"], "cannot import 'no_such_module_xyz'"),
        (["--model", "{name}:nothing"], "has no function 'nothing'"),
        (["--data", "missing.npz"], "does not exist"),
        (["--data", "data.bin"], "unknown format '.bin'"),
        (["--data", "data.txt"], "holds texts: --model must return (model, tokenizer)"),
        (["--data", "data.jsonl", "--model", "{name}:bert"], 'line 1 needs {"text": "..."}'),
        (
            ["--data", "data.txt", "--model", "{name}:bert", "--explainer", "saliency"],
            "--explainer saliency does not apply to texts",
        ),
        (["--data", "data.txt", "--model", "{name}:bert", "--baselines", "zeros"], "'zeros'"),
        (["--target", "top"], "--target 'top' must be pred, label or a class number"),
        (["--workers", "3"], "--workers 3 needs --backend ray"),
        (["--workers", "0", "--backend", "ray"], "--workers 0 must be at least 1"),
    ],
)
def test_usage_errors_exit_2(workdir, capsys, args, message):
    folder, name = workdir
    (folder / "data.txt").write_text("hello\n")
    (folder / "data.bin").write_text("hello\n")
    (folder / "data.jsonl").write_text('{"sentence": "the cat"}\n')
    base = {"--model": f"{name}:build", "--data": "data.npz", "--out": "out"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value.format(name=name)
    with pytest.raises(SystemExit) as exit_:
        main(["run", *[s for kv in base.items() for s in kv], "--no-progress"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_argparse_errors_and_help_exit_2_and_0(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--data", "x.npz"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    assert "--explainer" in capsys.readouterr().out


def test_a_failing_model_exits_1(workdir, capsys):
    _, name = workdir
    code = main(
        ["run", "--model", f"{name}:broken", "--data", "data.npz", "--out", "bad", "--no-progress"]
    )
    assert code == 1
    assert "integrad: failed:" in capsys.readouterr().err


SENTENCES = ["the cat sat on a mat", "a dog ran", "good dogs", "the bad cat sat"]


def test_a_text_file_equals_explain_text_at_the_word_embeddings(workdir):
    folder, name = workdir
    (folder / "s.txt").write_text("\n".join(SENTENCES[:2]) + "\n\n" + "\n".join(SENTENCES[2:]))
    args = ["--data", "s.txt", "--out", "t", "--target", "1", "--n-steps", "64"]
    args += ["--batch-size", "3"]
    assert main(["run", "--model", f"{name}:bert", *args, "--no-progress"]) == 0
    run = integrad.open_run(folder / "t")
    assert len(run) == 4 and run.config["explainer"] == "layer-ig"
    assert run.config["options"]["baselines"] == "function:token_baselines[pad]"
    namespace: dict[str, Any] = {}
    exec(MODEL, namespace)
    model, tokenizer = namespace["bert"]()
    want = integrad.text.explain_text(model, tokenizer, SENTENCES, target=1, n_steps=64)
    mask = tokenizer(SENTENCES, padding=True, return_tensors="pt")["attention_mask"].bool()
    for i, expected in enumerate(want):
        per_token = run[i].attributions.sum(-1)[0][mask[i]]
        torch.testing.assert_close(per_token, expected.scores, rtol=1e-4, atol=1e-6)
        assert run[i].delta.item() == pytest.approx(expected.delta, abs=1e-5)


def test_jsonl_labels_are_the_targets(workdir):
    folder, name = workdir
    lines = [f'{{"text": "{t}", "label": {i % 2}}}' for i, t in enumerate(SENTENCES)]
    (folder / "s.jsonl").write_text("\n".join(lines) + "\n")
    args = ["--data", "s.jsonl", "--out", "j", "--target", "label", "--n-steps", "8"]
    assert main(["run", "--model", f"{name}:bert", *args, "--no-progress"]) == 0
    frame = integrad.open_run(folder / "j").summary()
    assert frame["target"].tolist() == [0, 1, 0, 1] == frame["label"].tolist()


def test_report_writes_the_dataset_report(tmp_path, capsys):
    model = torch.nn.Linear(4, 3).double()
    x = torch.rand(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    integrad.run(model, x, out=tmp_path / "run", batch_size=4, progress=False)
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "run"), "--html", str(page)]) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    assert "Worst converged (6 of 6)" in page.read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as stopped:
        main(["report", str(tmp_path / "missing"), "--html", str(page)])
    assert stopped.value.code == 2 and "integrad: error:" in capsys.readouterr().err
