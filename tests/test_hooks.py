"""One model explained from several threads at once: hooks of one call never touch another's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

import integrad


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)
    ).double()


CALLS = {
    "layer": lambda m, x: integrad.LayerIntegratedGradients(m, m[2]).attribute(
        x, target=0, n_steps=64, internal_batch_size=16
    ),
    "layer-input": lambda m, x: integrad.LayerIntegratedGradients(m, m[2]).attribute(
        x, target=1, n_steps=64, attribute_to_layer_input=True, internal_batch_size=16
    ),
    "neuron": lambda m, x: integrad.NeuronIntegratedGradients(m, m[3]).attribute(
        x, (5,), n_steps=64, internal_batch_size=16
    ),
    "exact": lambda m, x: integrad.explain(m, x, target=2, method="exact").attributions,
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_concurrent_calls_on_one_model_equal_their_sequential_results(name):
    model, call = _model(), CALLS[name]
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(3, 12, generator=g, dtype=torch.float64) for _ in range(8)]
    expected = [call(model, x) for x in batches]
    start = threading.Barrier(4)

    def run(i: int) -> torch.Tensor:
        if i < 4:
            start.wait()
        return call(model, batches[i])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(len(batches))))
    for got, want in zip(results, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert not any(
        m._forward_hooks or m._forward_pre_hooks for m in model.modules()
    )  # every call removed its hooks


def test_a_scoped_hook_needs_a_scope():
    from integrad._hooks import scoped

    with pytest.raises(RuntimeError, match="call_scope"):
        scoped(lambda *a: None)
