"""The app's model: 16 features -> 4 classes. Replace it with yours; load trained
weights with `weights = "models/<file>.pth"` in Cargo.toml."""
import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(16, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(features)))


def build_model():
    torch.manual_seed(0)
    return Classifier()
