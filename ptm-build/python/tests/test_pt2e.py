"""How a .pte's INT8 step names layers: module paths from torch.export's nn_module_stack,
and the error of a layer that cannot be quantized. Graph nodes are stood in for by plain
objects with the fields torch.fx gives them."""
from types import SimpleNamespace
from typing import Any, Optional

from ptm_convert import pt2e


class Node:
    def __init__(self, name: str, stack: Optional[list[tuple[str, Any]]] = None, inputs: tuple["Node", ...] = (),
                 op: str = "call_function", target: str = "aten.linear.default") -> None:
        self.name, self.op, self.target = name, op, target
        self.meta: dict[str, Any] = {}
        if stack is not None:
            self.meta["nn_module_stack"] = {f"key{i}": entry for i, entry in enumerate(stack)}
        self.all_input_nodes = list(inputs)
        self.users: dict["Node", None] = {}
        for node in inputs:
            node.users[self] = None


class Linear:
    pass


ROOT = ("", "ptm_adapter.PtmAdapter")
MODEL = ("inner", "transformers.models.bert.modeling_bert.BertForSequenceClassification")
QUERY = ("inner.bert.encoder.layer.0.attention.self.query", Linear)


def conversion() -> Any:
    return SimpleNamespace(name="bert", inner_prefix="inner.")


def test_paths_are_named_modules_names_outermost_first() -> None:
    node = Node("linear", [ROOT, MODEL, ("L['self'].inner.bert", "BertModel")])
    assert pt2e.module_paths(node) == ["", "inner", "inner.bert"]
    assert pt2e.inside(node, ["inner.bert"]) == "inner.bert"
    assert pt2e.inside(node, ["inner.classifier"]) is None
    assert pt2e.inside(Node("weight", op="get_attr"), ["inner.bert"]) is None


def test_a_layer_is_the_innermost_module_with_its_class_name() -> None:
    assert pt2e.layer_of(Node("linear", [ROOT, MODEL, QUERY])) == ("inner.bert.encoder.layer.0.attention.self.query", "Linear")
    assert pt2e.class_name("<class 'torch.nn.modules.sparse.Embedding'>") == "Embedding"
    assert pt2e.class_name("torch.nn.modules.linear.Linear") == "Linear"


def test_a_node_quantization_added_belongs_to_the_layer_it_feeds() -> None:
    weight = Node("_frozen_param0", op="get_attr")
    quantize = Node("quantize_per_channel_default", inputs=(weight,), target="quantized_decomposed.quantize_per_channel")
    dequantize = Node("dequantize_per_channel_default", inputs=(quantize,))
    Node("linear", [ROOT, MODEL, QUERY], inputs=(dequantize,))
    assert pt2e.layer_of(quantize) == ("inner.bert.encoder.layer.0.attention.self.query", "Linear")
    assert pt2e.layer_of(Node("alone", op="get_attr")) is None


def test_the_error_names_the_layer_and_the_key_that_keeps_it_float() -> None:
    node = Node("linear", [ROOT, MODEL, QUERY])
    failure = pt2e.failure(conversion(), "dynamic", "converting", AssertionError("Expecting float32\nmore"), node)
    assert failure.stage == "quantize"
    assert failure.message == ("dynamic INT8 for XNNPACK failed in layer `bert.encoder.layer.0.attention.self.query` "
                               "(Linear) at `linear` (aten.linear.default) while converting: AssertionError: Expecting float32")
    assert failure.hint is not None
    assert failure.hint.startswith("keep that layer in float with quantize_skip = [\"bert.encoder.layer.0.attention.self.query\"] "
                                   "in package.metadata.models.bert.quantize_skip")


def test_a_node_of_the_model_itself_or_of_no_module_gets_the_general_error() -> None:
    for node in [Node("index", [ROOT, MODEL]), Node("add", [ROOT]), None]:
        failure = pt2e.failure(conversion(), "dynamic", "running", IndexError("indices"), node)
        assert failure.message == "dynamic INT8 for XNNPACK failed while running: IndexError: indices"
        assert failure.hint == "keep the model in float with quantize = \"none\" in package.metadata.models.bert"


def test_a_convolution_with_a_folded_batch_norm_is_compared_with_the_norms_output() -> None:
    """prepare_pt2e folds a batch norm into the convolution before it: the quantized
    graph's convolution computes what the float graph's norm does, and is compared with
    that (compared with the float convolution alone, a good layer would read as noise)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ptm_convert import layers

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU()).eval()
    with torch.no_grad():  # statistics far from the identity, so that folding changes the output
        model[1].running_mean.uniform_(-2, 2)
        model[1].running_var.uniform_(0.1, 4)
        model[1].weight.uniform_(0.5, 3)
    samples = [(torch.randn(1, 3, 16, 16),) for _ in range(4)]
    exported = torch.export.export(model, samples[0]).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, samples[0]).module(), quantizer)
    for sample in samples:
        prepared(*sample)
    quantized = convert_pt2e(prepared)
    c: Any = SimpleNamespace(name="conv", inner_prefix="", torch=torch)
    rows = layers.pt2e_layers(c, exported, quantized, samples)
    assert [r["name"] for r in rows] == ["0"], rows
    assert rows[0]["sqnr_db"] > 20, rows
    convolution = next(n for n in exported.graph.nodes if "conv" in str(n.target))
    assert layers.folded_twin(convolution, {n.name for n in quantized.graph.nodes}) != convolution.name
