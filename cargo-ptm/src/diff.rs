//! `cargo ptm diff <a> <b>`: what changed between two builds of the same models, for
//! review (a torch bump, a new quantization): per model, its size, planned memory, drift,
//! top-1, operators and the toolchain that made it; exit 1 when a model of `b` crosses
//! its budget.
//!
//! Each side is a build's report (a models.json file, or the directory holding it) or a
//! committed store (a `.ptm/` directory or a copy of one, or the crate directory holding
//! one). A store's budgets are those of the Cargo.toml beside it, when there is one.

use ptm_build::tooling::store::Store;
use ptm_report::{Budget, BudgetCheck, Bundle, Converted, Format, ModelReport, StageDrift, StageSize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// What a side says of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub format: Format,
    pub bytes: Option<u64>,
    pub planned_memory: Option<u64>,
    pub relative: Option<f64>,
    pub top1: Option<f64>,
    pub operators: BTreeSet<String>,
    pub delegated: Option<(u32, u32)>,
    pub toolchain: String,
    pub artifact_sha256: String,
    pub budget: Budget,
}

impl Figures {
    fn of_report(m: &ModelReport) -> Figures {
        let made = Made { sizes: &m.sizes, drift: &m.drift, operators: &m.operators, torch: &m.torch, executorch: m.executorch.as_deref() };
        Figures::new(m.format, made, m.planned_memory, m.delegated_operators.zip(m.undelegated_operators), m.artifact_sha256.clone(), m.budget)
    }

    fn of_converted(c: &Converted, format: Format, artifact_sha256: String, budget: Budget) -> Figures {
        let made = Made { sizes: &c.sizes, drift: &c.drift, operators: &c.operators, torch: &c.torch, executorch: c.executorch.as_deref() };
        Figures::new(format, made, c.planned_memory, c.delegated_operators.zip(c.undelegated_operators), artifact_sha256, budget)
    }

    fn new(format: Format, made: Made<'_>, planned_memory: Option<u64>, delegated: Option<(u32, u32)>, artifact_sha256: String, budget: Budget) -> Figures {
        let drift = made.drift.iter().find(|d| d.stage == format.runtime_stage());
        Figures {
            format,
            bytes: made.sizes.last().map(|s| s.bytes),
            planned_memory,
            relative: drift.and_then(|d| d.worst_relative()),
            top1: drift.and_then(|d| d.worst_top1()),
            operators: made.operators.iter().cloned().collect(),
            delegated,
            toolchain: made.executorch.map_or_else(|| format!("torch {}", made.torch), |e| format!("torch {}, executorch {e}", made.torch)),
            artifact_sha256,
            budget,
        }
    }

    /// Each limit of its budget against its figures.
    pub fn budget_checks(&self) -> Vec<BudgetCheck> {
        self.budget.checks(self.bytes, self.planned_memory, self.top1, self.relative)
    }
}

/// What a report and a cache entry's report both say of how a model was made.
struct Made<'a> {
    sizes: &'a [StageSize],
    drift: &'a [StageDrift],
    operators: &'a [String],
    torch: &'a str,
    executorch: Option<&'a str>,
}

/// Every model of one side, by name.
pub fn read_side(path: &Path, target: &str) -> Result<BTreeMap<String, Figures>, String> {
    let report = if path.is_dir() { path.join(ptm_report::REPORT_FILE) } else { path.to_path_buf() };
    if report.is_file() {
        let text = std::fs::read_to_string(&report).map_err(|e| format!("could not read {}: {e}", report.display()))?;
        let bundle = Bundle::from_json(&text).map_err(|e| format!("{} is not a report this cargo-ptm reads: {e}", report.display()))?;
        return Ok(bundle.models.iter().map(|m| (m.name.clone(), Figures::of_report(m))).collect());
    }
    // A store's directory (any name: a copy of a `.ptm/` too), or a crate's that holds one.
    let (store, manifest) = if Store::at(path).exists() {
        (Store::at(path), path.parent().map(|crate_dir| crate_dir.join("Cargo.toml")))
    } else {
        (Store::of(path), Some(path.join("Cargo.toml")))
    };
    if !store.exists() {
        return Err(format!(
            "{} is neither a report (models.json, or a directory holding one) nor a committed store (.ptm/ or a copy of one, or a crate directory holding one)",
            path.display()
        ));
    }
    read_store(&store, manifest.as_deref(), target)
}

fn read_store(store: &Store, manifest: Option<&Path>, target: &str) -> Result<BTreeMap<String, Figures>, String> {
    let problem = |e: ptm_build::tooling::store::Miss| format!("{}: {e}", store.root().display());
    // Budgets come from the manifest beside the store, when there is one that reads.
    let budgets: BTreeMap<String, Budget> = manifest
        .and_then(|manifest| ptm_build::manifest::read(manifest, Some(target)).ok())
        .map(|decls| decls.into_iter().map(|d| (d.name, d.budget)).collect())
        .unwrap_or_default();
    let mut figures = BTreeMap::new();
    for model in store.models().map_err(problem)? {
        let records = store.indexed(&model).map_err(problem)?;
        // The record for `target`, or the only one there is.
        let Some(record) = records.iter().find(|r| r.target == target).or(if records.len() == 1 { records.first() } else { None }) else {
            let targets: Vec<&str> = records.iter().map(|r| r.target.as_str()).collect();
            return Err(format!("{}: `{model}` is prepared for {}, not {target}; pass --target", store.root().display(), targets.join(", ")));
        };
        let entry = store.get(&model, &record.key).map_err(|e| format!("{}: `{model}`: {e}", store.root().display()))?;
        let converted: Converted =
            serde_json::from_str(&entry.report).map_err(|e| format!("{}: `{model}`'s report cannot be read: {e}", entry.artifact.display()))?;
        let format = if entry.artifact.extension().is_some_and(|e| e == "pte") { Format::Pte } else { Format::Ptl };
        let budget = budgets.get(&model).copied().unwrap_or_default();
        figures.insert(model, Figures::of_converted(&converted, format, entry.artifact_sha256.clone(), budget));
    }
    Ok(figures)
}

/// The comparison as text, and whether a model of `b` crosses its budget.
pub fn compare(a: &BTreeMap<String, Figures>, b: &BTreeMap<String, Figures>) -> (String, bool) {
    let mut out = String::new();
    let mut over = false;
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        match (a.get(name), b.get(name)) {
            (Some(_), None) => {
                let _ = writeln!(out, "{name}: removed");
            }
            (None, Some(new)) => {
                let _ = writeln!(out, "{name}: added (.{}, {})", new.format, bytes(new.bytes));
                over |= budget_lines(&mut out, new);
            }
            (Some(old), Some(new)) => {
                let same = old.artifact_sha256 == new.artifact_sha256;
                let _ = writeln!(out, "{name} (.{}){}", new.format, if same { ": the same artifact" } else { "" });
                if !same {
                    changes(&mut out, old, new);
                }
                over |= budget_lines(&mut out, new);
            }
            (None, None) => {}
        }
    }
    (out, over)
}

fn changes(out: &mut String, old: &Figures, new: &Figures) {
    if old.format != new.format {
        let _ = writeln!(out, "  format      .{} -> .{}", old.format, new.format);
    }
    let _ = writeln!(out, "  size        {} -> {}{}", bytes(old.bytes), bytes(new.bytes), percent(old.bytes, new.bytes));
    if old.planned_memory.is_some() || new.planned_memory.is_some() {
        let _ =
            writeln!(out, "  memory      {} -> {}{}", bytes(old.planned_memory), bytes(new.planned_memory), percent(old.planned_memory, new.planned_memory));
    }
    let number = |v: Option<f64>, show: fn(f64) -> String| v.map_or_else(|| "-".to_string(), show);
    if old.relative.is_some() || new.relative.is_some() {
        let show = |v: f64| format!("{v:.3e}");
        let _ = writeln!(out, "  drift       {} -> {} (worst relative error, in the runtime)", number(old.relative, show), number(new.relative, show));
    }
    if old.top1.is_some() || new.top1.is_some() {
        let show = |v: f64| format!("{v:.3}");
        let _ = writeln!(out, "  top-1       {} -> {}", number(old.top1, show), number(new.top1, show));
    }
    let added: Vec<&String> = new.operators.difference(&old.operators).collect();
    let removed: Vec<&String> = old.operators.difference(&new.operators).collect();
    if !added.is_empty() || !removed.is_empty() {
        let mut line = format!("  operators   {} -> {}", old.operators.len(), new.operators.len());
        if !added.is_empty() {
            line += &format!("; added {}", added.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
        }
        if !removed.is_empty() {
            line += &format!("; removed {}", removed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
        }
        let _ = writeln!(out, "{line}");
    }
    if old.delegated != new.delegated {
        let show = |d: Option<(u32, u32)>| d.map_or_else(|| "-".to_string(), |(inside, outside)| format!("{inside} in XNNPACK, {outside} outside"));
        let _ = writeln!(out, "  delegated   {} -> {}", show(old.delegated), show(new.delegated));
    }
    if old.toolchain != new.toolchain {
        let _ = writeln!(out, "  made with   {} -> {}", old.toolchain, new.toolchain);
    }
}

/// The budget lines of a model of `b`; true when one is crossed.
fn budget_lines(out: &mut String, new: &Figures) -> bool {
    let mut over = false;
    for check in new.budget_checks() {
        let passed = check.passed();
        over |= !passed;
        let _ = writeln!(out, "  budget      {} {}: {} ({})", check.key, check.limit_text(), if passed { "within" } else { "OVER" }, check.figure_text());
    }
    over
}

fn bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), ptm_report::human_bytes)
}

fn percent(old: Option<u64>, new: Option<u64>) -> String {
    match (old, new) {
        (Some(old), Some(new)) if old > 0 && old != new => format!(" ({:+.1}%)", (new as f64 - old as f64) / old as f64 * 100.0),
        _ => String::new(),
    }
}

pub fn run(a: &Path, b: &Path, target: Option<&str>) -> Result<ExitCode, String> {
    let target = match target {
        Some(t) => t.to_string(),
        None => crate::crates::host_triple()?,
    };
    let (old, new) = (read_side(a, &target)?, read_side(b, &target)?);
    let (text, over) = compare(&old, &new);
    print!("{text}");
    if over {
        eprintln!("error: a model of {} crosses its budget (OVER above)", b.display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
