"""Explain a whole dataset into a resumable run directory: :func:`run` and :func:`open_run`.

>>> import tempfile, torch, integrad
>>> model = torch.nn.Linear(3, 2)
>>> with tempfile.TemporaryDirectory() as d:
...     r = integrad.run(model, torch.rand(10, 3), out=d, batch_size=4, progress=False)
...     len(r), r[7].attributions.shape, integrad.open_run(d).complete
(10, torch.Size([1, 3]), True)
"""

from __future__ import annotations

import copy as copy_module
import hashlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._modules import owner
from ..baselines import BaselineStrategy
from .explainers import EXPLAINERS, check_rereadable, is_random
from .progress import Progress
from .results import UNKNOWN, Run
from .sources import source_of
from .store import FORMAT_VERSION, RunMismatchError, Store
from .work import Job, explain_examples, on_device

__all__ = ["RunInterrupted", "open_run", "run"]

TARGETS = ("pred", "label")
BACKENDS = ("local", "ray")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after its current batch; the same call resumes it."""


def model_fingerprint(forward_func: Callable[..., Any]) -> str:
    """sha256 of the model's class, parameter and buffer names, dtypes, shapes and values."""
    h = hashlib.sha256(b"integrad.run.model")
    model = owner(forward_func)
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


def _local_copy(forward_func: Callable[..., Any], device: str) -> Callable[..., Any]:
    """``forward_func`` on a copy of its model moved to ``device`` (the caller's stays)."""
    model = owner(forward_func)
    if model is None or not (model is forward_func or hasattr(forward_func, "__func__")):
        raise ValueError(
            f"device={device!r} needs the model as an nn.Module or one of its methods; move "
            "a plain function's model yourself and pass device=None"
        )
    copy = copy_module.deepcopy(model)
    on_device(copy, device)
    if model is forward_func:
        return copy
    return getattr(copy, forward_func.__name__)  # a bound method of the copy


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
    backend: str = "local",
    workers: int | None = None,
    device: str | None = None,
    store_inputs: bool = True,
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

    ``backend="local"`` explains in this process, one batch after another (torch's
    threads use the cores). ``backend="ray"`` runs the same job on Ray Data: a pool of
    ``workers`` actors (default: one per CPU of the Ray cluster, or per GPU with
    ``device="cuda"``), each with its own copy of the model on ``device`` (Ray assigns
    each worker a GPU), while this process writes the store; it joins the Ray instance
    that is running (``ray.init()`` earlier, ``RAY_ADDRESS``, or ``ray start`` on this
    machine) or starts a local one. Both backends give the same results within float
    tolerance and resume each other's runs. ``workers`` is for Ray only: the local
    backend is one process. ``device`` (``"cpu"``, ``"cuda"``, ...): where the model
    runs; the local backend explains with a copy there, leaving the caller's model as
    it is; None keeps the model where it is.

    ``store_inputs=False`` leaves inputs and baselines out of the shards (for the
    explainers whose baselines are a function of the inputs: ig, guided-ig,
    noise-tunnel, saliency, with non-random baselines); the returned Run reads them
    from ``data``, and :func:`open_run` does given the same ``data``.
    """
    if explainer not in EXPLAINERS:
        raise ValueError(f"explainer={explainer!r}; choose one of {list(EXPLAINERS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; choose one of {list(BACKENDS)}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    if backend == "local" and workers not in (None, 1):
        raise ValueError(
            f"workers={workers} needs backend='ray' (on one machine it starts a local Ray "
            "with that many worker processes); the local backend is one process"
        )
    if not isinstance(store_inputs, bool):
        raise TypeError(f"store_inputs must be a bool, got {type(store_inputs).__name__}")
    if not store_inputs:
        check_rereadable(explainer, explain_options)
    if "additional_forward_args" in explain_options:
        raise ValueError(
            "additional_forward_args is not supported by run: make them model "
            "inputs (a tuple of tensors as data)"
        )
    from .. import __version__

    model = owner(forward_func)
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
    if not store_inputs:  # recorded only when off, so earlier runs' manifests still match
        config["store_inputs"] = False
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
    job = Job(
        forward_func,
        explainer,
        target,
        explain_options,
        seed,
        is_random(explainer, explain_options),
        source.was_tuple,
        feature_names,
        store_inputs,
    )
    with Progress(source.n, len(done), progress) as bar, _stop_after_batch() as stop:

        def stored(ids: list[int], exp: Any, rows: dict[str, list[Any]]) -> None:
            store.append(exp, ids, rows)
            bar.advance(len(ids))
            if stop():
                finished = sum(len(s.ids) for s in store.shards)
                raise RunInterrupted(
                    f"interrupted after {finished} of {source.n} examples; the same call "
                    "resumes the run"
                )

        if backend == "ray":
            from .on_ray import run_on_ray

            run_on_ray(job, source, todo, batch_size, workers, device, stored)
        else:
            if device is not None:
                job.forward_func = _local_copy(forward_func, device)
            for batch in source.batches(todo, batch_size):
                stored(batch.ids, *explain_examples(job, batch))
    if store_inputs:
        return Run(store)
    return Run(store, data=source, baselines=explain_options.get("baselines"))


def open_run(
    path: str | Path, data: Any = None, *, labels: Any = None, baselines: Any = UNKNOWN
) -> Run:
    """The run stored in the directory ``path`` (finished or not), read-only.

    A run made with ``store_inputs=False`` needs ``data`` (the same data, in any form
    :func:`run` accepts, with the same ``labels``) for ``run[i]``'s inputs; a different
    one is refused (``RunMismatchError``). Its baselines are rebuilt from the recorded
    option when that is a name or a number; pass the run's ``baselines=`` otherwise (a
    tensor or callable; checked against the recorded one).
    """
    store = Store.open(path)
    if data is None:
        return Run(store)
    if isinstance(data, (str, os.PathLike)):
        data, labels, _ = _read_path(data, labels, None)
    source = source_of(data, labels)
    was = store.manifest["fingerprints"].get("data")
    if source.n != store.n_examples or source.fingerprint() != was:
        raise RunMismatchError(
            f"data= is not the data of the run in {str(path)!r} ({source.n} examples, "
            f"fingerprint {source.fingerprint()[:12]}...; the run: {store.n_examples}, "
            f"{str(was)[:12]}...): its inputs cannot be read from it"
        )
    recorded = store.manifest["config"]["options"].get("baselines")
    if baselines is UNKNOWN:
        named = isinstance(recorded, str) and ":" not in recorded
        if recorded is None or named or isinstance(recorded, (int, float)):
            baselines = recorded
    elif _canonical(baselines, None) != recorded:
        raise RunMismatchError(
            f"baselines= is not the run's ({_canonical(baselines, None)!r}; the run recorded "
            f"{recorded!r})"
        )
    return Run(store, data=source, baselines=baselines)
