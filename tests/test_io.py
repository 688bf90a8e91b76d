"""save/load: exact round trips in both formats, tuple inputs, new fields, no pickle."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
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
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
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


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_flushes_each_file_unless_fsync_false(tmp_path, monkeypatch, suffix):
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(smooth_mlp(), x, target=1, n_steps=4)
    flushed: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real(fd))[1])
    assert_round_trip(exp, integrad.load(io.save(exp, tmp_path / f"a{suffix}")))
    assert len(flushed) == 2  # the tensor file and the sidecar
    assert_round_trip(exp, integrad.load(io.save(exp, tmp_path / f"b{suffix}", fsync=False)))
    assert len(flushed) == 2


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
    path = later.save(tmp_path / "later")
    sidecar = json.loads((tmp_path / "later.json").read_text())
    assert sidecar["fields"]["curvature"]["shape"] == [2]
    back = integrad.load(path)  # read by this version's Explanation
    assert torch.equal(back.extras["curvature"], later.curvature)
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


# --- files written by integrad 0.1.0 (format 1) keep loading ---------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "io"
sys.path.insert(0, str(FIXTURES))
import v1_cases  # noqa: E402

ADDED_IN_FORMAT_3 = ("output_kind", "predicted", "probability", "predicted_probability")


@pytest.mark.parametrize("name", sorted(v1_cases.FILES))
def test_files_of_format_1_load_as_the_explanation_they_hold(tmp_path, name):
    sidecar = json.loads((FIXTURES / v1_cases.FILES[name]).with_suffix(".json").read_text())
    assert sidecar["format_version"] == 1
    back = integrad.load(FIXTURES / v1_cases.FILES[name])
    fresh = v1_cases.case(name)
    assert back.extras["saved_with"]["integrad"] == "0.1.0"
    # Computed values may differ in the last bits across platforms; inputs and provenance not.
    tight = {"rtol": 1e-5, "atol": 1e-6} if fresh.delta.dtype == torch.float32 else {}
    computed = ("attributions", "delta", "output", "baseline_output", "error_estimate")
    ladder = ("method", "n_steps", "n_evals", "n_forward", "converged")
    for field in dataclasses.fields(fresh):
        a, b = getattr(fresh, field.name), getattr(back, field.name)
        if field.name in ADDED_IN_FORMAT_3:  # a format-1 file cannot hold them
            assert b is None
            continue
        if name in v1_cases.LADDER_CHANGED and field.name in (*computed, *ladder, "extras"):
            continue
        if field.name in computed and a is not None:
            pairs = zip(*(v if isinstance(v, tuple) else (v,) for v in (a, b)), strict=True)
            assert type(a) is type(b)
            assert all(x.dtype == y.dtype and torch.allclose(x, y, **tight) for x, y in pairs)
        elif field.name != "extras":
            assert_same(a, b)
    if name not in v1_cases.LADDER_CHANGED:
        assert_same(fresh.extras, back.extras)
    assert "completeness" in repr(back)
    # Re-saved in the current format, it reads back bit for bit.
    again = back.save(tmp_path / f"again{Path(v1_cases.FILES[name]).suffix}")
    assert_round_trip(back, integrad.load(again))


def test_format_1_dtype_field_reads_only_dtypes():
    sidecar = json.loads((FIXTURES / "nested_extras.json").read_text())
    assert integrad.load(FIXTURES / "nested_extras.json").extras["dtype"] is torch.float16
    assert sidecar["fields"]["extras"]["__dict__"]["dtype"] == {"__dtype__": "float16"}


# --- save: no collisions, umask, atomic ---------------------------------------------------------


def small_exp() -> Explanation:
    x = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    return integrad.explain(lambda t: (t**2).sum(1), x, n_steps=4)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_values_whose_paths_joined_alike_are_all_kept(tmp_path, suffix):
    exp = small_exp()
    first, second = torch.tensor([1.0]), torch.tensor([2.0, 3.0])
    exp.extras.update({"a.b": first, "a": {"b": second}, "extras.a": (first, [second])})
    exp.extras.update(scalar=np.array(1.5), ints=np.arange(3, dtype=np.int32))
    back = integrad.load(exp.save(tmp_path / f"c{suffix}"))
    assert_same(exp.extras, back.extras)


def test_what_the_views_read_from_extras_round_trips(tmp_path):
    exp = small_exp()
    exp.extras.update(tokens=(["a", "b", "c"], ["d", "e", "f"]), kind="text")
    back = integrad.load(exp.save(tmp_path / "v"))
    assert_round_trip(exp, back)
    assert "data-score" in back.to_html(tmp_path / "v.html").read_text()


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_users_umask(tmp_path, suffix, umask):
    old = os.umask(umask)
    try:
        path = small_exp().save(tmp_path / f"m{suffix}")
    finally:
        os.umask(old)
    for file in (path, path.with_suffix(".json")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask, file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "m.json"])


def test_a_failed_save_leaves_the_previous_files_whole(tmp_path, monkeypatch):
    small_exp().save(tmp_path / "run.npz")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def half_then_fail(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr("integrad._tensorfiles.np.savez", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        small_exp().save(tmp_path / "run.npz")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(TypeError, match=r"extras\['z'\] is a torch.complex64 tensor"):
        dataclasses.replace(small_exp(), extras={"z": torch.zeros(2, dtype=torch.complex64)}).save(
            tmp_path / "run.npz"
        )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --- load treats files as untrusted --------------------------------------------------------------


def edit_sidecar(path: Path, change) -> None:
    sidecar_path = path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    change(sidecar)
    sidecar_path.write_text(json.dumps(sidecar))


def npy(shape: tuple[int, ...], dtype: str, data: bytes) -> bytes:
    header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    text = repr(header).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def replace_member(path: Path, name: str, payload: bytes, **options) -> None:
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[name] = payload
    with zipfile.ZipFile(path, "w", **options) as z:
        for member, data in members.items():
            z.writestr(member, data)


def test_decompressed_sizes_are_bounded(tmp_path):
    path = small_exp().save(tmp_path / "b.npz")
    # 8 MiB of zeros deflate to a few KiB; the declared size is refused before reading.
    zeros = npy((2, 3), "<f8", bytes(8 * 2**20))
    replace_member(path, "t0.npy", zeros, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(io.LoadError, match=r"declare \d+ bytes, more than max_bytes=1048576"):
        integrad.load(path, max_bytes=2**20)
    # A 200-byte member whose header claims 8 TiB: refused, never allocated.
    replace_member(path, "t0.npy", npy((2**40,), "<f8", b"\0" * 16))
    with pytest.raises(io.LoadError, match=r"sidecar says|max_bytes"):
        integrad.load(path)
    with pytest.raises(io.LoadError, match="max_bytes=4294967296"):
        edit_sidecar(path, lambda s: s["fields"]["attributions"].update(shape=[2**40]))
        integrad.load(path)
    with pytest.raises(ValueError, match="max_bytes must be a non-negative int"):
        integrad.load(path, max_bytes=-1)


def test_a_zip_that_lies_about_sizes_is_refused(tmp_path):
    path = small_exp().save(tmp_path / "l.npz")
    real = npy((2, 3), "<f8", bytes(48))
    replace_member(path, "t0.npy", real, compression=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    # Shrink the declared size of t0.npy in its local and central headers.
    size = len(real).to_bytes(4, "little")
    assert data.count(size) >= 2
    data[:] = data.replace(size, (len(real) - 40).to_bytes(4, "little"))
    path.write_bytes(bytes(data))
    with pytest.raises(io.LoadError, match=r"l\.npz.*(other than 48 bytes|npz archive)"):
        integrad.load(path)


def test_members_and_tensors_the_sidecar_does_not_reference_are_refused(tmp_path):
    path = small_exp().save(tmp_path / "u.npz")
    replace_member(path, "payload.npy", npy((1,), "<f8", bytes(8)))
    with pytest.raises(io.LoadError, match=r"u\.npz.*does not reference: \['payload'\]"):
        integrad.load(path)
    from safetensors.torch import load_file, save_file

    path = small_exp().save(tmp_path / "u.safetensors")
    save_file({**load_file(path), "payload": torch.ones(1)}, path)
    with pytest.raises(io.LoadError, match=r"does not reference: \['payload'\]"):
        integrad.load(path)
    save_file({k: v for k, v in load_file(path).items() if k not in ("payload", "t1")}, path)
    with pytest.raises(io.LoadError, match=r"lacks tensors the sidecar references: \['t1'\]"):
        integrad.load(path)


def test_an_array_claimed_to_be_bfloat16_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    exp = small_exp()
    exp.extras["arr"] = np.arange(3, dtype=np.int16)
    path = exp.save(tmp_path / "a.safetensors")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    name = sidecar["fields"]["extras"]["__dict__"]["arr"]["__ndarray__"]
    tensors = load_file(path)
    save_file({**tensors, name: tensors[name].view(torch.bfloat16)}, path)
    edit_sidecar(path, lambda s: s["fields"]["extras"]["__dict__"]["arr"].update(dtype="bfloat16"))
    with pytest.raises(io.LoadError, match=f"{name}' is bfloat16, which a numpy array cannot be"):
        integrad.load(path)


def safetensors_with(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize(
    ("entry", "data", "match"),
    [
        (
            {"dtype": "F64", "shape": [2, 3], "data_offsets": [0, 48]},
            bytes(8),
            r"spans bytes \d+\.\.\d+ of",
        ),
        ({"dtype": "F64", "shape": [2, 3], "data_offsets": [0, 8]}, bytes(8), "spans 8 bytes"),
        ({"dtype": "C64", "shape": [2, 3], "data_offsets": [0, 48]}, bytes(48), "'C64'"),
        ({"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, bytes(24), "sidecar says"),
        ({"dtype": "F64", "shape": [6], "data_offsets": [0, 48]}, bytes(48), "sidecar says"),
        ({"dtype": "F64", "shape": "x"}, bytes(48), "malformed safetensors entry"),
    ],
)
def test_safetensors_headers_are_checked(tmp_path, entry, data, match):
    from safetensors.torch import load_file

    path = small_exp().save(tmp_path / "h.safetensors")
    tensors = load_file(path)
    header, blob, offset = {}, b"", 0
    for name, t in tensors.items():
        raw = t.numpy().tobytes()
        header[name] = {
            "dtype": {torch.float64: "F64", torch.int64: "I64"}[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blob, offset = blob + raw, offset + len(raw)
    header["t0"] = {
        **entry,
        **(
            {"data_offsets": [o + offset for o in entry["data_offsets"]]}
            if "data_offsets" in entry
            else {}
        ),
    }
    path.write_bytes(safetensors_with(header, blob + data))
    with pytest.raises(io.LoadError, match=match):
        integrad.load(path)
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(io.LoadError, match=r"header claims 4611686018427387904 bytes"):
        integrad.load(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s["fields"].update(extras={"__dtype__": "load"}), "unexpected entry"),
        (
            lambda s: s["fields"]["extras"]["__dict__"].update(f={"__dtype__": "save"}),
            "unexpected entry",
        ),
        (lambda s: s["fields"]["delta"].update(dtype="Tensor"), "dtype 'Tensor', not one of"),
        (lambda s: s["fields"]["delta"].update(dtype="complex64"), "dtype 'complex64'"),
        (lambda s: s["fields"]["delta"].update(dtype="float32"), "is float64, the sidecar says"),
        (lambda s: s["fields"]["output"].update(__tensor__="t1"), "'t1' is referenced twice"),
        (lambda s: s["fields"].pop("target"), r"lacks the fields \['target'\]"),
        (lambda s: s["fields"].update(method=3), "'method' is 3, not a string"),
        (lambda s: s["fields"].update(n_steps=True), "'n_steps' is True, not an int"),
        (lambda s: s["fields"].update(tolerance="1e-3"), "'tolerance' is '1e-3'"),
        (lambda s: s["fields"].update(extras=[1]), "'extras' is not a dict"),
        (lambda s: s["fields"].update(extras={"x": 1}), "unexpected entry"),
        (lambda s: s["fields"].update(extras={"__float__": 1.0}), "unexpected entry"),
        (lambda s: s["fields"].update(extras={"__float__": "one"}), "'one' is not a float"),
        (lambda s: s.update(fields=[]), "'fields' is not a JSON object"),
        (lambda s: s.update(versions=[]), "'versions' is not an object"),
        (lambda s: s.update(format_version="2"), "format_version '2' is not a version number"),
        (lambda s: s.update(format_version=4), "reads up to 3: upgrade integrad"),
        (lambda s: s.clear(), "does not describe a saved integrad Explanation"),
    ],
)
def test_malformed_sidecars_raise_load_error_naming_the_file(tmp_path, change, match):
    path = small_exp().save(tmp_path / "s.safetensors")
    edit_sidecar(path, change)
    with pytest.raises(io.LoadError, match=match) as caught:
        integrad.load(path)
    assert "s.json" in str(caught.value) or "s.safetensors" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_deep_or_large_sidecars_are_refused_before_parsing(tmp_path, monkeypatch):
    path = small_exp().save(tmp_path / "d.npz")
    text = path.with_suffix(".json").read_text()
    sidecar = json.loads(text)
    sidecar["fields"]["extras"]["__dict__"]["deep"] = "DEEP"
    deep = json.dumps(sidecar).replace('"DEEP"', "[" * 100_000 + "]" * 100_000)
    path.with_suffix(".json").write_text(deep)
    with pytest.raises(io.LoadError, match=r"d\.json.*nests 100\d+ levels deep; at most 64"):
        integrad.load(path)
    path.with_suffix(".json").write_text(text)
    monkeypatch.setattr(io, "MAX_SIDECAR_BYTES", 100)
    with pytest.raises(io.LoadError, match=r"the sidecar has \d+ bytes; at most 100"):
        integrad.load(path)
    # Saving refuses what loading would: values nested deeper than the sidecar may be.
    exp, nested = small_exp(), []
    exp.extras["deep"] = nested
    for _ in range(70):
        nested.append([])
        nested = nested[0]
    with pytest.raises(ValueError, match=r"extras\['deep'\]\[0\].* nests deeper than"):
        exp.save(tmp_path / "e")


def bad(exp: Explanation, **changes) -> Explanation:
    return dataclasses.replace(exp, **changes)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"delta": torch.zeros(3, dtype=torch.float64)},
            r"'delta' is \(3,\), not a tensor of shape \(2,\)",
        ),
        ({"output": torch.zeros(2, 1)}, r"'output' is \(2, 1\)"),
        ({"n_evals": torch.ones(2, dtype=torch.bool)}, "'n_evals' has dtype torch.bool"),
        ({"attributions": torch.zeros(2, 4)}, r"'attributions' has shapes \[\(2, 4\)\]"),
        ({"attributions": (torch.zeros(2, 3),)}, r"'attributions' has shapes"),
        ({"attributions": torch.zeros(2, 3, dtype=torch.int64)}, "not floating point"),
        ({"baselines": torch.zeros(1, 3)}, r"'baselines' has shapes \[\(1, 3\)\]"),
        ({"inputs": torch.tensor(1.0)}, "without a batch dimension"),
        ({"converged": torch.ones(2)}, "'converged' has dtype torch.float32, not a bool"),
        (
            {"error_estimate": torch.ones(2), "converged": torch.ones(2, dtype=torch.bool)},
            "tolerance is not",
        ),
        ({"n_forward": torch.ones(5)}, r"'n_forward' is \(5,\)"),
        ({"extras": {"tokens": ["a", "b"]}}, r"extras\['tokens'\] is not 2 lists of strings"),
        ({"extras": {"saved_with": "today"}}, r"extras\['saved_with'\] is 'today'"),
        ({"extras": {"feature_names": [1, 2, 3]}}, "feature_names'] is not a list of strings"),
    ],
)
def test_explanations_that_break_the_schema_are_refused(tmp_path, changes, match):
    path = bad(small_exp(), **changes).save(tmp_path / "x.npz")
    with pytest.raises(io.LoadError, match=match):
        integrad.load(path)


def fuzz_explanation() -> Explanation:
    exp = small_exp()
    exp.extras.update(
        half=torch.ones(3, dtype=torch.bfloat16),
        flags=torch.tensor([True]),
        nested={"a": (1, [2.5, float("inf")])},
    )
    return exp


def load_or_refuse(path: Path, files: list[Path], tmp_path: Path, outcomes: dict) -> None:
    """Only a LoadError naming one of ``files``, or an Explanation its views can show."""
    try:
        back = integrad.load(path)
    except io.LoadError as e:
        assert e.path in files, e
        outcomes["refused"] += 1
        return
    outcomes["loaded"] += 1
    assert repr(back).startswith("Explanation(")
    back.to_html(tmp_path / "r.html", kind="table")


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_damaged_files_raise_load_error_or_load_whole(tmp_path, suffix):
    path = fuzz_explanation().save(tmp_path / f"f{suffix}")
    originals = {p: p.read_bytes() for p in (path, path.with_suffix(".json"))}
    g = torch.Generator().manual_seed(0)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(600):
        target = list(originals)[trial % 2]
        data = bytearray(originals[target])
        if trial % 7 == 0:
            data = data[: int(torch.randint(len(data), (1,), generator=g))]
        else:
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
                i = int(torch.randint(len(data), (1,), generator=g))
                data[i] ^= 1 << int(torch.randint(8, (1,), generator=g))
        for p, original in originals.items():
            p.write_bytes(bytes(data) if p == target else original)
        load_or_refuse(path, list(originals), tmp_path, outcomes)
    assert outcomes["loaded"] > 20 and outcomes["refused"] > 300, outcomes


REPLACEMENTS = [
    None,
    True,
    -1,
    0,
    3,
    2**70,
    1.5,
    float("nan"),
    "x",
    [],
    {},
    [1, 2],
    {"__tuple__": []},
    {"__dict__": {}},
    {"__float__": "inf"},
    {"__dtype__": "bool"},
    {"__repr__": "r"},
    {"__tensor__": "t0", "dtype": "float64", "shape": [2, 3]},
    {"__tensor__": "t9", "dtype": "float64", "shape": [2]},
]


def leaves(value: Any, at: tuple = ()) -> list[tuple]:
    """Every path into a JSON value."""
    found = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            found += leaves(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += leaves(v, (*at, i))
    return found


def test_sidecars_with_values_swapped_raise_load_error_or_load_whole(tmp_path):
    path = fuzz_explanation().save(tmp_path / "j.npz")
    sidecar_path = path.with_suffix(".json")
    original = json.loads(sidecar_path.read_text())
    paths = [p for p in leaves(original) if len(p) > 1]
    g = torch.Generator().manual_seed(1)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(400):
        sidecar = json.loads(json.dumps(original))
        where = paths[int(torch.randint(len(paths), (1,), generator=g))]
        parent = sidecar
        for step in where[:-1]:
            parent = parent[step]
        parent[where[-1]] = REPLACEMENTS[int(torch.randint(len(REPLACEMENTS), (1,), generator=g))]
        sidecar_path.write_text(json.dumps(sidecar))
        load_or_refuse(path, [path, sidecar_path], tmp_path, outcomes)
    assert outcomes["loaded"] > 20 and outcomes["refused"] > 100, outcomes


def test_format_3_carries_the_kind_and_predictions_and_format_2_kinds_move_over(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0))
    exp = integrad.explain(model, x, target=1, n_steps=4, kind="image", output_kind="logits")
    back = integrad.load(exp.save(tmp_path / "e.safetensors"))
    assert back.kind == "image" and back.output_kind == "logits"
    for name in ("predicted", "probability", "predicted_probability"):
        assert_same(getattr(exp, name), getattr(back, name))
    # A format-2 file kept the kind in extras: it loads into the field.
    exp.kind = exp.predicted = exp.probability = exp.predicted_probability = None
    exp.extras["kind"] = "timeseries"
    exp.save(tmp_path / "e.safetensors")
    sidecar_path = tmp_path / "e.json"
    sidecar = json.loads(sidecar_path.read_text())
    fields = sidecar["fields"]
    for name in ("kind", "output_kind", "predicted", "probability", "predicted_probability"):
        fields.pop(name)
    sidecar["format_version"] = 2
    sidecar_path.write_text(json.dumps(sidecar))
    old = integrad.load(sidecar_path)
    assert old.kind == "timeseries" and "kind" not in old.extras and old.predicted is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("kind", "audio", "the field 'kind' is 'audio', not one of"),
        ("output_kind", "softmax", "the field 'output_kind' is 'softmax'"),
        ("predicted", torch.zeros(3, dtype=torch.long), r"'predicted' is \(3,\)"),
        ("probability", torch.zeros(2, dtype=torch.long), "'probability' has dtype torch.int64"),
    ],
)
def test_load_refuses_malformed_kinds_and_predictions(tmp_path, name, value, message):
    exp = integrad.explain(torch.nn.Linear(3, 2), torch.rand(2, 3), target=0, n_steps=4)
    setattr(exp, name, value)
    path = exp.save(tmp_path / "e.safetensors")
    with pytest.raises(integrad.io.LoadError, match=message):
        integrad.load(path)
