"""integrad: Integrated Gradients for PyTorch, accurate, memory-bounded and verified.

>>> import torch, integrad
>>> exp = integrad.explain(torch.nn.Linear(3, 1), torch.ones(2, 3))
>>> exp.delta.shape
torch.Size([2])
"""

from . import baselines, quadrature, text
from .expected_gradients import ExpectedGradients
from .explanation import Explanation
from .gradients import InputXGradient, Saliency
from .integrated_gradients import IntegratedGradients, explain
from .layer import LayerIntegratedGradients
from .neuron import NeuronIntegratedGradients
from .noise_tunnel import NoiseTunnel

__all__ = [
    "ExpectedGradients",
    "Explanation",
    "InputXGradient",
    "IntegratedGradients",
    "LayerIntegratedGradients",
    "NeuronIntegratedGradients",
    "NoiseTunnel",
    "Saliency",
    "baselines",
    "explain",
    "quadrature",
    "text",
]
__version__ = "0.1.0"
