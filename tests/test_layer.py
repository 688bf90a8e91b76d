"""Layer IG: Captum parity (CNN, MiniLM, lists, tuples), upstream reuse, completeness, hooks."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerIntegratedGradients as CaptumLIG
from conftest import mean_pooled, rows_seen, small_cnn, smooth_mlp
from torch import nn

import integrad


def images(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("layer_index", [2, 4])
def test_matches_captum_on_an_inner_cnn_layer(to_input, layer_index, device):
    model = small_cnn().to(device)
    layer = model[layer_index]
    x, b = images().to(device), images(1).to(device) * 0.1
    kwargs = dict(
        baselines=b,
        target=[0, 3, 1],
        n_steps=16,
        attribute_to_layer_input=to_input,
        return_convergence_delta=True,
    )
    ours, d_ours = integrad.LayerIntegratedGradients(model, layer).attribute(x, **kwargs)
    theirs, d_theirs = CaptumLIG(model, layer).attribute(x, **kwargs)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-4, atol=1e-5)


def test_identity_layer_gives_plain_ig():
    inner = smooth_mlp()
    model = nn.Sequential(nn.Identity(), inner)
    x, b = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    layer_ig = integrad.LayerIntegratedGradients(model, model[0]).attribute(
        x, baselines=b, target=2, n_steps=20
    )
    ig = integrad.explain(inner, x, baselines=b, target=2, n_steps=20).attributions
    torch.testing.assert_close(layer_ig, ig)


def test_completeness_in_terms_of_the_model_output():
    model = smooth_mlp()
    x = torch.randn(5, 6, dtype=torch.float64)
    _, delta = integrad.LayerIntegratedGradients(model, model[1]).attribute(
        x, target=0, n_steps=64, return_convergence_delta=True
    )
    assert delta.abs().max() < 1e-9


def test_hooks_are_removed_also_when_the_model_raises():
    model = small_cnn()
    calls = {"n": 0}

    def flaky(t: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("boom")
        return model(t)

    lig = integrad.LayerIntegratedGradients(flaky, model[2])
    with pytest.raises(RuntimeError, match="boom"):
        lig.attribute(images(), target=0, internal_batch_size=3, n_steps=8)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    lig.attribute(images(), target=0, n_steps=4)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_layer_the_model_does_not_use():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"layer was not called by forward_func"):
        integrad.LayerIntegratedGradients(model, nn.Linear(2, 2)).attribute(images(), target=0)


class TwoHeads(nn.Module):
    """A layer whose output is a tuple of two tensors and a None."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 5)
        self.b = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.a(x)), torch.sigmoid(self.b(x))


class TupleModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inner = nn.Linear(4, 6)
        self.heads = TwoHeads()
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.heads(torch.relu(self.inner(x)))
        return self.out(torch.cat([a, b], dim=1))


@pytest.mark.parametrize("to_input", [False, True])
def test_list_of_layers_matches_captum(to_input):
    # Parallel layers: Captum cannot take a layer whose output only feeds another listed one.
    model = TupleModel().eval()
    layers = [model.heads.a, model.heads.b]
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(2))
    kwargs = dict(baselines=x * 0.2, target=[0, 2, 1, 1], n_steps=12)
    kwargs.update(attribute_to_layer_input=to_input, return_convergence_delta=True)
    ours, d_ours = integrad.LayerIntegratedGradients(model, layers).attribute(x, **kwargs)
    with pytest.warns(UserWarning, match="Multiple layers"):
        theirs, d_theirs = CaptumLIG(model, layers).attribute(x, **kwargs)
    assert isinstance(ours, list) and len(ours) == 2
    for o, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(o, t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-4, atol=1e-5)


def test_tuple_valued_layer_output_matches_captum():
    model = TupleModel().eval()
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(2))
    kwargs = dict(target=1, n_steps=16, return_convergence_delta=True)
    ours, d_ours = integrad.LayerIntegratedGradients(model, model.heads).attribute(x, **kwargs)
    theirs, d_theirs = CaptumLIG(model, model.heads).attribute(x, **kwargs)
    assert isinstance(ours, tuple) and [t.shape for t in ours] == [(4, 5), (4, 3)]
    for o, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(o, t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-4, atol=1e-5)


class BatchMixing(nn.Module):
    """Downstream of ``layer`` it reshapes by the batch size read from the inputs.

    Per-row it is an ordinary MLP; with a one-row upstream the reshape would mix the
    path points of a chunk: the reuse check must catch it.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(6, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        h = self.layer(x).reshape(rows, -1)
        h = (h - h.mean(1, keepdim=True)).reshape(-1, 4)
        return self.out(torch.tanh(h))


class BatchConcat(nn.Module):
    """Concatenates an upstream tensor with the layer's output along the batch: reuse fails."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(6, 4)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([torch.tanh(self.layer(x)), x[:, :4]], dim=1))


@pytest.mark.parametrize("model_type", [BatchMixing, BatchConcat])
def test_upstream_reuse_falls_back_when_the_model_depends_on_the_batch(model_type):
    model = model_type().double().eval()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lig = integrad.LayerIntegratedGradients(model, model.layer)
    ours = lig.attribute(x, target=1, n_steps=10)
    assert lig.reused_upstream is False
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    theirs = CaptumLIG(model, model.layer).attribute(x, target=1, n_steps=10)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("layer_index", [1, 3])
def test_upstream_reuse_equals_the_plain_recompute(layer_index):
    model = smooth_mlp()
    x = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    lig = integrad.LayerIntegratedGradients(model, model[layer_index])
    reused = lig.attribute(x, target=2, n_steps=24, internal_batch_size=20)
    assert lig.reused_upstream is True
    plain = lig.attribute(x, target=2, n_steps=24, internal_batch_size=20, reuse_upstream=False)
    assert lig.reused_upstream is False
    torch.testing.assert_close(reused, plain, rtol=1e-12, atol=1e-14)


def test_bad_inputs_and_activations():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2)).eval()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    lig = integrad.LayerIntegratedGradients(model, model[0])
    with pytest.raises(TypeError, match=r"baselines has dtype torch.float32 but the inputs"):
        lig.attribute(ids, baselines=torch.zeros(2, 3), target=0)
    with pytest.raises(ValueError, match=r"positional inputs of layer holds no floating-point"):
        lig.attribute(ids, target=0, attribute_to_layer_input=True)
    with pytest.raises(ValueError, match=r"layer\[1\] was not called by forward_func"):
        integrad.LayerIntegratedGradients(model, [model[0], nn.Linear(2, 2)]).attribute(
            ids, target=0
        )
    with pytest.raises(TypeError, match=r"layer\[0\] must be a torch.nn.Module"):
        integrad.LayerIntegratedGradients(model, ["embedding"])


SENTENCES = ["The cat sat on the mat.", "Quickly, brown foxes jump!"]


@pytest.fixture(scope="module")
def minilm_batch(minilm):
    tokenizer, model = minilm
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    return model, ids, mask, integrad.text.token_baselines(ids, tokenizer, kind="pad")


@pytest.mark.parametrize(
    ("layer_name", "to_input", "reused"),
    [
        ("embeddings.word_embeddings", False, False),
        ("embeddings.LayerNorm", True, False),
        ("encoder.layer.3", False, True),
    ],
)
def test_matches_captum_on_minilm(minilm_batch, layer_name, to_input, reused):
    # The word embedding's input is token ids (nothing to interpolate): the input-side
    # check uses the LayerNorm's input, the sum of word, position and type embeddings.
    # Only lookups run before either, so the upstream is reused only at the deep layer.
    model, ids, mask, base = minilm_batch
    layer = model.get_submodule(layer_name)
    forward = mean_pooled(model)
    kwargs = dict(baselines=base, target=5, additional_forward_args=(mask,), n_steps=16)
    kwargs.update(attribute_to_layer_input=to_input, return_convergence_delta=True)
    lig = integrad.LayerIntegratedGradients(forward, layer)
    ours, d_ours = lig.attribute(ids, **kwargs)
    assert lig.reused_upstream is reused
    theirs, d_theirs = CaptumLIG(forward, layer).attribute(ids, **kwargs)
    assert ours.shape == (*ids.shape, 384)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    if reused:
        plain = lig.attribute(ids, reuse_upstream=False, **kwargs)[0]
        torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(d_ours, d_theirs, rtol=1e-3, atol=1e-5)


def test_minilm_completeness_and_mask_passed_unchanged(minilm_batch):
    model, ids, mask, base = minilm_batch
    seen_masks = []
    pooled = mean_pooled(model)

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        seen_masks.append(attention_mask)
        return pooled(input_ids, attention_mask)

    lig = integrad.LayerIntegratedGradients(forward, model.embeddings.word_embeddings)
    attr, delta = lig.attribute(
        ids,
        baselines=base,
        target=7,
        additional_forward_args=mask,
        n_steps=24,
        return_convergence_delta=True,
    )
    with torch.no_grad():
        change = (pooled(ids, mask) - pooled(base, mask))[:, 7]
    torch.testing.assert_close(attr.sum(dim=(1, 2)) - change, delta, rtol=0, atol=1e-5)
    assert delta.abs().max() < 0.02 * change.abs().max()
    # Special tokens and padding are the same in input and baseline: zero attribution.
    kept = ids == base
    assert kept[:, 0].all() and attr[kept].abs().max() == 0
    # The mask is never interpolated: every call sees rows of the original 0/1 mask.
    assert all(m.dtype == mask.dtype and set(m.unique().tolist()) <= {0, 1} for m in seen_masks)


@pytest.mark.parametrize(("act", "tol"), [(nn.Tanh, 1e-6), (nn.ReLU, 1e-2)])
def test_tolerance_mode_meets_the_tolerance_against_a_dense_reference(
    act: type[nn.Module], tol: float
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), act(), nn.Linear(16, 16), act(), nn.Linear(16, 2))
    model = model.double()
    x = torch.randn(8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lig = integrad.LayerIntegratedGradients(model, model[2])
    dense = lig.attribute(x, target=1, n_steps=4096)
    attr, delta = lig.attribute(x, target=1, tolerance=tol, return_convergence_delta=True)
    assert lig.converged is not None and bool(lig.converged.all())
    assert lig.error_estimate is not None and lig.error_estimate.shape == (8,)
    error = (attr - dense).norm(dim=1) / dense.norm(dim=1)
    assert (error <= tol).all()
    change = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    assert (delta.abs() <= tol * change.abs() + 1e-12).all()


def test_captum_positional_form_and_grad_kwargs():
    """Captum's ``(forward_func, layer, device_ids, multiply_by_inputs)`` and grad_kwargs."""
    model = smooth_mlp()
    x = torch.randn(3, 6, dtype=torch.float64)
    plain = integrad.LayerIntegratedGradients(model, model[1], None, False)
    assert plain.multiplies_by_inputs is False
    reference = plain.attribute(x, target=2, n_steps=8)
    kept = plain.attribute(x, None, 2, None, 8, grad_kwargs={"retain_graph": True})
    torch.testing.assert_close(kept, reference, rtol=0, atol=0)
    theirs = CaptumLIG(model, model[1], None, False).attribute(x, target=2, n_steps=8)
    torch.testing.assert_close(reference, theirs, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"grad_kwargs may not set \['inputs'\]"):
        plain.attribute(x, target=2, grad_kwargs={"inputs": x})
    with pytest.raises(TypeError, match=r"grad_kwargs must be a dict"):
        plain.attribute(x, target=2, grad_kwargs=[("retain_graph", True)])


def test_a_completeness_gap_over_five_percent_warns_and_train_mode_buffers_are_kept():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(6, 4)
    with pytest.warns(integrad.CompletenessWarning, match=r"n_steps=1"):
        integrad.LayerIntegratedGradients(model, model[1]).attribute(
            x, target=0, n_steps=1, method="riemann_left"
        )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_cost_per_point_is_measured_once_per_model_and_layer():
    # Layer IG wraps the model afresh each call; its memory must not start over each call.
    model = smooth_mlp()
    calls = rows_seen(model)
    x = torch.rand(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lig = integrad.LayerIntegratedGradients(model, model[1])
    first = lig.attribute(x, target=0, n_steps=4)
    calls_first, calls[:] = list(calls), []
    second = lig.attribute(x, target=0, n_steps=4)
    # The first call: x, the baselines, a probe of the cost per point, one 8-point chunk;
    # the second: the same but the probe.
    assert calls_first == [2, 2, 2, 8] and calls == [2, 2, 8]
    assert torch.equal(first, second)
