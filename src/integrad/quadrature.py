"""Quadrature rules on [0, 1]: a rule is data, ``(nodes, weights)``, read in slices.

Every rule is computed in float64 and its weights sum to 1 (to float64 rounding),
so every rule integrates a model that is linear along the path exactly. A
:class:`Rule` holds only its name and size; :meth:`Rule.nodes` computes any slice
of nodes in memory and time proportional to the slice, so ``n_steps = 10**7`` costs
nothing until the engine asks for a chunk. The engine casts each slice once, to the
dtype of the inputs.

Gauss–Legendre uses Newton's method on the three-term recurrence up to ``n = 100``
(cached) and above it Bogaert's iteration-free asymptotic formulas (I. Bogaert,
"Iteration-free computation of Gauss–Legendre quadrature nodes and weights", SIAM
J. Sci. Comput. 36(3), 2014): every node and weight in O(1), to a few units of
float64 rounding (nodes to ~2e-16, weights to ~3e-16 relative, checked against
mpmath up to n = 10**7). They beat Newton above n = 100: Newton's root x near ±1
leaves 1 - x² with a relative error ~n²·1e-16, which its end weights inherit.

Two deliberate deviations from Captum 0.9, which otherwise uses the same nodes:

* ``riemann_trapezoid``: Captum gives every node the weight ``1/n`` and halves the
  two ends, so its weights sum to ``(n - 1)/n`` (a 2% bias at ``n = 50``, even on a
  linear model). integrad uses the correct trapezoid rule: ``1/(n - 1)``, ends halved.
* Captum casts its weights to float32 even for float64 inputs, which floors the
  error near 1e-8; integrad keeps float64 until the cast to the inputs' dtype.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = ["METHODS", "Rule", "rule"]

METHODS: tuple[str, ...] = (
    "gausslegendre",
    "riemann_left",
    "riemann_middle",
    "riemann_right",
    "riemann_trapezoid",
)

# Up to this size Gauss–Legendre nodes come from Newton's method (the values integrad
# has always used); above it from Bogaert's formulas, which need n > 100.
NEWTON_MAX_N = 100


@dataclass(frozen=True)
class Rule:
    """The ``n``-node rule ``name`` on [0, 1]; nodes ascend, weights sum to 1.

    >>> gl = rule("gausslegendre", 10**7)  # nothing is computed yet
    >>> alphas, weights = gl.nodes(4_999_999, 5_000_001)  # the two middle nodes
    >>> [round(a, 11) for a in alphas.tolist()], round(float(weights[0]) * 10**7, 6)
    ([0.49999992146, 0.50000007854], 1.570796)
    """

    name: str
    n: int

    def __post_init__(self) -> None:
        check_method(self.name, self.n)

    def nodes(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 ``(alphas, weights)`` of nodes ``start .. stop - 1``, in O(stop - start)."""
        for name, value in (("start", start), ("stop", stop)):
            if isinstance(value, bool) or not hasattr(value, "__index__"):
                raise TypeError(f"{name} must be an int, got {value!r}")
        start, stop = operator.index(start), operator.index(stop)
        if not 0 <= start <= stop <= self.n:
            raise ValueError(
                f"need 0 <= start <= stop <= n={self.n}, got start={start}, stop={stop}"
            )
        n = self.n
        if self.name == "gausslegendre":
            nodes, weights = _gauss_legendre(n, start, stop)
            return torch.from_numpy(nodes), torch.from_numpy(weights)
        k = torch.arange(start, stop, dtype=torch.float64)
        if self.name == "riemann_trapezoid":
            steps = torch.full_like(k, 1.0 / (n - 1))
            steps[(k == 0) | (k == n - 1)] = 0.5 / (n - 1)
            return k / (n - 1), steps
        shift = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[self.name]
        return (k + shift) / n, torch.full_like(k, 1.0 / n)

    @property
    def alphas(self) -> torch.Tensor:
        """All ``n`` nodes (materialised: meant for small ``n``)."""
        return self.nodes(0, self.n)[0]

    @property
    def weights(self) -> torch.Tensor:
        """All ``n`` weights (materialised: meant for small ``n``)."""
        return self.nodes(0, self.n)[1]


def check_method(method: object, n_steps: object) -> None:
    """Raise ``ValueError`` unless ``method`` names a rule usable with ``n_steps`` nodes."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method={method!r} is not a known rule; choose one of {list(METHODS)}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int):
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    least = 2 if method == "riemann_trapezoid" else 1
    if n_steps < least:
        raise ValueError(f"n_steps must be >= {least} for method={method!r}, got {n_steps}")


@lru_cache(maxsize=64)
def rule(method: str, n_steps: int) -> Rule:
    """The ``n_steps``-node rule ``method`` on [0, 1], in float64; no nodes computed yet.

    >>> r = rule("riemann_trapezoid", 5)
    >>> r.alphas.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> float(r.weights.sum())
    1.0
    """
    check_method(method, n_steps)
    return Rule(method, n_steps)


def _gauss_legendre(n: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``start .. stop - 1`` of the ``n``-node Gauss–Legendre rule on [0, 1]."""
    if n <= NEWTON_MAX_N:
        alphas, weights = _newton_rule(n)
        return alphas[start:stop].copy(), weights[start:stop].copy()
    i = np.arange(start, stop, dtype=np.int64)
    # Node i counted from alpha = 0 is the (i + 1)-th zero of P_n(cos θ) from θ = 0 mirrored
    # through alpha = 1/2; the upper half is the (n - i)-th zero read from alpha = 1.
    lower = 2 * i + 1 <= n
    theta, weights = _bogaert(n, np.where(lower, i + 1, n - i))
    half = 0.5 * theta
    alphas = np.where(lower, np.sin(half) ** 2, np.cos(half) ** 2)
    alphas[2 * i + 1 == n] = 0.5  # the middle node of an odd rule, θ = π/2 exactly
    return alphas, 0.5 * weights


@lru_cache(maxsize=8)
def _newton_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    roots, weights = _legendre(n)
    return 0.5 * (1.0 + roots), 0.5 * weights


def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre roots (ascending) and weights on [-1, 1] by Newton's method.

    O(n) memory and O(n²) time: numpy's ``leggauss`` diagonalises an n×n matrix,
    which takes 0.5 GB and seconds at n = 8192.
    """
    k = np.arange(n, dtype=np.float64)
    x = np.cos(np.pi * (k + 0.75) / (n + 0.5))
    for _ in range(100):
        p, dp = _legendre_value(n, x)
        step = p / dp
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    p, dp = _legendre_value(n, x)
    weights = 2.0 / ((1.0 - x * x) * dp * dp)
    order = np.argsort(x)
    return x[order], weights[order]


def _legendre_value(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P_n(x) and P_n'(x) by the three-term recurrence."""
    previous, current = np.ones_like(x), x.copy()
    for j in range(2, n + 1):
        previous, current = current, ((2 * j - 1) * x * current - (j - 1) * previous) / j
    if n == 1:
        previous = np.ones_like(x)
    derivative = n * (x * current - previous) / (x * x - 1.0)
    return current, derivative


def _bogaert(n: int, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """θ of the k-th zero of P_n(cos θ) from θ = 0, and its weight on [-1, 1].

    Bogaert (2014), eqs. for θ_k and w_k: an expansion in 1/(n + 1/2)² around the Bessel
    approximation θ ≈ j_{0,k}/(n + 1/2), its coefficients polynomials in θ² fitted to
    near machine precision; valid for n > 100 and 1 <= k <= ceil(n/2).
    """
    v = 1.0 / (n + 0.5)
    nu = _j0_zero(k)
    theta = v * nu
    t2 = theta * theta
    node_terms = [_horner(c, t2) for c in _NODE_COEFFICIENTS]
    weight_terms = [_horner(c, t2) for c in _WEIGHT_COEFFICIENTS]
    nu_over_sin = nu / np.sin(theta)
    inverse_sinc = v * v * nu_over_sin
    s2 = inverse_sinc * inverse_sinc
    correction = node_terms[0] + s2 * (node_terms[1] + s2 * node_terms[2])
    theta = v * (nu + theta * inverse_sinc * correction)
    scale = weight_terms[0] + s2 * (weight_terms[1] + s2 * weight_terms[2])
    denominator = _j1_squared_at_j0_zero(k) * nu_over_sin * (1.0 + s2 * scale)
    return theta, 2.0 * v / denominator


def _horner(coefficients: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """Σ c_i x^i with ``coefficients`` from the highest power down."""
    total = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        total = total * x + c
    return total


def _j0_zero(k: np.ndarray) -> np.ndarray:
    """j_{0,k}, the k-th positive zero of J_0: a table, then McMahon's expansion."""
    table = np.asarray(_J0_ZEROS)
    beta = np.pi * (k - 0.25)
    r = 1.0 / beta
    mcmahon = beta + r * _horner(_MCMAHON, r * r)
    return np.where(k <= len(table), table[np.minimum(k, len(table)) - 1], mcmahon)


def _j1_squared_at_j0_zero(k: np.ndarray) -> np.ndarray:
    """J_1(j_{0,k})²: a table, then its expansion in 1/(k - 1/4)."""
    table = np.asarray(_J1_SQUARED)
    x = 1.0 / (k - 0.25)
    expansion = x * _horner(_J1_SQUARED_SERIES, x * x)
    return np.where(k <= len(table), table[np.minimum(k, len(table)) - 1], expansion)


# Coefficients from Bogaert (2014), highest power first. McMahon's series for j_{0,k} in
# 1/β², β = π(k - 1/4), and J_1(j_{0,k})² in 1/(k - 1/4)² (its x² term vanishes).
_MCMAHON = (
    5.09225462402226769498681286758e7,
    -8.49353580299148769921876983660e5,
    18690.4765282320653831636345064,
    -567.644412135183381139802038240,
    25.3364147973439050099206349206,
    -1.82443876720610119047619047619,
    0.246028645833333333333333333333,
    -0.807291666666666666666666666667e-1,
    0.125,
)
_J1_SQUARED_SERIES = (
    0.185395398206345628711318848386,
    -0.266837393702323757700998557826e-1,
    0.496101423268883102872271417616e-2,
    -0.123632349727175414724737657367e-2,
    0.433710719130746277915572905025e-3,
    -0.228969902772111653038747229723e-3,
    0.198924364245969295201137972743e-3,
    -0.303380429711290253026202643516e-3,
    0.0,
    0.202642367284675542887758926420,
)
_NODE_COEFFICIENTS = (
    (
        -1.29052996274280508473467968379e-12,
        2.40724685864330121825976175184e-10,
        -3.13148654635992041468855740012e-8,
        0.275573168962061235623801563453e-5,
        -0.148809523713909147898955880165e-3,
        0.416666666665193394525296923981e-2,
        -0.416666666666662959639712457549e-1,
    ),
    (
        2.20639421781871003734786884322e-9,
        -7.53036771373769326811030753538e-8,
        0.161969259453836261731700382098e-5,
        -0.253300326008232025914059965302e-4,
        0.282116886057560434805998583817e-3,
        -0.209022248387852902722635654229e-2,
        0.815972221772932265640401128517e-2,
    ),
    (
        -2.97058225375526229899781956673e-8,
        5.55845330223796209655886325712e-7,
        -0.567797841356833081642185432056e-5,
        0.418498100329504574443885193835e-4,
        -0.251395293283965914823026348764e-3,
        0.128654198542845137196151147483e-2,
        -0.416012165620204364833694266818e-2,
    ),
)
_WEIGHT_COEFFICIENTS = (
    (
        -2.20902861044616638398573427475e-14,
        2.30365726860377376873232578871e-12,
        -1.75257700735423807659851042318e-10,
        1.03756066927916795821098009353e-8,
        -4.63968647553221331251529631098e-7,
        0.149644593625028648361395938176e-4,
        -0.326278659594412170300449074873e-3,
        0.436507936507598105249726413120e-2,
        -0.305555555555553028279487898503e-1,
        0.833333333333333302184063103900e-1,
    ),
    (
        3.63117412152654783455929483029e-12,
        7.67643545069893130779501844323e-11,
        -7.12912857233642220650643150625e-9,
        2.11483880685947151466370130277e-7,
        -0.381817918680045468483009307090e-5,
        0.465969530694968391417927388162e-4,
        -0.407297185611335764191683161117e-3,
        0.268959435694729660779984493795e-2,
        -0.111111111111214923138249347172e-1,
    ),
    (
        2.01826791256703301806643264922e-9,
        -4.38647122520206649251063212545e-8,
        5.08898347288671653137451093208e-7,
        -0.397933316519135275712977531366e-5,
        0.200559326396458326778521795392e-4,
        -0.422888059282921161626339411388e-4,
        -0.105646050254076140548678457002e-3,
        -0.947969308958577323145923317955e-4,
        0.656966489926484797412985260842e-2,
    ),
)
# j_{0,k} and J_1(j_{0,k})² for the first k, to float64 precision (mpmath, 40 digits).
_J0_ZEROS = (
    2.404825557695773,
    5.520078110286311,
    8.653727912911013,
    11.791534439014281,
    14.930917708487787,
    18.071063967910924,
    21.21163662987926,
    24.352471530749302,
    27.493479132040253,
    30.634606468431976,
    33.77582021357357,
    36.917098353664045,
    40.05842576462824,
    43.19979171317673,
    46.341188371661815,
    49.482609897397815,
    52.624051841115,
    55.76551075501998,
    58.90698392608094,
    62.048469190227166,
)
_J1_SQUARED = (
    0.2695141239419169,
    0.11578013858220369,
    0.07368635113640822,
    0.05403757319811628,
    0.04266142901724309,
    0.0352421034909961,
    0.030021070103054673,
    0.02614739149530809,
    0.023159121824691393,
    0.02078382912226786,
    0.01885045066931767,
    0.017246157569665008,
    0.0158935181059236,
    0.01473762609647219,
    0.013738465145387117,
    0.012866181737615133,
    0.012098051548626797,
    0.011416471224491609,
    0.010807592791180204,
    0.010260372926280762,
    0.009765897139791051,
)
