"""The text of docs/compatibility.md from measured rows: the per-format tables that
tools/compat writes and the Toolchains section that tools/toolchains writes. Pure
functions of their arguments (no torch, no clock), so that tests run without torch:
tools/compat/test_table.py."""
import re

FORMATS = ("ptl", "pte")
RUNTIME_STAGE = {"ptl": "lite", "pte": "executorch"}
TOOLCHAINS_HEADING = "## Toolchains"
FAILURES_HEADING = "## Rows that do not build"


def mb(n):
    return f"{n / 1e6:.2f} MB"


def cell_drift(row):
    if row.get("drift") is None:
        return "-"
    text = f"{row['drift']:.2e}"
    return text + (f", top-1 {row['top1'] * 100:.0f}%" if row.get("top1") is not None else "")


def delegated_share(delegated, undelegated):
    """The share of a program's operators that the XNNPACK delegate runs, as a cell:
    "-" when the report has no counts (a .ptl, or nothing to count)."""
    if delegated is None or undelegated is None or delegated + undelegated == 0:
        return "-"
    total = delegated + undelegated
    return f"{100 * delegated / total:.0f}% ({delegated} of {total})"


def summary_line(error):
    """The stage and the line that says what went wrong: the drifting output, what
    torch.export found, or the message's first line."""
    lines = [l.strip() for l in error.splitlines() if l.strip()]
    stage = re.search(r"failed at stage `(\w+)`", error)
    message = [l for l in lines if not l.startswith(("Error:", "fix:", "every output"))]
    picked = (next((l for l in message if l.startswith("- output")), None)
              or next((l for l in message if "torch.export" in l or "differs from the source" in l), None)
              or (message[0] if message else "failed"))
    return (f"`{stage.group(1)}` " if stage else "") + picked.lstrip("- ")


def escape(text, limit=160):
    text = text.replace("|", "\\|")
    return text if limit is None or len(text) <= limit else text[:limit - 3] + "..."


def built(rows, fmt=None):
    return [r for r in rows if "error" not in r and (fmt is None or r["format"] == fmt)]


def worst_layer_cell(row):
    if "error" in row:
        layer = re.search(r"layers that lose the most.*\n\s*(\S+) \((\w+)\): SQNR (-?[\d.]+) dB", row["error"])
        return f"`{layer.group(1)}` {float(layer.group(3)):.1f} dB" if layer else "-"
    layer = row.get("worst_layer")
    return f"`{layer['name']}` {layer['sqnr_db']:.1f} dB" if layer else "-"


def size_cell(row):
    return f"{mb(row['bytes'])} ({row['bytes'] / row['fp32_bytes']:.2f}x)"


def ptl_table(rows):
    out = ["| architecture | library | export | quantize | builds | .ptl (vs fp32) | drift (lite) | Rust vs eager | forward | worst INT8 layer |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['architecture']} | {r['library']} | {r['export']} | {r['quantize']} | "
        if "error" in r:
            out.append(head + f"no: {escape(summary_line(r['error']))} | - | - | - | - | {worst_layer_cell(r)} |")
        else:
            out.append(head + f"yes | {size_cell(r)} | {cell_drift(r)} | {r['rust_vs_eager']:.2e} | {r['forward_ms']:.2f} ms | "
                       f"{worst_layer_cell(r)} |")
    return out


def pte_table(rows):
    out = ["| architecture | library | quantize | builds | .pte (vs fp32) | drift (executorch) | Rust vs eager | forward | delegated | worst INT8 layer |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['architecture']} | {r['library']} | {r['quantize']} | "
        if "error" in r:
            out.append(head + f"no: {escape(summary_line(r['error']))} | - | - | - | - | - | {worst_layer_cell(r)} |")
        else:
            share = delegated_share(r.get("delegated_operators"), r.get("undelegated_operators"))
            out.append(head + f"yes | {size_cell(r)} | {cell_drift(r)} | {r['rust_vs_eager']:.2e} | {r['forward_ms']:.2f} ms | {share} | "
                       f"{worst_layer_cell(r)} |")
    return out


def render(rows, seconds, date, machine, versions, subset=None, missing=None, summed=False):
    """docs/compatibility.md from every row of one run (each with its `format`); `subset`
    names the filters of a run that did not build every row, `missing` the rows a run
    stopped before the end did not build; `summed` says `seconds` add up the rows' builds
    of several runs rather than one run's duration."""
    ptl = [r for r in rows if r["format"] == "ptl"]
    pte = [r for r in rows if r["format"] == "pte"]
    counts = "; ".join(f"{len(built(rows, f))} of {len([r for r in rows if r['format'] == f])} .{f} rows built"
                       for f in FORMATS if any(r["format"] == f for r in rows))
    out = ["# Compatibility", ""]
    if subset:
        out += [f"**A subset run** (`tools/compat/run {' '.join(subset)}`): only the rows whose name contains one of "
                "these words were built; `tools/compat/run` without arguments builds every row.", ""]
    elif missing:
        out += [f"**An interrupted run**: it was stopped before building {len(missing)} of the {len(rows) + len(missing)} rows "
                f"({', '.join(f'`{m}`' for m in missing)}), which are absent below; "
                "`tools/compat/run` without arguments builds every row.", ""]
    out += ["Generated by `tools/compat/run` (do not edit): every architecture below is built through ptm as an app",
            "builds it (a crate declaring the model, `cargo build --release`), once as a Lite Interpreter file",
            "(`format = \"ptl\"`) and once as an ExecuTorch program (`format = \"pte\"`, the crate depending on the",
            "`ptm` runtime's `executorch` feature alone), then its typed wrapper runs from Rust on an input drawn",
            "with a fixed seed and is compared with the same model run eagerly in PyTorch.",
            "Models come from their libraries with tiny configurations and random weights (nothing downloaded);",
            "torchvision classifiers take 64x64 images and carry BatchNorm statistics from four train-mode passes",
            "over random images; static INT8 is calibrated on 8 random images of the same distribution.", "",
            f"Run: {date}, {machine}, " + ", ".join(f"{k} {v}" for k, v in versions.items())
            + f"; {counts}, " + (f"builds taking {seconds / 60:.0f} min in all (of runs side by side)." if summed
                                 else f"in {seconds / 60:.0f} min."), "",
            "- **size vs fp32**: the file's size over the source model's float32 parameters and buffers.",
            "- **drift (lite)**, **drift (executorch)**: the worst output's relative error in the runtime the app links",
            "  (the Lite Interpreter, ExecuTorch's native runtime) against the source model over the build's samples,",
            "  as the build measured it (and top-1 agreement for classifier outputs).",
            "- **Rust vs eager**: max |Rust output - eager float32 output| / max |eager output| on the compared input;",
            "  for INT8 rows this is the quantization's own difference.",
            "- **forward**: median of 20 calls from Rust on one thread (`PTM_NUM_THREADS=1`), after 3 warm-up calls,",
            "  on this shared machine: a comparison between rows, not a phone's figure.",
            "- **delegated**: the share of the program's operators that the XNNPACK delegate runs; the others run on",
            "  ExecuTorch's portable kernels.", ""]
    if ptl:
        out += ["## Lite Interpreter (.ptl)", ""] + ptl_table(ptl)
        static = [r for r in ptl if r["quantize"] == "static"]
        static_failed = [r for r in static if "error" in r]
        if static_failed:
            out += ["", f"Static INT8 builds for {len(static) - len(static_failed)} of {len(static)} torchvision classifiers here; the others "
                    "drift past the default static tolerance (0.25 relative error, 90% top-1 agreement) and the build stops, "
                    "naming the layer that loses the most (last column, as the build measured it with torch.ao.ns). These "
                    "networks are untrained: the random weights give logits whose classes differ by little more than INT8's "
                    "rounding, and layers whose outputs INT8 represents worse than noise (SQNR near or below 0 dB), so the "
                    "figures say where quantization loses, not how a trained network would fare. With trained weights, the "
                    "fixes the error names apply: calibration samples from real data, `quantize_skip` for the layers named, "
                    "or `quantize = \"dynamic\"`."]
        out.append("")
    if pte:
        out += ["## ExecuTorch (.pte)", "",
                "The same declarations with `format = \"pte\"` (no `export`: every program leaves Python through",
                "torch.export): `quantize = \"static\"` is PT2E with ExecuTorch's XNNPACK quantizer calibrated on the same",
                "samples, `quantize = \"dynamic\"` XNNPACK's dynamic INT8 Linear layers with 8-bit weight-only embeddings.",
                "Token inputs declare their range, `\"tokens=16:1..64\"`: torch.export keeps a dimension dynamic only within",
                "the bound the encoders' table of 64 positions sets (the .ptl rows declare `\"tokens=16\"`).",
                "The last column names the quantized layer that loses the most, as the build measured it.",
                ""] + pte_table(pte) + [""]
    failures = [r for r in rows if "error" in r]
    if failures:
        out += [FAILURES_HEADING, "",
                "Each with the error the build printed (the first lines), so that it can be read without running the tool."]
        for r in failures:
            out += ["", f"### {r['architecture']}, format = \"{r['format']}\", quantize = \"{r['quantize']}\"", "",
                    "```text", r["error"], "```"]
    return "\n".join(out).rstrip("\n") + "\n"


def section(doc, heading):
    """The lines of `doc` from `heading` to the next second-level heading, or None."""
    lines = doc.splitlines()
    if heading not in lines:
        return None
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip("\n")


def splice(doc, text, heading=TOOLCHAINS_HEADING):
    """`doc` with the section under `heading` replaced by `text` (which starts with the
    heading); where it has none, the section goes before the failures, else at the end."""
    lines = doc.rstrip("\n").splitlines()
    new = text.strip("\n").splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = [""] + lines[end:] if end < len(lines) else []
        lines = lines[:start] + new + tail
    elif FAILURES_HEADING in lines:
        at = lines.index(FAILURES_HEADING)
        lines = lines[:at] + new + [""] + lines[at:]
    else:
        lines = lines + [""] + new
    return "\n".join(lines) + "\n"


def toolchains_section(entries, measured, unmeasured, date, machine, seconds, unpaired=None):
    """The Toolchains section: for each toolchain of toolchains.json (`entries`, in its
    order), a line per model and format it makes (`measured[series]`: rows as tools/compat
    builds them), a line per format it cannot make with the table's reason, and a line per
    format it makes that this run did not measure (`unmeasured[series][format]`: why);
    then the table's `unpaired` torch releases, each with its reason."""
    out = [TOOLCHAINS_HEADING, "",
           "Generated by `tools/toolchains/run table` (do not edit): the validated toolchains of",
           "`ptm-toolchain/toolchains/toolchains.json`, each in its own Python environment (installed from",
           "`tools/toolchains/locks/`; the default one is the project's `.venv`), building a few of the models above",
           "through ptm as tools/compat does (`PTM_PYTHON` set to the toolchain's python). A build outside these",
           "pairs fails unless `PTM_ALLOW_UNTESTED_TORCH=1`.", "",
           f"Run: {date}, {machine}, in {seconds / 60:.0f} min.", "",
           "| torch | executorch | format | model | builds | drift | forward |",
           "|---|---|---|---|---|---|---|"]
    for entry in entries:
        series = entry["series"]
        head = f"| {entry['torch']} | {entry.get('executorch') or '-'} | "
        for fmt in FORMATS:
            reason = entry.get("cannot", {}).get(fmt)
            if reason:
                out.append(head + f".{fmt} | - | cannot: {escape(reason, None)} | - | - |")
                continue
            if fmt in unmeasured.get(series, {}):
                out.append(head + f".{fmt} | - | not measured in this run: {escape(unmeasured[series][fmt], None)} | - | - |")
                continue
            for r in [r for r in measured.get(series, []) if r["format"] == fmt]:
                name = r["architecture"] + ("" if r["quantize"] == "none" else f" ({r['quantize']})")
                if "error" in r:
                    out.append(head + f".{fmt} | {name} | no: {escape(summary_line(r['error']))} | - | - |")
                else:
                    out.append(head + f".{fmt} | {name} | yes | {cell_drift(r)} | {r['forward_ms']:.2f} ms |")
    for series, reason in (unpaired or {}).items():
        out += ["", f"torch {series} is not a validated toolchain: {reason}."]
    return "\n".join(out) + "\n"
