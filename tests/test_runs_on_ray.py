"""The Ray backend: the same store and results as the local backend, resumable, from Python
and the command line. One local Ray instance with 2 CPUs serves the module's tests."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

import integrad
from integrad.cli import main
from integrad.runs import RunInterrupted
from integrad.runs.store import Store

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


X = torch.rand(13, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
# The noise tunnel draws noise per example: equal results need identical draws.
NT = {"explainer": "noise-tunnel", "nt_samples": 3, "stdevs": 0.1, "n_steps": 8}


def _same_examples(a: integrad.Run, b: integrad.Run) -> None:
    assert a.complete and b.complete and len(a) == len(b)
    for i in range(len(a)):
        ea, eb = a[i], b[i]
        torch.testing.assert_close(ea.attributions, eb.attributions, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(ea.inputs, eb.inputs, rtol=0, atol=0)
        torch.testing.assert_close(ea.delta, eb.delta, rtol=1e-6, atol=1e-9)
        assert ea.extras["example_ids"].tolist() == [i]
    sa, sb = a.summary(), b.summary()
    assert sa["target"].tolist() == sb["target"].tolist()
    np.testing.assert_allclose(sa["output"], sb["output"], rtol=1e-6)


def test_ray_equals_local_example_by_example(tmp_path):
    local = integrad.run(_mlp(), X, out=tmp_path / "local", batch_size=3, progress=False, **NT)
    on_ray = integrad.run(
        _mlp(),
        X,
        out=tmp_path / "ray",
        batch_size=3,
        progress=False,
        backend="ray",
        workers=2,
        **NT,
    )
    _same_examples(on_ray, local)
    # The same store: one shard per batch, each example once, readable by open_run.
    store = Store.open(tmp_path / "ray")
    assert sorted(i for s in store.shards for i in s.ids) == list(range(13))
    assert len(store.shards) == 5
    _same_examples(integrad.open_run(tmp_path / "ray"), local)


def test_a_stopped_ray_run_resumes_on_ray(tmp_path, monkeypatch):
    appended = []
    append = Store.append

    def append_then_ctrl_c(self, exp, ids, rows):
        shard = append(self, exp, ids, rows)
        appended.append(ids)
        if len(appended) == 2:  # Ctrl-C while the driver stores the second batch
            signal.raise_signal(signal.SIGINT)
        return shard

    monkeypatch.setattr(Store, "append", append_then_ctrl_c)
    options = {"batch_size": 2, "progress": False, "backend": "ray", "workers": 2, **NT}
    with pytest.raises(RunInterrupted, match="interrupted after 4 of 13 examples"):
        integrad.run(_mlp(), X, out=tmp_path / "ray", **options)
    partial = integrad.open_run(tmp_path / "ray")
    assert partial.done == 4 and not partial.complete
    monkeypatch.setattr(Store, "append", append)

    resumed = integrad.run(_mlp(), X, out=tmp_path / "ray", **options)
    # Only the 9 examples left were explained again: 2 + 5 shards, no example twice.
    shards = Store.open(tmp_path / "ray").shards
    assert len(shards) == 7 and sorted(i for s in shards for i in s.ids) == list(range(13))
    assert [s.ids for s in shards[:2]] == appended
    local = integrad.run(_mlp(), X, out=tmp_path / "local", batch_size=5, progress=False, **NT)
    _same_examples(resumed, local)


def test_command_line_backend_ray(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny_ray_model.py").write_text(
        "import torch\n\ndef build():\n    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())\n"
    )
    monkeypatch.setattr("sys.path", ["", *__import__("sys").path])
    np.savez(tmp_path / "d.npz", x=X.float().numpy(), y=np.arange(13) % 3)
    base = ["run", "--model", "tiny_ray_model:build", "--data", "d.npz", "--target", "label"]
    base += ["--n-steps", "16", "--batch-size", "4", "--no-progress"]
    assert main([*base, "--out", "ray", "--backend", "ray", "--workers", "2"]) == 0
    assert main([*base, "--out", "local"]) == 0
    _same_examples(integrad.open_run(tmp_path / "ray"), integrad.open_run(tmp_path / "local"))
    # A finished Ray run resumed locally has nothing left to do.
    assert main([*base, "--out", "ray"]) == 0
    assert len(Store.open(tmp_path / "ray").shards) == 4
