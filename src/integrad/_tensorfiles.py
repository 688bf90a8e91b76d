"""The tensor files of :mod:`integrad.io`, written atomically and read as untrusted input.

Reading checks every declared size against a byte budget before it allocates or
decompresses anything: the safetensors header (shapes × dtype sizes against the data
offsets and the file's length), and for npz the zip members' declared sizes, then each
``.npy`` header, then the bytes actually decompressed (a zip may lie about its sizes).
Only the tensors the sidecar references, with the dtype and shape it declares, are
accepted. Problems raise :class:`Malformed`, which :func:`integrad.io.load` turns into a
``LoadError`` naming the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

DTYPES: dict[str, torch.dtype] = {
    "bool": torch.bool,
    "uint8": torch.uint8,
    "uint16": torch.uint16,
    "uint32": torch.uint32,
    "uint64": torch.uint64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
"""The dtypes a saved explanation may hold, by name: torch's real and boolean dtypes."""
NAMES = {dtype: name for name, dtype in DTYPES.items()}
_SAFETENSORS = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "U16": torch.uint16,
    "U32": torch.uint32,
    "U64": torch.uint64,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}
# numpy has no bfloat16: npz files keep its bits as int16.
_NUMPY = {name: np.dtype("int16" if name == "bfloat16" else name) for name in DTYPES}
_NPY_HEADER = 16 * 1024
"""Room for one member's zip and ``.npy`` headers beyond its data."""
MAX_HEADER_BYTES = 16 * 2**20
"""Largest JSON text read: a sidecar, or a safetensors header."""
MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects read or written."""


class Malformed(Exception):
    """A file's content is unusable; the message says why, the caller names the file."""


@dataclass(frozen=True)
class Spec:
    """What the sidecar declares about one tensor (``None``: not declared, format 1)."""

    dtype: torch.dtype | None
    shape: tuple[int, ...] | None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deep ``text``'s arrays and objects nest, counted without parsing (no recursion)."""
    brackets = _BRACKETS.findall(_STRING.sub("", text))
    return max(accumulate(1 if b in "[{" else -1 for b in brackets), default=0)


def parse_json(data: bytes, what: str) -> Any:
    """``data`` as JSON, refusing more than :data:`MAX_DEPTH` levels before parsing."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed(f"the {what} is not UTF-8 ({e})") from None
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise Malformed(f"the {what} nests {depth} levels deep; at most {MAX_DEPTH} are read")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise Malformed(f"the {what} is not valid JSON ({e})") from None


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any], *, fsync: bool = True) -> None:
    """Write ``path`` through a temporary file beside it, so no reader sees half a file.

    The temporary file is created with mode 0o666, so the user's umask decides the
    permissions, as for any file the user writes. ``fsync=False`` skips flushing it to
    the disk before the rename: a killed process still leaves the whole file or none,
    but a power loss may leave it empty or short, so only callers that check what they
    read back (the run store, by hash) should pass it.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write(path: Path, tensors: dict[str, torch.Tensor], *, fsync: bool = True) -> None:
    """Save ``tensors`` to ``path``: safetensors or npz by its suffix (see :func:`write_atomic`)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        data = save(tensors, metadata={"format": "integrad.Explanation"})
        write_atomic(path, lambda f: f.write(data), fsync=fsync)
    else:
        arrays = {
            name: (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
            for name, t in tensors.items()
        }
        write_atomic(path, lambda f: np.savez(f, **arrays), fsync=fsync)  # type: ignore[arg-type]


def read(path: Path, specs: dict[str, Spec], max_bytes: int) -> dict[str, torch.Tensor]:
    """The tensors ``specs`` names, read from ``path`` within ``max_bytes`` of tensor data."""
    if path.suffix == ".safetensors":
        return _read_safetensors(path, specs, max_bytes)
    return _read_npz(path, specs, max_bytes)


def _check(name: str, dtype: torch.dtype, shape: tuple[int, ...], spec: Spec) -> None:
    if spec.dtype is not None and dtype != spec.dtype:
        raise Malformed(f"tensor {name!r} is {NAMES[dtype]}, the sidecar says {NAMES[spec.dtype]}")
    if spec.shape is not None and shape != spec.shape:
        raise Malformed(
            f"tensor {name!r} has shape {list(shape)}, the sidecar says {list(spec.shape)}"
        )


def _same_names(found: list[str], specs: dict[str, Spec]) -> None:
    if len(set(found)) != len(found):
        raise Malformed("it holds a tensor name twice")
    unknown = sorted(set(found) - set(specs))
    if unknown:
        raise Malformed(f"it holds tensors the sidecar does not reference: {unknown[:5]}")
    missing = sorted(set(specs) - set(found))
    if missing:
        raise Malformed(f"it lacks tensors the sidecar references: {missing[:5]}")


def _spend(budget: list[int], nbytes: int, max_bytes: int) -> None:
    budget[0] += nbytes
    if budget[0] > max_bytes:
        raise Malformed(
            f"its tensors hold more than max_bytes={max_bytes} bytes; pass load(..., "
            "max_bytes=...) to read larger files you trust"
        )


def _bools(tensor: torch.Tensor) -> torch.Tensor:
    # A crafted file may store bytes other than 0 and 1 in a bool tensor.
    return tensor.view(torch.uint8) != 0 if tensor.dtype == torch.bool else tensor


def _read_safetensors(path: Path, specs: dict[str, Spec], max_bytes: int) -> dict[str, Any]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise Malformed(f"the file has {len(head)} bytes, fewer than a safetensors header")
        n = int.from_bytes(head, "little")
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise Malformed(f"its safetensors header claims {n} bytes; the file has {size}")
        header = parse_json(f.read(n), "safetensors header")
        if not isinstance(header, dict):
            raise Malformed("its safetensors header is not a JSON object")
        header.pop("__metadata__", None)
        _same_names(list(header), specs)
        data_length = size - 8 - n
        budget = [0]
        _spend(budget, data_length, max_bytes)
        for name, entry in header.items():
            dtype, shape, (start, end) = _entry(name, entry, data_length)
            _check(name, dtype, shape, specs[name])
            nbytes = math.prod(shape) * dtype.itemsize
            if end - start != nbytes:
                raise Malformed(f"tensor {name!r} of shape {list(shape)} spans {end - start} bytes")
        f.seek(0)
        data = f.read(size)
    from safetensors.torch import load

    try:
        tensors = load(data)
    except Exception as e:  # safetensors raises its own error types; all mean a bad file
        raise Malformed(f"safetensors cannot read it ({e})") from None
    for name, tensor in tensors.items():
        _check(name, tensor.dtype, tuple(tensor.shape), specs[name])
    return {name: _bools(t) for name, t in tensors.items()}


def _entry(
    name: str, entry: Any, data_length: int
) -> tuple[torch.dtype, tuple[int, ...], tuple[int, int]]:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise Malformed(f"tensor {name!r} has a malformed safetensors entry")
    dtype = _SAFETENSORS.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise Malformed(f"tensor {name!r} has dtype {entry['dtype']!r}, not an allowed one")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not nonnegative_ints(shape, 64) or not nonnegative_ints(offsets, 2) or len(offsets) != 2:
        raise Malformed(f"tensor {name!r} has a malformed shape or data_offsets")
    start, end = offsets
    if not start <= end <= data_length:
        raise Malformed(f"tensor {name!r} spans bytes {start}..{end} of {data_length}")
    return dtype, tuple(shape), (start, end)


def nonnegative_ints(value: Any, most: int) -> bool:
    """Whether ``value`` is a list of at most ``most`` non-negative ints."""
    return (
        isinstance(value, list)
        and len(value) <= most
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )


# Everything zipfile and zlib raise for a damaged archive.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)


def _read_npz(path: Path, specs: dict[str, Spec], max_bytes: int) -> dict[str, torch.Tensor]:
    room = max_bytes + _NPY_HEADER * (len(specs) + 1)
    size = path.stat().st_size
    if size > room:
        raise Malformed(f"the file has {size} bytes, more than max_bytes={max_bytes} allows")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not all(i.filename.endswith(".npy") for i in infos):
                raise Malformed("it holds members that are not .npy arrays")
            _same_names([i.filename.removesuffix(".npy") for i in infos], specs)
            declared = sum(i.file_size for i in infos)
            if declared > room:
                raise Malformed(
                    f"its members declare {declared} bytes, more than max_bytes={max_bytes}"
                )
            budget = [0]
            tensors = {}
            for info in infos:
                name = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    tensors[name] = _read_npy(member, name, specs[name], budget, max_bytes)
    except _ZIP_ERRORS as e:
        raise Malformed(f"it is not a readable npz archive ({type(e).__name__}: {e})") from None
    return tensors


def _read_npy(
    member: IO[bytes], name: str, spec: Spec, budget: list[int], max_bytes: int
) -> torch.Tensor:
    head = io.BytesIO(member.read(_NPY_HEADER))
    version = np.lib.format.read_magic(head)
    read_header = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read_header is None:
        raise Malformed(f"member {name!r} has .npy version {version}")
    shape, fortran_order, dtype = read_header(head, max_header_size=_NPY_HEADER)
    expected = [_NUMPY[NAMES[spec.dtype]]] if spec.dtype is not None else _NUMPY.values()
    if dtype not in expected or not dtype.isnative:
        raise Malformed(f"member {name!r} holds dtype {dtype}, not an allowed one")
    torch_dtype = spec.dtype if spec.dtype is not None else DTYPES[dtype.name]
    _check(name, torch_dtype, shape, spec)
    nbytes = math.prod(shape) * dtype.itemsize
    _spend(budget, nbytes, max_bytes)
    # The header read may have taken some data bytes with it; read the rest, bounded.
    data = head.read()
    data += member.read(max(nbytes - len(data), 0))
    if len(data) != nbytes or member.read(1):
        raise Malformed(f"member {name!r} holds other than {nbytes} bytes of data")
    array = np.frombuffer(bytearray(data), dtype).reshape(
        shape, order="F" if fortran_order else "C"
    )
    tensor = torch.from_numpy(array.copy(order="C") if fortran_order else array)
    return _bools(tensor.view(torch.bfloat16) if torch_dtype == torch.bfloat16 else tensor)
