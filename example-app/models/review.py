"""A BERT-like review classifier: the seed article's scenario.

Vocabulary 30522 (BERT's WordPiece size), hidden 128, 4 layers, FFN 512, 2 classes.
Attention uses separate query/key/value Linear layers, as BERT implementations do,
so that dynamic INT8 quantization reaches every projection.
"""
import math

import torch
from torch import nn

VOCAB = 30522
HIDDEN = 128
LAYERS = 4
HEADS = 4
FFN = 512
MAX_TOKENS = 128
CLASSES = 2


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.output = nn.Linear(HIDDEN, HIDDEN)
        self.heads = HEADS
        self.head_size = HIDDEN // HEADS
        self.scale = 1.0 / math.sqrt(HIDDEN // HEADS)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        return x.view(batch, tokens, self.heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q = self.split_heads(self.query(x))
        k = self.split_heads(self.key(x))
        v = self.split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        context = context.transpose(1, 2).reshape(batch, tokens, self.heads * self.head_size)
        return self.output(context)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = SelfAttention()
        self.norm1 = nn.LayerNorm(HIDDEN)
        self.up = nn.Linear(HIDDEN, FFN)
        self.down = nn.Linear(FFN, HIDDEN)
        self.norm2 = nn.LayerNorm(HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.down(torch.nn.functional.gelu(self.up(x))))


class ReviewClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, HIDDEN)
        self.positions = nn.Embedding(MAX_TOKENS, HIDDEN)
        self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.classifier = nn.Linear(HIDDEN, CLASSES)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.tokens(input_ids) + self.positions(positions)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(x[:, 0])


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return ReviewClassifier()
