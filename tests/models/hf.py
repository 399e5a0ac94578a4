"""Hugging Face models as transformers builds them: tiny configs, random weights from a
fixed seed, nothing downloaded, no wrapper module."""
import torch
from transformers import BertConfig, BertForSequenceClassification

VOCAB = 100
POSITIONS = 64


def build_bert():
    torch.manual_seed(11)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=POSITIONS, num_labels=3)
    return BertForSequenceClassification(config)
