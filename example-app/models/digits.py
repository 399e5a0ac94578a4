"""A small CNN that reads 8x8 handwritten digits (scikit-learn's `load_digits`).

Pixels are the data set's raw 0..16 intensities; the model scales them itself, so
the app passes what it has. train_digits.py trains it and writes the weights.
"""
import torch
from torch import nn


class Digits(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(pixels / 16.0))


def build_model():
    return Digits()
