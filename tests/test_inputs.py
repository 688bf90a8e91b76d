"""Bad input: a clear error naming the argument and the value or shape."""

from __future__ import annotations

import pytest
import torch
from conftest import smooth_mlp

import integrad


def explain(**kwargs):
    args = dict(forward_func=smooth_mlp(), inputs=torch.rand(2, 6, dtype=torch.float64), target=0)
    args.update(kwargs)
    return integrad.explain(args.pop("forward_func"), args.pop("inputs"), **args)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs(bad):
    x = torch.rand(2, 6, dtype=torch.float64)
    x[1, 3] = bad
    with pytest.raises(ValueError, match=r"inputs holds non-finite values"):
        explain(inputs=x)


def test_non_finite_baselines():
    b = torch.zeros(2, 6, dtype=torch.float64)
    b[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"baselines holds non-finite values \(1 NaN"):
        explain(baselines=b)
    with pytest.raises(ValueError, match=r"baselines is inf"):
        explain(baselines=float("inf"))


def test_baselines_that_do_not_broadcast_name_both_shapes():
    with pytest.raises(ValueError, match=r"baselines of shape \(3, 6\).*input's shape \(2, 6\)"):
        explain(baselines=torch.zeros(3, 6))
    with pytest.raises(ValueError, match=r"baselines has 1 entries but inputs has 2"):
        integrad.explain(
            lambda a, b: a.sum(1) + b.sum(1), (torch.rand(2, 3), torch.rand(2, 3)), baselines=(0.0,)
        )


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (3, r"target 3 is out of range for output rows of shape \(3,\)"),
        (-4, r"target -4 is out of range"),
        ([0, 1, 2], r"target has 3 entries but the batch has 2"),
        ((0, 1), r"target \(0, 1\) has 2 index\(es\) but the output rows have shape \(3,\)"),
        (None, r"target=None needs one output value per example.*\(3,\)"),
        (torch.tensor([[0], [1]]), r"target tensor must hold one int .* got shape \(2, 1\)"),
        (torch.tensor([0.0, 1.0]), r"target tensor must hold integers"),
        ("cat", r"target must be None, an int"),
    ],
)
def test_bad_targets(target, match):
    with pytest.raises(ValueError, match=match):
        explain(target=target)


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.bool])
def test_integer_inputs_point_to_the_embedding_layer(dtype):
    with pytest.raises(TypeError, match=r"inputs has dtype .*embedding layer"):
        explain(inputs=torch.zeros(2, 6, dtype=dtype))


def test_inputs_must_share_the_batch_size():
    with pytest.raises(ValueError, match=r"inputs\[1\] has 3 rows but inputs\[0\] has 2"):
        integrad.explain(lambda a, b: a.sum(1), (torch.rand(2, 3), torch.rand(3, 3)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_steps": 0}, r"n_steps must be >= 1"),
        ({"n_steps": 1, "method": "riemann_trapezoid"}, r"n_steps must be >= 2"),
        ({"method": "simpson"}, r"method='simpson' is not known.*riemann_trapezoid.*idgi"),
        ({"internal_batch_size": 0}, r"internal_batch_size must be a positive int"),
        ({"max_memory": -5}, r"max_memory must be a positive int"),
        ({"baselines": "grey"}, r"baselines='grey' is not a known baseline.*max_entropy"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        explain(**kwargs)


def test_output_that_does_not_depend_on_the_inputs():
    w = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match=r"does not depend on (any of )?the inputs"):
        explain(forward_func=lambda x: w.expand(x.shape[0], 3) * 2.0)
    with pytest.raises(ValueError, match=r"does not depend on (any of )?the inputs"):
        explain(forward_func=lambda x: x.detach()[:, :3])


def test_forward_must_return_a_batch_tensor():
    with pytest.raises(ValueError, match=r"forward_func must return a tensor, got tuple"):
        explain(forward_func=lambda x: (x,))
    with pytest.raises(ValueError, match=r"returned shape \(\) for a batch of \d+ path points"):
        explain(forward_func=lambda x: x.sum(), target=None)
    with pytest.raises(ValueError, match=r"returned shape \(1, 3\) for a batch of"):
        explain(forward_func=lambda x: x[:1, :3])


def test_forward_func_must_be_callable():
    with pytest.raises(TypeError, match=r"forward_func must be callable, got int"):
        integrad.IntegratedGradients(3)


def test_train_mode_dropout_warns_naming_dropout():
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Dropout(0.1), torch.nn.Linear(4, 2))
    model.train()
    with pytest.warns(
        RuntimeWarning,
        match=r"training mode with 1 such module\(s\) \(1 \(Dropout\)\)"
        r": Dropout is random",
    ) as seen:
        integrad.explain(model, torch.rand(2, 6), target=0)
    assert "BatchNorm" not in str(seen[0].message)
    assert model.training  # warned, not changed


def test_train_mode_batchnorm_warns_naming_batchnorm_only_and_keeps_its_statistics():
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)
    )
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(RuntimeWarning, match=r"1 \(BatchNorm1d\).*train-mode BatchNorm") as seen:
        integrad.explain(model, torch.rand(3, 6), target=0, n_steps=8)
    assert "Dropout" not in str(seen[0].message)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats untouched
    assert model.training


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: integrad.explain(m, x, target=0),
        lambda m, x: integrad.IntegratedGradients(m).attribute(x, target=0),
        lambda m, x: integrad.explain_guided(m, x, target=0, n_steps=4),
        lambda m, x: integrad.LayerIntegratedGradients(m, m[0]).attribute(x, target=0),
    ],
)
def test_training_mode_warning_points_at_the_callers_line(call):
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Dropout(0.1), torch.nn.Linear(4, 2))
    with pytest.warns(RuntimeWarning, match="training mode") as record:
        call(model.train(), torch.rand(2, 6))
    # Dropout also breaks completeness: that warning points at the caller as well.
    assert [w.filename for w in record if w.category is RuntimeWarning] == [__file__]
    assert all(w.filename == __file__ for w in record)


@pytest.mark.parametrize("target", [torch.tensor([2]), torch.tensor([[2]]), torch.tensor(2)])
def test_a_one_element_tensor_target_applies_to_every_example(target):
    x = torch.rand(3, 6, dtype=torch.float64)
    ours = integrad.explain(smooth_mlp(), x, target=target, n_steps=8).attributions
    reference = integrad.explain(smooth_mlp(), x, target=2, n_steps=8).attributions
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("baselines", "match"),
    [
        (
            torch.zeros(2, 6, dtype=torch.complex128),
            r"baselines has complex dtype torch.complex128",
        ),
        (1j, r"baselines is complex \(1j\)"),
        ((torch.zeros(1, 6, dtype=torch.complex64),), r"baselines has complex dtype"),
    ],
)
def test_complex_baselines_are_refused(baselines, match):
    with pytest.raises(TypeError, match=match):
        explain(baselines=baselines)
    with pytest.raises(TypeError, match=match.replace("baselines", "start_point", 1)):
        integrad.IntegratedGradients(smooth_mlp()).compute_convergence_delta(
            torch.zeros(2, 6), baselines, torch.rand(2, 6, dtype=torch.float64), target=0
        )
