"""Save and load an :class:`~integrad.Explanation`: tensors plus a JSON sidecar, never pickle.

``exp.save("run.safetensors")`` writes the tensors to ``run.safetensors`` (or ``run.npz``)
and everything else — method, steps or tolerance, baseline description, target, extras,
package and torch versions — to ``run.json``. :func:`load` reads either format back,
bit for bit, into an Explanation. The codec walks the dataclass's fields, so fields
added later (error estimates, convergence flags, ...) round-trip without changes here;
fields this version does not know are kept in ``extras``.

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

if TYPE_CHECKING:
    from .explanation import Explanation

__all__ = ["FORMAT_VERSION", "load", "save"]

FORMAT_VERSION = 1
_SUFFIXES = (".safetensors", ".npz")


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
    """Turns field values into JSON, moving every tensor into a flat name -> tensor table."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def __call__(self, value: Any, key: str) -> Any:
        if isinstance(value, torch.Tensor):
            self.tensors[key] = value.detach().cpu().contiguous().clone()
            return {"__tensor__": key, "dtype": str(value.dtype).removeprefix("torch.")}
        if isinstance(value, np.ndarray):
            self.tensors[key] = torch.from_numpy(np.ascontiguousarray(value)).clone()
            return {"__ndarray__": key}
        if isinstance(value, np.generic):
            return self(value.item(), key)
        if isinstance(value, float) and not math.isfinite(value):
            return {"__float__": repr(value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {"__tuple__": [self(v, f"{key}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"__dict__": {k: self(v, f"{key}.{k}") for k, v in value.items()}}
        if isinstance(value, torch.dtype):
            return {"__dtype__": str(value).removeprefix("torch.")}
        # Anything else (a callable, a custom object) is provenance only: keep its description.
        return {"__repr__": repr(value)}


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return tensors[value["__ndarray__"]].numpy()
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, tensors) for k, v in value["__dict__"].items()}
    if "__float__" in value:
        return float(value["__float__"])
    if "__dtype__" in value:
        return getattr(torch, value["__dtype__"])
    if "__repr__" in value:
        return value["__repr__"]
    raise ValueError(f"unknown entry in the JSON sidecar: {sorted(value)}")


def _environment() -> dict[str, str]:
    from . import __version__

    return {
        "integrad": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save(explanation: Explanation, path: str | Path) -> Path:
    """Write ``explanation`` to ``path`` (+ ``.json``); returns the tensor file's path.

    ``path`` ending in ``.safetensors`` or ``.npz`` picks the format; otherwise
    safetensors is used when installed, else npz. Tensors move to the CPU; dtypes and
    values are kept exactly.
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
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    if tensor_path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(encode.tensors, str(tensor_path), metadata={"format": "integrad.Explanation"})
    else:
        arrays = {}
        for name, tensor in encode.tensors.items():
            # numpy has no bfloat16: store its bits and restore the dtype from the sidecar.
            bits = tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor
            arrays[name] = bits.numpy()
        with open(tensor_path, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
    json_path.write_text(json.dumps(sidecar, indent=1) + "\n")
    return tensor_path


def _read_tensors(path: Path, sidecar_fields: dict[str, Any]) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    dtypes: dict[str, str] = {}

    def collect(value: Any) -> None:
        if isinstance(value, list):
            for v in value:
                collect(v)
        elif isinstance(value, dict):
            if "__tensor__" in value:
                dtypes[value["__tensor__"]] = value["dtype"]
            for v in value.values():
                collect(v)

    collect(sidecar_fields)
    tensors = {}
    with np.load(path, allow_pickle=False) as data:
        for name in data.files:
            tensor = torch.from_numpy(data[name].copy())
            if dtypes.get(name) == "bfloat16":
                tensor = tensor.view(torch.bfloat16)
            tensors[name] = tensor
    return tensors


def load(path: str | Path) -> Explanation:
    """Read an Explanation written by :meth:`Explanation.save` (safetensors or npz).

    ``path`` may be the tensor file, the ``.json`` sidecar or their common stem. Fields
    the installed version does not define are kept in ``extras`` under their own names;
    the versions that wrote the file are in ``extras["saved_with"]``.
    """
    from .explanation import Explanation

    tensor_path, json_path = _paths(path, for_writing=False)
    if not json_path.exists():
        raise FileNotFoundError(f"the JSON sidecar {str(json_path)!r} is missing")
    sidecar = json.loads(json_path.read_text())
    if sidecar.get("format") != "integrad.Explanation":
        raise ValueError(f"{str(json_path)!r} does not describe a saved integrad Explanation")
    if sidecar.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{str(json_path)!r} has format_version {sidecar['format_version']}; this integrad "
            f"reads up to {FORMAT_VERSION}: upgrade integrad"
        )
    tensors = _read_tensors(tensor_path, sidecar["fields"])
    values = {name: _decode(v, tensors) for name, v in sidecar["fields"].items()}
    known = {f.name for f in dataclasses.fields(Explanation)}
    kwargs = {k: v for k, v in values.items() if k in known}
    extras = dict(kwargs.get("extras") or {})
    extras.update({k: v for k, v in values.items() if k not in known})
    # A file re-saved after loading keeps the versions that first wrote it.
    extras.setdefault("saved_with", sidecar.get("versions", {}))
    kwargs["extras"] = extras
    missing = [
        f.name
        for f in dataclasses.fields(Explanation)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{str(json_path)!r} lacks the fields {missing}")
    return Explanation(**kwargs)
