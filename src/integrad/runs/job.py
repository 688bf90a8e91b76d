"""Explain a whole dataset into a resumable run directory: :func:`run` and :func:`open_run`.

>>> import tempfile, torch, integrad
>>> model = torch.nn.Linear(3, 2)
>>> with tempfile.TemporaryDirectory() as d:
...     r = integrad.run(model, torch.rand(10, 3), out=d, batch_size=4, progress=False)
...     len(r), r[7].attributions.shape, integrad.open_run(d).complete
(10, torch.Size([1, 3]), True)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._modules import owner
from ..baselines import BaselineStrategy
from ..explanation import Explanation
from .explainers import EXPLAINERS, explain_batch, is_random
from .progress import Progress
from .results import Run, concat
from .sources import Batch, source_of
from .store import FORMAT_VERSION, Store

__all__ = ["RunInterrupted", "open_run", "run"]

TARGETS = ("pred", "label")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after its current batch; the same call resumes it."""


def _model_of(forward_func: Callable[..., Any]) -> nn.Module | None:
    return forward_func if isinstance(forward_func, nn.Module) else owner(forward_func)


def model_fingerprint(forward_func: Callable[..., Any]) -> str:
    """sha256 of the model's class, parameter and buffer names, dtypes, shapes and values."""
    h = hashlib.sha256(b"integrad.run.model")
    model = _model_of(forward_func)
    if model is None:  # a plain function: only its name can be recorded
        h.update(getattr(forward_func, "__qualname__", type(forward_func).__name__).encode())
        return h.hexdigest()
    h.update(type(model).__qualname__.encode())
    for name, t in sorted(model.state_dict(keep_vars=False).items()):
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
            h.update(raw.numpy().data)
    return h.hexdigest()


def _canonical(value: Any, model: nn.Module | None) -> Any:
    """``value`` as JSON for the recorded configuration; tensors by their hash."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest = hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().data).hexdigest()
        return {"tensor": digest, "dtype": str(t.dtype), "shape": list(t.shape)}
    if isinstance(value, (tuple, list)):
        return [_canonical(v, model) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v, model) for k, v in value.items()}
    if isinstance(value, BaselineStrategy):
        return f"strategy:{value}"
    if isinstance(value, nn.Module):
        names = {m: n for n, m in model.named_modules()} if model is not None else {}
        return f"module:{names.get(value, type(value).__qualname__)}"
    return f"{type(value).__qualname__}:{getattr(value, '__qualname__', '')}"


def _target_spec(target: Any) -> Any:
    if callable(target):
        return f"callable:{getattr(target, '__qualname__', type(target).__name__)}"
    if isinstance(target, str) and target not in TARGETS:
        raise ValueError(f"target={target!r}; choose an int, {list(TARGETS)}, a callable or None")
    if (target is not None and not isinstance(target, (int, str))) or isinstance(target, bool):
        raise TypeError(
            f"target must be an int, 'pred', 'label', a callable or None, got "
            f"{type(target).__name__}"
        )
    return target


def _example_seed(seed: int, example: int) -> int:
    digest = hashlib.sha256(f"integrad.run:{seed}:{example}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _placed(model: nn.Module | None, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Inputs on the model's device; floating inputs in its floating dtype."""
    param = next(iter(model.parameters()), None) if model is not None else None
    if param is None:
        return xs
    return tuple(x.to(param.device, param.dtype if x.is_floating_point() else x.dtype) for x in xs)


def _targets(target: Any, batch: Batch, model: Callable[..., Any], xs: tuple) -> Any:
    if target == "label":
        if batch.labels is None:
            raise ValueError("target='label' needs labels: pass labels= or data with labels")
        return batch.labels.to(xs[0].device)
    if target == "pred" or callable(target):
        with torch.no_grad():
            out = model(*xs)
        if target == "pred":
            return out.reshape(out.shape[0], -1).argmax(dim=1)
        chosen = torch.as_tensor(target(out), device=xs[0].device).long().reshape(-1)
        if chosen.numel() != len(batch.ids):
            raise ValueError(
                f"the target callable gave {chosen.numel()} targets for a batch of {len(batch.ids)}"
            )
        return chosen
    return target


def _rows(exp: Explanation, batch: Batch, seconds: float) -> dict[str, list[Any]]:
    n = len(batch.ids)
    target = exp.target
    targets = (
        target.reshape(-1).tolist()
        if isinstance(target, torch.Tensor) and target.numel() == n
        else [target] * n
    )

    def floats(t: torch.Tensor | None) -> list[Any]:
        return [None] * n if t is None else [float(v) for v in t.double()]

    return {
        "id": list(batch.ids),
        "label": [None] * n if batch.labels is None else batch.labels.tolist(),
        "target": targets,
        "output": floats(exp.output),
        "baseline_output": floats(exp.baseline_output),
        "delta": floats(exp.delta),
        "relative_delta": floats(exp.relative_delta),
        "n_evals": [int(v) for v in exp.n_evals],
        "converged": [None] * n if exp.converged is None else exp.converged.tolist(),
        "error_estimate": floats(exp.error_estimate),
        "seconds": [seconds / n] * n,
    }


def _read_path(
    path: str | os.PathLike[str], labels: Any, feature_names: list[str] | None
) -> tuple[torch.Tensor, Any, list[str] | None]:
    """The examples of a data file or image folder; its labels and names unless given."""
    from .files import read_data

    loaded = read_data(Path(path))
    return (
        loaded.inputs,
        loaded.labels if labels is None else labels,
        loaded.feature_names if feature_names is None else feature_names,
    )


@contextmanager
def _stop_after_batch() -> Iterator[Callable[[], bool]]:
    """A first Ctrl-C asks the loop to stop after its batch; a second interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    asked = [False]

    def handler(signum: int, frame: Any) -> None:
        if asked[0]:
            raise KeyboardInterrupt
        asked[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: asked[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def run(
    forward_func: Callable[..., Any],
    data: Any,
    *,
    out: str | Path,
    labels: Any = None,
    explainer: str = "ig",
    target: Any = "pred",
    batch_size: int = 32,
    seed: int = 0,
    progress: bool | None = None,
    feature_names: list[str] | None = None,
    **explain_options: Any,
) -> Run:
    """Explain every example of ``data`` with ``explainer``, stored in the directory ``out``.

    ``data``: a tensor or numpy array (first axis = examples), a tuple of tensors for a
    model with several inputs, a map-style Dataset, a DataLoader (``shuffle=False``)
    yielding inputs or ``(inputs, label)``, or the path of a file the command line reads
    (``.npz``, ``.npy``, CSV or Parquet with every column a feature, an image folder; see
    :mod:`integrad.runs.files`; texts need :func:`~integrad.runs.files.encode`).
    ``labels``: one int per example (overrides the data's). ``explainer``: one of
    :data:`~integrad.runs.explainers.EXPLAINERS`;
    ``explain_options`` go to it (``n_steps``, ``method`` — ``"exact"`` included —,
    ``tolerance``, ``baselines``, ``layer`` for layer IG as a module or dotted name,
    ``nt_samples`` and ``stdevs`` for the noise tunnel, ...). ``target``: an int,
    ``"pred"`` (the model's top class), ``"label"``, None (a single output), or a
    callable ``outputs -> class per example``.

    Finished batches are kept; calling again with the same arguments resumes, skipping
    them; another configuration, model or data is refused (``RunMismatchError``).
    ``batch_size`` (examples per explain call) may change between calls: random draws
    are seeded per example from ``seed`` and the example's id. ``progress``: a bar on a
    terminal, plain lines otherwise; False for none. ``feature_names`` (tables) are kept
    with every shard for :meth:`integrad.Run.global_importance` and the views. Ctrl-C stops
    after the current batch (raising :class:`integrad.runs.RunInterrupted`).
    """
    if explainer not in EXPLAINERS:
        raise ValueError(f"explainer={explainer!r}; choose one of {list(EXPLAINERS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if "additional_forward_args" in explain_options:
        raise ValueError(
            "additional_forward_args is not supported by run: make them model "
            "inputs (a tuple of tensors as data)"
        )
    from .. import __version__

    model = _model_of(forward_func)
    if isinstance(data, (str, os.PathLike)):
        data, labels, feature_names = _read_path(data, labels, feature_names)
    source = source_of(data, labels)
    config = {
        "explainer": explainer,
        "target": _target_spec(target),
        "seed": seed,
        "feature_names": feature_names,
        "options": _canonical(explain_options, model),
    }
    manifest = {
        "format": "integrad.Run",
        "format_version": FORMAT_VERSION,
        "n_examples": source.n,
        "was_tuple": source.was_tuple,
        "config": config,
        "fingerprints": {"model": model_fingerprint(forward_func), "data": source.fingerprint()},
        "created_with": {"integrad": __version__, "torch": torch.__version__},
    }
    json.dumps(manifest)  # everything recorded must be JSON
    store = Store.create_or_resume(out, manifest)
    done = {i for s in store.shards for i in s.ids}
    todo = [i for i in range(source.n) if i not in done]
    random = is_random(explainer, explain_options)
    with Progress(source.n, len(done), progress) as bar, _stop_after_batch() as stop:
        for batch in source.batches(todo, batch_size):
            started = time.perf_counter()
            xs = _placed(model, batch.inputs)
            t = _targets(target, batch, forward_func, xs)
            gens = None
            if random:
                gens = [
                    torch.Generator(xs[0].device).manual_seed(_example_seed(seed, i))
                    for i in batch.ids
                ]
            parts = explain_batch(
                explainer, forward_func, xs, source.was_tuple, t, explain_options, gens
            )
            exp = concat(parts) if len(parts) > 1 else parts[0]
            seconds = time.perf_counter() - started
            exp.extras["example_ids"] = torch.tensor(batch.ids, dtype=torch.long)
            if batch.labels is not None:
                exp.extras["labels"] = batch.labels.cpu()
            if feature_names is not None:
                exp.extras["feature_names"] = list(feature_names)
                exp.kind = "table"
            store.append(exp, batch.ids, _rows(exp, batch, seconds))
            bar.advance(len(batch.ids))
            if stop():
                finished = sum(len(s.ids) for s in store.shards)
                raise RunInterrupted(
                    f"interrupted after {finished} of {source.n} examples; the same call "
                    "resumes the run"
                )
    return Run(store)


def open_run(path: str | Path) -> Run:
    """The run stored in the directory ``path`` (finished or not), read-only."""
    return Run(Store.open(path))
