"""The trace gate: a trace records one execution, so the build checks it froze nothing
that depends on the input."""
import contextlib
import io
import linecache
import os
import re
import warnings

from ptm_common import SEED, Failure, log, native_stderr
from ptm_compare import plain


class TraceGate:
    """Mixed into the pipeline: needs self.torch, self.decl, self.name, self.crate_dir,
    self.float_model (what export traces, before any quantization), self.outputs_of
    and self.random_tensor; sets self.trace_risk when the risk is accepted."""

    def check_trace(self, model, traced, example, tracer_warnings):
        """A trace records one execution: torch's TracerWarnings, and outputs that differ
        from the source model on other valid inputs, mean it froze something."""
        problems = [f"torch warned: {w.message}{self.where(w.filename, w.lineno)}" for w in tracer_warnings]
        seen = set()
        problems = [p for p in problems if not (p in seen or seen.add(p))]
        warned = list(problems)
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
                want, got = plain(want).float(), plain(got).float()
                if want.shape != got.shape:
                    problems.append(f"on {label}, output {index} has shape {list(got.shape)} traced, {list(want.shape)} in the source model")
                elif not self.torch.allclose(got, want, rtol=1e-4, atol=1e-5):
                    diff = (got - want).abs().max().item()
                    problems.append(f"on {label}, output {index} differs from the source model by up to {diff:.4g}")
        problems += self.torch_trace_check(model, example, accepted)
        if problems and len(problems) == len(warned):
            # Only torch's warnings, and no input told the trace from the model: ask an
            # oracle whether anything the warnings point at can vary.
            problems = self.export_oracle(example, warned)
        if not problems:
            return
        detail = "\n".join(f"- {p}" for p in problems)
        if self.decl["accept_trace_risk"]:
            self.trace_risk = f"trace risk accepted (accept_trace_risk = true):\n{detail}"
            return
        raise Failure("export",
                      f"the trace does not hold for every valid input: it records one execution, and here it froze "
                      f"something that depends on the input:\n{detail}",
                      "compute the branch with tensor operations (torch.where) instead of Python's `if`, declare fixed "
                      "a dimension that never varies, or write export = \"script\" (TorchScript keeps control flow); "
                      f"if these inputs never occur in the app, accept the risk with "
                      f"package.metadata.models.{self.name}.accept_trace_risk = true")

    def export_oracle(self, example, warned):
        """torch.export (non-strict) runs forward with symbolic sizes: declared fixed
        dimensions are constants, declared dynamic ones are `Dim`s, and it raises where
        a branch depends on a tensor's values or narrows a dynamic dimension. When it
        passes and reads no value into Python, the TracerWarnings were shape arithmetic
        over sizes the declaration fixes, and the trace holds. Its one blind spot, a
        dynamic size of 0 or 1 (it assumes sizes of at least 2), is covered by the
        value check at size 1 in other_inputs. Returns what is left to report."""
        torch = self.torch
        model = self.float_model
        dims, shapes = {}, []
        for spec in self.decl["inputs"]:
            shape = {}
            for index, d in enumerate(spec["shape"]):
                if not isinstance(d, int):
                    dims.setdefault(d["name"], torch.export.Dim(d["name"], min=1))
                    shape[index] = dims[d["name"]]
            shapes.append(shape or None)
        sample = example
        if dims:
            # At least 2 in every dynamic dimension: export specialises sizes 0 and 1.
            generator = torch.Generator().manual_seed(SEED + 3)
            sample = tuple(self.random_tensor(dict(spec, shape=[d if isinstance(d, int) else dict(d, example=max(2, d["example"]))
                                                                for d in spec["shape"]]), generator)
                           for spec in self.decl["inputs"])
        log(self.name, f"{len(warned)} TracerWarning(s): asking torch.export whether they can vary")
        for _ in range(len(dims) + 1):
            try:
                program = self.export_quietly(model, sample, tuple(shapes) if dims else None)
                break
            except Exception as e:
                # A largest size is no branch when the source model itself fails above
                # it (a position table's length): the dimension is bounded, and export
                # runs again with that bound.
                bounds = self.model_limits(model, suggested_maxima(e, dims))
                if not bounds:
                    return warned + [f"torch.export, which sees what a trace cannot, found: {export_reason(e)}"]
                for name, largest in bounds.items():
                    log(self.name, f"`{name}` is at most {largest}: the model itself fails above that size")
                    bounded = torch.export.Dim(name, min=1, max=largest)
                    shapes = [{i: bounded if d is dims[name] else d for i, d in shape.items()} if shape else None
                              for shape in shapes]
                    dims[name] = bounded
        else:
            return warned
        reads = sorted({str(n.target) for n in program.graph.nodes
                        if n.op == "call_function" and str(n.target) in VALUE_READS})
        if reads:
            return warned + [f"torch.export found the model reading tensor values into Python ({', '.join(reads)}), "
                             "which a trace records as constants"]
        log(self.name, "torch.export: what torch warned about depends on no input value and on no size the declaration lets vary; the trace holds")
        return []

    def export_quietly(self, model, sample, dynamic_shapes):
        torch = self.torch
        printed = []
        with warnings.catch_warnings(), native_stderr(printed), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.export.export(model, sample, dynamic_shapes=dynamic_shapes, strict=False)

    def model_limits(self, model, maxima):
        """Of {dimension: largest size torch.export suggests}, those the source model
        cannot run one past: its own limits, not branches."""
        limits = {}
        generator = self.torch.Generator().manual_seed(SEED + 4)
        for name, largest in maxima.items():
            specs = [dict(spec, shape=[dict(d, example=largest + 1) if not isinstance(d, int) and d["name"] == name else d
                                       for d in spec["shape"]]) for spec in self.decl["inputs"]]
            try:
                model(*(self.random_tensor(spec, generator) for spec in specs))
            except Exception:
                limits[name] = largest
            else:
                return {}  # the model runs beyond the bound: the guard is a branch
        return limits

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


# Operators through which a graph reads a tensor's value into a Python number.
VALUE_READS = {"aten.item.default", "aten._local_scalar_dense.default"}


def export_reason(error):
    """What a torch.export error found, in a line, without its advice on logging flags."""
    lines = [l.strip() for l in str(error).splitlines() if l.strip()]
    if type(error).__name__ == "GuardOnDataDependentSymNode":
        first = lines[0].split(" (unhinted")[0] if lines else ""
        return f"forward depends on a tensor's values, not only its sizes (torch: {first})"
    keep = [l for l in lines if not l.startswith(("For more information", "For extended logs", "If you suspect", "Caused by",
                                                    "For more debugging", "For C++ stack", "The error above", "consider using"))]
    found = " ".join(keep[:3]).replace(' For more information, run with TORCH_LOGS="+dynamic".', "") or type(error).__name__
    return found if len(found) <= 400 else found[:397] + "..."


def suggested_maxima(error, dims):
    """{dimension: largest size} from a torch.export constraint violation whose only
    suggested fixes are largest sizes of declared dimensions; {} for anything else."""
    text = str(error)
    if "Suggested fixes:" not in text:
        return {}
    fixes = [l.strip() for l in text.split("Suggested fixes:", 1)[1].splitlines() if l.strip()]
    fixes = [l for l in fixes if " = " in l and not l.startswith("The error above")]
    maxima = {}
    for fix in fixes:
        found = re.fullmatch(r"(\w+) = Dim\('(\w+)', max=(\d+)\)", fix)
        if not found or found.group(1) not in dims:
            return {}
        maxima[found.group(1)] = int(found.group(3))
    return maxima
