"""The architectures tools/compat builds through ptm: each as its library builds it, with
a tiny configuration where the library has one, random weights from a fixed seed, and
nothing downloaded. Each builder is a ptm `source` callable."""
import torch

# torchvision classifiers take small images to keep the run short; BatchNorm statistics
# are those of a network that has seen data (cumulative means of a few train-mode passes
# over random images), not their initial values, so INT8 calibration meets realistic
# ranges.
IMAGE = 64
TOKENS = 16
VOCAB = 1000


def settle(model, shape):
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # the cumulative average over every pass
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(shape, generator=generator))
    return model.eval()


def torchvision_model(name, **kwargs):
    import torchvision
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10, **kwargs)
    return settle(model, (8, 3, IMAGE, IMAGE))


def mobilenet_v2(): return torchvision_model("mobilenet_v2")
def mobilenet_v3_small(): return torchvision_model("mobilenet_v3_small")
def mobilenet_v3_large(): return torchvision_model("mobilenet_v3_large")
def resnet18(): return torchvision_model("resnet18")
def resnet50(): return torchvision_model("resnet50")
def shufflenet_v2_x0_5(): return torchvision_model("shufflenet_v2_x0_5")
def squeezenet1_1(): return torchvision_model("squeezenet1_1")
def efficientnet_b0(): return torchvision_model("efficientnet_b0")
def regnet_y_400mf(): return torchvision_model("regnet_y_400mf")
def mnasnet0_5(): return torchvision_model("mnasnet0_5")


TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, num_labels=3)


def transformers_model(config_name, model_name, **config):
    import transformers
    torch.manual_seed(0)
    configuration = getattr(transformers, config_name)(**config)
    return getattr(transformers, model_name)(configuration).eval()


def bert(): return transformers_model("BertConfig", "BertForSequenceClassification", **TEXT)
def distilbert(): return transformers_model("DistilBertConfig", "DistilBertForSequenceClassification", vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, num_labels=3)
def roberta(): return transformers_model("RobertaConfig", "RobertaForSequenceClassification", **dict(TEXT, max_position_embeddings=66))
def albert(): return transformers_model("AlbertConfig", "AlbertForSequenceClassification", embedding_size=16, **TEXT)
def electra(): return transformers_model("ElectraConfig", "ElectraForSequenceClassification", embedding_size=16, **TEXT)
def mobilebert(): return transformers_model("MobileBertConfig", "MobileBertForSequenceClassification", vocab_size=VOCAB, hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, intra_bottleneck_size=16, true_hidden_size=16, num_feedforward_networks=2, max_position_embeddings=64, num_labels=3)
def vit(): return transformers_model("ViTConfig", "ViTForImageClassification", image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=10)


class Recurrent(torch.nn.Module):
    """Embedding, one recurrent layer, the last step's state to a linear classifier."""

    def __init__(self, cell):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, 32)
        self.rnn = cell(32, 48, batch_first=True)
        self.classifier = torch.nn.Linear(48, 3)

    def forward(self, tokens):
        states, _ = self.rnn(self.embedding(tokens))
        return self.classifier(states[:, -1])


def lstm():
    torch.manual_seed(0)
    return Recurrent(torch.nn.LSTM).eval()


def gru():
    torch.manual_seed(0)
    return Recurrent(torch.nn.GRU).eval()


def image(size=IMAGE):
    return [{"name": "image", "dtype": "float32", "shape": [1, 3, size, size]}]


# A .pte declares the sizes its token dimension takes: torch.export needs the bound that
# the encoders' table of 64 positions sets (the Lite Interpreter does not).
TOKENS_PTE = f"tokens={TOKENS}:1..64"


def text(mask=True):
    ids = {"name": "input_ids", "dtype": "int64", "shape": [1, f"tokens={TOKENS}"], "pte_shape": [1, TOKENS_PTE], "range": [0, VOCAB]}
    attention = {"name": "attention_mask", "dtype": "int64", "shape": [1, f"tokens={TOKENS}"], "pte_shape": [1, f"tokens={TOKENS}"],
                 "range": [1, 2]}
    return [ids, attention] if mask else [ids]


# (architecture, library, builder, inputs, outputs, export, quantizations)
ROWS = [(name, "torchvision", name, image(), ["logits"], "trace", ["none", "static"])
        for name in ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "resnet50",
                     "shufflenet_v2_x0_5", "squeezenet1_1", "efficientnet_b0", "regnet_y_400mf", "mnasnet0_5"]]
ROWS += [(name, "transformers", name, text(), ["logits"], "trace", ["none", "dynamic"])
         for name in ["bert", "distilbert", "roberta", "albert", "electra", "mobilebert"]]
ROWS += [("vit", "transformers", "vit", [{"name": "pixel_values", "dtype": "float32", "shape": [1, 3, 32, 32]}], ["logits"],
          "trace", ["none", "dynamic"])]
ROWS += [(name, "torch.nn", name, text(mask=False), ["output0"], "script", ["none", "dynamic"]) for name in ["lstm", "gru"]]
