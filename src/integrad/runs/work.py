"""One batch of a run, as both backends explain it: :class:`Job` and :func:`explain_examples`.

The local backend calls :func:`explain_examples` in its own process; the Ray backend
ships the :class:`Job` to each worker once (one model copy per worker) and calls it
there. Random draws are seeded per example from the run's seed and the example's id,
so which process, batch or backend explains an example does not change its draws.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._modules import first_parameter, owner
from ..explanation import Explanation
from .explainers import explain_batch
from .results import concat
from .sources import Batch

__all__ = ["Job", "example_seed", "explain_examples", "on_device"]


def on_device(forward_func: Callable[..., Any], device: str | torch.device) -> None:
    """Move the model behind ``forward_func`` to ``device``, in place (a worker's own copy)."""
    model = owner(forward_func)
    if model is None:
        raise ValueError(
            f"device={str(device)!r} needs a model (an nn.Module or one of its methods) to "
            "move; a plain function cannot be moved"
        )
    model.to(device)


@dataclass
class Job:
    """What every batch of a run shares: the model, the method and its options, the seed."""

    forward_func: Callable[..., Any]
    explainer: str
    target: Any
    options: dict[str, Any]
    seed: int
    random: bool
    was_tuple: bool
    feature_names: list[str] | None
    store_inputs: bool = True


def example_seed(seed: int, example: int) -> int:
    """The seed of example ``example``'s generator in a run seeded with ``seed``."""
    digest = hashlib.sha256(f"integrad.run:{seed}:{example}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def placed(
    forward_func: Callable[..., Any], xs: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    """Inputs on the device of the model behind ``forward_func``; floating inputs in its
    floating dtype."""
    param = first_parameter(forward_func)
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


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, tuple):
        return tuple(_on_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    return value


def explain_examples(job: Job, batch: Batch) -> tuple[Explanation, dict[str, list[Any]]]:
    """The batch's Explanation (tensors on the CPU) and its summary rows."""
    started = time.perf_counter()
    xs = placed(job.forward_func, batch.inputs)
    t = _targets(job.target, batch, job.forward_func, xs)
    gens = None
    if job.random:
        gens = [
            torch.Generator(xs[0].device).manual_seed(example_seed(job.seed, i)) for i in batch.ids
        ]
    parts = explain_batch(job.explainer, job.forward_func, xs, job.was_tuple, t, job.options, gens)
    exp = concat(parts) if len(parts) > 1 else parts[0]
    seconds = time.perf_counter() - started
    exp.extras["example_ids"] = torch.tensor(batch.ids, dtype=torch.long)
    if batch.labels is not None:
        exp.extras["labels"] = batch.labels.cpu()
    if job.feature_names is not None:
        exp.extras["feature_names"] = list(job.feature_names)
        exp.kind = "table"
    if not job.store_inputs:
        # Placeholders of one byte per value: the safe loader wants inputs and baselines
        # shaped like the attributions; the Run puts the data's examples in their place.
        exp.extras["input_dtypes"] = [str(x.dtype).removeprefix("torch.") for x in xs]
        stand_in = tuple(torch.zeros(x.shape, dtype=torch.bool) for x in xs)
        exp.inputs = exp.baselines = stand_in if job.was_tuple else stand_in[0]
    changes = {
        f.name: _on_cpu(getattr(exp, f.name))
        for f in dataclasses.fields(exp)
        if f.name not in ("method", "baseline")
    }
    return dataclasses.replace(exp, **changes), _rows(exp, batch, seconds)
