"""integrad: Integrated Gradients for PyTorch, accurate, memory-bounded and verified.

>>> import torch, integrad
>>> exp = integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3))
>>> exp.delta.shape
torch.Size([2])
"""

from . import baselines, images, metrics, quadrature, tables, text, timeseries, views
from ._checks import CompletenessWarning
from .blur import BlurIntegratedGradients, explain_blur
from .diagnostics import check_completeness, convergence
from .expected_gradients import ExpectedGradients
from .explanation import Explanation
from .gradient_shap import GradientShap
from .gradients import InputXGradient, Saliency
from .guided import GuidedIntegratedGradients, explain_guided
from .integrated_gradients import IntegratedGradients, explain
from .io import load
from .layer import LayerIntegratedGradients
from .metrics.compare import compare
from .neuron import NeuronIntegratedGradients
from .noise_tunnel import NoiseTunnel
from .runs import Run, open_run, run

__all__ = [
    "BlurIntegratedGradients",
    "CompletenessWarning",
    "ExpectedGradients",
    "Explanation",
    "GradientShap",
    "GuidedIntegratedGradients",
    "InputXGradient",
    "IntegratedGradients",
    "LayerIntegratedGradients",
    "NeuronIntegratedGradients",
    "NoiseTunnel",
    "Run",
    "Saliency",
    "baselines",
    "check_completeness",
    "compare",
    "convergence",
    "explain",
    "explain_blur",
    "explain_guided",
    "images",
    "load",
    "metrics",
    "open_run",
    "quadrature",
    "run",
    "tables",
    "text",
    "timeseries",
    "views",
]
__version__ = "0.1.0"
