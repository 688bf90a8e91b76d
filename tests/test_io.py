"""save/load: exact round trips in both formats, tuple inputs, new fields, no pickle."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import pytest
import torch
from conftest import smooth_mlp

import integrad
from integrad import io
from integrad.explanation import Explanation


def assert_same(a: object, b: object) -> None:
    """Equal structure, types, dtypes and bits (NaN equal to NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(
            a.view(torch.uint8) if a.dtype != torch.bool else a,
            b.view(torch.uint8) if b.dtype != torch.bool else b,
        )
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() <= b.keys()
        for k in a:
            assert_same(a[k], b[k])
    else:
        assert a == b and type(a) is type(b)


def assert_round_trip(exp: Explanation, back: Explanation) -> None:
    for f in dataclasses.fields(exp):
        assert_same(getattr(exp, f.name), getattr(back, f.name))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_round_trip_is_exact_in_both_formats(tmp_path, suffix):
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(
        smooth_mlp(),
        x,
        target=torch.tensor([0, 2, 1, 0]),
        n_steps=16,
        baselines=integrad.baselines.mean(x),
    )
    path = exp.save(tmp_path / f"run{suffix}")
    assert path.suffix == suffix and (tmp_path / "run.json").exists()
    back = integrad.load(path)
    assert_round_trip(exp, back)
    assert back.baseline == "mean(n_reference=4)"
    versions = back.extras["saved_with"]
    assert versions["torch"] == torch.__version__ and versions["integrad"] == integrad.__version__
    # The stem and the sidecar name the same saved explanation.
    assert_round_trip(exp, integrad.load(tmp_path / "run"))
    assert_round_trip(exp, integrad.load(tmp_path / "run.json"))


def test_tuple_inputs_and_odd_values_round_trip(tmp_path, two_inputs):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 5, dtype=torch.float64, generator=g), torch.randn(3, 2, 3, generator=g)
    exp = integrad.explain(
        two_inputs,
        (x, y.double()),
        target=[(0, 1), (1, 2), (0, 3)],
        additional_forward_args=(torch.ones(3, 1, dtype=torch.float64),),
        baselines=(0.5, None),
        n_steps=8,
    )
    exp.extras.update(
        half=torch.arange(4, dtype=torch.bfloat16),
        flags=torch.tensor([True, False]),
        ratio=float("inf"),
        note=None,
        nested={"a": (1, "b", [2.5])},
    )
    for suffix in (".safetensors", ".npz"):
        back = integrad.load(exp.save(tmp_path / f"t{suffix}"))
        assert isinstance(back.inputs, tuple) and isinstance(back.attributions, tuple)
        assert_round_trip(exp, back)
        assert back.target == [(0, 1), (1, 2), (0, 3)]


def test_tolerance_mode_fields_round_trip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    exp = integrad.explain(model, torch.randn(3, 3), tolerance=1e-2)
    path = exp.save(tmp_path / "tol")
    sidecar = json.loads((tmp_path / "tol.json").read_text())
    assert sidecar["fields"]["tolerance"] == 1e-2
    back = integrad.load(path)
    assert_round_trip(exp, back)
    assert back.tolerance == 1e-2 and torch.equal(back.converged, exp.converged)


@dataclasses.dataclass(repr=False)
class Later(Explanation):
    """Stands for a future Explanation with a field this version does not know."""

    curvature: torch.Tensor | None = None


def test_unknown_fields_land_in_extras_and_round_trip_in_their_class(tmp_path, monkeypatch):
    exp = integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3), n_steps=4)
    later = Later(
        **{f.name: getattr(exp, f.name) for f in dataclasses.fields(exp)},
        curvature=torch.tensor([1e-3, 2e-3]),
    )
    later.n_steps = None  # type: ignore[assignment]
    path = later.save(tmp_path / "later")
    sidecar = json.loads((tmp_path / "later.json").read_text())
    assert sidecar["fields"]["n_steps"] is None
    back = integrad.load(path)  # read by this version's Explanation
    assert back.n_steps is None and torch.equal(back.extras["curvature"], later.curvature)
    assert "curvature=" in repr(later)
    # ... and by the later class, field for field.
    monkeypatch.setattr("integrad.explanation.Explanation", Later)
    assert_round_trip(later, integrad.load(path))


def test_files_hold_no_pickle_and_bad_files_are_named(tmp_path):
    exp = integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3), n_steps=4)
    path = exp.save(tmp_path / "p.npz")
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            assert b"pickle" not in z.read(name)[:128]
    with pytest.raises(FileNotFoundError, match="no saved explanation"):
        integrad.load(tmp_path / "nothing")
    (tmp_path / "p.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="does not describe a saved integrad Explanation"):
        integrad.load(path)
    with pytest.raises(TypeError, match="must be an Explanation"):
        io.save(object(), tmp_path / "x")  # type: ignore[arg-type]
