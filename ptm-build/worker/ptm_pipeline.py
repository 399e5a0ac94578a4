"""One model's conversion: load -> export -> quantize -> optimize -> save -> verify."""
import importlib.util
import os
import sys
import time
import warnings

import ptm_archive
import ptm_compare
from ptm_common import SEED, Failure, describe, last_frames, log, native_stderr
from ptm_adapt import Adapt
from ptm_inputs import Inputs
from ptm_layers import LayerDrift
from ptm_trace import TraceGate

# Intermediate stages are diagnostic: on a passing build they are measured on this many
# example inputs; the Lite Interpreter stage, which decides, always sees every sample.
# When a check fails, every stage is measured again on every sample.
QUICK_SAMPLES = 2
MAX_CALIBRATION_SAMPLES = 256
UNOBSERVED = "must run observer before calling calculate_qparams"


class Pipeline(Inputs, Adapt, TraceGate, LayerDrift):
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
        """What the .ptl says of itself, read by the runtime when it loads: the model's
        name, its declaration's key, its signature and the ptm-build that wrote it. One
        `field value` per line; the key makes the file's bytes no less reproducible."""
        def signature(specs):
            return "; ".join(f"{s['name']} {s['dtype']} [{', '.join(str(d if isinstance(d, int) else d['name']) for d in s['shape'])}]"
                             for s in specs)
        return (f"ptm-identity 1\nmodel {self.name}\nkey {self.key}\nptm-build {self.ptm_build}\n"
                f"inputs {signature(self.decl['inputs'])}\noutputs {signature(outputs)}\n")

    def path(self, relative):
        return os.path.join(self.crate_dir, relative)

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
                rewritten = ptm_archive.rewrite(current._save_to_buffer_for_lite_interpreter(), self.identity(outputs))
                self.sizes.append({"stage": "optimized", "bytes": len(rewritten)})
                self.measure("optimized", current, check, references)

            if decl["lints"]:
                self.lint(current)

            self.stage = "save"
            log(self.name, "saving for the Lite Interpreter")
            rewritten = rewritten or ptm_archive.rewrite(current._save_to_buffer_for_lite_interpreter(), self.identity(outputs))
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

    def load(self):
        torch = self.torch
        source = self.decl["source"]
        if source["kind"] == "python":
            model = self.load_python(source["file"], source["callable"])
        else:
            log(self.name, f"loading TorchScript archive {source['file']}")
            try:
                model = torch.jit.load(self.path(source["file"]), map_location="cpu")
            except Exception as e:
                raise Failure("load", f"torch.jit.load could not read {source['file']}: {e}",
                              "save the archive with torch.jit.save(torch.jit.script(model), path)", last_frames())
        if self.decl.get("weights"):
            self.load_weights(model, self.decl["weights"])
        return model.eval()

    def load_python(self, file, callable_name):
        torch = self.torch
        log(self.name, f"loading {file}:{callable_name}")
        path = self.path(file)
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        try:
            spec = importlib.util.spec_from_file_location(f"ptm_model_{self.name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        except Exception as e:
            raise Failure("load", f"importing {file} raised {type(e).__name__}: {e}",
                          f"fix the error in {file}; it must import with the build's Python", last_frames())
        factory = getattr(module, callable_name, None)
        if factory is None or not callable(factory):
            found = sorted(n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_"))
            raise Failure("load", f"{file} has no callable `{callable_name}` (callables there: {', '.join(found) or 'none'})",
                          f"write source = \"{file}:<name>\" with the function that returns the nn.Module")
        try:
            model = factory()
        except Exception as e:
            raise Failure("load", f"{file}:{callable_name}() raised {type(e).__name__}: {e}",
                          f"fix {callable_name} so that it returns the model without arguments", last_frames())
        if not isinstance(model, torch.nn.Module):
            raise Failure("load", f"{file}:{callable_name}() returned {type(model).__name__}, not a torch.nn.Module",
                          f"return the model instance from {callable_name}")
        return model

    def load_weights(self, model, weights):
        torch = self.torch
        log(self.name, f"loading weights {weights}")
        try:
            state = torch.load(self.path(weights), map_location="cpu", weights_only=True)
        except Exception as e:
            raise Failure("load", f"torch.load(weights_only=True) could not read {weights}: {str(e).splitlines()[0]}",
                          "save plain tensors only: torch.save(model.state_dict(), path)", last_frames(2))
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise Failure("load", f"{weights} holds {type(state).__name__}, not a state_dict",
                          "save with torch.save(model.state_dict(), path)")
        try:
            model.load_state_dict(state, strict=True)
        except Exception as e:
            raise Failure("load", f"{weights} does not fit the model: {e}",
                          "save the state_dict of the same architecture the source builds")

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

    def output_specs(self, outputs):
        # adapt() chose these names for exactly these outputs.
        return [{"name": n, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
                for n, t in zip(self.selected_names, outputs)]

    def mark_dynamic_outputs(self, model, outputs):
        """Runs once more with every dynamic input dimension at another size; output
        dimensions that change are dynamic, named after the input dimension they follow."""
        sizes = {}
        for spec in self.decl["inputs"]:
            for d in spec["shape"]:
                if not isinstance(d, int):
                    sizes[d["name"]] = (d["example"], d["example"] - 1 if d["example"] > 1 else 2)
        if not sizes:
            return
        generator = self.torch.Generator().manual_seed(SEED + 1)
        moved = []
        for spec in self.decl["inputs"]:
            shape = [d if isinstance(d, int) else {"name": d["name"], "example": sizes[d["name"]][1]} for d in spec["shape"]]
            moved.append(self.random_tensor(dict(spec, shape=shape), generator))
        try:
            produced = self.outputs_of(model, tuple(moved), "load")
        except Failure:
            return  # the model takes only the example sizes; the outputs stay as observed
        by_size = {alternate: (name, example) for name, (example, alternate) in sizes.items()}
        for spec, tensor in zip(outputs, produced):
            for i, (was, now) in enumerate(zip(spec["shape"], tensor.shape)):
                if was != now:
                    name, _ = by_size.get(now, (f"{spec['name']}_dim{i}", None))
                    spec["shape"][i] = {"name": name, "example": was}

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
            data = ptm_archive.rewrite(f.read(), self.identity(self.output_specs_seen))
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

    def quantize_eager(self, model):
        """Dynamic INT8 of a Python module: Linear/LSTM/GRU weights, 8-bit embeddings."""
        torch = self.torch
        from torch.ao import quantization as q
        log(self.name, f"quantizing (dynamic INT8, {self.decl['engine']})")
        spec = {torch.nn.Linear: q.default_dynamic_qconfig,
                torch.nn.LSTM: q.default_dynamic_qconfig,
                torch.nn.GRU: q.default_dynamic_qconfig,
                torch.nn.Embedding: q.float_qparams_weight_only_qconfig,
                torch.nn.EmbeddingBag: q.float_qparams_weight_only_qconfig}
        for name in self.skipped_modules(model):
            spec[name] = None  # a name overrides its type: this module and its children stay float
        try:
            return q.quantize_dynamic(model, spec, dtype=torch.qint8)  # copies the model
        except Exception as e:
            raise self.quantize_failure(e)

    def quantize_graph(self, exported, calibration):
        """Graph-mode INT8 of a TorchScript module: dynamic (Linear) or static."""
        from torch.ao import quantization as q
        engine, kind = self.decl["engine"], self.decl["quantize"]
        log(self.name, f"quantizing ({kind} INT8, {engine}, graph mode)")
        printed = []
        with warnings.catch_warnings(record=True) as caught, native_stderr(printed):
            try:
                skipped = {name: None for name in self.skipped_modules(exported)}
                if kind == "dynamic":
                    quantized = q.quantize_dynamic_jit(exported, {"": q.default_dynamic_qconfig, **skipped})
                else:
                    def calibrate(module, samples):
                        for sample in samples:
                            module(*sample)

                    quantized = q.quantize_jit(exported, {"": q.get_default_qconfig(engine), **skipped}, calibrate, [calibration])
            except Exception as e:
                raise self.quantize_failure(e)
        self.explain_quantize_warnings([str(w.message) for w in caught] + printed, len(calibration))
        return quantized

    def skipped_modules(self, model):
        """`quantize_skip`'s names as they are inside `model`; every one must be a module."""
        skip = self.decl.get("quantize_skip", [])
        if not skip:
            return []
        modules = {name for name, _ in model.named_modules()}
        names = [self.inner_prefix + name for name in skip]
        missing = [name for name, inner in zip(skip, names) if inner not in modules]
        if missing:
            weighted = [n.removeprefix(self.inner_prefix) for n, m in model.named_modules()
                        if n.startswith(self.inner_prefix) and n and any(True for _ in m.parameters(recurse=False))]
            raise Failure("quantize", f"`quantize_skip` names {', '.join(f'`{n}`' for n in missing)}, which the model does not "
                          f"have; its modules with weights are: {', '.join(weighted[:40]) or 'none'}"
                          + (" ..." if len(weighted) > 40 else ""),
                          f"name modules as model.named_modules() does in package.metadata.models.{self.name}.quantize_skip")
        log(self.name, f"keeping {', '.join(skip)} in float (quantize_skip)")
        return names

    def explain_quantize_warnings(self, messages, samples):
        """torch warns once per observer that saw no data; that becomes one explained line.
        Everything else it printed is passed on."""
        self.unobserved = sum(UNOBSERVED in m for m in messages)
        for message in messages:
            if UNOBSERVED not in message:
                print(message, file=sys.stderr)
        if self.unobserved:
            self.warnings.append(
                f"{self.unobserved} quantization observer(s) saw no data while calibrating on {samples} sample(s) (torch: "
                f"\"{UNOBSERVED}\"): no sample reached the layers they watch, so those layers use torch's default INT8 "
                "ranges (scale 1.0, zero point 0); add calibration samples that take the model down every path it has")

    def quantize_failure(self, e):
        kind, engine = self.decl["quantize"], self.decl["engine"]
        if kind == "static":
            hint = "try quantize = \"dynamic\" (static needs conv/linear layers torch can observe), or quantize = \"none\""
        else:
            hint = "keep the model in float with quantize = \"none\""
        return Failure("quantize", f"{kind} quantization with {engine} failed: {type(e).__name__}: {str(e).strip()}",
                       hint, last_frames(3))

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
        self.sizes.append({"stage": stage, "bytes": len(ptm_archive.rewrite(module._save_to_buffer_for_lite_interpreter()))})

    def measure(self, stage, module, samples, references):
        self.stages.append((stage, module))
        if stage != "lite":
            samples, references = samples[:QUICK_SAMPLES], references[:QUICK_SAMPLES]
        self.drift.append(self.compare(stage, module, samples, references))

    def compare(self, stage, module, samples, references):
        def shape_changed(message):
            raise Failure(self.stage, message)

        # Comparing outputs needs the graph's results, not its optimization: the
        # profiling executor would re-optimize the graph on the first calls, which
        # costs far more than running it a few dozen times.
        with self.torch.jit.optimized_execution(False):
            return ptm_compare.measure(self.torch, stage, lambda s: self.outputs_of(module, s, self.stage),
                                       samples, references, self.output_names, shape_changed)

    def problems(self, stage_drift):
        return ptm_compare.problems(stage_drift, self.decl["tolerance"], self.decl["quantize"] != "none")

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
            lines += [f"  {line}" for line in ptm_compare.summary(d)]
        for o, _ in found:
            if ptm_compare.degenerate(o):
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
        if any(ptm_compare.degenerate(o) for o, _ in found):
            return (f"build the model with trained weights (weights = \"<state_dict>.pth\", or load them in the source "
                    f"callable); {accept}")
        if stage == "exported":
            return (f"the {self.decl['export']} export changed the outputs before any quantization: check that the example "
                    f"inputs (dtype, shape, range) are valid for the model; {accept}")
        if stage == "optimized":
            return f"optimize_for_mobile changed the outputs: skip passes with optimize_blocklist = [\"...\"] or set optimize = false; {accept}"
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


def state_bytes(model):
    """Bytes of the source model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if hasattr(t, "numel"))
