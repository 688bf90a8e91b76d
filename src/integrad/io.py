"""Save and load an :class:`~integrad.Explanation`: tensors plus a JSON sidecar, never pickle.

``exp.save("run.safetensors")`` writes the tensors to ``run.safetensors`` (or ``run.npz``)
and everything else — method, steps or tolerance, baseline description, target, extras,
package and torch versions — to ``run.json``. :func:`load` reads either format back,
bit for bit, into an Explanation. The codec walks the dataclass's fields, so fields
added later (error estimates, convergence flags, ...) round-trip without changes here;
fields this version does not know are kept in ``extras``.

Saving writes each file through a temporary file and ``os.replace``, with the
permissions the user's umask gives. Tensors get names the encoder assigns (``t0``,
``t1``, ...) and the sidecar refers to them, so no two values can share a name.

:func:`load` treats every file as untrusted. The sidecar is at most
:data:`MAX_SIDECAR_BYTES` and :data:`MAX_DEPTH` levels deep; tensor data, declared and
decompressed, at most :data:`MAX_TENSOR_BYTES` (``load(path, max_bytes=...)`` changes
it); dtypes come from an allow-list; only tensors the sidecar references are read, with
the dtype and shape it declares; and the result must fit the Explanation's schema
(attributions and baselines shaped like the inputs, per-example vectors of the batch's
length, ...). Any problem raises :class:`LoadError`, a ``ValueError`` naming the file.

Format versions: 1 (integrad 0.1.0) named tensors by their field path; 2 (now) numbers
them and records each one's shape. Both are read.

>>> import tempfile, torch, integrad
>>> exp = integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3))
>>> with tempfile.TemporaryDirectory() as d:
...     back = integrad.load(exp.save(d + "/run"))
>>> torch.equal(back.attributions, exp.attributions), back.method
(True, 'gausslegendre')
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _tensorfiles as files
from ._inputs import KINDS, OUTPUT_KINDS
from ._tensorfiles import MAX_DEPTH, Malformed, Spec
from ._tensorfiles import MAX_HEADER_BYTES as MAX_SIDECAR_BYTES

if TYPE_CHECKING:
    from .explanation import Explanation

__all__ = [
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "MAX_SIDECAR_BYTES",
    "MAX_TENSOR_BYTES",
    "LoadError",
    "load",
    "save",
]

FORMAT_VERSION = 3
"""3 made ``kind`` a field (formats 1 and 2 kept it in ``extras``) and added the
predictions (``output_kind``, ``predicted``, ``probability``, ``predicted_probability``)."""
MAX_TENSOR_BYTES = 4 * 2**30
"""Default limit of :func:`load` on a file's tensor bytes (declared and decompressed): 4 GiB."""
_SUFFIXES = (".safetensors", ".npz")


class LoadError(ValueError):
    """A saved explanation that cannot be read safely; ``path`` is the file at fault."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"cannot load {str(path)!r}: {problem}")
        self.path = path
        self.problem = problem


def _has_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def _paths(path: str | Path, *, for_writing: bool) -> tuple[Path, Path]:
    """The tensor file and the JSON sidecar for ``path`` (either of them, or their stem)."""
    path = Path(path)
    if path.suffix == ".json":
        stem = path.with_suffix("")
    elif path.suffix in _SUFFIXES:
        return path, path.with_suffix(".json")
    else:
        stem = path
    if for_writing:
        suffix = ".safetensors" if _has_safetensors() else ".npz"
        return stem.with_name(stem.name + suffix), stem.with_name(stem.name + ".json")
    for suffix in _SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.exists():
            return candidate, stem.with_name(stem.name + ".json")
    raise FileNotFoundError(
        f"no saved explanation at {str(path)!r}: expected {stem}.safetensors or {stem}.npz "
        f"next to {stem}.json"
    )


class _Encoder:
    """Turns field values into JSON, moving every tensor into a table of numbered names."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def _table(self, tensor: torch.Tensor, where: str) -> dict[str, Any]:
        if tensor.dtype not in files.NAMES:
            raise TypeError(
                f"{where} is a {tensor.dtype} tensor; a saved explanation holds only "
                f"{sorted(files.DTYPES)}"
            )
        name = f"t{len(self.tensors)}"
        self.tensors[name] = tensor.detach().cpu().contiguous().clone()
        return {"dtype": files.NAMES[tensor.dtype], "shape": list(tensor.shape), "name": name}

    def __call__(self, value: Any, where: str, depth: int = 2) -> Any:
        """``value`` as JSON; ``depth`` is how deep in the sidecar it will sit."""
        if depth > MAX_DEPTH - 2:
            raise ValueError(f"{where} nests deeper than a saved explanation may ({MAX_DEPTH})")
        if isinstance(value, torch.Tensor):
            entry = self._table(value, where)
            return {"__tensor__": entry.pop("name"), **entry}
        if isinstance(value, np.ndarray):
            tensor = torch.from_numpy(value.copy(order="C"))  # ascontiguousarray makes 0-d 1-d
            entry = self._table(tensor, where)
            return {"__ndarray__": entry.pop("name"), **entry}
        if isinstance(value, np.generic):
            return self(value.item(), where, depth)
        if isinstance(value, float) and not math.isfinite(value):
            return {"__float__": repr(value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {"__tuple__": [self(v, f"{where}[{i}]", depth + 2) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {
                "__dict__": {k: self(v, f"{where}[{k!r}]", depth + 2) for k, v in value.items()}
            }
        if isinstance(value, torch.dtype):
            return {"__dtype__": str(value).removeprefix("torch.")}
        # Anything else (a callable, a custom object) is provenance only: keep its description.
        return {"__repr__": repr(value)}


@dataclasses.dataclass(frozen=True)
class _Ref:
    """A tensor the sidecar refers to, filled in once the tensor file is read."""

    name: str
    ndarray: bool


_MARKERS = {
    1: {"__tensor__": {"dtype"}, "__ndarray__": set()},
    2: {"__tensor__": {"dtype", "shape"}, "__ndarray__": {"dtype", "shape"}},
    3: {"__tensor__": {"dtype", "shape"}, "__ndarray__": {"dtype", "shape"}},
}


class _Decoder:
    """Reads the sidecar's values, checking every entry; tensors become :class:`_Ref`."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.specs: dict[str, Spec] = {}

    def __call__(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict) or len(value) == 0:
            raise Malformed(f"unexpected entry {_show(value)}")
        key = next((k for k in value if k.startswith("__") and k.endswith("__")), "")
        inner = value.get(key)
        if key in _MARKERS[self.version]:
            if set(value) != {key} | _MARKERS[self.version][key]:
                raise Malformed(f"malformed tensor entry {_show(value)}")
            return self._ref(key == "__ndarray__", inner, value.get("dtype"), value.get("shape"))
        if len(value) != 1:
            raise Malformed(f"unexpected entry {_show(value)}")
        if key == "__tuple__" and isinstance(inner, list):
            return tuple(self(v) for v in inner)
        if key == "__dict__" and isinstance(inner, dict):
            return {k: self(v) for k, v in inner.items()}
        if key == "__float__" and isinstance(inner, str):
            try:
                return float(inner)
            except ValueError:
                raise Malformed(f"{inner!r} is not a float") from None
        if key == "__dtype__" and isinstance(inner, str) and inner in files.DTYPES:
            return files.DTYPES[inner]
        if key == "__repr__" and isinstance(inner, str):
            return inner
        raise Malformed(f"unexpected entry {_show(value)}")

    def _ref(self, ndarray: bool, name: Any, dtype: Any, shape: Any) -> _Ref:
        if not isinstance(name, str):
            raise Malformed(f"tensor name {_show(name)} is not a string")
        if dtype is not None and not (isinstance(dtype, str) and dtype in files.DTYPES):
            raise Malformed(
                f"tensor {name!r} has dtype {_show(dtype)}, not one of {sorted(files.DTYPES)}"
            )
        if shape is not None and not files.nonnegative_ints(shape, 64):
            raise Malformed(f"tensor {name!r} has shape {_show(shape)}")
        spec = Spec(
            None if dtype is None else files.DTYPES[dtype],
            None if shape is None else tuple(shape),
        )
        # Format 1 could give two values one name (the later one was saved for both).
        if name in self.specs and (self.version > 1 or self.specs[name] != spec):
            raise Malformed(f"tensor {name!r} is referenced twice")
        self.specs[name] = spec
        return _Ref(name, ndarray)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fill(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, _Ref):
        tensor = tensors[value.name]
        if value.ndarray and tensor.dtype == torch.bfloat16:
            raise Malformed(f"tensor {value.name!r} is bfloat16, which a numpy array cannot be")
        return tensor.numpy() if value.ndarray else tensor
    if isinstance(value, list):
        return [_fill(v, tensors) for v in value]
    if isinstance(value, tuple):
        return tuple(_fill(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _fill(v, tensors) for k, v in value.items()}
    return value


def _environment() -> dict[str, str]:
    from . import __version__

    return {
        "integrad": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save(explanation: Explanation, path: str | Path, *, fsync: bool = True) -> Path:
    """Write ``explanation`` to ``path`` (+ ``.json``); returns the tensor file's path.

    ``path`` ending in ``.safetensors`` or ``.npz`` picks the format; otherwise
    safetensors is used when installed, else npz. Tensors move to the CPU; dtypes and
    values are kept exactly. Each file is replaced atomically, the tensors first, and
    flushed to the disk before its rename unless ``fsync=False`` (then a power loss,
    not a killed process, can leave a file empty or short: for callers that verify
    what they read back, such as the run store's hashes).
    """
    if not dataclasses.is_dataclass(explanation) or isinstance(explanation, type):
        raise TypeError(f"explanation must be an Explanation, got {type(explanation).__name__}")
    tensor_path, json_path = _paths(path, for_writing=True)
    encode = _Encoder()
    fields = {
        f.name: encode(getattr(explanation, f.name), f.name)
        for f in dataclasses.fields(explanation)
    }
    sidecar = {
        "format": "integrad.Explanation",
        "format_version": FORMAT_VERSION,
        "tensor_file": tensor_path.name,
        "versions": _environment(),
        "fields": fields,
    }
    text = json.dumps(sidecar, indent=1) + "\n"
    if len(text.encode()) > MAX_SIDECAR_BYTES:
        raise ValueError(
            f"the sidecar would take {len(text.encode())} bytes, more than load reads "
            f"(MAX_SIDECAR_BYTES={MAX_SIDECAR_BYTES}): keep large values in tensors"
        )
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    files.write(tensor_path, encode.tensors, fsync=fsync)
    files.write_atomic(json_path, lambda f: f.write(text.encode()), fsync=fsync)
    return tensor_path


def _sidecar(json_path: Path) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The format version, the encoded fields and the writers' versions."""
    size = json_path.stat().st_size
    if size > MAX_SIDECAR_BYTES:
        raise Malformed(f"the sidecar has {size} bytes; at most {MAX_SIDECAR_BYTES} are read")
    with open(json_path, "rb") as f:
        sidecar = files.parse_json(f.read(MAX_SIDECAR_BYTES + 1), "sidecar")
    if not isinstance(sidecar, dict) or sidecar.get("format") != "integrad.Explanation":
        raise Malformed("it does not describe a saved integrad Explanation")
    version = sidecar.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Malformed(f"format_version {_show(version)} is not a version number")
    if version > FORMAT_VERSION:
        raise Malformed(
            f"format_version is {version}; this integrad reads up to {FORMAT_VERSION}: "
            "upgrade integrad"
        )
    fields, versions = sidecar.get("fields"), sidecar.get("versions", {})
    if not isinstance(fields, dict):
        raise Malformed("the sidecar's 'fields' is not a JSON object")
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        raise Malformed("the sidecar's 'versions' is not an object of strings")
    return version, fields, versions


def load(path: str | Path, *, max_bytes: int | None = None) -> Explanation:
    """Read an Explanation written by :meth:`integrad.Explanation.save` (safetensors or npz).

    ``path`` may be the tensor file, the ``.json`` sidecar or their common stem. Fields
    the installed version does not define are kept in ``extras`` under their own names;
    the versions that wrote the file are in ``extras["saved_with"]``. The file is not
    trusted: a malformed or oversized one raises :class:`integrad.io.LoadError` (a
    ``ValueError``); ``max_bytes`` (default :data:`integrad.io.MAX_TENSOR_BYTES`) bounds
    the tensor data read.
    """
    from .explanation import Explanation

    limit = MAX_TENSOR_BYTES if max_bytes is None else max_bytes
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
    tensor_path, json_path = _paths(path, for_writing=False)
    if not json_path.exists():
        raise FileNotFoundError(f"the JSON sidecar {str(json_path)!r} is missing")
    try:
        version, fields, versions = _sidecar(json_path)
        decode = _Decoder(version)
        values = {name: decode(v) for name, v in fields.items()}
    except Malformed as e:
        raise LoadError(json_path, str(e)) from None
    try:
        tensors = files.read(tensor_path, decode.specs, limit)
        values = {name: _fill(v, tensors) for name, v in values.items()}
    except Malformed as e:
        raise LoadError(tensor_path, str(e)) from None
    known = {f.name for f in dataclasses.fields(Explanation)}
    kwargs = {k: v for k, v in values.items() if k in known}
    try:
        if not isinstance(kwargs.get("extras", {}), dict):
            raise Malformed("the field 'extras' is not a dict")
        extras = dict(kwargs.get("extras") or {})
        extras.update({k: v for k, v in values.items() if k not in known})
        # A file re-saved after loading keeps the versions that first wrote it.
        extras.setdefault("saved_with", versions)
        if version < 3 and "kind" in extras:  # formats 1 and 2 kept the kind in extras
            kwargs["kind"] = extras.pop("kind")
        kwargs["extras"] = extras
        missing = [
            f.name
            for f in dataclasses.fields(Explanation)
            if f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise Malformed(f"the sidecar lacks the fields {missing}")
        _check_schema(kwargs)
    except Malformed as e:
        raise LoadError(tensor_path, str(e)) from None
    return Explanation(**kwargs)


def _tensors(name: str, value: Any) -> tuple[tuple[torch.Tensor, ...], bool]:
    """``value``'s tensors and whether it was a tuple; it must be a tensor or tuple of them."""
    parts = value if isinstance(value, tuple) else (value,)
    if not parts or not all(isinstance(t, torch.Tensor) for t in parts):
        raise Malformed(f"the field {name!r} is not a tensor or a tuple of tensors")
    return parts, isinstance(value, tuple)


def _vector(name: str, value: Any, batch: int, kind: str) -> None:
    """``value`` must be a tensor of shape ``(batch,)`` and of ``kind``: float, count or bool."""
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != (batch,):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise Malformed(f"the field {name!r} is {shape}, not a tensor of shape ({batch},)")
    fits = {
        "float": value.is_floating_point(),
        "count": value.dtype != torch.bool,
        "bool": value.dtype == torch.bool,
    }[kind]
    if not fits:
        raise Malformed(f"the field {name!r} has dtype {value.dtype}, not a {kind} dtype")


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _check_schema(kw: dict[str, Any]) -> None:
    """The decoded fields must make an Explanation its views and repr can show."""
    for name, types, what in (
        ("method", str, "a string"),
        ("baseline", str, "a string"),
        ("multiply_by_inputs", bool, "a bool"),
        ("n_steps", int, "an int"),
    ):
        value = kw.get(name, "" if types is str else types())
        if not isinstance(value, types) or (types is int and isinstance(value, bool)):
            raise Malformed(f"the field {name!r} is {_show(value)}, not {what}")
    tolerance = kw.get("tolerance")
    if tolerance is not None and (
        not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool)
    ):
        raise Malformed(f"the field 'tolerance' is {_show(tolerance)}, not a number or None")
    inputs, was_tuple = _tensors("inputs", kw["inputs"])
    if any(t.dim() == 0 for t in inputs):
        raise Malformed("the field 'inputs' holds a tensor without a batch dimension")
    batch = inputs[0].shape[0]
    shapes = [tuple(t.shape) for t in inputs]
    if any(s[0] != batch for s in shapes):
        raise Malformed(f"the inputs' batch sizes differ: {shapes}")
    for name in ("attributions", "baselines"):
        parts, tupled = _tensors(name, kw[name])
        if tupled != was_tuple or [tuple(t.shape) for t in parts] != shapes:
            got = [tuple(t.shape) for t in parts]
            raise Malformed(f"the field {name!r} has shapes {got}, the inputs {shapes}")
    if not all(t.is_floating_point() for t in _tensors("attributions", kw["attributions"])[0]):
        raise Malformed("the field 'attributions' is not floating point")
    for name in ("delta", "output", "baseline_output"):
        _vector(name, kw[name], batch, "float")
    _vector("n_evals", kw["n_evals"], batch, "count")
    for name, kind in (
        ("n_forward", "count"),
        ("error_estimate", "float"),
        ("converged", "bool"),
        ("predicted", "count"),
        ("probability", "float"),
        ("predicted_probability", "float"),
    ):
        if kw.get(name) is not None:
            _vector(name, kw[name], batch, kind)
    for name, allowed in (("kind", KINDS), ("output_kind", OUTPUT_KINDS)):
        if kw.get(name) is not None and kw[name] not in allowed:
            raise Malformed(f"the field {name!r} is {_show(kw[name])}, not one of {list(allowed)}")
    tolerated = kw.get("error_estimate") is not None and kw.get("converged") is not None
    if tolerated and tolerance is None:  # the repr prints the tolerance beside them
        raise Malformed("error_estimate and converged are set but tolerance is not")
    extras = kw["extras"]
    saved = extras.get("saved_with")
    if not isinstance(saved, dict) or not all(isinstance(v, str) for v in saved.values()):
        raise Malformed(f"extras['saved_with'] is {_show(saved)}, not an object of strings")
    if "feature_names" in extras and not _strings(extras["feature_names"]):
        raise Malformed("extras['feature_names'] is not a list of strings")
    tokens = extras.get("tokens")
    if tokens is not None and not (
        isinstance(tokens, (list, tuple)) and len(tokens) == batch and all(map(_strings, tokens))
    ):
        raise Malformed(f"extras['tokens'] is not {batch} lists of strings")
