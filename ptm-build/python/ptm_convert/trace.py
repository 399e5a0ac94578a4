"""The trace gate: a trace records one execution, so the build checks it froze nothing
that depends on the input."""
import contextlib
import inspect
import io
import linecache
import os
import re
import warnings

from .common import SEED, Failure, log, native_stderr
from .compare import plain
from .conversion import Conversion
from . import inputs
from . import verify


def check_trace(c: Conversion, model, traced, example, tracer_warnings):
    """A trace records one execution: torch's TracerWarnings, and outputs that differ
    from the source model on other valid inputs, mean it froze something."""
    problems = [f"torch warned: {w.message}{where(c, w.filename, w.lineno)}" for w in tracer_warnings]
    problems = list(dict.fromkeys(problems))  # each once, in order
    warned = list(problems)
    accepted = []
    for label, sample in other_inputs(c, example):
        runs, problem = divergence(c, model, traced, label, sample)
        if runs:
            accepted.append(sample)
        if problem:
            problems.append(problem)
    problems += torch_trace_check(c, model, example, accepted)
    if problems and len(problems) == len(warned):
        # Only torch's warnings, and no input told the trace from the model: ask an
        # oracle whether anything the warnings point at can vary.
        problems = export_oracle(c, model, traced, example, warned)
    if not problems:
        return
    detail = "\n".join(f"- {p}" for p in problems)
    if c.decl["accept_trace_risk"]:
        c.trace_risk = f"trace risk accepted (accept_trace_risk = true):\n{detail}"
        return
    raise Failure("export",
                  f"the trace does not hold for every valid input: it records one execution, and here it froze "
                  f"something that depends on the input:\n{detail}",
                  "compute the branch with tensor operations (torch.where) instead of Python's `if`, declare fixed "
                  "a dimension that never varies, or write export = \"script\" (TorchScript keeps control flow); "
                  f"if these inputs never occur in the app, accept the risk with "
                  f"package.metadata.models.{c.name}.accept_trace_risk = true")

def divergence(c: Conversion, model, traced, label, sample):
    """(whether the source model takes `sample`, what differs in the trace on it)."""
    try:
        expected = verify.outputs_of(c, model, sample, "export")
    except Failure:
        return False, None  # the source model itself does not take these inputs
    try:
        with c.torch.jit.optimized_execution(False):
            produced = verify.outputs_of(c, traced, sample, "export")
    except Failure as f:
        return True, f"the traced model fails on {label}: {f.message.splitlines()[0]}"
    for index, (want, got) in enumerate(zip(expected, produced)):
        want, got = plain(want).float(), plain(got).float()
        if want.shape != got.shape:
            return True, f"on {label}, output {index} has shape {list(got.shape)} traced, {list(want.shape)} in the source model"
        if not c.torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            diff = (got - want).abs().max().item()
            return True, f"on {label}, output {index} differs from the source model by up to {diff:.4g}"
    return True, None

def export_oracle(c: Conversion, source, traced, example, warned):
    """torch.export (non-strict) runs forward with symbolic sizes: declared fixed
    dimensions are constants, declared dynamic ones are `Dim`s, and it raises where
    a branch depends on a tensor's values, or where the program holds only for some
    sizes of a dynamic dimension. Those sizes are found by evaluating its guard, and
    each is then tried: one the source model cannot run is the model's own limit (a
    table of 64 positions), one where the trace matches the source model is no
    branch (a size export excludes only because it assumes sizes of at least 2),
    one where it differs is a branch. When nothing is left and the program reads no
    tensor value into Python, the TracerWarnings were shape arithmetic over sizes
    that cannot vary, and the trace holds. Returns what is left to report."""
    torch = c.torch
    model = c.float_model
    dims, shapes = inputs.export_dims(c)
    # At least 2 in every dynamic dimension: export specialises sizes 0 and 1.
    sample = inputs.sample_at(c, {name: max(2, example_size(c, name)) for name in dims}, SEED + 3) if dims else example
    log(c.name, f"{len(warned)} TracerWarning(s): asking torch.export whether they can vary")
    try:
        program = export_quietly(c, model, sample, tuple(shapes) if dims else None)
    except Exception as e:
        found = guarded_sizes(c, e, model, dims)
        if found is None:
            return warned + [f"torch.export, which sees what a trace cannot, found: {export_reason(e)}"]
        problems = []
        for name, sizes in found.items():
            for size in sizes:
                # Against what was traced (the INT8 module for dynamic INT8), not the float model.
                runs, problem = divergence(c, source, traced, f"`{name}` = {size}", inputs.sample_at(c, {name: size}, SEED + 4))
                if problem:
                    problems.append(f"torch.export found that the program holds only for some sizes of `{name}`, "
                                    f"and {problem}")
                    break
                if not runs:
                    log(c.name, f"`{name}` = {size}: the source model itself fails there (its own limit)")
                    break  # larger sizes fail alike
                log(c.name, f"`{name}` = {size}, which torch.export's guard excludes: the trace matches the source model")
        if problems:
            return warned + problems
        try:
            # Every excluded size checked: the graph, with sizes left free, for value reads.
            auto = [{i: torch.export.Dim.AUTO for i in shape} if shape else None for shape in shapes]
            program = export_quietly(c, model, sample, tuple(auto))
        except Exception as again:
            return warned + [f"torch.export, which sees what a trace cannot, found: {export_reason(again)}"]
    reads = sorted({str(n.target) for n in program.graph.nodes
                    if n.op == "call_function" and str(n.target) in VALUE_READS})
    if reads:
        return warned + [f"torch.export found the model reading tensor values into Python ({', '.join(reads)}), "
                         "which a trace records as constants"]
    log(c.name, "torch.export: what torch warned about depends on no input value, and the trace matches the model "
                   "at every size where the program could differ; the trace holds")
    return []

def export_quietly(c: Conversion, model, sample, dynamic_shapes):
    torch = c.torch
    printed: list[str] = []
    with warnings.catch_warnings(), native_stderr(printed), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return torch.export.export(model, sample, dynamic_shapes=dynamic_shapes, strict=False)

def example_size(c: Conversion, name):
    return next(d["example"] for spec in c.decl["inputs"] for d in spec["shape"]
                if not isinstance(d, int) and d["name"] == name)


def guarded_sizes(c: Conversion, error, model, dims):
    """{dimension: sizes its guard excludes, smallest first, a few of them} from a
    constraint violation; None when the error is something else or a guard cannot
    be read."""
    text = str(error)
    if "Constraints violated" not in text:
        return None
    guards = re.findall(r"Not all values of (\w+) = .*? satisfy the generated guard (.+?)\.?$", text, re.MULTILINE)
    if not guards:
        return None
    try:
        parameters = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return None
    found = {}
    for name, guard in guards:
        if name not in dims:
            return None
        excluded = []
        d = inputs.dynamic_dims(c)[name]
        low, high = inputs.size_range(d)
        for size in range(low, (high if high is not None else max(256, 4 * example_size(c, name))) + 1, inputs.size_step(d)):
            holds = evaluate_guard(guard, parameters, c.decl["inputs"], {name: size})
            if holds is None:
                return None
            if not holds:
                excluded.append(size)
                if len(excluded) == GUARDED_SIZES_TRIED:
                    break
        found[name] = excluded
    return found

def torch_trace_check(c: Conversion, model, example, others):
    """torch's own check: traces again on each input and compares the graphs."""
    torch = c.torch
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

def where(c: Conversion, filename, lineno):
    if not filename or not lineno:
        return ""
    line = linecache.getline(filename, lineno).strip()
    shown = os.path.relpath(filename, c.crate_dir) if os.path.abspath(filename).startswith(os.path.abspath(c.crate_dir)) else filename
    return f" at {shown}:{lineno}" + (f": `{line}`" if line else "")

def other_inputs(c: Conversion, example):
    """Valid inputs unlike the traced example: other values, and every dynamic
    dimension at other sizes."""
    generator = c.torch.Generator().manual_seed(SEED + 2)
    others = [("other values", tuple(inputs.random_tensor(c, spec, generator) for spec in c.decl["inputs"]))]
    for name, d in sorted(inputs.dynamic_dims(c).items()):
        example_size, step = d["example"], inputs.size_step(d)
        # Around the example, and a declared range's bounds; never outside the range
        # (nor off its step).
        tried = {1, example_size + 1, max(1, example_size - 1), 2 * example_size + 1, example_size + step, example_size - step,
                 2 * example_size, *(v for k, v in d.items() if k in ("min", "max"))}
        for size in sorted(s for s in tried - {example_size} if inputs.in_range(d, s)):
            specs = [dict(spec, shape=[d if isinstance(d, int) or d["name"] != name else {"name": name, "example": size}
                                       for d in spec["shape"]]) for spec in c.decl["inputs"]]
            others.append((f"`{name}` = {size}", tuple(inputs.random_tensor(c, spec, generator) for spec in specs)))
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


# Sizes tried of those a guard excludes: the smallest ones, where a limit or a branch
# shows first.
GUARDED_SIZES_TRIED = 4


def evaluate_guard(guard, parameters, inputs, sizes):
    """Whether torch.export's guard (Python syntax over `L['<parameter>'].size()[i]`)
    holds with the named dimensions at `sizes` and the others at their example; None
    when it cannot be read."""
    class Shape:
        def __init__(self, dims):
            self.dims = dims

        def size(self, index=None):
            return self.dims if index is None else self.dims[index]

    shapes = {}
    for parameter, spec in zip(parameters, inputs):
        shapes[parameter] = Shape([d if isinstance(d, int) else sizes.get(d["name"], d["example"]) for d in spec["shape"]])
    functions = {"L": shapes, "IntInfinity": lambda: float("inf"), "Max": max, "Min": min,
                 "Mod": lambda a, b: a % b, "FloorDiv": lambda a, b: a // b, "__builtins__": {}}
    try:
        return bool(eval(guard, functions))
    except Exception:
        return None
