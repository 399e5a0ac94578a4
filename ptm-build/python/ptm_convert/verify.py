"""Verification: every stage's outputs against the source model's, per output, and the
error that says at which stage drift began, which layers lose most, and what to change."""
from . import compare
from .common import Failure, describe, last_frames

# Intermediate stages are diagnostic: on a passing build they are measured on this many
# example inputs; the runtime stage (the Lite Interpreter's, or ExecuTorch's), which
# decides, always sees every sample.
# When a check fails, every stage is measured again on every sample.
QUICK_SAMPLES = 2
RUNTIME_STAGES = ("lite", "executorch")


class Verify:

    def outputs_of(self, module, sample, stage):
        try:
            # Copies: a model that writes an input in place must not change the samples
            # every later stage is compared on.
            result = module(*(t.clone() for t in sample))
        except Exception as e:
            raise Failure(stage, f"forward failed on the example inputs: {type(e).__name__}: {str(e).strip()}",
                          "check the declared inputs (dtype, shape, range) against what forward() expects", last_frames())
        if isinstance(result, self.torch.Tensor):
            return (result,)
        if isinstance(result, (tuple, list)) and result and all(isinstance(t, self.torch.Tensor) for t in result):
            return tuple(result)
        if isinstance(result, (tuple, list)) and result:
            bad = next(i for i, t in enumerate(result) if not isinstance(t, self.torch.Tensor))
            raise Failure(stage, f"forward returned {describe(result)} whose item {bad} is {describe(result[bad])}; "
                          "ptm takes a Tensor or a flat tuple of Tensors",
                          f"return the tensors as one flat tuple (e.g. `return a, b, c`) and name them in "
                          f"package.metadata.models.{self.name}.outputs")
        raise Failure(stage, f"forward returned {describe(result)}; ptm takes a Tensor or a flat tuple of Tensors",
                      "return a tensor, or a flat tuple of tensors, from forward()")

    def measure(self, stage, module, samples, references):
        self.stages.append((stage, module))
        if stage not in RUNTIME_STAGES:
            samples, references = samples[:QUICK_SAMPLES], references[:QUICK_SAMPLES]
        self.drift.append(self.compare(stage, module, samples, references))

    def compare(self, stage, module, samples, references):
        def shape_changed(message):
            raise Failure(self.stage, message)

        # Comparing outputs needs the graph's results, not its optimization: the
        # profiling executor would re-optimize the graph on the first calls, which
        # costs far more than running it a few dozen times.
        with self.torch.jit.optimized_execution(False):
            return compare.measure(self.torch, stage, lambda s: self.outputs_of(module, s, self.stage),
                                       samples, references, self.output_names, shape_changed)

    def problems(self, stage_drift):
        return compare.problems(stage_drift, self.decl["tolerance"], self.decl["quantize"] != "none")

    def check_tolerance(self, samples, references):
        if any(self.problems(d) for d in self.drift):
            # Measure every stage on every sample, so the error names where drift began.
            self.drift = [self.compare(stage, module, samples, references) for stage, module in self.stages]
        for d in self.drift:
            found = self.problems(d)
            if found:
                raise Failure("verify", self.drift_message(d, found), self.drift_hint(d["stage"], found))

    def drift_message(self, d, found):
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
        if self.decl["quantize"] != "none" and d["stage"] != "exported":
            lines += self.layers_message(self.layers, self.layers_unavailable)
        if self.decl["quantize"] == "static" and d["stage"] != "exported":
            lines.append(f"static INT8 was calibrated on {self.calibration_count} sample(s) from {self.decl['calibration']}")
            if self.unobserved:
                lines.append(f"{self.unobserved} observer(s) saw no calibration data, so their layers use torch's default "
                             "INT8 ranges")
        return "\n".join(lines)

    def drift_hint(self, stage, found):
        table = f"package.metadata.models.{self.name}.tolerance"
        accept = f"if the drift is acceptable, raise {table}"
        if any(compare.degenerate(o) for o, _ in found):
            return (f"build the model with trained weights (weights = \"<state_dict>.pth\", or load them in the source "
                    f"callable); {accept}")
        if stage == "exported":
            return (f"the {self.decl['export']} export changed the outputs before any quantization: check that the example "
                    f"inputs (dtype, shape, range) are valid for the model; {accept}")
        if stage == "optimized":
            return f"optimize_for_mobile changed the outputs: skip passes with optimize_blocklist = [\"...\"] or set optimize = false; {accept}"
        if stage == "executorch":
            return (f"ExecuTorch's runtime computes the program differently from the graph it was lowered from: try "
                    f"optimize = false, which leaves the graph to ExecuTorch's own kernels instead of the XNNPACK delegate; {accept}")
        if stage == "lite":
            return f"the Lite Interpreter computes the saved model differently from the module it was saved from: try optimize = false; {accept}"
        skip = ""
        if self.layers:
            skip = (f"keep the worst layers in float with quantize_skip = [\"{self.layers[0]['name']}\"] "
                    f"(package.metadata.models.{self.name}), ")
        if self.decl["quantize"] == "static":
            return (f"{skip}add calibration samples that cover the inputs the app sees ({self.calibration_count} now), try "
                    f"quantize = \"dynamic\" (weights only, no calibration), or keep the model in float with quantize = \"none\"; {accept}")
        return f"{skip}keep the model in float with quantize = \"none\"; {accept}"
