import itertools
import tracemalloc

import mpmath
import numpy as np
import pytest
import torch

from integrad.quadrature import METHODS, NEWTON_MAX_N, Rule, _legendre, rule


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


def _mp_legendre(n, theta):
    """P_n(cos θ) to 30 digits: Stieltjes' series away from the ends, else the terminating
    hypergeometric series in sin²(θ/2), which converges fast where n·sin θ is small."""
    mp = mpmath.mp
    if n * mpmath.sin(theta) <= 100:
        return mpmath.hyp2f1(-n, n + 1, 1, mpmath.sin(theta / 2) ** 2, zeroprec=1000)
    total, h, two_sin = mp.mpf(0), mp.mpf(1), 2 * mpmath.sin(theta)
    for m in range(40):
        if m:
            h *= (m - mp.mpf(0.5)) ** 2 / (m * (n + m + mp.mpf(0.5)))
        phase = (n + m + mp.mpf(0.5)) * theta - (m + mp.mpf(0.5)) * mp.pi / 2
        total += h * mpmath.cos(phase) / two_sin ** (m + mp.mpf(0.5))
    return 2 / mpmath.sqrt(mp.pi) * mpmath.gammaprod([n + 1], [n + mp.mpf(1.5)]) * total


def _mp_node(n, i, alpha):
    """Node i (ascending) of the n-node rule on [0, 1] and its weight, by mpmath near ``alpha``.

    Solved in θ (x = cos θ) so the ends keep their relative precision; the weight on [0, 1]
    is 1/(dP_n(cos θ)/dθ)².
    """
    lower = 2 * i + 1 <= n
    guess = 2 * mpmath.asin(mpmath.sqrt(mpmath.mpf(alpha if lower else 1 - alpha)))
    theta = mpmath.findroot(lambda t: _mp_legendre(n, t), (guess, guess * (1 + 1e-12)))
    weight = 1 / mpmath.diff(lambda t: _mp_legendre(n, t), theta) ** 2
    from_end = mpmath.sin(theta / 2) ** 2
    return float(from_end if lower else 1 - from_end), float(weight)


@pytest.mark.parametrize("n", [7, 100, 101, 5000, 10**5, 10**6, 10**7])
def test_gauss_legendre_matches_a_30_digit_reference(n):
    r = rule("gausslegendre", n)
    picks = {0, 1, 2, 19, 30, n // 50, n // 4, n // 3, n // 2 - 1, n // 2, n - 21, n - 1}
    # Newton's end weights (n <= 100) inherit the rounding of 1 - x² near x = ±1.
    weight_rtol = 2e-13 if n <= NEWTON_MAX_N else 1e-15
    with mpmath.workdps(30):
        for i in sorted(k for k in picks if 0 <= k < n):
            alphas, weights = r.nodes(i, i + 1)
            alpha, weight = _mp_node(n, i, float(alphas[0]))
            assert abs(float(alphas[0]) - alpha) <= 5e-16, (n, i)
            assert float(weights[0]) == pytest.approx(weight, rel=weight_rtol, abs=0), (n, i)


@pytest.mark.parametrize("n", [NEWTON_MAX_N + 1, 1000, 4096])
def test_asymptotic_nodes_agree_with_newton_at_every_node(n):
    r = rule("gausslegendre", n)
    roots, weights = _legendre(n)
    np.testing.assert_allclose(r.alphas.numpy(), 0.5 * (1 + roots), rtol=0, atol=1e-15)
    # Newton's weights near the ends carry a relative error ~1e-17·n² (see above).
    np.testing.assert_allclose(r.weights.numpy(), 0.5 * weights, rtol=4e-17 * n * n, atol=0)


def test_a_slice_of_a_ten_million_node_rule_is_computed_in_its_own_size():
    tracemalloc.start()
    try:
        r = rule("gausslegendre", 10**7)
        for start in (0, 5_000_000 - 500, 10**7 - 1000, 3_141_592):
            alphas, weights = r.nodes(start, start + 1000)
            assert alphas.shape == weights.shape == (1000,)
            assert bool((alphas.diff() > 0).all()) and bool((weights > 0).all())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # the whole rule would be 160 MB; the old code built 7.5 GB


def test_a_million_node_rule_read_in_chunks_is_a_gauss_rule():
    n, chunk = 10**6, 2**17
    r = rule("gausslegendre", n)
    total, previous, moments = 0.0, -1.0, np.zeros(6)
    for start in range(0, n, chunk):
        alphas, weights = r.nodes(start, min(start + chunk, n))
        assert float(alphas[0]) > previous and bool((alphas.diff() > 0).all())
        previous = float(alphas[-1])
        total += float(weights.sum())
        moments += (weights.numpy() * alphas.numpy() ** np.arange(6)[:, None]).sum(axis=1)
    assert float(r.nodes(0, 1)[0]) > 0 and previous < 1
    assert abs(total - 1.0) < 1e-12
    np.testing.assert_allclose(moments, 1 / np.arange(1, 7), rtol=1e-12)


@pytest.mark.parametrize("n", [150, 1001])
def test_asymptotic_rule_is_exact_for_every_degree_up_to_2n_minus_1(n):
    r = rule("gausslegendre", n)
    degrees = np.arange(2 * n)
    approx = (r.weights.numpy() * r.alphas.numpy() ** degrees[:, None]).sum(axis=1)
    np.testing.assert_allclose(approx, 1.0 / (degrees + 1), rtol=1e-12)


@pytest.mark.parametrize("n", [51, 257, 10**7])
def test_gauss_legendre_is_symmetric_about_one_half(n):
    r = rule("gausslegendre", n)
    head_a, head_w = r.nodes(0, 40)
    tail_a, tail_w = r.nodes(n - 40, n)
    np.testing.assert_allclose((head_a + tail_a.flip(0)).numpy(), 1.0, rtol=0, atol=3e-16)
    np.testing.assert_allclose(head_w.numpy(), tail_w.flip(0).numpy(), rtol=1e-15)
    if n % 2:
        assert abs(float(r.nodes(n // 2, n // 2 + 1)[0]) - 0.5) < 1e-16


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 50, 257])
def test_slices_put_together_are_the_whole_rule(method, n):
    r = rule(method, n)
    cuts = sorted({0, 1, n // 3, n // 2, n // 2 + 1, n - 1, n})
    parts = [r.nodes(a, b) for a, b in itertools.pairwise(cuts)]
    assert torch.equal(torch.cat([a for a, _ in parts]), r.alphas)
    assert torch.equal(torch.cat([w for _, w in parts]), r.weights)
    assert bool((r.alphas.diff() > 0).all())


@pytest.mark.parametrize("n", [2, 7, 10**7])
@pytest.mark.parametrize(
    ("method", "node"),
    [
        ("riemann_left", lambda k, n: k / n),
        ("riemann_middle", lambda k, n: (k + 0.5) / n),
        ("riemann_right", lambda k, n: (k + 1) / n),
        ("riemann_trapezoid", lambda k, n: k / (n - 1)),
    ],
)
def test_riemann_slices_are_the_closed_forms(method, node, n):
    r = rule(method, n)
    trapezoid = method == "riemann_trapezoid"
    for start, stop in [(0, min(3, n)), (n // 2, n // 2 + 1), (max(n - 3, 0), n)]:
        alphas, weights = r.nodes(start, stop)
        ks = range(start, stop)
        assert alphas.tolist() == [node(k, n) for k in ks]
        step = 1 / (n - 1) if trapezoid else 1 / n
        ends = (0, n - 1) if trapezoid else ()
        assert weights.tolist() == [0.5 / (n - 1) if k in ends else step for k in ks]


@pytest.mark.parametrize(
    ("start", "stop", "error", "match"),
    [
        (-1, 3, ValueError, "start=-1, stop=3"),
        (4, 3, ValueError, "start=4, stop=3"),
        (0, 11, ValueError, "stop <= n=10.*stop=11"),
        (0.0, 3, TypeError, "start must be an int, got 0.0"),
        (0, True, TypeError, "stop must be an int, got True"),
    ],
)
def test_bad_slices_are_refused(start, stop, error, match):
    with pytest.raises(error, match=match):
        rule("gausslegendre", 10).nodes(start, stop)


def test_a_rule_checks_its_name_and_size():
    with pytest.raises(ValueError, match="not a known rule"):
        Rule("simpson", 10)
    with pytest.raises(ValueError, match="n_steps must be >= 2"):
        Rule("riemann_trapezoid", 1)
    assert rule("gausslegendre", 10**7) == Rule("gausslegendre", 10**7)


def test_slice_bounds_may_be_numpy_or_torch_integers():
    r = rule("riemann_left", 8)
    expected = r.nodes(2, 5)
    for start, stop in [(np.int64(2), np.int64(5)), (torch.tensor(2), torch.tensor(5))]:
        assert all(torch.equal(a, b) for a, b in zip(r.nodes(start, stop), expected, strict=True))
