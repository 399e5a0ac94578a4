"""Small models the runtime tests run through the generated wrappers.

Weights come from fixed seeds, so every build converts the same models.
"""
import torch
from torch import nn


class Pair(nn.Module):
    """Two inputs sharing a dynamic batch, two outputs: the shapes a wrapper must get right."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.embedding = nn.Embedding(10, 2)

    def forward(self, x: torch.Tensor, ids: torch.Tensor):
        scores = self.linear(x) + self.embedding(ids).mean(dim=1)
        return scores, x * 2.0


class Classifier(nn.Module):
    """An MLP over 16 features, quantized to INT8 for qnnpack."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(16, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def build_pair():
    torch.manual_seed(1)
    return Pair()


def build_classifier():
    torch.manual_seed(2)
    return Classifier()
