"""INT8: dynamic eager quantization of Python modules, graph mode on TorchScript modules,
`quantize_skip`, and torch's quantization warnings turned into explained findings."""
import sys
import warnings

from .common import Failure, last_frames, log, native_stderr
from .conversion import Conversion

UNOBSERVED = "must run observer before calling calculate_qparams"


def quantize_eager(c: Conversion, model):
    """Dynamic INT8 of a Python module: Linear/LSTM/GRU weights, 8-bit embeddings."""
    torch = c.torch
    from torch.ao import quantization as q
    log(c.name, f"quantizing (dynamic INT8, {c.decl['engine']})")
    spec = {torch.nn.Linear: q.default_dynamic_qconfig,
            torch.nn.LSTM: q.default_dynamic_qconfig,
            torch.nn.GRU: q.default_dynamic_qconfig,
            torch.nn.Embedding: q.float_qparams_weight_only_qconfig,
            torch.nn.EmbeddingBag: q.float_qparams_weight_only_qconfig}
    for name in skipped_modules(c, model):
        spec[name] = None  # a name overrides its type: this module and its children stay float
    try:
        return q.quantize_dynamic(model, spec, dtype=torch.qint8)  # copies the model
    except Exception as e:
        raise quantize_failure(c, e)

def quantize_graph(c: Conversion, exported, calibration):
    """Graph-mode INT8 of a TorchScript module: dynamic (Linear) or static."""
    from torch.ao import quantization as q
    engine, kind = c.decl["engine"], c.decl["quantize"]
    log(c.name, f"quantizing ({kind} INT8, {engine}, graph mode)")
    printed: list[str] = []
    with warnings.catch_warnings(record=True) as caught, native_stderr(printed):
        try:
            skipped = {name: None for name in skipped_modules(c, exported)}
            if kind == "dynamic":
                quantized = q.quantize_dynamic_jit(exported, {"": q.default_dynamic_qconfig, **skipped})
            else:
                def calibrate(module, samples):
                    for sample in samples:
                        module(*sample)

                quantized = q.quantize_jit(exported, {"": q.get_default_qconfig(engine), **skipped}, calibrate, [calibration])
        except Exception as e:
            raise quantize_failure(c, e)
    explain_quantize_warnings(c, [str(w.message) for w in caught] + printed, len(calibration))
    return quantized

def skipped_modules(c: Conversion, model):
    """`quantize_skip`'s names as they are inside `model`; every one must be a module."""
    skip = c.decl.get("quantize_skip", [])
    if not skip:
        return []
    modules = {name for name, _ in model.named_modules()}
    names = [c.inner_prefix + name for name in skip]
    missing = [name for name, inner in zip(skip, names) if inner not in modules]
    if missing:
        weighted = [n.removeprefix(c.inner_prefix) for n, m in model.named_modules()
                    if n.startswith(c.inner_prefix) and n and any(True for _ in m.parameters(recurse=False))]
        raise Failure("quantize", f"`quantize_skip` names {', '.join(f'`{n}`' for n in missing)}, which the model does not "
                      f"have; its modules with weights are: {', '.join(weighted[:40]) or 'none'}"
                      + (" ..." if len(weighted) > 40 else ""),
                      f"name modules as model.named_modules() does in package.metadata.models.{c.name}.quantize_skip")
    log(c.name, f"keeping {', '.join(skip)} in float (quantize_skip)")
    return names

def explain_quantize_warnings(c: Conversion, messages, samples):
    """torch warns once per observer that saw no data; that becomes one explained line.
    Everything else it printed is passed on."""
    c.unobserved = sum(UNOBSERVED in m for m in messages)
    for message in messages:
        if UNOBSERVED not in message:
            print(message, file=sys.stderr)
    if c.unobserved:
        c.warnings.append(
            f"{c.unobserved} quantization observer(s) saw no data while calibrating on {samples} sample(s) (torch: "
            f"\"{UNOBSERVED}\"): no sample reached the layers they watch, so those layers use torch's default INT8 "
            "ranges (scale 1.0, zero point 0); add calibration samples that take the model down every path it has")

def quantize_failure(c: Conversion, e):
    kind, engine = c.decl["quantize"], c.decl["engine"]
    if kind == "static":
        hint = "try quantize = \"dynamic\" (static needs conv/linear layers torch can observe), or quantize = \"none\""
    else:
        hint = "keep the model in float with quantize = \"none\""
    return Failure("quantize", f"{kind} quantization with {engine} failed: {type(e).__name__}: {str(e).strip()}",
                   hint, last_frames(3))
