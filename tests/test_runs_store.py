"""The run store survives kill -9 at any point, torn journals and damaged shards."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import integrad
from integrad.io import LoadError
from integrad.runs.store import JOURNAL, SHARDS

SRC = str(Path(integrad.__file__).resolve().parents[1])

# A child process explains 40 examples with the noise tunnel (random draws seeded per
# example); the model sleeps in its forward pass so a kill can land anywhere in a run.
CHILD = """
import sys, time, torch, integrad

class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()

    def forward(self, x):
        time.sleep(0.002)
        return self.net(x)

x = torch.rand(40, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
print("ready", flush=True)
integrad.run(Slow(), x, out=sys.argv[1], batch_size=int(sys.argv[2]), target=1,
             explainer="noise-tunnel", nt_samples=2, stdevs=0.1, n_steps=8, progress=False)
print("done", flush=True)
"""


def _child(script: Path, out: Path, batch_size: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(batch_size)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _attributions(out: Path) -> torch.Tensor:
    run = integrad.open_run(out)
    assert run.complete
    return torch.cat([run[i].attributions for i in range(len(run))])


@pytest.mark.parametrize("seed", [0])
def test_kill_nine_at_random_points_then_resume_equals_one_run(tmp_path, seed):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    reference = _child(script, tmp_path / "reference", 5)
    assert reference.communicate(timeout=120)[0].split() == ["ready", "done"]

    rng = random.Random(seed)
    out = tmp_path / "killed"
    partial = []
    for _ in range(5):
        child = _child(script, out, rng.choice([3, 4, 7]))
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        if (out / "manifest.json").exists():
            run = integrad.open_run(out)
            partial.append(run.done)
            for i in range(len(run)):  # whatever was written reads back
                if i in run._where:
                    assert run[i].attributions.shape == (1, 4)
    assert any(0 < d < 40 for d in partial), f"no kill landed mid-run: {partial}"
    last = _child(script, out, 6)
    assert last.communicate(timeout=120)[0].split() == ["ready", "done"]
    torch.testing.assert_close(
        _attributions(out), _attributions(tmp_path / "reference"), rtol=1e-12, atol=1e-14
    )


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


X = torch.rand(10, 4, generator=torch.Generator().manual_seed(1))


def _run(out: Path) -> integrad.Run:
    return integrad.run(_model(), X, out=out, batch_size=3, n_steps=8, progress=False)


def _shard_files(out: Path) -> list[Path]:
    return sorted((out / SHARDS).glob("*.safetensors"))


# "empty": what a power loss can leave of a file renamed before its data reached the disk.
@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "sidecar", "empty"])
def test_a_damaged_last_shard_is_detected_and_redone(tmp_path, damage):
    want = _run(tmp_path / "clean")
    out = tmp_path / "damaged"
    _run(out)
    last = _shard_files(out)[-1]
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[:-7])
    elif damage == "flip":
        data = bytearray(last.read_bytes())
        data[-3] ^= 0xFF
        last.write_bytes(bytes(data))
    elif damage == "delete":
        last.unlink()
    elif damage == "empty":
        last.write_bytes(b"")
    else:
        sidecar = last.with_suffix(".json")
        sidecar.write_text(sidecar.read_text().replace('"delta"', '"delta" '))
    with pytest.raises(LoadError, match="truncated or corrupted"):
        integrad.open_run(out)[9]
    again = _run(out)
    assert again.complete and len(_shard_files(out)) == 4
    for i in range(10):
        torch.testing.assert_close(again[i].attributions, want[i].attributions)


def test_a_torn_journal_line_and_unjournaled_files_are_dropped(tmp_path):
    out = tmp_path / "run"
    _run(out)
    journal = out / JOURNAL
    text = journal.read_text()
    lines = text.splitlines(keepends=True)
    # As after a kill during the last append: half a line, the shard's files on disk,
    # and a temporary file from an interrupted write.
    journal.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    (out / SHARDS / ".00000009.safetensors.0123456789ab.tmp").write_bytes(b"partial")
    run = integrad.open_run(out)
    assert run.done == 9 and not run.complete
    with pytest.raises(KeyError, match="example 9 is not explained yet"):
        run[9]
    again = _run(out)
    assert again.complete and journal.read_text().count("\n") == 4
    assert not list((out / SHARDS).glob(".*"))
    assert sorted(p.name for p in (out / SHARDS).iterdir()) == sorted(
        f"{n:08d}.{s}" for n in range(4) for s in ("json", "safetensors")
    )


def test_resume_skips_finished_examples(tmp_path):
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _model()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(int(x.shape[0]))
            return self.net(x)

    out = tmp_path / "run"
    integrad.run(Counting(), X, out=out, n_steps=8, batch_size=4, progress=False)
    assert calls
    calls.clear()
    again = integrad.run(Counting(), X, out=out, n_steps=8, batch_size=4, progress=False)
    assert calls == [] and again.complete


def test_only_the_manifest_is_flushed_however_many_shards(tmp_path, monkeypatch):
    # Shards rely on the journal's hashes (above), not fsync: flushes per shard would
    # dominate the store's cost on small batches.
    flushed: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real(fd))[1])
    for batch_size, out in ((10, "one"), (1, "ten")):
        before = len(flushed)
        integrad.run(_model(), X, out=tmp_path / out, batch_size=batch_size, progress=False)
        assert len(flushed) - before == 2  # the manifest and its directory
