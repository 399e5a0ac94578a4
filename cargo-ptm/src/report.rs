//! `cargo ptm report [model]`: what the last build of a crate wrote to models.json, for
//! people (a page per model) or machines (`--json`).

use crate::crates::{self, Workspace};
use ptm_build::ModelReport;
use ptm_report::{Bundle, Dim, TensorSpec};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(workspace: &Workspace, model: Option<&str>, target: Option<&str>, json: bool) -> Result<ExitCode, String> {
    let host = crates::host_triple()?;
    let mut shown = Vec::new();
    for krate in &workspace.crates {
        let report = last_report(&workspace.target_dir, &krate.name, target.filter(|t| *t != host), &host).ok_or_else(|| {
            format!("no build of `{}` has written a report under {} yet; run `cargo build` first", krate.name, workspace.target_dir.display())
        })?;
        let text = std::fs::read_to_string(&report).map_err(|e| format!("could not read {}: {e}", report.display()))?;
        let bundle = Bundle::from_json(&text).map_err(|e| format!("{} is not a report this cargo-ptm reads: {e}", report.display()))?;
        for m in bundle.models.into_iter().filter(|m| model.is_none_or(|name| m.name == name)) {
            shown.push((krate.name.clone(), report.clone(), m));
        }
    }
    if let (Some(name), true) = (model, shown.is_empty()) {
        return Err(format!("no crate here declares a model named `{name}`"));
    }
    if json {
        let values: Vec<serde_json::Value> = shown.iter().map(|(krate, _, m)| serde_json::json!({"crate": krate, "report": m})).collect();
        println!("{}", serde_json::to_string_pretty(&values).unwrap_or_default());
    } else {
        for (krate, path, m) in &shown {
            print!("{}", page(krate, path, m));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The newest models.json written for `package` and the host (or `target`): by a build
/// script (`<target dir>[/<triple>]/<profile>/build/<package>-<hash>/out/ptm/`) or by
/// `cargo ptm prepare` (`<target dir>/ptm-prepare/<package>/<triple>/ptm/`).
fn last_report(target_dir: &Path, package: &str, target: Option<&str>, host: &str) -> Option<PathBuf> {
    let base = target.map_or_else(|| target_dir.to_path_buf(), |t| target_dir.join(t));
    let prefix = format!("{package}-");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let prepared = target_dir.join("ptm-prepare").join(package).join(target.unwrap_or(host)).join("ptm").join(ptm_report::REPORT_FILE);
    if let Ok(modified) = std::fs::metadata(&prepared).and_then(|m| m.modified()) {
        found.push((modified, prepared));
    }
    for profile in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let Ok(builds) = std::fs::read_dir(profile.path().join("build")) else { continue };
        for build in builds.flatten() {
            if !build.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let report = build.path().join("out/ptm").join(ptm_report::REPORT_FILE);
            if let Ok(modified) = std::fs::metadata(&report).and_then(|m| m.modified()) {
                found.push((modified, report));
            }
        }
    }
    found.into_iter().max_by_key(|(modified, _)| *modified).map(|(_, path)| path)
}

fn shape(spec: &TensorSpec) -> String {
    let dims: Vec<String> = spec
        .shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Dynamic { name, example, .. } => match d.range() {
                Some((min, max)) if d.step() > 1 => format!("{name} (built at {example}, {min}..{max} step {})", d.step()),
                Some((min, max)) => format!("{name} (built at {example}, {min}..{max})"),
                None => format!("{name} (built at {example})"),
            },
        })
        .collect();
    format!("{} {} [{}]", spec.name, spec.dtype, dims.join(", "))
}

/// One model's report as text.
fn page(krate: &str, path: &Path, m: &ModelReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{krate}/{}  ({})", m.name, path.display());
    let quantization = if m.quantize == ptm_report::Quantize::None { "float".to_string() } else { format!("{} INT8 ({})", m.quantize, m.engine) };
    let executorch = m.executorch.as_deref().map(|e| format!(", executorch {e}")).unwrap_or_default();
    let _ = writeln!(out, "  source      {} ({} export), {quantization}, torch {}{executorch}", m.source, m.export, m.torch);
    if let Some(python) = &m.python {
        let _ = writeln!(out, "  python      {python}");
    }
    let p = &m.provenance;
    let digests: Vec<String> =
        [("source", p.source_sha256.as_deref()), ("weights", p.weights_sha256.as_deref()), ("calibration", p.calibration_sha256.as_deref())]
            .into_iter()
            .filter_map(|(what, digest)| digest.map(|d| format!("{what} sha256 {d}")))
            .chain(p.depends_sha256.iter().map(|d| format!("depends sha256 {d}")))
            .collect();
    if !digests.is_empty() {
        let _ = writeln!(out, "  made from   {}", digests.join(", "));
    }
    let tools: Vec<String> = [("python", p.python_version.as_deref()), ("torchao", p.torchao.as_deref())]
        .into_iter()
        .filter_map(|(tool, version)| version.map(|v| format!("{tool} {v}")))
        .collect();
    if !tools.is_empty() {
        // torch and ExecuTorch are on the `source` line.
        let _ = writeln!(out, "  made with   {}", tools.join(", "));
    }
    let _ = writeln!(
        out,
        "  artifact    {} ({}), bytecode v{}, sha256 {}",
        m.artifact,
        if m.embed { "embedded" } else { "asset file" },
        m.bytecode_version,
        m.artifact_sha256
    );
    if let (Some(file), Some(sha256)) = (&m.reference, &m.reference_sha256) {
        let _ = writeln!(out, "  self-check  {file} (the samples verified on, the source's outputs), sha256 {sha256}");
    }
    for input in &m.inputs {
        let _ = writeln!(out, "  input       {}", shape(input));
    }
    for output in &m.outputs {
        let _ = writeln!(out, "  output      {}", shape(output));
    }
    let sizes: Vec<String> = m.sizes.iter().map(|s| format!("{} {:.2} MB", s.stage, s.bytes as f64 / 1e6)).collect();
    let _ = writeln!(out, "  sizes       {}", sizes.join(", "));
    if let Some(bytes) = m.planned_memory {
        let _ = writeln!(out, "  memory      {:.2} MB planned by ExecuTorch for activations", bytes as f64 / 1e6);
    }
    for check in m.budget_checks() {
        let verdict = if check.passed() { "within" } else { "OVER" };
        let _ = writeln!(out, "  budget      {} {}: {verdict} ({})", check.key, check.limit_text(), check.figure_text());
    }
    if m.calibration_samples > 0 {
        let _ = writeln!(out, "  calibration {} sample(s)", m.calibration_samples);
    }
    for stage in &m.drift {
        let _ = writeln!(out, "  drift       {} ({} samples):", stage.stage, stage.samples);
        for o in &stage.outputs {
            let detail = match (o.relative, o.mismatched) {
                (_, Some(differ)) => format!("{differ} of {} elements differ", o.elements),
                (relative, None) => {
                    let top1 = o.top1.map_or_else(String::new, |t| format!(", top-1 {:.1}%", t * 100.0));
                    format!("relative {:.3e}, max abs {:.3e}{top1}", relative.unwrap_or(0.0), o.max_abs)
                }
            };
            let _ = writeln!(out, "                {}: {detail}", o.name);
        }
    }
    if !m.layers.is_empty() {
        // How the build measured them: torch's numeric suite cannot read a .pte's PT2E graphs.
        let how = if m.format == ptm_report::Format::Pte { "PT2E graphs" } else { "torch.ao.ns" };
        let _ = writeln!(out, "  INT8 layers ({how}, worst first):");
        for layer in m.layers.iter().take(10) {
            let _ = writeln!(out, "                {} ({}): SQNR {:.1} dB, relative {:.3e}", layer.name, layer.kind, layer.sqnr_db, layer.relative);
        }
        if m.layers.len() > 10 {
            let _ = writeln!(out, "                ... {} more (--json lists them all)", m.layers.len() - 10);
        }
    }
    if let Some(why) = &m.layers_unavailable {
        let _ = writeln!(out, "  INT8 layers unavailable: {why}");
    }
    let _ = writeln!(out, "  operators   {}: {}", m.operators.len(), m.operators.join(", "));
    if let Some(risk) = &m.trace_risk {
        let _ = writeln!(out, "  {}", risk.replace('\n', "\n  "));
    }
    for warning in &m.warnings {
        let _ = writeln!(out, "  warning     {warning}");
    }
    let _ = writeln!(out, "  key         {}", m.cache_key);
    out
}
