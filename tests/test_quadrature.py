import numpy as np
import pytest
import torch

from integrad.quadrature import METHODS, rule


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 3, 7, 50, 257])
def test_weights_sum_to_one_and_nodes_lie_in_unit_interval(method, n):
    r = rule(method, n)
    assert r.alphas.dtype == r.weights.dtype == torch.float64
    assert abs(float(r.weights.sum()) - 1.0) < 1e-13
    assert float(r.alphas.min()) >= 0.0 and float(r.alphas.max()) <= 1.0
    assert r.n == n


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_gauss_legendre_is_exact_for_polynomials_of_degree_2n_minus_1(n):
    r = rule("gausslegendre", n)
    for degree in range(2 * n):
        approx = float((r.weights * r.alphas**degree).sum())
        assert approx == pytest.approx(1.0 / (degree + 1), rel=1e-12, abs=1e-14)


def test_trapezoid_is_the_textbook_rule():
    r = rule("riemann_trapezoid", 11)
    f = np.exp(r.alphas.numpy())
    assert float((r.weights.numpy() * f).sum()) == pytest.approx(np.trapezoid(f, r.alphas.numpy()))


@pytest.mark.parametrize(
    ("method", "first", "last"),
    [("riemann_left", 0.0, 0.75), ("riemann_right", 0.25, 1.0), ("riemann_middle", 0.125, 0.875)],
)
def test_riemann_nodes(method, first, last):
    r = rule(method, 4)
    assert r.alphas[0].item() == first and r.alphas[-1].item() == last


@pytest.mark.parametrize(
    ("method", "n", "match"),
    [
        ("simpson", 10, "not a known rule.*gausslegendre"),
        ("gausslegendre", 0, "n_steps must be >= 1"),
        ("riemann_trapezoid", 1, "n_steps must be >= 2"),
        ("riemann_left", 2.5, "n_steps must be a positive int"),
    ],
)
def test_bad_rules_are_refused(method, n, match):
    with pytest.raises(ValueError, match=match):
        rule(method, n)


@pytest.mark.parametrize("n", [1, 2, 3, 9, 64, 200])
def test_gauss_legendre_matches_numpy(n):
    ours = rule("gausslegendre", n)
    roots, weights = np.polynomial.legendre.leggauss(n)
    np.testing.assert_allclose(ours.alphas.numpy(), 0.5 * (1 + roots), rtol=0, atol=1e-14)
    np.testing.assert_allclose(ours.weights.numpy(), 0.5 * weights, rtol=0, atol=1e-14)
