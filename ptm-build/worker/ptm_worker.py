"""ptm's torch worker: converts the models of one build request to Lite Interpreter files.

ptm-build starts it once per build for every model that missed the cache:

    python -B -u ptm_worker.py REQUEST.json RESULT.json

REQUEST.json: {"crate_dir": str, "models": [{"decl": <ptm_build::ModelDecl as JSON>, "out": str}]}
RESULT.json:  {"torch": str, "models": [{"name", "ok": true, "report": {...}}
                                       | {"name", "ok": false, "stage", "message", "hint", "traceback"}]}

Progress goes to stderr, one line per step. Model code may print freely: ptm-build
connects this process's stdout to its own stderr, and results travel only in
RESULT.json.
"""
import importlib.util
import io
import json
import linecache
import math
import os
import sys
import time
import traceback
import warnings
import zipfile

import ptm_archive

EXAMPLE_SAMPLES = 8
# Intermediate stages are diagnostic: on a passing build they are measured on this many
# example inputs; the Lite Interpreter stage, which decides, always sees every sample.
# When a check fails, every stage is measured again on every sample.
QUICK_SAMPLES = 2
MAX_CALIBRATION_SAMPLES = 256
SEED = 20240601

DTYPES = {
    "float32": "float32", "float64": "float64", "float16": "float16", "int64": "int64",
    "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
}


class Failure(Exception):
    """A conversion error with the stage it happened in and what the user can do."""

    def __init__(self, stage, message, hint=None, tb=""):
        super().__init__(message)
        self.stage, self.message, self.hint, self.tb = stage, message, hint, tb


def log(name, message):
    print(f"ptm: {name}: {message}", file=sys.stderr, flush=True)


def last_frames(limit=6):
    return "".join(traceback.format_exc(limit=-limit)).strip()


def quiet_torch_warnings():
    # torch 2.11 announces deprecations of TorchScript, the lite interpreter and
    # torch.ao.quantization on every use; they say nothing about the user's model.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(migrat|torchao|TorchScript|lite interpreter|deprecated).*")


class Pipeline:
    """load -> export -> quantize -> optimize -> save -> verify, for one model."""

    def __init__(self, torch, decl, crate_dir, out):
        self.torch, self.decl, self.crate_dir, self.out = torch, decl, crate_dir, out
        self.name = decl["name"]
        self.stage = "load"
        self.sizes = []
        self.drift = []
        self.stages = []  # (stage, module), to measure again in full when a check fails
        self.warnings = []  # findings that do not fail the build; become cargo warnings

    def path(self, relative):
        return os.path.join(self.crate_dir, relative)

    def run(self):
        torch = self.torch
        decl = self.decl
        torch.backends.quantized.engine = decl["engine"]
        with torch.no_grad():
            model = self.load()
            samples = self.example_samples()
            calibration = self.calibration_samples()
            check = samples + calibration[:MAX_CALIBRATION_SAMPLES]
            references = [self.outputs_of(model, s, "load") for s in check]
            outputs = self.output_specs(references[0])
            self.mark_dynamic_outputs(model, outputs)

            self.sizes.append({"stage": "source", "bytes": state_bytes(model)})
            if decl["quantize"] == "dynamic" and not isinstance(model, torch.jit.ScriptModule):
                # Eager dynamic quantization comes before export: the first TorchScript
                # module is already INT8, so there is no float `exported` stage.
                self.stage = "quantize"
                current = self.export(self.quantize_eager(model), samples[0], "exporting the quantized model")
                self.record_size("quantized", current)
                self.measure("quantized", current, check, references)
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

            saved = None
            if decl["optimize"]:
                self.stage = "optimize"
                current = self.optimize(current)
                saved = current._save_to_buffer_for_lite_interpreter()
                self.sizes.append({"stage": "optimized", "bytes": len(ptm_archive.rewrite(saved))})
                self.measure("optimized", current, check, references)

            if decl["lints"]:
                self.lint(current)

            self.stage = "save"
            log(self.name, "saving for the Lite Interpreter")
            rewritten = ptm_archive.rewrite(saved or current._save_to_buffer_for_lite_interpreter())
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
        return {
            "inputs": self.input_specs(),
            "outputs": outputs,
            "sizes": self.sizes,
            "operators": operators,
            "bytecode_version": int(bytecode),
            "drift": self.drift,
            "torch": torch.__version__,
            "seconds": 0.0,
            "warnings": self.warnings,
        }

    # -- load ---------------------------------------------------------------------------

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

    # -- inputs and outputs ---------------------------------------------------------------

    def example_samples(self):
        generator = self.torch.Generator().manual_seed(SEED)
        return [tuple(self.random_tensor(spec, generator) for spec in self.decl["inputs"]) for _ in range(EXAMPLE_SAMPLES)]

    def random_tensor(self, spec, generator):
        torch = self.torch
        shape = [d if isinstance(d, int) else d["example"] for d in spec["shape"]]
        dtype = getattr(torch, spec["dtype"])
        low, high = spec["range"] if spec.get("range") else (None, None)
        if spec["dtype"].startswith("float"):
            if low is None:
                values = torch.randn(shape, generator=generator)
            else:
                values = torch.rand(shape, generator=generator) * (high - low) + low
            return values.to(dtype)
        if spec["dtype"] == "bool":
            return torch.randint(0, 2, shape, generator=generator).bool()
        if low is None:
            low, high = (0, 256) if spec["dtype"] == "uint8" else (0, 10)
        return torch.randint(int(math.ceil(low)), int(math.ceil(high)), shape, generator=generator, dtype=dtype)

    def calibration_samples(self):
        directory = self.decl.get("calibration")
        if not directory:
            return []
        torch = self.torch
        files = []
        for root, dirs, names in os.walk(self.path(directory)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            # Hidden files are skipped here as in the cache key (ptm_build::hash::files_below),
            # so every sample that is read is also hashed.
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith((".pt", ".pth")) and not n.startswith(".")]
        if not files:
            raise Failure("load", f"calibration directory {directory} holds no .pt files",
                          "save samples with torch.save(tensor_or_tuple, f\"{dir}/{i}.pt\")")
        log(self.name, f"reading {len(files)} calibration samples from {directory}")
        samples = []
        for file in files:
            shown = os.path.relpath(file, self.crate_dir)
            try:
                value = torch.load(file, map_location="cpu", weights_only=True)
            except Exception as e:
                raise Failure("load", f"calibration sample {shown} could not be read: {str(e).splitlines()[0]}",
                              "save each sample with torch.save(tensor_or_tuple_of_tensors, path)")
            sample = tuple(value) if isinstance(value, (tuple, list)) else (value,)
            self.check_sample(sample, shown)
            samples.append(sample)
        return samples

    def check_sample(self, sample, shown):
        inputs = self.decl["inputs"]
        if len(sample) != len(inputs) or not all(isinstance(t, self.torch.Tensor) for t in sample):
            raise Failure("load", f"calibration sample {shown} holds {len(sample)} value(s); the model declares {len(inputs)} tensor input(s)",
                          "save one tensor per declared input, as a tuple when there are several")
        for tensor, spec in zip(sample, inputs):
            fixed = [d if isinstance(d, int) else None for d in spec["shape"]]
            shape = list(tensor.shape)
            if str(tensor.dtype).replace("torch.", "") != spec["dtype"] or len(shape) != len(fixed) or any(
                    f is not None and f != s for f, s in zip(fixed, shape)):
                raise Failure("load", f"calibration sample {shown}: input `{spec['name']}` is {str(tensor.dtype).replace('torch.', '')} {shape}, "
                              f"declared {spec['dtype']} {[d if isinstance(d, int) else d['name'] for d in spec['shape']]}",
                              "make the samples match the declared inputs")

    def outputs_of(self, module, sample, stage):
        try:
            result = module(*sample)
        except Exception as e:
            raise Failure(stage, f"forward failed on the example inputs: {type(e).__name__}: {str(e).strip()}",
                          "check the declared inputs (dtype, shape, range) against what forward() expects", last_frames())
        if isinstance(result, self.torch.Tensor):
            return (result,)
        if isinstance(result, (tuple, list)) and result and all(isinstance(t, self.torch.Tensor) for t in result):
            return tuple(result)
        raise Failure(stage, f"forward returned {type(result).__name__}; ptm supports a Tensor or a tuple of Tensors",
                      "return a tensor, or a tuple of tensors, from forward()")

    def output_specs(self, outputs):
        names = self.decl["outputs"] or [f"output{i}" for i in range(len(outputs))]
        if len(names) != len(outputs):
            raise Failure("load", f"`outputs` names {len(names)} output(s) but forward returns {len(outputs)}",
                          f"list {len(outputs)} name(s) in package.metadata.models.{self.name}.outputs")
        return [{"name": n, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)} for n, t in zip(names, outputs)]

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

    def input_specs(self):
        return [{"name": s["name"], "dtype": s["dtype"], "shape": s["shape"]} for s in self.decl["inputs"]]

    # -- export, quantize, optimize ------------------------------------------------------

    def export(self, model, example, label="exporting"):
        torch = self.torch
        if isinstance(model, torch.jit.ScriptModule):
            return model
        how = self.decl["export"]
        log(self.name, f"{label} ({how})")
        try:
            if how == "script":
                return torch.jit.script(model)
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

    # -- trace divergence -----------------------------------------------------------------

    def check_trace(self, model, traced, example, tracer_warnings):
        """A trace records one execution: torch's TracerWarnings, and outputs that differ
        from the source model on other valid inputs, mean it froze something."""
        problems = [f"torch warned: {w.message}{self.where(w.filename, w.lineno)}" for w in tracer_warnings]
        seen = set()
        problems = [p for p in problems if not (p in seen or seen.add(p))]
        accepted = []
        for label, sample in self.other_inputs(example):
            try:
                expected = self.outputs_of(model, sample, "export")
            except Failure:
                continue  # the source model itself does not take these inputs
            accepted.append(sample)
            try:
                with self.torch.jit.optimized_execution(False):
                    produced = self.outputs_of(traced, sample, "export")
            except Failure as f:
                problems.append(f"the traced model fails on {label}: {f.message.splitlines()[0]}")
                continue
            for index, (want, got) in enumerate(zip(expected, produced)):
                want, got = plain(want), plain(got)
                if want.shape != got.shape:
                    problems.append(f"on {label}, output {index} has shape {list(got.shape)} traced, {list(want.shape)} in the source model")
                elif not self.torch.allclose(got, want, rtol=1e-4, atol=1e-5):
                    diff = (got - want).abs().max().item()
                    problems.append(f"on {label}, output {index} differs from the source model by up to {diff:.4g}")
        problems += self.torch_trace_check(model, example, accepted)
        if not problems:
            return
        detail = "\n".join(f"- {p}" for p in problems)
        if self.decl["accept_trace_risk"]:
            self.warnings.append(f"trace risk accepted (accept_trace_risk = true):\n{detail}")
            return
        raise Failure("export",
                      f"the trace does not hold for every valid input: it records one execution, and here it froze "
                      f"something that depends on the input:\n{detail}",
                      "write export = \"script\", which keeps control flow (annotate the code for TorchScript), "
                      f"or, if these inputs never occur in the app, accept the risk with "
                      f"package.metadata.models.{self.name}.accept_trace_risk = true")

    def torch_trace_check(self, model, example, others):
        """torch's own check: traces again on each input and compares the graphs."""
        torch = self.torch
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.trace(model, example, check_trace=True, check_inputs=[example] + others, check_tolerance=1e-4)
        except torch.jit.TracingCheckError as e:
            lines = [l.strip() for l in str(e).splitlines() if l.strip()]
            reason = next((l for l in lines if l.startswith("ERROR:")), lines[0] if lines else "TracingCheckError")
            return [f"torch's trace check failed: {reason.removeprefix('ERROR: ')}"]
        except Exception:
            return []  # not a divergence: the other checks report what matters
        return []

    def where(self, filename, lineno):
        if not filename or not lineno:
            return ""
        line = linecache.getline(filename, lineno).strip()
        shown = os.path.relpath(filename, self.crate_dir) if os.path.abspath(filename).startswith(os.path.abspath(self.crate_dir)) else filename
        return f" at {shown}:{lineno}" + (f": `{line}`" if line else "")

    def other_inputs(self, example):
        """Valid inputs unlike the traced example: other values, and every dynamic
        dimension at other sizes."""
        generator = self.torch.Generator().manual_seed(SEED + 2)
        others = [("other values", tuple(self.random_tensor(spec, generator) for spec in self.decl["inputs"]))]
        names = sorted({d["name"]: d["example"] for spec in self.decl["inputs"] for d in spec["shape"] if not isinstance(d, int)}.items())
        for name, example_size in names:
            for size in sorted({1, example_size + 1, max(1, example_size - 1), 2 * example_size + 1} - {example_size}):
                specs = [dict(spec, shape=[d if isinstance(d, int) or d["name"] != name else {"name": name, "example": size}
                                           for d in spec["shape"]]) for spec in self.decl["inputs"]]
                others.append((f"`{name}` = {size}", tuple(self.random_tensor(spec, generator) for spec in specs)))
        return others

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
            data = ptm_archive.rewrite(f.read())
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
        try:
            return q.quantize_dynamic(model, spec, dtype=torch.qint8)  # copies the model
        except Exception as e:
            raise self.quantize_failure(e)

    def quantize_graph(self, exported, calibration):
        """Graph-mode INT8 of a TorchScript module: dynamic (Linear) or static."""
        from torch.ao import quantization as q
        engine, kind = self.decl["engine"], self.decl["quantize"]
        log(self.name, f"quantizing ({kind} INT8, {engine}, graph mode)")
        try:
            if kind == "dynamic":
                return q.quantize_dynamic_jit(exported, {"": q.default_dynamic_qconfig})

            def calibrate(module, samples):
                for sample in samples:
                    module(*sample)

            return q.quantize_jit(exported, {"": q.get_default_qconfig(engine)}, calibrate, [calibration])
        except Exception as e:
            raise self.quantize_failure(e)

    def quantize_failure(self, e):
        kind, engine = self.decl["quantize"], self.decl["engine"]
        return Failure("quantize", f"{kind} quantization with {engine} failed: {type(e).__name__}: {str(e).strip()}",
                       "try quantize = \"dynamic\" (static needs conv/linear layers torch can observe), or quantize = \"none\"",
                       last_frames(3))

    def optimize(self, module):
        torch = self.torch
        from torch.utils.mobile_optimizer import MobileOptimizerType, optimize_for_mobile
        log(self.name, "optimize_for_mobile")
        blocklist = {getattr(MobileOptimizerType, p.upper()) for p in self.decl["optimize_blocklist"]}
        try:
            return optimize_for_mobile(module, optimization_blocklist=blocklist or None,
                                       preserved_methods=list(self.decl["preserved_methods"]) or None)
        except Exception as e:
            raise Failure("optimize", f"optimize_for_mobile failed: {str(e).strip()}",
                          "skip the failing pass with optimize_blocklist = [\"...\"], or set optimize = false", last_frames(3))

    # -- measurements ---------------------------------------------------------------------

    def record_size(self, stage, module):
        # Sizes are of the archive as ptm writes it: torch's own save carries source-range
        # records with the paths of this machine, which would make the report differ
        # between checkouts.
        self.sizes.append({"stage": stage, "bytes": len(ptm_archive.rewrite(module._save_to_buffer_for_lite_interpreter()))})

    def measure(self, stage, module, samples, references):
        self.stages.append((stage, module))
        if stage != "lite":
            samples, references = samples[:QUICK_SAMPLES], references[:QUICK_SAMPLES]
        self.drift.append(self.compare_quietly(stage, module, samples, references))

    def compare_quietly(self, stage, module, samples, references):
        torch = self.torch
        # Comparing outputs needs the graph's results, not its optimization: the
        # profiling executor would re-optimize the graph on the first calls, which
        # costs far more than running it a few dozen times.
        with torch.jit.optimized_execution(False):
            return self.compare(stage, module, samples, references)

    def compare(self, stage, module, samples, references):
        torch = self.torch
        max_abs, scale, agree, total = 0.0, 0.0, 0, 0
        for sample, reference in zip(samples, references):
            produced = self.outputs_of(module, sample, self.stage)
            for ref, out in zip(reference, produced):
                if ref.is_quantized:
                    ref = ref.dequantize()
                if out.is_quantized:
                    out = out.dequantize()
                if tuple(ref.shape) != tuple(out.shape):
                    raise Failure(self.stage, f"after `{stage}` an output has shape {list(out.shape)}, the source model gives {list(ref.shape)}")
                r, o = ref.double(), out.double()
                if r.numel():
                    diff = torch.nan_to_num((r - o).abs(), nan=math.inf)
                    max_abs = max(max_abs, diff.max().item())
                    scale = max(scale, torch.nan_to_num(r.abs(), nan=0.0).max().item())
                if ref.is_floating_point() and 1 <= ref.dim() <= 2 and ref.shape[-1] > 1:
                    agree += (r.argmax(-1) == o.argmax(-1)).sum().item()
                    total += r.argmax(-1).numel()
        max_abs = min(max_abs, 1e300)
        return {
            "stage": stage,
            "max_abs": max_abs,
            "relative": min(max_abs / scale if scale > 0 else max_abs, 1e300),
            "top1": agree / total if total else None,
            "samples": len(samples),
        }

    def past_tolerance(self, d):
        tolerance = self.decl["tolerance"]
        return d["relative"] > tolerance["relative"] or (d["top1"] is not None and d["top1"] < tolerance["top1"])

    def check_tolerance(self, samples, references):
        if any(self.past_tolerance(d) for d in self.drift):
            # Measure every stage on every sample, so the error names where drift began.
            self.drift = [self.compare_quietly(stage, module, samples, references) for stage, module in self.stages]
        tolerance = self.decl["tolerance"]
        for d in self.drift:
            if self.past_tolerance(d):
                top1 = "n/a" if d["top1"] is None else f"{d['top1']:.3f}"
                raise Failure("verify",
                              f"outputs drifted from the source model at stage `{d['stage']}`: relative error {d['relative']:.4g} "
                              f"(allowed {tolerance['relative']:.4g}), max abs {d['max_abs']:.4g}, top-1 agreement {top1} "
                              f"(required {tolerance['top1']:.3f}) over {d['samples']} samples",
                              f"if this drift is acceptable, raise package.metadata.models.{self.name}.tolerance; "
                              "otherwise try more calibration samples, quantize = \"dynamic\", or quantize = \"none\"")


def plain(tensor):
    """A float copy of an output, dequantized if need be, for comparisons."""
    return (tensor.dequantize() if tensor.is_quantized else tensor).float()


def state_bytes(model):
    """Bytes of the source model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if hasattr(t, "numel"))


def convert(torch, job, crate_dir):
    name = job["decl"]["name"]
    started = time.perf_counter()
    pipeline = Pipeline(torch, job["decl"], crate_dir, job["out"])
    try:
        report = pipeline.run()
    except Failure as f:
        return {"name": name, "ok": False, "stage": f.stage, "message": f.message, "hint": f.hint, "traceback": f.tb}
    except Exception as e:
        return {"name": name, "ok": False, "stage": pipeline.stage, "message": f"{type(e).__name__}: {e}",
                "hint": None, "traceback": last_frames()}
    report["seconds"] = round(time.perf_counter() - started, 3)
    log(name, f"converted in {report['seconds']:.1f} s, {report['sizes'][-1]['bytes'] / 1e6:.2f} MB")
    return {"name": name, "ok": True, "report": report}


def main(request_path, result_path):
    with open(request_path) as f:
        request = json.load(f)
    quiet_torch_warnings()
    import torch
    import torch.jit.mobile  # not imported by `import torch`
    quiet_torch_warnings()
    torch.manual_seed(SEED)
    # One thread: qnnpack's kernels on a small x86 host run 30x slower with the default
    # intra-op pool than without it (contention), and conversion is not parallel work.
    torch.set_num_threads(1)
    result = {"torch": torch.__version__, "models": [convert(torch, job, request["crate_dir"]) for job in request["models"]]}
    temp = result_path + ".tmp"
    with open(temp, "w") as f:
        json.dump(result, f)
    os.replace(temp, result_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
