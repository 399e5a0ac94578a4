"""The trace gate: a trace records one execution, so the build checks it froze nothing
that depends on the input."""
import linecache
import os
import warnings

from ptm_common import SEED, Failure
from ptm_compare import plain


class TraceGate:
    """Mixed into the pipeline: needs self.torch, self.decl, self.name, self.crate_dir,
    self.warnings, self.outputs_of and self.random_tensor."""

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
                want, got = plain(want).float(), plain(got).float()
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
