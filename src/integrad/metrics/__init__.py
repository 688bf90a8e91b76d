"""Is the explanation any good? Metrics that read attributions (they sit above the methods).

* :func:`infidelity`, :func:`sensitivity_max`: drop-ins for ``captum.metrics``, with
  generator-backed perturbations in :mod:`integrad.metrics.perturbations`.
"""

from . import perturbations
from .infidelity import infidelity, infidelity_perturb_func_decorator
from .sensitivity import default_perturb_func, sensitivity_max

__all__ = [
    "default_perturb_func",
    "infidelity",
    "infidelity_perturb_func_decorator",
    "perturbations",
    "sensitivity_max",
]
