"""A model to a Lite Interpreter file (.ptl): load -> export -> quantize -> optimize -> save
-> verify. Each step is a function of the `Conversion` (conversion.py) in a module of
its own: load, inputs, adapt, trace, quantize, layers, verify."""
import os
import warnings
from typing import Any, Optional

from . import archive, layers, quantize, reference, report, source, trace, verify
from .common import Failure, identity, last_frames, log, state_bytes
from .conversion import Conversion, Module, Sample, TensorSpec


def artifact_identity(c: Conversion, outputs):
    """What the .ptl says of itself (common.identity)."""
    return identity(c.name, c.job.key, c.job.ptm_build, c.decl["inputs"], outputs)

def run(c: Conversion) -> report.Report:
    """Converts the declared model into c.out and reports what it measured."""
    torch = c.torch
    decl = c.decl
    torch.backends.quantized.engine = decl["engine"]
    with torch.no_grad():
        measured = source.measure(c)
        model, samples, calibration = measured.model, measured.samples, measured.calibration
        check, references, outputs = measured.check, measured.references, measured.outputs

        c.sizes.append({"stage": "source", "bytes": state_bytes(model)})
        if decl["quantize"] == "dynamic" and not isinstance(model, torch.jit.ScriptModule):
            # Eager dynamic quantization comes before export: the first TorchScript
            # module is already INT8, so there is no float `exported` stage.
            c.stage = "quantize"
            c.quantized_eager = quantize.quantize_eager(c, model)
            current = export(c, c.quantized_eager, samples[0], "exporting the quantized model")
            record_size(c, "quantized", current)
            verify.measure(c, "quantized", current, check, references)
            c.layers, c.layers_unavailable = layers.measure_layers(c, calibration or samples)
        else:
            c.stage = "export"
            current = export(c, model, samples[0])
            record_size(c, "exported", current)
            verify.measure(c, "exported", current, check, references)
            if decl["quantize"] != "none":
                c.stage = "quantize"
                current = quantize.quantize_graph(c, current, calibration)
                record_size(c, "quantized", current)
                verify.measure(c, "quantized", current, check, references)
                c.layers, c.layers_unavailable = layers.measure_layers(c, calibration or samples)

        rewritten = None
        if decl["optimize"]:
            c.stage = "optimize"
            current = optimize(c, current)
            rewritten = archive.rewrite(current._save_to_buffer_for_lite_interpreter(), artifact_identity(c, outputs))
            c.sizes.append({"stage": "optimized", "bytes": len(rewritten)})
            verify.measure(c, "optimized", current, check, references)

        if decl["lints"]:
            lint(c, current)

        c.stage = "save"
        log(c.name, "saving for the Lite Interpreter")
        rewritten = rewritten or archive.rewrite(current._save_to_buffer_for_lite_interpreter(), artifact_identity(c, outputs))
        with open(c.out, "wb") as f:
            f.write(rewritten)
        if decl["max_bytecode"] is not None:
            rewritten = backport(c, decl["max_bytecode"]) or rewritten
        c.sizes.append({"stage": "ptl", "bytes": len(rewritten)})

        c.stage = "verify"
        extra, extra_references = verify.top1_samples(c, model, check, references)
        check, references = check + extra, references + extra_references
        log(c.name, "verifying in the Lite Interpreter")
        lite = torch.jit.mobile._load_for_lite_interpreter(c.out)
        ran = verify.Remembered(lite)
        verify.measure(c, "lite", ran, check, references)
        operators = sorted(torch.jit.mobile._export_operator_list(lite))
        bytecode = torch.jit.mobile._get_model_bytecode_version(c.out)
        verify.check_tolerance(c, check, references)
        reference.write(c, check, references, lambda sample: verify.outputs_of(c, ran.recalled, sample, "verify"))
        c.stage = "done"
    return report.build(c, outputs, operators, int(bytecode))

def export(c: Conversion, model, example, label="exporting"):
    torch = c.torch
    if isinstance(model, torch.jit.ScriptModule):
        return model
    how = c.decl["export"]
    log(c.name, f"{label} ({how})")
    try:
        if how == "script":
            return torch.jit.script(model)
        give_convolutions_a_bias(c, model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, example, check_trace=False)
    except Exception as e:
        if how == "script":
            hint = ("annotate the code for TorchScript (types, no unsupported Python), or try export = \"trace\" "
                    "if forward has no data-dependent control flow")
        else:
            hint = "try export = \"script\""
        raise Failure("export", f"torch.jit.{how} failed: {str(e).strip()}", hint, last_frames(3))
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    trace.check_trace(c, model, traced, example, tracer)
    return traced

def give_convolutions_a_bias(c: Conversion, model):
    """optimize_for_mobile folds a BatchNorm into a traced convolution without bias
    wrongly: the running mean is lost (pytorch/pytorch#76807, still so in torch
    2.11), so a traced torchvision ResNet or MobileNet drifts by its full scale. A
    zero bias is the same function and folds correctly."""
    if not c.decl["optimize"] or "conv_bn_fusion" in c.decl["optimize_blocklist"]:
        return
    torch = c.torch
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd) and module.bias is None:
            module.bias = torch.nn.Parameter(torch.zeros(module.out_channels, dtype=module.weight.dtype))
            count += 1
    if count:
        log(c.name, f"gave {count} convolution(s) without bias a zero bias, which optimize_for_mobile folds "
                       "BatchNorm into correctly (pytorch/pytorch#76807)")

# -- runtime compatibility --------------------------------------------------------------

def backport(c: Conversion, limit):
    """Rewrites c.out in bytecode `limit` when it is newer; returns the new bytes.
    The verify stage then loads this file and compares it with the source model."""
    mobile = c.torch.jit.mobile
    version = int(mobile._get_model_bytecode_version(c.out))
    if version <= limit:
        return None
    runtime = c.decl["runtime"]
    reader = f"runtime {runtime}" if runtime else f"max_bytecode = {limit}"
    c.stage = "backport"
    log(c.name, f"backporting bytecode v{version} to v{limit} ({reader})")
    older = c.out + ".backport"
    try:
        done = mobile._backport_for_mobile(c.out, older, limit)
    except Exception as e:
        done, why = False, f": {type(e).__name__}: {str(e).strip()}"
    else:
        why = ""
    if not done or not os.path.exists(older):
        if os.path.exists(older):
            os.remove(older)
        raise Failure("backport", f"torch {c.torch.__version__} cannot backport this model from bytecode v{version} to v{limit}, "
                      f"which {reader} reads{why}",
                      "update the app's PyTorch Mobile library and declare its release as runtime, "
                      "or convert with the torch release the app's runtime comes from")
    with open(older, "rb") as f:
        data = archive.rewrite(f.read(), artifact_identity(c, c.outputs))
    os.remove(older)
    with open(c.out, "wb") as f:
        f.write(data)
    return data

# -- lints ------------------------------------------------------------------------------

def lint(c: Conversion, module):
    """generate_mobile_module_lints findings, except BUNDLED_INPUT: ptm verifies the
    model on its own example inputs, so bundled inputs would only add size."""
    from torch.utils.mobile_optimizer import generate_mobile_module_lints
    try:
        found = generate_mobile_module_lints(module)
    except Exception as e:  # a lint pass that cannot read the module is not the model's fault
        c.warnings.append(f"mobile lints could not run: {type(e).__name__}: {e}")
        return
    for lint in found:
        if lint.get("name") != "BUNDLED_INPUT":
            c.warnings.append(f"mobile lint {lint.get('name')}: {lint.get('message')} (silence with lints = false)")

def optimize(c: Conversion, module):
    from torch.utils.mobile_optimizer import MobileOptimizerType, optimize_for_mobile
    log(c.name, "optimize_for_mobile")
    blocklist = {getattr(MobileOptimizerType, p.upper()) for p in c.decl["optimize_blocklist"]}
    try:
        return optimize_for_mobile(module, optimization_blocklist=blocklist or None,
                                   preserved_methods=list(c.decl["preserved_methods"]) or None)
    except Exception as e:
        raise Failure("optimize", f"optimize_for_mobile failed: {str(e).strip()}",
                      "skip the failing pass with optimize_blocklist = [\"...\"], or set optimize = false", last_frames(3))

def record_size(c: Conversion, stage, module):
    # Sizes are of the archive as ptm writes it: torch's own save carries source-range
    # records with the paths of this machine, which would make the report differ
    # between checkouts.
    c.sizes.append({"stage": stage, "bytes": len(archive.rewrite(module._save_to_buffer_for_lite_interpreter()))})
