"""A run directory: a manifest, append-only shards, and a journal of finished shards.

Layout::

    manifest.json        configuration, fingerprints, format version (atomic: temp, fsync, rename)
    shards/00000000.*    one saved Explanation per explained batch (integrad.io: tensors + sidecar)
    journal.jsonl        one line per finished shard: its example ids, file hashes, summary rows

A shard's files are written first (each atomically: temporary file, rename; see
:mod:`integrad.io`), then its journal line is appended: a shard counts only once its
line is complete and its files match the hashes the line records. A process killed at
any instant therefore leaves at most a torn last line or shard files without a line;
:meth:`Store.recover` drops both, and drops any listed shard whose files no longer
match the hashes its line recorded (a truncated or corrupted file), so those examples
are explained again. Appending one line keeps the cost of a shard constant however long
the run is, where rewriting a manifest would grow with it.

Only the manifest is flushed to the disk (fsync) before its rename. Shard files and
journal lines are not: a killed process loses nothing the kernel has accepted, and
what a power loss can do to unflushed files (lose them, leave them empty or short,
lose journal lines) is what the hash check and :meth:`Store.recover` already handle,
by explaining those examples again. A result is never read from a file that differs
from the one written, so skipping the flushes costs at most work, never correctness,
and saves a disk round trip per file (about a quarter of the store's cost per shard).

Shards are read back with :func:`integrad.io.load`, which treats every file as untrusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _tensorfiles as files
from ..explanation import Explanation
from ..io import LoadError, load, save

__all__ = ["FORMAT_VERSION", "LoadError", "RunMismatchError", "Shard", "Store", "differences"]

FORMAT_VERSION = 1
"""Version of the run directory's layout; later versions of integrad read earlier ones."""
MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
SHARDS = "shards"


class RunMismatchError(ValueError):
    """Resuming a run with a different configuration, model or data than it started with."""


@dataclass(frozen=True)
class Shard:
    """One finished shard: its name, example ids in row order, and per-example summary rows."""

    name: str
    ids: list[int]
    rows: dict[str, list[Any]]
    hashes: dict[str, str]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ranges(ids: list[int]) -> list[list[int]]:
    """``ids`` as ``[start, stop)`` ranges of consecutive ids, in order."""
    out: list[list[int]] = []
    for i in ids:
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Human-readable differences between two JSON values, one line per changed key."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in old:
                out.append(f"{path}: (unset) -> {new[key]!r}")
            elif key not in new:
                out.append(f"{path}: {old[key]!r} -> (unset)")
            else:
                out.extend(differences(old[key], new[key], path))
        return out
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


class Store:
    """The files of one run directory."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.shards: list[Shard] = []
        self._next = 0

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

    @classmethod
    def read_manifest(cls, path: Path) -> dict[str, Any] | None:
        """The manifest of the run at ``path``, or None where there is none yet."""
        file = path / MANIFEST
        if not file.exists():
            return None
        manifest = files.parse_json(file.read_bytes()[: files.MAX_HEADER_BYTES], "manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != "integrad.Run":
            raise ValueError(f"{str(file)!r} is not the manifest of an integrad run")
        version = manifest.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(
                f"{str(file)!r} has format_version {version!r}; this integrad reads 1 to "
                f"{FORMAT_VERSION}: upgrade integrad"
            )
        for key, kind in (("n_examples", int), ("config", dict), ("fingerprints", dict)):
            if not isinstance(manifest.get(key), kind):
                raise ValueError(f"{str(file)!r} lacks a valid {key!r}")
        return manifest

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """An existing run directory, with its journal read (nothing is repaired)."""
        path = Path(path)
        manifest = cls.read_manifest(path)
        if manifest is None:
            raise FileNotFoundError(f"no integrad run at {str(path)!r}: {MANIFEST} is missing")
        store = cls(path, manifest)
        store.shards = store._read_journal()[0]
        return store

    @classmethod
    def create_or_resume(cls, path: str | Path, manifest: dict[str, Any]) -> Store:
        """The run at ``path``: created with ``manifest``, or resumed if it has the same one.

        Raises :class:`RunMismatchError` naming what differs when the directory holds a
        run with another configuration, model or data.
        """
        path = Path(path)
        old = cls.read_manifest(path)
        if old is None:
            if path.exists() and any(p.name != SHARDS for p in path.iterdir()):
                raise ValueError(
                    f"out={str(path)!r} exists and is not an integrad run; choose a new or "
                    "empty directory"
                )
            (path / SHARDS).mkdir(parents=True, exist_ok=True)
            text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
            files.write_atomic(path / MANIFEST, lambda f: f.write(text.encode()))
            _fsync_dir(path)
            old = manifest
        else:
            cls._check_same(path, old, manifest)
        store = cls(path, old)
        store.recover()
        return store

    @staticmethod
    def _check_same(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
        problems = []
        if old["n_examples"] != new["n_examples"]:
            problems.append(
                f"the data has {new['n_examples']} examples, the run {old['n_examples']}"
            )
        for what, key in (("model's parameters", "model"), ("data", "data")):
            was, now = old["fingerprints"].get(key), new["fingerprints"].get(key)
            if was != now:
                problems.append(
                    f"the {what} differ (fingerprint {str(was)[:12]}... now {str(now)[:12]}...)"
                )
        changed = differences(old["config"], new["config"])
        if changed:
            problems.append("the configuration differs: " + "; ".join(changed))
        if problems:
            raise RunMismatchError(
                f"cannot resume the run in {str(path)!r}: "
                + "; ".join(problems)
                + ". Use another out directory, or delete this one to start over"
            )

    def _read_journal(self) -> tuple[list[Shard], int]:
        """The journal's complete, well-formed lines as shards, and their byte length."""
        file = self.path / JOURNAL
        if not file.exists():
            return [], 0
        data = file.read_bytes()
        shards, good = [], 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn by a kill during the append
            try:
                entry = json.loads(line)
                shard = Shard(
                    entry["shard"],
                    [i for start, stop in entry["ids"] for i in range(start, stop)],
                    entry["rows"],
                    entry["sha256"],
                )
            except (ValueError, KeyError, TypeError):
                break
            shards.append(shard)
            good += len(line)
        return shards, good

    def _files(self, name: str) -> dict[str, Path]:
        stem = self.path / SHARDS / name
        return {s: stem.with_name(f"{name}.{s}") for s in ("safetensors", "json")}

    def _intact(self, shard: Shard) -> bool:
        paths = self._files(shard.name)
        return all(
            p.exists() and _sha256(p) == shard.hashes.get(s) for s, p in paths.items()
        ) and set(shard.hashes) == set(paths)

    def recover(self) -> list[Shard]:
        """Keep the shards whose journal line is complete and whose files match it.

        Anything else (a torn line, a shard without a line, a truncated or corrupted
        shard file, a temporary file) is removed, and the journal rewritten atomically
        when a line had to go. Returns the shards dropped.
        """
        shards, good = self._read_journal()
        kept = [s for s in shards if self._intact(s)]
        dropped = [s for s in shards if s not in kept]
        journal = self.path / JOURNAL
        if dropped or (journal.exists() and journal.stat().st_size != good):
            text = "".join(self._line(s) for s in kept)
            files.write_atomic(journal, lambda f: f.write(text.encode()))
        names = {s.name for s in kept}
        for p in (self.path / SHARDS).iterdir():
            if p.name.split(".")[0] not in names or p.name.startswith("."):
                p.unlink(missing_ok=True)
        self.shards = kept
        self._next = 1 + max((int(s.name) for s in kept), default=-1)
        return dropped

    @staticmethod
    def _line(shard: Shard) -> str:
        entry = {
            "shard": shard.name,
            "ids": _ranges(shard.ids),
            "sha256": shard.hashes,
            "rows": shard.rows,
        }
        return json.dumps(entry, separators=(",", ":")) + "\n"

    def append(self, exp: Explanation, ids: list[int], rows: dict[str, list[Any]]) -> Shard:
        """Write ``exp`` (the examples ``ids``, in order) as the next shard, then journal it."""
        name = f"{self._next:08d}"
        self._next += 1
        # No fsync for the shard's files nor its line (see the module's docstring): a
        # line lost with the page cache only means its shard is redone, and a line that
        # outlives its shard's data fails the hash check on resume.
        save(exp, self._files(name)["safetensors"], fsync=False)
        hashes = {s: _sha256(p) for s, p in self._files(name).items()}
        shard = Shard(name, ids, rows, hashes)
        with open(self.path / JOURNAL, "ab") as f:
            f.write(self._line(shard).encode())
        self.shards.append(shard)
        return shard

    def load(self, shard: Shard) -> Explanation:
        """``shard``'s Explanation, read through the safe loader, after checking its hashes.

        A file that is not the one the journal recorded raises ``LoadError``.
        """
        paths = self._files(shard.name)
        for suffix, path in paths.items():
            if not path.exists() or _sha256(path) != shard.hashes.get(suffix):
                raise LoadError(
                    path,
                    "the file is missing or differs from the one the run wrote (truncated or "
                    "corrupted); run the same call again to redo its examples",
                )
        return load(paths["safetensors"])
