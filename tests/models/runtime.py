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


class Many(nn.Module):
    """Six outputs, one of them a counter the model bumps on every call: `run` must
    execute a model once however many outputs it has."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x: torch.Tensor):
        self.calls.add_(1.0)
        return x + 1.0, x + 2.0, x + 3.0, x + 4.0, x + 5.0, self.calls.clone()


def build_many():
    return Many()


class Hygiene(nn.Module):
    """Inputs named like the locals of generated code (`bindings`, `output0`, `options`)."""

    def forward(self, bindings: torch.Tensor, output0: torch.Tensor, options: torch.Tensor) -> torch.Tensor:
        return bindings.sum(1) + output0.sum(1) + options.sum(1)


def build_hygiene():
    return Hygiene()


class Writer(nn.Module):
    """Writes its input in place, which the caller lent read-only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.add_(1.0)
        return x * 2.0


def build_writer():
    return Writer()


class Aliasing(nn.Module):
    """Returns its input itself and views of it: the caller's memory, unless the runtime
    hands them over as copies."""

    def forward(self, x: torch.Tensor):
        return x, x.view(-1), x[0]


def build_aliasing():
    return Aliasing()


class Counter(nn.Module):
    """Counts its calls in an attribute it reassigns, with work between the read and the
    write, and returns the attribute itself: one handle used from many threads must
    count every call, and a returned count must not change under a later call."""

    def __init__(self):
        super().__init__()
        self.count = torch.zeros(1)

    def forward(self, x: torch.Tensor):
        before = self.count
        work = x
        for _ in range(20):
            work = torch.tanh(work @ work.t() @ work / 64.0)
        self.count = before + 1.0
        # The iterations settle near zero whatever x is; x's own sum keeps the output
        # telling inputs apart, as verification needs.
        return self.count, (work.sum() + x.sum()).reshape(1)


def build_counter():
    return Counter()


class Small(nn.Module):
    """A float MLP: a second, small .pte."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(8, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def build_small():
    torch.manual_seed(5)
    return Small()
