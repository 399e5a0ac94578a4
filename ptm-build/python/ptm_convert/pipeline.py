"""One model's conversion: load -> export -> quantize -> optimize -> save -> verify. The
steps with a job of their own are mixins: ptm_load, ptm_inputs, ptm_adapt, ptm_trace,
ptm_quantize, ptm_layers, ptm_verify."""
import os
import time
import warnings

from . import archive
from .common import Failure, identity, last_frames, log, state_bytes
from .adapt import Adapt
from .inputs import Inputs
from .layers import LayerDrift
from .load import Load
from .quantize import Quantize
from .trace import TraceGate
from .verify import Verify

MAX_CALIBRATION_SAMPLES = 256


class Pipeline(Load, Inputs, Adapt, TraceGate, Quantize, LayerDrift, Verify):
    """Converts one declared model into self.out and reports what it measured."""

    def __init__(self, torch, job, crate_dir, on_stage=lambda stage: None):
        self.torch, self.decl, self.crate_dir, self.out = torch, job["decl"], crate_dir, job["out"]
        self.calibration_files = job.get("calibration_files", [])
        self.key, self.ptm_build = job.get("key", ""), job.get("ptm_build", "")
        self.output_specs_seen = []
        self.name = self.decl["name"]
        self.on_stage = on_stage
        self.timings = []  # seconds per stage, for the cache entry's report (not models.json)
        self._stage = None
        self.stage = "load"
        self.sizes = []
        self.drift = []
        self.stages = []  # (stage, module), to measure again in full when a check fails
        self.warnings = []  # findings that do not fail the build; become cargo warnings
        self.output_names = []
        self.calibration_count = 0
        self.trace_risk = None  # what an accepted trace risk accepted
        self.quantized_eager = None  # the dynamic model as quantized, before export
        self.layers, self.layers_unavailable = [], None
        self.unobserved = 0  # observers that saw no calibration data

    @property
    def stage(self):
        return self._stage

    @stage.setter
    def stage(self, stage):
        # The supervisor reads it back when this process dies without a result.
        now = time.perf_counter()
        if getattr(self, "_stage", None) is not None:
            self.timings.append({"stage": self._stage, "seconds": round(now - self._since, 4)})
        self._stage, self._since = stage, now
        self.on_stage(stage)

    def identity(self, outputs):
        """What the .ptl says of itself (ptm_common.identity)."""
        return identity(self.name, self.key, self.ptm_build, self.decl["inputs"], outputs)

    def run(self):
        torch = self.torch
        decl = self.decl
        torch.backends.quantized.engine = decl["engine"]
        with torch.no_grad():
            model = self.load()
            samples = self.example_samples()
            model = self.float_model = self.adapt(model, samples[0])
            calibration = self.calibration = self.calibration_samples()
            self.calibration_count = len(calibration)
            check = samples + calibration[:MAX_CALIBRATION_SAMPLES]
            references = [self.outputs_of(model, s, "load") for s in check]
            outputs = self.output_specs(references[0])
            self.output_names = [o["name"] for o in outputs]
            self.mark_dynamic_outputs(model, outputs)
            self.output_specs_seen = outputs

            self.sizes.append({"stage": "source", "bytes": state_bytes(model)})
            if decl["quantize"] == "dynamic" and not isinstance(model, torch.jit.ScriptModule):
                # Eager dynamic quantization comes before export: the first TorchScript
                # module is already INT8, so there is no float `exported` stage.
                self.stage = "quantize"
                self.quantized_eager = self.quantize_eager(model)
                current = self.export(self.quantized_eager, samples[0], "exporting the quantized model")
                self.record_size("quantized", current)
                self.measure("quantized", current, check, references)
                self.layers, self.layers_unavailable = self.measure_layers(calibration or samples)
            else:
                self.stage = "export"
                current = self.export(model, samples[0])
                self.record_size("exported", current)
                self.measure("exported", current, check, references)
                if decl["quantize"] != "none":
                    self.stage = "quantize"
                    current = self.quantize_graph(current, calibration)
                    self.record_size("quantized", current)
                    self.measure("quantized", current, check, references)
                    self.layers, self.layers_unavailable = self.measure_layers(calibration or samples)

            rewritten = None
            if decl["optimize"]:
                self.stage = "optimize"
                current = self.optimize(current)
                rewritten = archive.rewrite(current._save_to_buffer_for_lite_interpreter(), self.identity(outputs))
                self.sizes.append({"stage": "optimized", "bytes": len(rewritten)})
                self.measure("optimized", current, check, references)

            if decl["lints"]:
                self.lint(current)

            self.stage = "save"
            log(self.name, "saving for the Lite Interpreter")
            rewritten = rewritten or archive.rewrite(current._save_to_buffer_for_lite_interpreter(), self.identity(outputs))
            with open(self.out, "wb") as f:
                f.write(rewritten)
            if decl["max_bytecode"] is not None:
                rewritten = self.backport(decl["max_bytecode"]) or rewritten
            self.sizes.append({"stage": "ptl", "bytes": len(rewritten)})

            self.stage = "verify"
            log(self.name, "verifying in the Lite Interpreter")
            lite = torch.jit.mobile._load_for_lite_interpreter(self.out)
            self.measure("lite", lite, check, references)
            operators = sorted(torch.jit.mobile._export_operator_list(lite))
            bytecode = torch.jit.mobile._get_model_bytecode_version(self.out)
            self.check_tolerance(check, references)
            self.stage = "done"
        return {
            "inputs": self.input_specs(),
            "outputs": outputs,
            "sizes": self.sizes,
            "operators": operators,
            "bytecode_version": int(bytecode),
            "drift": self.drift,
            "torch": torch.__version__,
            "calibration_samples": self.calibration_count,
            "seconds": 0.0,
            "stage_seconds": self.timings,
            "warnings": self.warnings,
            "trace_risk": self.trace_risk,
            "layers": self.layers,
            "layers_unavailable": self.layers_unavailable,
        }

    def export(self, model, example, label="exporting"):
        torch = self.torch
        if isinstance(model, torch.jit.ScriptModule):
            return model
        how = self.decl["export"]
        log(self.name, f"{label} ({how})")
        try:
            if how == "script":
                return torch.jit.script(model)
            self.give_convolutions_a_bias(model)
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
        self.check_trace(model, traced, example, tracer)
        return traced

    def give_convolutions_a_bias(self, model):
        """optimize_for_mobile folds a BatchNorm into a traced convolution without bias
        wrongly: the running mean is lost (pytorch/pytorch#76807, still so in torch
        2.11), so a traced torchvision ResNet or MobileNet drifts by its full scale. A
        zero bias is the same function and folds correctly."""
        if not self.decl["optimize"] or "conv_bn_fusion" in self.decl["optimize_blocklist"]:
            return
        torch = self.torch
        count = 0
        for module in model.modules():
            if isinstance(module, torch.nn.modules.conv._ConvNd) and module.bias is None:
                module.bias = torch.nn.Parameter(torch.zeros(module.out_channels, dtype=module.weight.dtype))
                count += 1
        if count:
            log(self.name, f"gave {count} convolution(s) without bias a zero bias, which optimize_for_mobile folds "
                           "BatchNorm into correctly (pytorch/pytorch#76807)")

    # -- runtime compatibility --------------------------------------------------------------

    def backport(self, limit):
        """Rewrites self.out in bytecode `limit` when it is newer; returns the new bytes.
        The verify stage then loads this file and compares it with the source model."""
        mobile = self.torch.jit.mobile
        version = int(mobile._get_model_bytecode_version(self.out))
        if version <= limit:
            return None
        runtime = self.decl["runtime"]
        reader = f"runtime {runtime}" if runtime else f"max_bytecode = {limit}"
        self.stage = "backport"
        log(self.name, f"backporting bytecode v{version} to v{limit} ({reader})")
        older = self.out + ".backport"
        try:
            done = mobile._backport_for_mobile(self.out, older, limit)
        except Exception as e:
            done, why = False, f": {type(e).__name__}: {str(e).strip()}"
        else:
            why = ""
        if not done or not os.path.exists(older):
            if os.path.exists(older):
                os.remove(older)
            raise Failure("backport", f"torch {self.torch.__version__} cannot backport this model from bytecode v{version} to v{limit}, "
                          f"which {reader} reads{why}",
                          "update the app's PyTorch Mobile library and declare its release as runtime, "
                          "or convert with the torch release the app's runtime comes from")
        with open(older, "rb") as f:
            data = archive.rewrite(f.read(), self.identity(self.output_specs_seen))
        os.remove(older)
        with open(self.out, "wb") as f:
            f.write(data)
        return data

    # -- lints ------------------------------------------------------------------------------

    def lint(self, module):
        """generate_mobile_module_lints findings, except BUNDLED_INPUT: ptm verifies the
        model on its own example inputs, so bundled inputs would only add size."""
        from torch.utils.mobile_optimizer import generate_mobile_module_lints
        try:
            found = generate_mobile_module_lints(module)
        except Exception as e:  # a lint pass that cannot read the module is not the model's fault
            self.warnings.append(f"mobile lints could not run: {type(e).__name__}: {e}")
            return
        for lint in found:
            if lint.get("name") != "BUNDLED_INPUT":
                self.warnings.append(f"mobile lint {lint.get('name')}: {lint.get('message')} (silence with lints = false)")

    def optimize(self, module):
        from torch.utils.mobile_optimizer import MobileOptimizerType, optimize_for_mobile
        log(self.name, "optimize_for_mobile")
        blocklist = {getattr(MobileOptimizerType, p.upper()) for p in self.decl["optimize_blocklist"]}
        try:
            return optimize_for_mobile(module, optimization_blocklist=blocklist or None,
                                       preserved_methods=list(self.decl["preserved_methods"]) or None)
        except Exception as e:
            raise Failure("optimize", f"optimize_for_mobile failed: {str(e).strip()}",
                          "skip the failing pass with optimize_blocklist = [\"...\"], or set optimize = false", last_frames(3))

    def record_size(self, stage, module):
        # Sizes are of the archive as ptm writes it: torch's own save carries source-range
        # records with the paths of this machine, which would make the report differ
        # between checkouts.
        self.sizes.append({"stage": stage, "bytes": len(archive.rewrite(module._save_to_buffer_for_lite_interpreter()))})
