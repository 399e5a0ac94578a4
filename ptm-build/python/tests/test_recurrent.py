"""nn.LSTM and nn.GRU as scan loops (recurrent.py): the same results as the layers they
replace, in eager PyTorch and after torch.export with a dynamic length. Needs torch."""
from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from ptm_convert import recurrent  # noqa: E402  (imports torch)

nn = torch.nn
Module: Any = nn.Module

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("LSTM", {}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("LSTM", {"num_layers": 3, "bias": False}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 3, "batch_first": True}),
    ("LSTM", {"num_layers": 2, "dropout": 0.5, "bidirectional": True, "bias": False}),
    ("GRU", {}),
    ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("GRU", {"num_layers": 3, "bias": False, "batch_first": True}),
    ("GRU", {"num_layers": 2, "dropout": 0.5, "bidirectional": True}),
]


def layer(mode: str, options: dict[str, Any]) -> Any:
    torch.manual_seed(0)
    return getattr(nn, mode)(5, 7, **options).eval()


def flat(result: Any) -> list[Any]:
    """(output, h_n) or (output, (h_n, c_n)) as a list of tensors."""
    output, state = result
    return [output, *state] if isinstance(state, tuple) else [output, state]


def initial_state(rnn: Any, batch: tuple[int, ...]) -> Any:
    directions = 2 if rnn.bidirectional else 1
    out = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size
    h0 = torch.randn(directions * rnn.num_layers, *batch, out)
    return (h0, torch.randn(directions * rnn.num_layers, *batch, rnn.hidden_size)) if rnn.mode == "LSTM" else h0


def assert_same(expected: Any, got: Any) -> None:
    for a, b in zip(flat(expected), flat(got), strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize("mode,options", CONFIGS, ids=[f"{m}-{o}" for m, o in CONFIGS])
def test_a_scan_layer_computes_what_the_layer_it_replaces_does(mode: str, options: dict[str, Any]) -> None:
    rnn = layer(mode, options)
    scanned = recurrent.ScanRecurrent(rnn).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for steps in (1, 2, 9):
            x = torch.randn(3, steps, 5) if rnn.batch_first else torch.randn(steps, 3, 5)
            assert_same(rnn(x), scanned(x))
        state = initial_state(rnn, (3,))
        assert_same(rnn(x, state), scanned(x, state))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_unbatched_input_and_state_keep_their_shapes(mode: str) -> None:
    options = {"num_layers": 2, "bidirectional": True, "batch_first": True}
    rnn = layer(mode, dict(options, proj_size=4) if mode == "LSTM" else options)
    scanned = recurrent.ScanRecurrent(rnn)
    with torch.no_grad():
        x = torch.randn(6, 5)  # (steps, features) whatever batch_first says
        assert_same(rnn(x), scanned(x))
        state = initial_state(rnn, ())
        assert_same(rnn(x, state), scanned(x, state))


def test_the_scan_layer_holds_the_same_parameters_under_the_same_names() -> None:
    rnn = layer("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 3})
    scanned = recurrent.ScanRecurrent(rnn)
    assert list(scanned.state_dict()) == list(rnn.state_dict())
    assert all(a is b for a, b in zip(scanned.parameters(), rnn.parameters(), strict=True))
    assert (scanned.hidden_size, scanned.num_layers, scanned.bidirectional, scanned.proj_size) == (7, 2, True, 3)


class Tagger(Module):  # type: ignore[misc]
    """An LSTM over the tokens, a GRU over 4 fixed steps and a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.rnn = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.summary = nn.GRU(12, 6)
        self.head = nn.Linear(12, 3)

    def forward(self, x: Any) -> Any:
        tokens, _ = self.encoder.rnn(x)
        _, h = self.summary(tokens[:, :4].transpose(0, 1))
        return self.head(tokens + h[-1].repeat(1, 2).unsqueeze(1))


def conversion(shape: list[Any]) -> Any:
    return SimpleNamespace(torch=torch, name="tagger", inner_prefix="", warnings=[],
                           decl={"inputs": [{"name": "x", "dtype": "float32", "shape": shape}]})


def test_only_layers_whose_length_follows_a_dynamic_dimension_become_scan_loops() -> None:
    torch.manual_seed(0)
    model = Tagger().eval()
    c = conversion([2, {"name": "tokens", "example": 6, "min": 4, "max": 16}, 8])
    converted = recurrent.scan_loops(c, model)
    assert isinstance(converted.encoder.rnn, recurrent.ScanRecurrent)
    assert type(converted.summary) is nn.GRU, "4 steps whatever the tokens: it unrolls"
    assert type(model.encoder.rnn) is nn.LSTM, "the model itself is left as it was"
    assert c.warnings == ["nn.LSTM `encoder.rnn` runs as a scan loop over its steps so that its length stays dynamic: "
                          "the input projection is a Linear over the whole sequence, but the recurrent cell runs outside "
                          "the XNNPACK delegate, on ExecuTorch's portable kernels, one step at a time (declared with a "
                          "fixed length, it unrolls into delegated steps instead)"]
    with torch.no_grad():
        for steps in (4, 9, 16):
            x = torch.randn(2, steps, 8)
            assert torch.allclose(model(x), converted(x), atol=1e-6)


def test_a_model_without_a_dynamic_dimension_is_left_alone() -> None:
    model = Tagger().eval()
    c = conversion([2, 6, 8])
    assert recurrent.scan_loops(c, model) is model and c.warnings == []


def test_torch_export_keeps_the_length_of_a_scan_layer_dynamic() -> None:
    torch.manual_seed(0)
    model = Tagger().eval()
    converted = recurrent.scan_loops(conversion([2, {"name": "tokens", "example": 6, "min": 4, "max": 16}, 8]), model)
    tokens = torch.export.Dim("tokens", min=4, max=16)
    with torch.no_grad():
        program = torch.export.export(converted, (torch.randn(2, 6, 8),), dynamic_shapes=({1: tokens},), strict=False)
        assert [(r.lower, r.upper) for r in program.range_constraints.values()] == [(4, 16)]
        exported = program.module()
        for steps in (4, 11, 16):
            x = torch.randn(2, steps, 8)
            assert torch.allclose(model(x), exported(x), atol=1e-5)
    # What PT2E quantizes: the operators outside the loops, not those of their bodies.
    bodies = [m for name, m in program.graph_module.named_children() if "scan" in name]
    assert len(bodies) == 4 and not any(recurrent.outside_loops(n) for b in bodies for n in b.graph.nodes
                                        if n.op == "call_function")
    assert all(recurrent.outside_loops(n) for n in program.graph_module.graph.nodes
               if n.op == "call_function" and n.target is torch.ops.aten.linear.default)


def test_a_layer_with_a_hook_fails_naming_it() -> None:
    from ptm_convert.common import Failure
    model = Tagger().eval()
    model.encoder.rnn.register_forward_hook(lambda module, args, result: None)
    with pytest.raises(Failure) as failed:
        recurrent.scan_loops(conversion([2, {"name": "tokens", "example": 6}, 8]), model)
    assert failed.value.message.startswith("nn.LSTM `encoder.rnn` has parametrizations or hooks")
    assert "format = \"ptl\"" in (failed.value.hint or "")


def test_the_loop_filter_leaves_a_convolution_weight_quantizable() -> None:
    # The XNNPACK annotators ask the filter about a convolution's weight (a get_attr node,
    # which carries no module stack): a filter refusing it left every static INT8 CNN's
    # weights float, its .pte the size of the float program.
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from ptm_convert import pt2e
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3)).eval()
    example = (torch.randn(1, 3, 8, 8),)
    quantizer = pt2e.make_quantizer("static", [])  # type: ignore[no-untyped-call]
    prepared = prepare_pt2e(torch.export.export(model, example, strict=False).module(), quantizer)
    prepared(*example)
    converted = convert_pt2e(prepared)
    targets = [str(n.target) for n in converted.graph.nodes if n.op == "call_function"]
    assert targets.count("quantized_decomposed.dequantize_per_channel.default") == 2, targets
