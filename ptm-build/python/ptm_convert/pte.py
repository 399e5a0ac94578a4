"""One model's conversion to an ExecuTorch program (.pte): torch.export (declared dynamic
dimensions become `Dim`s) -> INT8 through PT2E with the XNNPACK quantizer -> lowered to
the XNNPACK delegate -> to_executorch. Verified like a .ptl: every output after export,
after quantization, and in ExecuTorch's native runtime, through a runner compiled from
the same C++ (ptm_executorch.cpp) the `ptm` runtime links."""
import contextlib
import io
import os
import re
import struct
import tempfile
import warnings

from typing import Any, Optional

from . import decompositions, inputs, layers, provenance, pt2e, reference, replay, report, source, verify
from .common import DTYPE_CODES, Failure, sample_key, identity, last_frames, log, native_stderr, state_bytes, with_pte_identity
from .conversion import Conversion, Module, Sample, TensorSpec, Torch
from .runner import Runner

# Element type codes of ptm_executorch.h (ptm::DType).


def run(c: Conversion) -> report.Report:
    """Converts the declared model into an ExecuTorch program at c.out and reports what it
    measured."""
    torch = c.torch
    decl = c.decl
    # This process converts one program and ends: torch.fx's provenance records stay short in it.
    provenance.shorten_records()
    with torch.no_grad():
        measured = source.measure(c)
        model, samples, calibration = measured.model, measured.samples, measured.calibration
        check, references, outputs = measured.check, measured.references, measured.outputs
        # Across each declared range, the maximum included: the program's memory is
        # planned for it. Intermediate stages see the first samples only; ExecuTorch's
        # runtime sees these too.
        ranged = inputs.range_samples(c)
        check, references = check + ranged, references + [verify.outputs_of(c, model, s, "load") for s in ranged]
        # Imports torch, so here rather than with the module.
        from . import recurrent
        model = recurrent.scan_loops(c, model)
        c.sizes.append({"stage": "source", "bytes": state_bytes(model)})

        c.stage = "export"
        dynamic_shapes = export_shapes(c)
        program = export(c, model, samples[0], dynamic_shapes)
        verify.measure(c, "exported", program.module(), check, references)
        if decl["quantize"] != "none":
            c.stage = "quantize"
            quantized = pt2e.quantize(c, program, calibration or samples)
            verify.measure(c, "quantized", quantized, check, references)
            c.layers, c.layers_unavailable = layers.measure_pt2e(c, program.module(), quantized, calibration or samples)
            program = export(c, quantized, samples[0], dynamic_shapes, "exporting the quantized graph")

        c.stage = "lower"
        data, operators = lower(c, program)
        warn_undelegated(c)
        c.stage = "save"
        data = with_pte_identity(data, artifact_identity(c, outputs))
        with open(c.out, "wb") as f:
            f.write(data)
        c.sizes.append({"stage": "pte", "bytes": len(data)})

        c.stage = "verify"
        extra, extra_references = verify.top1_samples(c, model, check, references)
        check, references = check + extra, references + extra_references
        log(c.name, "verifying in ExecuTorch's native runtime")
        native = NativeOutputs(run_native(c, check))
        verify.measure(c, "executorch", native, check, references)
        verify.check_tolerance(c, check, references)
        reference.write(c, check, references, lambda sample: native(*sample))
        c.stage = "done"
    from executorch import version
    return report.build(c, outputs, operators, executorch=version.__version__, delegation=c.delegation)

def artifact_identity(c: Conversion, outputs):
    """What the .pte says of itself (common.identity), with the ExecuTorch that
    exported it: the runtime refuses a program newer than the one it links."""
    from executorch import version
    return identity(c.name, c.job.key, c.job.ptm_build, c.decl["inputs"], outputs,
                    [("executorch", version.__version__)])

def export_shapes(c: Conversion):
    """Declared dynamic dimensions as torch.export `Dim`s, one per name."""
    dims, shapes = inputs.export_dims(c)
    return tuple(shapes) if dims else None

def export(c: Conversion, model, sample, dynamic_shapes, label="exporting with torch.export"):
    log(c.name, label)
    printed: list[str] = []
    try:
        with warnings.catch_warnings(), native_stderr(printed), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return c.torch.export.export(model, sample, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as e:
        dynamic = dynamic_failure(c, e, model, sample)
        if dynamic:
            raise Failure("export", dynamic[0], dynamic[1], last_frames(3))
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Failure("export", f"torch.export failed: {type(e).__name__}: {reason}",
                      "a .pte needs a model torch.export can capture: no control flow on tensor values, and every "
                      "declared dynamic dimension really free (see the error); or ship it as format = \"ptl\"",
                      last_frames(3))

def dynamic_failure(c: Conversion, error, model=None, sample=None):
    """(message, fix) when torch.export could not keep a declared dynamic dimension
    dynamic: the model, the input and dimension, torch's own line about it, and the
    fix that fits (a range torch suggests, or a fixed size); None for other errors."""
    text = str(error)
    dims = inputs.dynamic_dims(c)
    lines = [line.strip().removeprefix("- ").strip() for line in text.splitlines() if line.strip()]
    named = [name for name in dims if re.search(rf"\b{re.escape(name)}\b", text)]
    if not named or not ("Constraints violated" in text or "specialized" in text or "specialize" in text):
        return None
    name = named[0]
    d = dims[name]
    where = next((f"`{spec['name']}` (dimension {axis})" for spec in c.decl["inputs"]
                  for axis, dim in enumerate(spec["shape"]) if not isinstance(dim, int) and dim["name"] == name), f"`{name}`")
    key = next((f"package.metadata.models.{c.name}.inputs[{i}].shape" for i, spec in enumerate(c.decl["inputs"])
                if any(not isinstance(dim, int) and dim["name"] == name for dim in spec["shape"])), "")
    noise = ("Constraints violated", "For more information", "Suggested fixes", "The error above", "If you")
    reasons = [line for line in lines if re.search(rf"\b{re.escape(name)}\b", line) and not line.startswith(noise)
               and not re.match(rf"{re.escape(name)}\s*=", line)]
    reason = " ".join(line.split(". If you're using")[0] for line in reasons[:2]) or lines[0]
    example = d["example"]
    low, high = inputs.size_range(d)
    declared = f"\"{name}={example}" + (f":{low}..{high}\"" if high is not None else "\"")
    message = (f"model `{c.name}`: torch.export could not keep `{name}` of input {where} dynamic, declared {declared}: "
               f"torch: {reason}")
    suggested = suggested_range(text, name, example, low, high)
    step = suggested_step(c, text, name, model, sample, example, low, high)
    if step:
        fix = (f"the model takes only some sizes of `{name}` (torch's guard above; strides and pooling often need a multiple): "
               f"declare the multiples it takes, \"{name}={step[1]}:{step[2]}..{step[3]} step {step[0]}\" in {key} "
               f"(torch may then find the next layer's limit); or ship it as format = \"ptl\"")
    elif suggested and suggested != (low, high):
        fix = (f"declare the sizes the model takes, as torch suggests: \"{name}={example}:{suggested[0]}..{suggested[1]}\" "
               f"in {key}; or ship it as format = \"ptl\"")
    elif "specialized" in text or "specialize" in text:
        fix = (f"the model's code fixes `{name}` for torch.export (a Python loop over it, such as a recurrent cell "
               f"called once per step, or a reshape to a literal size): declare it fixed ({example}) in {key}, or ship "
               f"the model as format = \"ptl\", which traces or scripts it and checks other sizes; a range "
               f"(\"{name}={example}:1..128\") helps only where the model has a limit")
    else:
        fix = (f"declare the sizes the model takes as a range, e.g. \"{name}={example}:1..{max(example, 128)}\" in {key}, "
               "or ship it as format = \"ptl\"")
    return message, fix

# Steps tried for dimensions whose guard keeps only some sizes (powers of two: the
# strides of convolutions and pooling multiply).
STEPS_TRIED = (2, 4, 8, 16, 32)

def suggested_step(c: Conversion, text, name, model, sample, example, low, high):
    """(step, example, min, max) when the guard on `name` divides (a CNN's ceil-mode
    pooling keeps some sizes) and the model exports with every such dimension taking
    the multiples of a power of two, the smallest that works; None otherwise. Exports
    once per step tried: only a failed build pays for it."""
    guarded = {seen for seen, guard in re.findall(r"Not all values of (\w+) = .*? satisfy the generated guard (.+?)\.?$", text,
                                                  re.MULTILINE) if any(op in guard for op in ("%", "//", "Mod(", "FloorDiv("))}
    if name not in guarded or high is None or model is None or sample is None:
        return None
    dims = inputs.dynamic_dims(c)
    for step in STEPS_TRIED:
        first, last = -(-low // step) * step, high // step * step
        examples = [dims[g]["example"] for g in guarded if g in dims]
        if any(e < 2 * step for e in examples) or last < first + step:
            break
        if any(e % step for e in examples):
            continue
        _, shapes = inputs.export_dims(c, {g: step for g in guarded if g in dims})
        log(c.name, f"trying `{'`, `'.join(sorted(guarded))}` in steps of {step}")
        try:
            with warnings.catch_warnings(), native_stderr([]), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                c.torch.export.export(model, sample, dynamic_shapes=tuple(shapes), strict=False)
        except Exception:
            continue
        return step, example, first, last
    return None

def suggested_range(text, name, example, low, high):
    """The bounds of torch's "Suggested fixes: name = Dim('name', min=.., max=..)"."""
    found = re.search(rf"{re.escape(name)} = Dim\('{re.escape(name)}'(?P<args>[^)]*)\)", text)
    if not found:
        return None
    bounds = dict(re.findall(r"(min|max)=(\d+)", found.group("args")))
    new_low, new_high = int(bounds.get("min", low)), bounds.get("max")
    new_high = int(new_high) if new_high is not None else high
    if new_high is None or not new_low <= example <= new_high:
        return None
    return new_low, new_high

def lower(c: Conversion, program):
    """The program's bytes, and the operators left outside the XNNPACK delegate."""
    from executorch.exir import EdgeProgramManager, to_edge_transform_and_lower
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    partitioners = [XnnpackPartitioner()] if c.decl["optimize"] else []
    log(c.name, "lowering to the XNNPACK delegate" if partitioners else "lowering to ExecuTorch's own kernels")
    printed: list[str] = []
    try:
        with warnings.catch_warnings(), native_stderr(printed), contextlib.redirect_stdout(io.StringIO()), \
                replay.skipping_idle():
            warnings.simplefilter("ignore")
            with decompositions.skipping_idle():
                edge = to_edge_transform_and_lower(program, partitioner=partitioners)
            if c.decl["quantize"] != "none":
                edge = EdgeProgramManager(fuse_and_fold(edge.exported_program()), compile_config=edge.compile_config)
            # Counted before to_executorch, which adds its memory planning to the graph.
            c.delegation = delegation(edge.exported_program())
            executorch_program = edge.to_executorch()
    except Exception as e:
        raise Failure("lower", f"lowering to ExecuTorch failed: {type(e).__name__}: {str(e).strip()}",
                      "set optimize = false to leave the graph to ExecuTorch's own kernels, or ship it as "
                      "format = \"ptl\"", last_frames(3))
    plan = executorch_program.executorch_program.execution_plan[0]
    # What a load allocates for activations: every buffer the memory plan sizes (the
    # first, by ExecuTorch's convention, is 0 and reserved).
    c.planned_memory = sum(int(size) for size in plan.non_const_buffer_sizes)
    operators = sorted({f"{op.name}.{op.overload}" if op.overload else op.name for op in plan.operators})
    return bytes(executorch_program.buffer), operators

# The share of a graph's operators outside the delegate from which a build warns.
UNDELEGATED_WARNING_SHARE = 0.25

def delegation(program) -> dict[str, Any]:
    """How many of the lowered graph's operators the delegate took (counted in each
    delegated subgraph) and how many stay outside it, by operator."""
    delegated, outside = 0, dict[str, int]()
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if "executorch_call_delegate" in name:
            lowered = getattr(program.graph_module, node.args[0].target)
            delegated += sum(1 for inner in lowered.original_module.graph.nodes if inner.op == "call_function")
        elif name != "getitem":
            outside[name] = outside.get(name, 0) + 1
    return {"delegated": delegated, "undelegated": sum(outside.values()), "outside": outside}

def warn_undelegated(c: Conversion):
    """A warning when much of the graph runs outside XNNPACK, on ExecuTorch's portable
    kernels: such a .pte can be several times slower than the model's .ptl."""
    counts = c.delegation
    if counts is None:
        return
    total = counts["delegated"] + counts["undelegated"]
    if not c.decl["optimize"] or total == 0 or counts["undelegated"] < UNDELEGATED_WARNING_SHARE * total:
        return
    busiest = sorted(counts["outside"].items(), key=lambda item: (-item[1], item[0]))
    named = ", ".join(f"{name} ({n})" for name, n in busiest[:6]) + (", ..." if len(busiest) > 6 else "")
    c.warnings.append(f"{counts['undelegated']} of the {total} operators ({100 * counts['undelegated'] / total:.0f}%) stay "
                      f"outside the XNNPACK delegate and run on ExecuTorch's portable kernels, which are much slower: "
                      f"{named}; measure this model as format = \"ptl\" too, it may run faster")

def run_native(c: Conversion, samples):
    """Every sample through the runner: ExecuTorch's native runtime, one thread."""
    runner = Runner(c.name, c.job.runner_dir)
    with tempfile.TemporaryDirectory() as scratch:
        inputs, outputs = os.path.join(scratch, "samples.bin"), os.path.join(scratch, "outputs.bin")
        with open(inputs, "wb") as f:
            f.write(encode(c.torch, samples))
        done = runner.run([c.out, inputs, outputs])
        if done.returncode != 0 or not os.path.isfile(outputs):
            said = [line for line in done.stderr.splitlines() if not line.startswith("I ")]
            raise Failure("verify", f"ExecuTorch's runtime ({runner.path}) could not run the program: "
                                    f"{' / '.join(said[-6:]) or done.returncode}",
                          "this is a bug in the lowering or the runtime; ship the model as format = \"ptl\" meanwhile")
        with open(outputs, "rb") as f:
            results = decode(c.torch, f.read())
    return {sample_key(s): r for s, r in zip(samples, results)}


def fuse_and_fold(program):
    """What ExecutorchBackendConfig(do_quant_fusion_and_const_prop=True) runs: fuses the
    dequantize ops left around 8-bit embeddings into `embedding_byte` (to_executorch has
    no kernel for them alone) and folds constants; except that an 8-bit embedding lookup
    stays one, since folding a lookup with constant indices (positions 0..n) stores its
    result as a float table (64 KB of the review model, 0.35% of its fp32 size)."""
    from executorch.exir.dialects._ops import ops as exir_ops
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass
    # A helper of ExecuTorch's own fused pass (pinned 1.5.1): the parameters' values.
    from executorch.exir.passes.quant_fusion_pass import QuantFusionPass, _get_node_value_dict
    QuantFusionPass(_fix_node_meta_val=True, node_value_dict=_get_node_value_dict(program))(program.graph_module)
    keep = {exir_ops.edge.quantized_decomposed.embedding_byte.default}
    return constant_prop_pass(program, custom_skip_targets=keep)


class NativeOutputs:
    """What the runner returned, callable like a module on the samples it ran."""

    def __init__(self, results):
        self.results = results

    def __call__(self, *sample):
        return tuple(self.results[sample_key(sample)])


def encode(torch: Torch, samples: list[Any]) -> bytes:
    """The runner's samples file (ptm_executorch_runner.cpp describes it)."""
    parts = [struct.pack("<I", len(samples))]
    for sample in samples:
        parts.append(struct.pack("<I", len(sample)))
        for t in sample:
            data = t.contiguous().numpy().tobytes()
            parts.append(struct.pack("<iI", DTYPE_CODES.index(str(t.dtype).replace("torch.", "")), t.dim()))
            parts.append(struct.pack(f"<{t.dim()}q", *t.shape))
            parts.append(struct.pack("<Q", len(data)) + data)
    return b"".join(parts)


def decode(torch, data):
    """The runner's outputs file: the layout of `encode`."""
    return decode_at(torch, data, 0)[0]


def decode_at(torch: Torch, data: bytes, start: int) -> tuple[list[list[Any]], int]:
    """The samples section of `encode`'s layout that starts at byte `start` of `data`,
    and the byte after it."""
    at = start

    def take(layout):
        nonlocal at
        values = struct.unpack_from(layout, data, at)
        at += struct.calcsize(layout)
        return values

    results = []
    for _ in range(take("<I")[0]):
        outputs = []
        for _ in range(take("<I")[0]):
            code, rank = take("<iI")
            shape = take(f"<{rank}q")
            (length,) = take("<Q")
            if not 0 <= code < len(DTYPE_CODES):
                raise Failure("verify", f"ExecuTorch's runtime returned an output of an element type ptm does not know (code {code})")
            dtype = getattr(torch, DTYPE_CODES[code])
            if length == 0:
                outputs.append(torch.empty(shape, dtype=dtype))
            else:
                outputs.append(torch.frombuffer(bytearray(data[at:at + length]), dtype=dtype).reshape(shape).clone())
            at += length
        results.append(outputs)
    return results, at
