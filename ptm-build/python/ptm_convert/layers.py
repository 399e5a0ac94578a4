"""Where INT8 loses: each quantized layer's output in the float model and in the quantized
one, on the same samples. For a .ptl, torch's numeric suite (torch.ao.ns) measures them;
for a .pte, whose PT2E graphs the suite cannot read, the graphs are run node by node and
each quantized layer's node compared with the float graph's node it came from."""
import contextlib
import copy
import warnings
from typing import Any

from .adapt import leaves
from .common import log
from .conversion import Conversion

# Layers named in a failing build's error; the report keeps every quantized layer.
NAMED_IN_ERRORS = 5
SAMPLES = 4
# Where torch keeps quantized modules, fused ones (LinearReLU, ConvReLU2d) included.
QUANTIZED_MODULES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")


def measure_layers(c: Conversion, samples):
    """Every quantized layer, worst first: {name, kind, sqnr_db, relative}; or a
    sentence saying why torch's numeric suite cannot read this model."""
    samples = samples[:SAMPLES]
    c.layer_samples = len(samples)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if c.decl["quantize"] == "dynamic":
                rows = dynamic_layers(c, samples)
            else:
                rows = static_layers(c, samples)
    except Unreadable as e:
        return [], str(e)
    except Exception as e:  # the numeric suite is diagnostic: it never fails a build
        return [], f"torch.ao.ns could not compare the layers: {type(e).__name__}: {str(e).strip().splitlines()[0]}"
    rows.sort(key=lambda r: (r["sqnr_db"], r["name"]))
    log(c.name, f"measured {len(rows)} quantized layer(s) with torch.ao.ns on {len(samples)} sample(s)")
    return rows, None

def measure_pt2e(c: Conversion, float_module, quantized, samples):
    """measure_layers for a .pte: the float exported graph against the converted one."""
    samples = samples[:SAMPLES]
    c.layer_samples = len(samples)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = pt2e_layers(c, float_module, quantized, samples)
    except Exception as e:  # diagnostic, as above
        return [], f"the layers could not be compared: {type(e).__name__}: {str(e).strip().splitlines()[0]}"
    rows.sort(key=lambda r: (r["sqnr_db"], r["name"]))
    log(c.name, f"measured {len(rows)} quantized layer(s) on {len(samples)} sample(s)")
    return rows, None

def pt2e_layers(c: Conversion, float_module, quantized, samples):
    """One row per module with a quantized weight (the node takes the dequantized value
    of an INT8 constant: Linear, Conv, Embedding), worst of its calls. convert_pt2e keeps
    the name of every node it does not add, so a layer's node has its float twin by name."""
    from . import pt2e
    layers = {}
    for node in quantized.graph.nodes:
        if node.op != "call_function" or is_quantize_op(node.target):
            continue
        if any(is_quantize_op(arg.target) and arg.args and getattr(arg.args[0], "op", None) == "get_attr"
               for arg in node.all_input_nodes):
            layer = pt2e.layer_of(node)
            if layer is not None and layer[0].startswith(c.inner_prefix):
                layers[node.name] = layer
    float_nodes = {node.name: node for node in float_module.graph.nodes}
    layers = {name: layer for name, layer in layers.items() if name in float_nodes}
    kept = {node.name for node in quantized.graph.nodes}
    twins = {name: folded_twin(float_nodes[name], kept) for name in layers}
    floats = node_outputs(c, float_module, set(twins.values()), samples)
    quantizeds = node_outputs(c, quantized, layers, samples)
    worst: dict[str, Any] = {}
    for name, (path, kind) in layers.items():
        measured = row(c, path, kind, floats[twins[name]], quantizeds[name])
        if path not in worst or measured["sqnr_db"] < worst[path]["sqnr_db"]:
            worst[path] = measured
    return list(worst.values())

def folded_twin(node: Any, kept: set[str]) -> str:
    """The float node whose output a quantized layer's node computes: the layer's own,
    or that of the batch norm after it, which prepare_pt2e folds into a convolution's
    weights (the norm's node is then gone from the quantized graph)."""
    import operator
    users = list(node.users)
    if len(users) == 1 and "batch_norm" in str(users[0].target) and users[0].name not in kept:
        norm = users[0]
        # Some batch norm ops return (output, saved statistics...): the output is item 0.
        outputs = [u for u in norm.users if u.target is operator.getitem and u.args[1:2] == (0,)]
        return outputs[0].name if outputs else norm.name
    return node.name

def is_quantize_op(target):
    """A quantize, dequantize or choose-qparams op of the quantized_decomposed library."""
    return str(target).startswith("quantized_decomposed.")

def node_outputs(c: Conversion, module, names, samples):
    """Each named node's output on every sample, run node by node."""
    from torch.fx import Interpreter
    seen: dict[str, list[Any]] = {name: [] for name in names}

    class Recorder(Interpreter):  # type: ignore[misc]  # torch is typed as Any here
        def run_node(self, n):
            result = super().run_node(n)
            if n.name in seen:
                seen[n.name].append(result)
            return result

    recorder = Recorder(module)
    for sample in samples:
        recorder.run(*(t.clone() for t in sample))
    return seen

def dynamic_layers(c: Conversion, samples):
    """The eager model that was quantized and exported, against its float source."""
    if c.quantized_eager is None:
        raise Unreadable("per-layer figures need a Python source: torch.ao.ns reads eager or FX modules, not TorchScript")
    import torch.ao.ns._numeric_suite as ns
    float_model, quantized = copy.deepcopy(c.float_model), copy.deepcopy(c.quantized_eager)
    ns.prepare_model_outputs(float_model, quantized)
    for sample in samples:
        float_model(*(t.clone() for t in sample))
        quantized(*(t.clone() for t in sample))
    found = ns.get_matching_activations(float_model, quantized)
    modules = dict(quantized.named_modules())
    rows = []
    for logged, pair in found.items():
        name = logged.removesuffix(".stats")
        module = modules.get(name)
        if module is None or not type(module).__module__.startswith(QUANTIZED_MODULES):
            continue  # logged for context (LayerNorm, ...), not quantized
        rows.append(row(c, name, type(module).__name__, pair["float"], pair["quantized"]))
    return rows

def static_layers(c: Conversion, samples):
    """Static INT8 ships through TorchScript graph mode, which the numeric suite
    cannot read; the same qconfig, skips and calibration through FX graph mode can."""
    torch = c.torch
    if isinstance(c.float_model, torch.jit.ScriptModule):
        raise Unreadable("per-layer figures need a Python source: torch.ao.ns reads eager or FX modules, not TorchScript")
    import torch.ao.ns._numeric_suite_fx as ns
    from torch.ao import quantization as q
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    mapping = q.QConfigMapping().set_global(q.get_default_qconfig(c.decl["engine"]))
    for name in c.decl.get("quantize_skip", []):
        mapping.set_module_name(c.inner_prefix + name, None)
    with without_stack_traces():
        try:
            prepared = prepare_fx(copy.deepcopy(c.float_model), mapping, samples[0])
        except Exception as e:
            raise Unreadable(f"per-layer figures need a model torch.fx can trace, and this one stops it: "
                             f"{type(e).__name__}: {str(e).strip().splitlines()[0]}")
        for sample in c.calibration or samples:
            prepared(*(t.clone() for t in sample))
        quantized = convert_fx(prepared)
        float_logged, quantized_logged = ns.add_loggers("fp32", copy.deepcopy(c.float_model), "int8", quantized,
                                                        ns.OutputLogger)
    for sample in samples:
        float_logged(*(t.clone() for t in sample))
        quantized_logged(*(t.clone() for t in sample))
    info = ns.extract_logger_info(float_logged, quantized_logged, ns.OutputLogger, "int8")
    # Named after the quantized module (the conv of a fused conv-bn-relu), the name
    # quantize_skip takes.
    targets = {n.name: n.target for n in quantized_logged.graph.nodes if n.op == "call_module"}
    rows = []
    for node, results in info.items():
        pair = results.get("node_output", {})
        if "fp32" not in pair or "int8" not in pair:
            continue
        kind = str(pair["int8"][0]["ref_node_target_type"])
        if not kind.startswith(QUANTIZED_MODULES):
            continue
        name = str(targets.get(pair["int8"][0]["ref_node_name"], node))
        rows.append(row(c, name, kind.rsplit(".", 1)[-1], pair["fp32"][0]["values"], pair["int8"][0]["values"]))
    return rows

def row(c: Conversion, name, kind, floats, quantized):
    """The worst sample's SQNR (dB) and relative error of one layer's output."""
    from torch.ao.ns.fx.utils import compute_sqnr
    worst_sqnr, worst_relative = float("inf"), 0.0
    for f, q in zip(floats, quantized):
        f, q = first_tensor(f, c.torch), first_tensor(q, c.torch)
        if f is None or q is None or f.shape != q.shape:
            continue
        f, q = f.float(), q.float()
        worst_sqnr = min(worst_sqnr, float(compute_sqnr(f, q)))
        scale = float(f.abs().max())
        worst_relative = max(worst_relative, float((f - q).abs().max()) / scale if scale > 0 else 0.0)
    return {"name": name.removeprefix(c.inner_prefix), "kind": kind,
            "sqnr_db": round(worst_sqnr, 3) if worst_sqnr != float("inf") else 999.0,
            "relative": round(worst_relative, 6)}

def layers_message(c: Conversion, rows, why):
    """Lines for a drift error: the layers that lose the most, and the fix."""
    if why:
        return [f"per-layer figures: {why}"]
    if not rows:
        return []
    how = "the PT2E graphs node by node" if c.decl.get("format") == "pte" else "torch.ao.ns"
    lines = [f"layers that lose the most ({how}: each quantized layer's output, float against INT8, "
             f"worst of {c.layer_samples} sample(s)):"]
    lines += [f"  {r['name']} ({r['kind']}): SQNR {r['sqnr_db']:.1f} dB, relative error {r['relative']:.3g}"
              for r in rows[:NAMED_IN_ERRORS]]
    return lines


@contextlib.contextmanager
def without_stack_traces():
    """FX quantization's tracer records a stack trace per node, and filtering them
    imports torch._dynamo and sympy (about 1,200 modules, 1.5 to 2.2 s here) in every
    process that traces; the figures need no stack traces."""
    from torch.ao.quantization.fx import tracer
    original = tracer.QuantizationTracer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.record_stack_traces = False

    tracer.QuantizationTracer.__init__ = init
    try:
        yield
    finally:
        tracer.QuantizationTracer.__init__ = original


class Unreadable(Exception):
    """The numeric suite cannot read this model; the message says why."""


def first_tensor(value, torch):
    if hasattr(value, "is_quantized") and value.is_quantized:
        return value.dequantize()
    if isinstance(value, torch.Tensor):
        return value
    for _, leaf in leaves(value):
        if isinstance(leaf, torch.Tensor):
            return leaf.dequantize() if leaf.is_quantized else leaf
    return None
