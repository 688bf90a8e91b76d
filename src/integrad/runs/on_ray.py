"""The Ray backend of :func:`integrad.run`: the same batches, explained by a pool of actors.

The process that calls :func:`run_on_ray` (the driver) keeps the store: it is its only
writer, exactly as with the local backend, so the directory's layout, recovery and
resume are the same. Ray Data carries the work: a dataset with one row per batch of
example ids (the batches the local backend would explain, so results agree to float
rounding), mapped by ``map_batches`` over an actor pool. The job (model, options, data)
is put in Ray's object store once; each actor takes one copy of the model, moves it to
its device (Ray gives an actor on ``device="cuda"`` its own GPU) and reads its examples
from the data by id. Finished batches come back to the driver as they complete, are
appended to the store, and count in the progress bar; a Ctrl-C stops after the batch
being stored, like the local backend, and abandons those still in flight.

On a cluster the driver must be able to reach Ray (``ray start --head`` on one node,
``ray start --address=HEAD:6379`` on the others, then run on the head node or with
``RAY_ADDRESS`` set), and the model's class must be importable on every node.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..explanation import Explanation
from .sources import LoaderSource, Source
from .work import Job, explain_examples, on_device

__all__ = ["run_on_ray"]

Stored = Callable[[list[int], Explanation, dict[str, list[Any]]], None]


class _Worker:
    """A Ray actor's state: its own copy of the job, on its device."""

    def __init__(self, payload: list[Any], device: str | None) -> None:
        import ray

        job, source = ray.get(payload[0])
        if device is not None:
            on_device(job.forward_func, device)
        self.job: Job = job
        self.source: Source = source

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for ids in batch["ids"]:
            chosen = [int(i) for i in ids]
            (examples,) = list(self.source.batches(chosen, len(chosen)))
            # Pickled here, between processes of one job (Ray would pickle it anyway);
            # the store writes it with integrad.io, never as a pickle.
            results.append(pickle.dumps((chosen, *explain_examples(self.job, examples))))
        return {"result": np.array(results, dtype=object)}


@contextmanager
def _ray_session() -> Iterator[Any]:
    """Ray, joined where it runs already, else a local instance started (and stopped) here."""
    try:
        import ray
    except ImportError:
        raise ValueError("backend='ray' needs Ray Data: pip install 'integrad[ray]'") from None
    started = not ray.is_initialized()
    if started:
        # Joins RAY_ADDRESS or a `ray start` cluster on this machine, else starts one.
        ray.init(include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _pool(ray: Any, workers: int | None, device: str | None) -> tuple[int, dict[str, float]]:
    """The actor pool's size and each actor's resources."""
    gpu = device is not None and str(device).startswith("cuda")
    per_actor = {"num_gpus": 1.0} if gpu else {"num_cpus": 1.0}
    if workers is None:
        total = ray.cluster_resources().get("GPU" if gpu else "CPU", 0)
        if total < 1:
            raise ValueError(
                f"device={device!r}: the Ray cluster has no {'GPU' if gpu else 'CPU'} for a worker"
            )
        workers = int(total)
    return workers, per_actor


def run_on_ray(
    job: Job,
    source: Source,
    todo: list[int],
    batch_size: int,
    workers: int | None,
    device: str | None,
    stored: Stored,
) -> None:
    """Explain the examples ``todo`` on Ray, passing each finished batch to ``stored``."""
    if isinstance(source, LoaderSource):
        raise ValueError(
            "backend='ray' reads examples by id on each worker: pass the DataLoader's "
            "dataset (a map-style Dataset) instead of the DataLoader"
        )
    if not todo:
        return
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    with _ray_session() as ray:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run's own progress reports
        context.execution_options.preserve_order = False
        size, per_actor = _pool(ray, workers, device)
        payload = [ray.put((job, source))]
        rows = ray.data.from_items(
            [{"ids": chunk} for chunk in chunks], override_num_blocks=len(chunks)
        )
        results = rows.map_batches(
            _Worker,
            fn_constructor_args=(payload, device),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            **per_actor,
        )
        for row in results.iter_rows():
            ids, exp, summary = pickle.loads(row["result"])
            stored(ids, exp, summary)
