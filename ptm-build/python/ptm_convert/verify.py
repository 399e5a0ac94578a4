"""Verification: every stage's outputs against the source model's, per output, and the
error that says at which stage drift began, which layers lose most, and what to change."""
import time
from typing import Any

from . import compare
from .common import SEED, Failure, describe, last_frames, log, sample_key
from .conversion import Conversion, Sample, Tensor
from . import inputs, layers

# Intermediate stages are diagnostic: on a passing build they are measured on this many
# example inputs; the runtime stage (the Lite Interpreter's, or ExecuTorch's), which
# decides, always sees every sample.
# When a check fails, every stage is measured again on every sample.
QUICK_SAMPLES = 2
RUNTIME_STAGES = ("lite", "executorch")

# Rows of a classifier-shaped output the runtime stage compares when the model's cost
# allows: with 8 rows one flipped row moves top-1 agreement by 0.125 and decides a 0.9
# verdict alone; with 200 it moves it by 0.005.
TOP1_ROWS = 200
# Seconds of source-model forwards the extra samples may cost (the runtime runs them
# once more): a model slow enough to get fewer rows reports the wider interval.
TOP1_SECONDS = 10.0
# Bytes the extra samples may hold together (the examples are bounded by the manifest).
TOP1_BYTES = 256 << 20


def outputs_of(c: Conversion, module, sample, stage):
    try:
        # Copies: a model that writes an input in place must not change the samples
        # every later stage is compared on.
        result = module(*(t.clone() for t in sample))
    except Exception as e:
        raise Failure(stage, f"forward failed on the example inputs: {type(e).__name__}: {str(e).strip()}",
                      "check the declared inputs (dtype, shape, range) against what forward() expects", last_frames())
    if isinstance(result, c.torch.Tensor):
        return (result,)
    if isinstance(result, (tuple, list)) and result and all(isinstance(t, c.torch.Tensor) for t in result):
        return tuple(result)
    if isinstance(result, (tuple, list)) and result:
        bad = next(i for i, t in enumerate(result) if not isinstance(t, c.torch.Tensor))
        raise Failure(stage, f"forward returned {describe(result)} whose item {bad} is {describe(result[bad])}; "
                      "ptm takes a Tensor or a flat tuple of Tensors",
                      f"return the tensors as one flat tuple (e.g. `return a, b, c`) and name them in "
                      f"package.metadata.models.{c.name}.outputs")
    raise Failure(stage, f"forward returned {describe(result)}; ptm takes a Tensor or a flat tuple of Tensors",
                  "return a tensor, or a flat tuple of tensors, from forward()")

def top1_samples(c: Conversion, model, samples, references):
    """More samples at the example sizes, with the source model's outputs, when an output
    is classifier-shaped: up to TOP1_ROWS rows, as many as TOP1_SECONDS of forwards and
    TOP1_BYTES allow. Sample i is drawn by its own generator seeded SEED + 1000 + i
    (docs/manifest.md). ([], []) for a model without such an output."""
    shaped = [compare.plain(r) for r in references[0] if compare.classifier_shaped(compare.plain(r))]
    if not shaped:
        return [], []
    per_sample = min(max(1, r.argmax(-1).numel()) for r in shaped)
    have = per_sample * len(samples)
    extra: list[Sample] = []
    extra_references: list[tuple[Tensor, ...]] = []
    started = time.perf_counter()
    sample_bytes = max(1, sum(t.element_size() * t.numel() for t in samples[0]))
    while have < TOP1_ROWS and time.perf_counter() - started < TOP1_SECONDS and (len(extra) + 1) * sample_bytes <= TOP1_BYTES:
        sample = inputs.sample_at(c, {}, SEED + 1000 + len(extra))
        extra.append(sample)
        extra_references.append(outputs_of(c, model, sample, "load"))
        have += per_sample
    if extra:
        log(c.name, f"comparing top-1 over {per_sample * (len(samples) + len(extra))} rows ({len(extra)} more samples)")
    c.top1_only = len(extra)
    return extra, extra_references

def measure(c: Conversion, stage, module, samples, references):
    c.measured.append((stage, module))
    if stage not in RUNTIME_STAGES:
        c.drift.append(compare_stage(c, stage, module, samples[:QUICK_SAMPLES], references[:QUICK_SAMPLES], 0))
    else:
        c.drift.append(compare_stage(c, stage, module, samples, references, c.top1_only))

def compare_stage(c: Conversion, stage, module, samples, references, top1_only):
    """The stage's figures over `samples`, the last `top1_only` of them (top1_samples)
    counting towards top-1 agreement alone."""
    def shape_changed(message):
        raise Failure(c.stage, message)

    # Comparing outputs needs the graph's results, not its optimization: the
    # profiling executor would re-optimize the graph on the first calls, which
    # costs far more than running it a few dozen times.
    with c.torch.jit.optimized_execution(False):
        return compare.measure(c.torch, stage, lambda s: outputs_of(c, module, s, c.stage),
                               samples, references, c.output_names, shape_changed, top1_only)

def problems(c: Conversion, stage_drift):
    return compare.problems(stage_drift, c.decl["tolerance"], c.decl["quantize"] != "none")

def check_tolerance(c: Conversion, samples, references):
    if any(problems(c, d) for d in c.drift):
        # Measure every stage on every sample, so the error names where drift began.
        c.drift = [compare_stage(c, stage, module, samples, references, c.top1_only) for stage, module in c.measured]
    for d in c.drift:
        found = problems(c, d)
        if found:
            raise Failure("verify", drift_message(c, d, found), drift_hint(c, d["stage"], found))

def drift_message(c: Conversion, d, found):
    lines = [f"outputs drifted from the source model at stage `{d['stage']}` over {d['samples']} samples:"]
    lines += [f"- output `{o['name']}`: {reason}" for o, reason in found]
    if len(d["outputs"]) > 1:
        lines.append("every output at that stage:")
        lines += [f"  {line}" for line in compare.summary(d)]
    for o, _ in found:
        if compare.degenerate(o):
            lines.append(f"output `{o['name']}` is degenerate in the source model: its values reach only "
                         f"{o['source_max_abs']:.3g}, so any difference is a large relative error; the model looks "
                         "untrained (random weights, or BatchNorm statistics at their initial values)")
    if c.decl["quantize"] != "none" and d["stage"] != "exported":
        lines += layers.layers_message(c, c.layers, c.layers_unavailable)
    if c.decl["quantize"] == "static" and d["stage"] != "exported":
        lines.append(f"static INT8 was calibrated on {c.calibration_count} sample(s) from {c.decl['calibration']}")
        if c.unobserved:
            lines.append(f"{c.unobserved} observer(s) saw no calibration data, so their layers use torch's default "
                         "INT8 ranges")
    return "\n".join(lines)

def drift_hint(c: Conversion, stage, found):
    table = f"package.metadata.models.{c.name}.tolerance"
    accept = f"if the drift is acceptable, raise {table}"
    if any(compare.degenerate(o) for o, _ in found):
        return (f"build the model with trained weights (weights = \"<state_dict>.pth\", or load them in the source "
                f"callable); {accept}")
    if stage == "exported":
        return (f"the {c.decl['export']} export changed the outputs before any quantization: check that the example "
                f"inputs (dtype, shape, range) are valid for the model; {accept}")
    if stage == "optimized":
        return f"optimize_for_mobile changed the outputs: skip passes with optimize_blocklist = [\"...\"] or set optimize = false; {accept}"
    if stage == "executorch":
        return (f"ExecuTorch's runtime computes the program differently from the graph it was lowered from: try "
                f"optimize = false, which leaves the graph to ExecuTorch's own kernels instead of the XNNPACK delegate; {accept}")
    if stage == "lite":
        return f"the Lite Interpreter computes the saved model differently from the module it was saved from: try optimize = false; {accept}"
    skip = ""
    if c.layers:
        skip = (f"keep the worst layers in float with quantize_skip = [\"{c.layers[0]['name']}\"] "
                f"(package.metadata.models.{c.name}), ")
    if c.decl["quantize"] == "static":
        return (f"{skip}add calibration samples that cover the inputs the app sees ({c.calibration_count} now), try "
                f"quantize = \"dynamic\" (weights only, no calibration), or keep the model in float with quantize = \"none\"; {accept}")
    return f"{skip}keep the model in float with quantize = \"none\"; {accept}"


class Remembered:
    """A runtime's module that keeps what it returned for each sample (by content), so
    that a later reader of those outputs (the self-check's reference data) does not run
    the model again. Every call still runs it: a model with state sees each call."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.outputs: dict[str, Any] = {}

    def __call__(self, *sample: Any) -> Any:
        # Keyed before the call: a model may write its inputs in place.
        key = sample_key(sample)
        result = self.module(*sample)
        self.outputs.setdefault(key, result)
        return result

    def recalled(self, *sample: Any) -> Any:
        """What the module returned for `sample`, run again only if it never saw it."""
        key = sample_key(sample)
        return self.outputs[key] if key in self.outputs else self(*sample)
