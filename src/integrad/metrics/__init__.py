"""Is the explanation any good? Metrics that read attributions (they sit above the methods).

* :func:`infidelity`, :func:`sensitivity_max`: drop-ins for ``captum.metrics``, with
  generator-backed perturbations in :mod:`integrad.metrics.perturbations`.
* :func:`deletion`, :func:`insertion`: perturbation curves and their areas.
* ``baselines="road"`` (:func:`road`): ROAD's noisy linear imputation for the curves.
* :func:`pic`: Performance Information Curves (SIC/AIC), as PAIR saliency's.
* :func:`compare` (also ``integrad.compare``): several methods scored alike, one table.
* :func:`randomization_check`: the model-parameter randomization sanity check.
* :func:`ground_truth_check`: attribution on known relevant features (synthetic tasks).
"""

from . import perturbations
from .compare import Comparison, compare
from .curves import PerturbationCurve, deletion, insertion
from .ground_truth import GroundTruthCheck, ground_truth_check, sensor_series
from .infidelity import infidelity, infidelity_perturb_func_decorator
from .pic import PicResult, pic, random_mask
from .road import NoisyLinearImputation, noisy_linear_impute, road
from .sanity import RandomizationCheck, randomization_check
from .sensitivity import default_perturb_func, sensitivity_max

__all__ = [
    "Comparison",
    "GroundTruthCheck",
    "NoisyLinearImputation",
    "PerturbationCurve",
    "PicResult",
    "RandomizationCheck",
    "compare",
    "default_perturb_func",
    "deletion",
    "ground_truth_check",
    "infidelity",
    "infidelity_perturb_func_decorator",
    "insertion",
    "noisy_linear_impute",
    "perturbations",
    "pic",
    "random_mask",
    "randomization_check",
    "road",
    "sensitivity_max",
    "sensor_series",
]
