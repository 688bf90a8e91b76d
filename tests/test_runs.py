"""integrad.run and open_run: methods, data forms, targets, batch-size invariance, summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import integrad
from integrad.runs import RunMismatchError


def _linear(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3).double()


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


X = torch.rand(11, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])
REFS = torch.rand(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))


def _all(run: integrad.Run) -> torch.Tensor:
    return torch.cat([run[i].attributions for i in range(len(run))])


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (2, torch.full((11,), 2)),
        ("label", Y),
        ("pred", None),
        (lambda out: out.argmin(dim=1), None),
    ],
    ids=["int", "label", "pred", "callable"],
)
def test_linear_model_gets_exact_ig_for_each_target_form(tmp_path, target, expected):
    model = _linear()
    run = integrad.run(
        model, X, out=tmp_path, labels=Y, target=target, batch_size=4, progress=False
    )
    with torch.no_grad():
        out = model(X)
    if expected is None:
        expected = out.argmax(1) if target == "pred" else out.argmin(1)
    # IG of a linear model from a zero baseline is w[target] * x, exactly.
    want = model.weight.detach()[expected] * X
    torch.testing.assert_close(_all(run), want, rtol=1e-12, atol=1e-14)
    assert run.summary()["target"].tolist() == expected.tolist()
    assert run[5].attributions.shape == (1, 4) and len(run) == 11 and run.complete


OPTIONS = {
    "ig": {"n_steps": 16},
    "ig-tolerance": {"tolerance": 1e-6},
    "layer-ig": {"layer": "1", "n_steps": 16},
    "guided-ig": {"n_steps": 20},
    "saliency": {},
    "noise-tunnel": {"nt_samples": 3, "stdevs": 0.1, "n_steps": 8},
    "expected-gradients": {"baselines": REFS, "n_samples": 6},
    "ig-uniform": {"baselines": "uniform", "n_steps": 8},
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_batch_size_does_not_change_results(tmp_path, name):
    explainer = name.split("-tolerance")[0].split("-uniform")[0]
    runs = [
        integrad.run(
            _mlp(),
            X,
            out=tmp_path / str(b),
            explainer=explainer,
            batch_size=b,
            progress=False,
            **OPTIONS[name],
        )
        for b in (1, 4, 11)
    ]
    for other in runs[1:]:
        torch.testing.assert_close(_all(other), _all(runs[0]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["ig", "ig-tolerance", "guided-ig", "layer-ig"])
def test_deterministic_methods_match_one_batch_call(tmp_path, name):
    explainer = name.split("-tolerance")[0]
    model, options = _mlp(), OPTIONS[name]
    run = integrad.run(
        model,
        X,
        out=tmp_path,
        explainer=explainer,
        target=1,
        batch_size=3,
        progress=False,
        **options,
    )
    if explainer == "layer-ig":
        lig = integrad.LayerIntegratedGradients(model, model[1])
        want = lig.attribute(X, target=1, n_steps=16)
    elif explainer == "guided-ig":
        want = integrad.explain_guided(model, X, target=1, **options).attributions
    else:
        want = integrad.explain(model, X, target=1, **options).attributions
    torch.testing.assert_close(_all(run), want, rtol=1e-10, atol=1e-12)
    # Completeness is recorded per example in the summary.
    frame = run.summary()
    deltas = [float(run[i].delta) for i in range(len(run))]
    np.testing.assert_allclose(frame["delta"], deltas, rtol=0, atol=0)
    assert frame["delta"].abs().max() < (1e-2 if explainer == "guided-ig" else 1e-6)
    assert list(frame["id"]) == list(range(11))


def test_random_draws_depend_on_seed_not_on_batch(tmp_path):
    def run(seed, out):
        return _all(
            integrad.run(
                _mlp(),
                X,
                out=tmp_path / out,
                explainer="noise-tunnel",
                seed=seed,
                progress=False,
                **OPTIONS["noise-tunnel"],
            )
        )

    a, b = run(0, "a"), run(1, "b")
    assert not torch.allclose(a, b)
    # Example 3 alone gets the same draws as inside the whole dataset.
    alone = integrad.run(
        _mlp(),
        X,
        out=tmp_path / "c",
        explainer="noise-tunnel",
        batch_size=1,
        progress=False,
        **OPTIONS["noise-tunnel"],
    )
    torch.testing.assert_close(alone[3].attributions, a[3:4], rtol=1e-12, atol=1e-14)


def test_blur_ig_on_images(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3))
    images = torch.rand(5, 2, 6, 6)
    run = integrad.run(
        model,
        images,
        out=tmp_path,
        explainer="blur-ig",
        target=0,
        batch_size=2,
        progress=False,
        n_steps=10,
    )
    want = integrad.explain_blur(model, images, target=0, n_steps=10).attributions
    got = torch.cat([run[i].attributions for i in range(5)])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_exact_method(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    run = integrad.run(model.double(), X, out=tmp_path, target=1, method="exact", progress=False)
    assert run.summary()["delta"].abs().max() < 1e-12


class _Pairs(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return len(X)

    def __getitem__(self, i: int):
        return X[i], int(Y[i])


@pytest.mark.parametrize(
    "data",
    [
        lambda: X.numpy(),
        lambda: TensorDataset(X, Y),
        lambda: _Pairs(),
        lambda: DataLoader(TensorDataset(X, Y), batch_size=3),
        lambda: DataLoader(TensorDataset(X), batch_size=5),
    ],
    ids=["numpy", "tensor-dataset", "dataset", "loader-with-labels", "loader"],
)
def test_every_data_form_gives_the_tensor_results(tmp_path, data):
    model = _linear()
    target = 1
    want = integrad.run(model, X, out=tmp_path / "t", target=target, progress=False)
    got = integrad.run(
        model, data(), out=tmp_path / "d", labels=None, target=target, batch_size=4, progress=False
    )
    torch.testing.assert_close(_all(got), _all(want), rtol=1e-12, atol=1e-14)


def test_a_data_file_path_gives_the_tensor_results_and_its_labels(tmp_path):
    model = _linear()
    np.savez(tmp_path / "data.npz", x=X.numpy(), y=Y.numpy())
    run = integrad.run(model, str(tmp_path / "data.npz"), out=tmp_path / "p", target="label")
    assert run.summary()["label"].tolist() == Y.tolist()
    torch.testing.assert_close(_all(run), model.weight.detach()[Y] * X, rtol=1e-12, atol=1e-14)
    (tmp_path / "s.txt").write_text("a sentence\n")
    with pytest.raises(ValueError, match="they need the model's tokenizer"):
        integrad.run(model, tmp_path / "s.txt", out=tmp_path / "q")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        integrad.run(model, tmp_path / "missing.npy", out=tmp_path / "r")


def test_labels_from_a_dataset_serve_as_targets(tmp_path):
    model = _linear()
    run = integrad.run(
        model,
        DataLoader(TensorDataset(X, Y), batch_size=4),
        out=tmp_path,
        target="label",
        progress=False,
    )
    assert run.summary()["label"].tolist() == Y.tolist()
    torch.testing.assert_close(_all(run), model.weight.detach()[Y] * X, rtol=1e-12, atol=1e-14)


def test_tuple_data_for_a_two_input_model(tmp_path):
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 2).double(), torch.nn.Linear(2, 2).double()

        def forward(self, x, z):
            return self.a(x) + self.b(z)

    model = Two()
    z = torch.rand(11, 2, dtype=torch.float64)
    run = integrad.run(model, (X, z), out=tmp_path, target=0, batch_size=5, progress=False)
    ex = run[4]
    assert isinstance(ex.attributions, tuple) and ex.attributions[1].shape == (1, 2)
    want = integrad.explain(model, (X, z), target=0).attributions
    torch.testing.assert_close(ex.attributions[0], want[0][4:5], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"n_steps": 32}, r"configuration differs: options\.n_steps: 16 -> 32"),
        ({"seed": 3}, r"seed: 0 -> 3"),
        ({"model": 1}, r"model's parameters differ"),
        ({"data": 1}, r"the data differ"),
        ({"examples": 1}, r"the data has 10 examples, the run 11"),
    ],
)
def test_resume_with_other_settings_is_refused(tmp_path, change, match):
    integrad.run(_mlp(), X, out=tmp_path, n_steps=16, progress=False)
    model = _mlp(change.get("model", 0))
    data = X + change.get("data", 0)
    data = data[:10] if "examples" in change else data
    with pytest.raises(RunMismatchError, match=match):
        integrad.run(
            model,
            data,
            out=tmp_path,
            n_steps=change.get("n_steps", 16),
            seed=change.get("seed", 0),
            progress=False,
        )


def test_resume_with_another_batch_size_is_allowed(tmp_path):
    first = integrad.run(_mlp(), X, out=tmp_path, batch_size=4, progress=False)
    again = integrad.run(_mlp(), X, out=tmp_path, batch_size=7, progress=False)
    assert len(again.store.shards) == len(first.store.shards) == 3


def test_summary_and_global_importance(tmp_path):
    model = _linear()
    run = integrad.run(model, X, out=tmp_path, target=0, batch_size=4, progress=False)
    frame = run.summary()
    assert list(frame.columns) == [
        "id",
        "label",
        "target",
        "output",
        "baseline_output",
        "delta",
        "relative_delta",
        "n_evals",
        "converged",
        "error_estimate",
        "seconds",
    ]
    with torch.no_grad():
        np.testing.assert_allclose(frame["output"], model(X)[:, 0].numpy(), rtol=1e-12)
    attributions = _all(run)
    want = integrad.tables.global_importance(integrad.explain(model, X, target=0), as_frame=True)
    got = run.global_importance(as_frame=True)
    assert list(got["feature"]) == list(want["feature"])
    np.testing.assert_allclose(
        got["mean_abs_attribution"], want["mean_abs_attribution"], rtol=1e-12
    )
    np.testing.assert_allclose(got["mean_attribution"], want["mean_attribution"], rtol=1e-10)
    assert attributions.shape == (11, 4)


def test_open_run_reads_what_run_wrote(tmp_path):
    run = integrad.run(_mlp(), X, out=tmp_path, batch_size=4, progress=False)
    back = integrad.open_run(tmp_path)
    assert len(back) == 11 and back.complete and repr(back).endswith("11/11 examples explained)")
    torch.testing.assert_close(_all(back), _all(run), rtol=0, atol=0)
    assert back[-1].extras["example_ids"].tolist() == [10]


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="explainer='lime'"):
        integrad.run(_mlp(), X, out=tmp_path / "a", explainer="lime")
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        integrad.run(_mlp(), X, out=tmp_path / "b", batch_size=0)
    with pytest.raises(ValueError, match="target='top'"):
        integrad.run(_mlp(), X, out=tmp_path / "c", target="top")
    with pytest.raises(ValueError, match="target='label' needs labels"):
        integrad.run(_mlp(), X, out=tmp_path / "d", target="label", progress=False)
    with pytest.raises(ValueError, match="labels must be 11 integers"):
        integrad.run(_mlp(), X, out=tmp_path / "e", labels=[1, 2])
    with pytest.raises(ValueError, match="shuffle=False"):
        integrad.run(_mlp(), DataLoader(TensorDataset(X), shuffle=True), out=tmp_path / "f")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not an integrad run"):
        integrad.run(_mlp(), X, out=tmp_path / "g")
    with pytest.raises(FileNotFoundError, match="no integrad run"):
        integrad.open_run(tmp_path / "h")
    with pytest.raises(ValueError, match="backend='spark'"):
        integrad.run(_mlp(), X, out=tmp_path / "i", backend="spark")
    with pytest.raises(ValueError, match="workers=4 needs backend='ray'"):
        integrad.run(_mlp(), X, out=tmp_path / "j", workers=4)
    with pytest.raises(ValueError, match="workers must be a positive int or None, got 0"):
        integrad.run(_mlp(), X, out=tmp_path / "k", backend="ray", workers=0)
    with pytest.raises(ValueError, match=r"device=.cpu. needs the model as an nn\.Module"):
        integrad.run(lambda x: x.sum(1, keepdim=True), X, out=tmp_path / "l", device="cpu")


def test_a_later_format_version_is_refused(tmp_path):
    integrad.run(_mlp(), X, out=tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"format_version 99.*upgrade integrad"):
        integrad.open_run(tmp_path)


def test_progress_lines_in_a_log(tmp_path, capsys):
    integrad.run(_mlp(), X, out=tmp_path, batch_size=4)
    err = capsys.readouterr().err
    assert "integrad run: 11/11 examples (100%)" in err and "examples/s" in err


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU"),
        ),
    ],
)
@pytest.mark.parametrize("as_method", [False, True], ids=["module", "bound-forward"])
def test_device_explains_with_a_copy_and_leaves_the_model_where_it_is(tmp_path, device, as_method):
    model = _mlp()
    forward = model.forward if as_method else model
    run = integrad.run(forward, X, out=tmp_path, target=1, device=device, progress=False)
    want = integrad.explain(model, X, target=1).attributions
    torch.testing.assert_close(_all(run), want, rtol=1e-9, atol=1e-12)
    assert next(model.parameters()).device.type == "cpu"


def _shard_bytes(out) -> int:
    return sum(f.stat().st_size for f in (out / "shards").glob("*.safetensors"))


@pytest.mark.parametrize(
    ("explainer", "options"),
    [
        ("ig", {"baselines": "max_entropy", "n_steps": 8}),
        ("guided-ig", {"n_steps": 8}),
        ("noise-tunnel", {"baselines": "max_entropy", "nt_samples": 2, "stdevs": 0.1}),
        ("saliency", {}),
    ],
)
def test_without_stored_inputs_they_are_read_from_the_data(tmp_path, explainer, options):
    kw = {"explainer": explainer, "batch_size": 4, "progress": False, **options}
    stored = integrad.run(_mlp(), X, out=tmp_path / "s", **kw)
    lean = integrad.run(_mlp(), X, out=tmp_path / "l", store_inputs=False, **kw)
    # Inputs and baselines take 1 byte a value (placeholders) instead of 8 (float64).
    saved = _shard_bytes(tmp_path / "s") - _shard_bytes(tmp_path / "l")
    assert saved > 2 * X.numel() * 6
    reopened = integrad.open_run(tmp_path / "l", data=X.numpy())
    for run in (lean, reopened):
        for i in range(len(X)):
            a, b = run[i], stored[i]
            for field in ("attributions", "inputs", "baselines"):
                torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0)
    assert not reopened.stores_inputs and stored.stores_inputs
    # The summary and global importance need no data.
    alone = integrad.open_run(tmp_path / "l")
    np.testing.assert_array_equal(alone.summary()["output"], stored.summary()["output"])
    assert alone.global_importance(as_frame=False) == stored.global_importance(as_frame=False)
    with pytest.raises(ValueError, match=r"did not store its inputs.*open_run\(path, data="):
        alone[0]


def test_without_stored_inputs_other_data_or_baselines_are_refused(tmp_path):
    refs = REFS[:1]
    integrad.run(_mlp(), X, out=tmp_path, baselines=refs, store_inputs=False, progress=False)
    with pytest.raises(RunMismatchError, match="is not the data of the run"):
        integrad.open_run(tmp_path, data=X + 1)
    with pytest.raises(RunMismatchError, match="is not the data of the run"):
        integrad.open_run(tmp_path, data=X[:5])
    with pytest.raises(ValueError, match=r"pass its baselines= to integrad\.open_run"):
        integrad.open_run(tmp_path, data=X)[0]
    with pytest.raises(RunMismatchError, match="baselines= is not the run's"):
        integrad.open_run(tmp_path, data=X, baselines=refs + 1)
    run = integrad.open_run(tmp_path, data=X, baselines=refs)
    torch.testing.assert_close(run[3].baselines, refs, rtol=0, atol=0)
    torch.testing.assert_close(run[3].inputs, X[3:4], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("explainer", "options", "match"),
    [
        ("layer-ig", {"layer": "1"}, "explainer='layer-ig'"),
        ("expected-gradients", {"baselines": REFS}, "explainer='expected-gradients'"),
        ("ig", {"baselines": "uniform"}, "random baselines cannot be rebuilt"),
    ],
)
def test_without_stored_inputs_unrebuildable_baselines_are_refused(
    tmp_path, explainer, options, match
):
    with pytest.raises(ValueError, match=match):
        integrad.run(_mlp(), X, out=tmp_path, explainer=explainer, store_inputs=False, **options)


def test_model_and_inputs_are_left_alone(tmp_path):
    model = _mlp().train()
    x = X.clone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    integrad.run(model, x, out=tmp_path, progress=False)
    assert model.training and torch.equal(x, X)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
