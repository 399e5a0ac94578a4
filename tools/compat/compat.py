"""Builds every architecture of zoo.py through ptm as an app would (a crate declaring
the model, `cargo build --release`, the typed wrapper run from Rust), once as a .ptl and
once as a .pte, compares what Rust computes with eager PyTorch on the same inputs, and
writes docs/compatibility.md (keeping its Toolchains section, which tools/toolchains writes).

Usage: tools/compat/run [substring ...]   (rows whose name, `<architecture>_<quantize>_<format>`
such as `bert_dynamic_pte`, contains one; all by default, and only a full run rewrites
docs/compatibility.md). The python that runs this file converts every row (PTM_PYTHON).
`tools/compat/run --from-results [FILE ...]` writes the doc from the rows the last full run
saved (target/compat/results.json), or those of the files named, a later file's row
replacing an earlier one's (a run of some rows saves them in results-<words>.json, beside
the full run's), saying which rows are missing when they are not all there."""
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(REPO, "target", "compat")
sys.path.insert(0, HERE)
import zoo  # noqa: E402
from table import FORMATS, RUNTIME_STAGE, TOOLCHAINS_HEADING, render, section, splice  # noqa: E402

CALIBRATION_SAMPLES = 8
LATENCY_RUNS = 20
RUST_TYPES = {"float32": "f32", "int64": "i64"}


def row_name(architecture, quantize, fmt):
    return f"{architecture}_{quantize}_{fmt}"


def rows(filters=(), formats=FORMATS):
    """zoo.ROWS as one entry per quantization and format: the rows whose name contains
    one of `filters` (every row without filters)."""
    return [(a, l, b, i, o, e, q, f) for a, l, b, i, o, e, qs in zoo.ROWS for q in qs for f in formats
            if not filters or any(w in row_name(a, q, f) for w in filters)]


def example_size(dim):
    return dim if isinstance(dim, int) else int(dim.split("=")[1].split(":")[0])


def random_inputs(inputs, seed):
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in inputs:
        shape = [example_size(d) for d in spec["shape"]]
        if spec["dtype"] == "float32":
            tensors.append(torch.randn(shape, generator=generator))
        else:
            low, high = spec["range"]
            tensors.append(torch.randint(low, high, shape, generator=generator))
    return tensors


def eager_outputs(model, inputs, tensors, outputs):
    """The source model called as ptm calls it: by keyword when every input name is a
    parameter of forward, and the named outputs taken from what it returns."""
    import inspect
    names = [spec["name"] for spec in inputs]
    parameters = inspect.signature(model.forward).parameters
    with torch.no_grad():
        if all(n in parameters for n in names):
            result = model(**dict(zip(names, tensors)))
        else:
            result = model(*tensors)
    if isinstance(result, dict):
        return [result[name] for name in outputs]
    return [result] if isinstance(result, torch.Tensor) else list(result)


def toml_dim(dim):
    return str(dim) if isinstance(dim, int) else f'"{dim}"'


def manifest(package, builder, inputs, outputs, export, quantize, fmt):
    """The row's Cargo.toml: a .pte crate depends on the runtime's ExecuTorch backend
    alone and declares no `export` (every program leaves Python through torch.export)."""
    runtime = "" if fmt == "ptl" else ', default-features = false, features = ["executorch"]'
    how = f'export = "{export}"' if fmt == "ptl" else 'format = "pte"'
    lines = [f'[package]\nname = "{package}"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[workspace]\n',
             f'[dependencies]\nptm = {{ path = "{REPO}/ptm"{runtime} }}\n\n[build-dependencies]\nptm-build = {{ path = "{REPO}/ptm-build" }}\n',
             f'[package.metadata.models.model]\nsource = "models/zoo.py:{builder}"\n{how}\nquantize = "{quantize}"',
             f'outputs = [{", ".join(json.dumps(o) for o in outputs)}]']
    if quantize == "static":
        lines.append('calibration = "calibration"')
    for spec in inputs:
        shape = spec.get("pte_shape", spec["shape"]) if fmt == "pte" else spec["shape"]
        lines.append(f'\n[[package.metadata.models.model.inputs]]\nname = "{spec["name"]}"\ndtype = "{spec["dtype"]}"\n'
                     f'shape = [{", ".join(toml_dim(d) for d in shape)}]')
        if "range" in spec:
            lines.append(f'range = [{spec["range"][0]}, {spec["range"][1]}]')
    return "\n".join(lines) + "\n"


def main_rs(inputs, outputs):
    """Reads each input, runs the typed wrapper, writes each output, times forward."""
    reads, args = [], []
    for index, spec in enumerate(inputs):
        rust = RUST_TYPES[spec["dtype"]]
        shape = [example_size(d) for d in spec["shape"]]
        reads.append(f'    let input{index}: Vec<{rust}> = read(&dir.join("input{index}.bin"), {rust}::from_le_bytes);')
        if all(isinstance(d, int) for d in spec["shape"]):
            args.append(f"input{index}.as_slice().try_into().expect(\"size\")")
        else:
            args.append(f"ptm::TensorRef::new(&input{index}, &{shape})")
    call = f"model.forward({', '.join(args)})"
    writes = "\n".join(f'    write(&dir.join("output{i}.bin"), out.{name}.data().iter().flat_map(|v| v.to_le_bytes()).collect());'
                       for i, name in enumerate(outputs))
    return f'''//! Generated by tools/compat: runs the model's typed wrapper on the inputs in a directory.
use std::path::Path;

ptm::include_models!();

fn read<T, const N: usize>(path: &Path, from: fn([u8; N]) -> T) -> Vec<T> {{
    let bytes = std::fs::read(path).expect("input file");
    bytes.chunks_exact(N).map(|c| from(c.try_into().expect("chunk"))).collect()
}}

fn write(path: &Path, bytes: Vec<u8>) {{
    std::fs::write(path, bytes).expect("output file");
}}

fn main() {{
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("a directory"));
{chr(10).join(reads)}
    let started = std::time::Instant::now();
    let model = Model::load().expect("load");
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let out = {call}.expect("forward");
{writes}
    for _ in 0..3 {{
        {call}.expect("forward");
    }}
    let mut times: Vec<f64> = (0..{LATENCY_RUNS})
        .map(|_| {{
            let started = std::time::Instant::now();
            {call}.expect("forward");
            started.elapsed().as_secs_f64() * 1e3
        }})
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{{{{\\"load_ms\\": {{load_ms}}, \\"forward_ms\\": {{}}, \\"threads\\": {{}}}}}}", times[times.len() / 2], ptm::num_threads());
}}
'''


def failure_text(stderr):
    """The model's error as the build printed it, without cargo's wrapping and with
    paths that do not depend on this checkout."""
    stderr = re.sub(r"/\S*/site-packages/", "site-packages/", stderr).replace(REPO + "/", "")
    lines = [re.sub(r"^\s*(warning|error): [^:]*: ", "", l) for l in stderr.splitlines()]
    start = next((i for i, l in enumerate(lines) if "failed at stage" in l), None)
    if start is None:
        tail = [l for l in lines if l.strip()][-15:]
        return "\n".join(tail)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("traceback", "  --- stderr", "Caused by"))), len(lines))
    return "\n".join(lines[start:min(end, start + 25)]).strip()


def build_row(architecture, library, builder, inputs, outputs, export, quantize, fmt, work=WORK):
    """Builds one row's crate under `work` with this interpreter (PTM_PYTHON), runs its
    typed wrapper and measures it; a failure is the row's `error`, the build's first lines."""
    name = row_name(architecture, quantize, fmt)
    package = f"compat-{name.replace('_', '-')}"
    crate = os.path.join(work, "rows", name)
    shutil.rmtree(crate, ignore_errors=True)
    os.makedirs(os.path.join(crate, "models"))
    os.makedirs(os.path.join(crate, "src"))
    shutil.copy(os.path.join(HERE, "zoo.py"), os.path.join(crate, "models", "zoo.py"))
    with open(os.path.join(crate, "Cargo.toml"), "w") as f:
        f.write(manifest(package, builder, inputs, outputs, export, quantize, fmt))
    with open(os.path.join(crate, "build.rs"), "w") as f:
        f.write("fn main() -> Result<(), ptm_build::Error> {\n    ptm_build::bundle()?;\n    Ok(())\n}\n")
    with open(os.path.join(crate, "src", "main.rs"), "w") as f:
        f.write(main_rs(inputs, outputs))
    if quantize == "static":
        os.makedirs(os.path.join(crate, "calibration"))
        for i in range(CALIBRATION_SAMPLES):
            torch.save(tuple(random_inputs(inputs, 100 + i)), os.path.join(crate, "calibration", f"{i:02}.pt"))

    model = getattr(zoo, builder)()
    fp32_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    tensors = random_inputs(inputs, 7)
    expected = eager_outputs(model, inputs, tensors, outputs)
    run_dir = os.path.join(crate, "run")
    os.makedirs(run_dir)
    for i, t in enumerate(tensors):
        t.numpy().tofile(os.path.join(run_dir, f"input{i}.bin"))

    row = {"architecture": architecture, "library": library, "export": export, "quantize": quantize, "format": fmt,
           "fp32_bytes": fp32_bytes}
    started = time.perf_counter()
    target = os.path.join(work, "target")
    env = dict(os.environ, CARGO_TARGET_DIR=target, PTM_PYTHON=sys.executable)
    for variable in ("PTM_PYTHON_PTL", "PTM_PYTHON_PTE"):
        env.pop(variable, None)
    build = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=crate, env=env, capture_output=True, text=True)
    row["build_seconds"] = round(time.perf_counter() - started, 1)
    if build.returncode != 0:
        row["error"] = failure_text(build.stderr)
        return row
    report = json.load(open(report_path(target, package)))["models"][0]
    row["bytes"] = report["sizes"][-1]["bytes"]
    runtime = next(d for d in report["drift"] if d["stage"] == RUNTIME_STAGE[fmt])
    row["drift"] = max((o["relative"] for o in runtime["outputs"] if o["relative"] is not None), default=None)
    row["top1"] = min((o["top1"] for o in runtime["outputs"] if o.get("top1") is not None), default=None)
    row["worst_layer"] = report.get("layers", [None])[0] if report.get("layers") else None
    row["delegated_operators"] = report.get("delegated_operators")
    row["undelegated_operators"] = report.get("undelegated_operators")
    binary = os.path.join(target, "release", package)
    run = subprocess.run([binary, run_dir], capture_output=True, text=True, env=dict(os.environ, PTM_NUM_THREADS="1"))
    if run.returncode != 0:
        row["error"] = "the typed wrapper failed: " + run.stderr.strip()[-600:]
        return row
    timing = json.loads(run.stdout.strip().splitlines()[-1])
    row.update(timing)
    worst = 0.0
    for i, want in enumerate(expected):
        got = torch.from_numpy(__import__("numpy").fromfile(os.path.join(run_dir, f"output{i}.bin"), dtype="float32")).reshape(want.shape)
        worst = max(worst, float((got - want).abs().max()) / max(float(want.abs().max()), 1e-12))
    row["rust_vs_eager"] = worst
    return row


def report_path(target, package):
    """The models.json of the package's last build: its out dir is named in cargo's
    build-script output directory, newest first."""
    build_root = os.path.join(target, "release", "build")
    candidates = [os.path.join(build_root, d, "out", "ptm", "models.json") for d in os.listdir(build_root)
                  if d.startswith(f"{package}-")]
    candidates = [c for c in candidates if os.path.exists(c)]
    return max(candidates, key=os.path.getmtime)


def build_rows(selected, work=WORK, saved="results.json"):
    """Builds each of `selected` (entries of rows()) in turn, saying how each went on stderr;
    the rows so far are in `work`/`saved` after each."""
    results = []
    for index, (architecture, library, builder, inputs, outputs, export, quantize, fmt) in enumerate(selected, 1):
        print(f"compat: [{index}/{len(selected)}] {architecture}, format = {fmt}, quantize = {quantize}", file=sys.stderr, flush=True)
        row = build_row(architecture, library, builder, inputs, outputs, export, quantize, fmt, work)
        results.append(row)
        status = "built" if "error" not in row else "failed: " + row["error"].splitlines()[0][:200]
        print(f"compat:   {status} ({row['build_seconds']} s)", file=sys.stderr, flush=True)
        with open(os.path.join(work, saved), "w") as f:
            json.dump(results, f, indent=1)
    return results


def versions():
    found = {"torch": torch.__version__}
    for library in ("executorch", "torchvision", "transformers"):
        try:
            found[library] = importlib.import_module(library + ".version" if library == "executorch" else library).__version__
        except ImportError:
            found[library] = "absent"
    return found


def machine():
    return f"{platform.machine()}, {os.cpu_count()} cores"


def in_zoo_order(results):
    order = {row_name(a, q, f): i for i, (a, l, b, ins, o, e, q, f) in enumerate(rows())}
    return sorted(results, key=lambda r: order.get(row_name(r["architecture"], r["quantize"], r["format"]), len(order)))


def main(filters):
    os.makedirs(WORK, exist_ok=True)
    saved = os.path.join(WORK, "results.json")
    if filters[:1] == ["--from-results"]:
        # The rows runs saved, also when stopped before the end: the last run's, or those
        # of the files named, a later file's row replacing an earlier one of the same name.
        files = filters[1:] or [saved]
        found = {}
        for path in files:
            with open(path) as f:
                found.update({row_name(r["architecture"], r["quantize"], r["format"]): r for r in json.load(f)})
        results = in_zoo_order(found.values())
        date = time.strftime("%Y-%m-%d", time.localtime(max(os.path.getmtime(p) for p in files)))
        built = {row_name(r["architecture"], r["quantize"], r["format"]) for r in results}
        missing = [row_name(a, q, f) for a, l, b, i, o, e, q, f in rows() if row_name(a, q, f) not in built]
        text = render(results, sum(r["build_seconds"] for r in results), date, machine(), versions(), missing=missing,
                      summed=len(files) > 1)
        filters = []
    else:
        started = time.perf_counter()
        # Static INT8 rows last: they take longest (calibration, per-layer figures), so a
        # run stopped early still holds every architecture in float and dynamic INT8.
        # A run of some rows keeps the full run's results.json for --from-results.
        saved = "results-" + "-".join(re.sub(r"[^A-Za-z0-9_]", "_", f) for f in filters) + ".json" if filters else "results.json"
        results = in_zoo_order(build_rows(sorted(rows(filters), key=lambda r: r[6] == "static"), saved=saved))
        seconds = time.perf_counter() - started
        text = render(results, seconds, time.strftime("%Y-%m-%d"), machine(), versions(), subset=filters)
    if filters:
        print(text)
        return
    doc = os.path.join(REPO, "docs", "compatibility.md")
    kept = section(open(doc).read(), TOOLCHAINS_HEADING) if os.path.exists(doc) else None
    with open(doc, "w") as f:
        f.write(splice(text, kept) if kept else text)
    print("compat: wrote docs/compatibility.md (" + ", ".join(
        f"{sum('error' not in r for r in results if r['format'] == fmt)} of {sum(r['format'] == fmt for r in results)} .{fmt} rows built"
        for fmt in FORMATS) + ")", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
