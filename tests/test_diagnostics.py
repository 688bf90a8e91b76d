"""convergence() and check_completeness() against closed forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import integrad


class Cubes(nn.Module):
    """F(x) = Σ x_i³: along the path from 0 the integrand is 3α² x_i², so every rule's
    error is known: midpoint 1/(4n²), trapezoid 1/(2(n−1)²), Gauss–Legendre exact for n ≥ 2.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x**3).sum(dim=1)


def x3() -> torch.Tensor:
    return torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, 3.0]], dtype=torch.float64)


def test_convergence_table_matches_closed_forms() -> None:
    table = integrad.convergence(Cubes(), x3(), steps=(2, 4, 8))
    assert table.reference == "gausslegendre, n_steps=16"
    by = {(r.method, r.n_steps): r for r in table.rows}
    for n in (2, 4, 8):
        gl = by["gausslegendre", n]
        mid_exact, trap_exact = 1 / (4 * n * n), 1 / (2 * (n - 1) ** 2)
        for row, exact in (
            (by["riemann_middle", n], mid_exact),
            (by["riemann_trapezoid", n], trap_exact),
        ):
            # The relative error is the same for every feature, so for the vector and the sum.
            assert row.error_median == pytest.approx(exact, rel=1e-9)
            assert row.error_max == pytest.approx(exact, rel=1e-9)
            assert row.completeness_max == pytest.approx(exact, rel=1e-9)
        assert gl.error_max < 1e-14 and gl.completeness_max < 1e-14
    assert "riemann_middle" in str(table) and len(str(table).splitlines()) == 2 + 9


def test_convergence_plot_draws_one_line_per_method_and_its_max() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    table = integrad.convergence(
        Cubes(), x3(), steps=(2, 4, 8), methods=("riemann_middle", "riemann_trapezoid")
    )
    ax = table.plot()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 4
    xs, ys = lines[0].get_data()
    assert list(xs) == [2, 4, 8]
    assert list(ys) == pytest.approx([1 / 16, 1 / 64, 1 / 256], rel=1e-9)
    with pytest.raises(ValueError, match="kind must be 'error' or 'completeness', got 'x'"):
        table.plot(kind="x")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": ()}, "steps must be a non-empty sequence of positive ints"),
        ({"steps": (4, 0)}, r"got \(4, 0\)"),
        ({"methods": ("simpson",)}, "methods must name rules of"),
        ({"reference_steps": 0}, "reference_steps must be a positive int, got 0"),
    ],
)
def test_convergence_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        integrad.convergence(Cubes(), x3(), **kwargs)  # type: ignore[arg-type]


def test_check_completeness_reports_each_example() -> None:
    x = x3()
    exact = x**3  # IG of Σ x_i³ from 0 is x_i³ per feature
    report = integrad.check_completeness(Cubes(), x, exact, tolerance=1e-12)
    assert report.passed is True
    torch.testing.assert_close(report.change, (x**3).sum(1))
    torch.testing.assert_close(report.baseline_output, torch.zeros(2, dtype=torch.float64))

    off = exact.clone()
    off[1, 0] += 0.1 * report.change[1]  # 10% of example 1's change
    report = integrad.check_completeness(Cubes(), x, off, tolerance=0.05)
    assert report.within_tolerance.tolist() == [True, False]
    # One verdict for the batch, a plain bool that ``assert`` and ``if`` can read.
    assert report.passed is False and report.all_passed is False
    with pytest.raises(AssertionError):
        assert report.passed
    assert float(report.rel_error[1]) == pytest.approx(0.1)
    assert "NO" in str(report).splitlines()[-1]


def test_check_completeness_accepts_other_libraries_attributions() -> None:
    captum = pytest.importorskip("captum.attr")
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x = x3()
    attr = captum.IntegratedGradients(model).attribute(x, target=1, n_steps=64)
    assert integrad.check_completeness(model, x, attr, target=1, tolerance=1e-3).all_passed


def test_check_completeness_with_zero_change_uses_output_scale() -> None:
    model = nn.Linear(3, 1, bias=False).double()
    x = torch.zeros(1, 3, dtype=torch.float64)  # F(x) = F(x') = 0: only a zero sum passes
    exact = integrad.check_completeness(model, x, torch.zeros_like(x))
    assert exact.all_passed
    assert exact.rel_error.tolist() == [0.0]  # 0/0: no error, not NaN
    off = integrad.check_completeness(model, x, torch.ones_like(x))
    assert not off.all_passed
    assert off.rel_error.tolist() == [float("inf")]


def test_check_completeness_names_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"attributions must have the inputs' shapes \[\(2, 3\)\]"):
        integrad.check_completeness(Cubes(), x3(), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="tolerance must be a non-negative finite number"):
        integrad.check_completeness(Cubes(), x3(), x3(), tolerance=-1.0)


def test_convergence_tables_do_not_warn_about_the_coarse_rules_they_report():
    import warnings

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    with warnings.catch_warnings():  # the smooth reference (64 nodes) is resolved
        warnings.simplefilter("error", integrad.CompletenessWarning)
        integrad.convergence(model, torch.rand(4, 3) * 4, steps=(1, 2), reference_steps=64)
