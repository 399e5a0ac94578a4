//! `cargo ptm prepare`: fill the committed store; `--check`: is it current?

use crate::crates::{self, Workspace};
use crate::progress::{Display, Mode};
use crate::table::{self, Row};
use ptm_build::tooling::store::{Store, Stored};
use ptm_build::Builder;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

pub fn run(workspace: &Workspace, targets: &[String], check_only: bool, json: bool, mode: Mode) -> Result<ExitCode, String> {
    if workspace.crates.is_empty() {
        eprintln!("ptm: no crate here declares [package.metadata.models]");
        return Ok(ExitCode::SUCCESS);
    }
    if check_only {
        return check(workspace, targets);
    }
    let targets = if targets.is_empty() { vec![crates::host_triple()?] } else { targets.to_vec() };
    let display = Arc::new(Display::new(mode));
    let mut rows = Vec::new();
    for krate in &workspace.crates {
        let mut stored = Vec::new();
        for target in &targets {
            let started = Instant::now();
            display.note(&format!("ptm prepare: {} for {target} ...", krate.name));
            let shown = Arc::clone(&display);
            let out_dir = workspace.target_dir.join("ptm-prepare").join(&krate.name).join(target);
            let outcome = Builder::new()
                .crate_dir(&krate.dir)
                .out_dir(&out_dir)
                .cache_dir(workspace.cache_dir())
                .target(target.clone())
                .progress(move |event| shown.show(event))
                .build()
                .map_err(|e| e.to_string())?;
            for model in &outcome.models {
                let report = outcome.bundle.models.iter().find(|m| m.name == model.name).ok_or_else(|| format!("the report lacks model `{}`", model.name))?;
                let converted: Option<ptm_report::Converted> = serde_json::from_str(&model.entry.report).ok();
                rows.push(Row::new(&krate.name, target, report, model.origin, converted.map(|c| c.seconds)));
                stored.push(Stored {
                    model: model.name.clone(),
                    target: target.clone(),
                    key: model.key.clone(),
                    torch: model.torch.clone(),
                    executorch: model.executorch.clone(),
                    entry: model.entry.clone(),
                });
            }
            display.note(&format!("ptm prepare: {} for {target}: {} model(s) in {:.1} s", krate.name, outcome.models.len(), started.elapsed().as_secs_f64()));
        }
        let store = Store::of(&krate.dir);
        if let Some(problem) = store.index_problem() {
            display.warn(&format!("ptm: {problem}; writing it again with what was prepared now"));
        }
        store.write(&stored).map_err(|e| e.to_string())?;
        display.note(&format!("ptm prepare: wrote {}", store.root().display()));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows.iter().map(Row::json).collect::<Vec<_>>()).unwrap_or_default());
    } else {
        print!("{}", table::render(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every model's store entry against today's files, without Python: for the targets
/// given, else for every target the store records (the host's when it records none).
fn check(workspace: &Workspace, targets: &[String]) -> Result<ExitCode, String> {
    let mut problems = Vec::new();
    let mut current = 0;
    for krate in &workspace.crates {
        let store = Store::of(&krate.dir);
        let targets = if targets.is_empty() { recorded_targets(&store, &krate.dir)? } else { targets.to_vec() };
        for target in &targets {
            let decls = ptm_build::manifest::read(&krate.dir.join("Cargo.toml"), Some(target)).map_err(|e| e.to_string())?;
            for decl in decls {
                match store.find(&decl, &krate.dir, None) {
                    Ok(_) => current += 1,
                    Err(miss) => problems.push(format!("  - {} `{}` ({target}): {miss}", krate.name, decl.name)),
                }
            }
        }
    }
    if problems.is_empty() {
        println!("ptm: the store is current ({current} model(s))");
        return Ok(ExitCode::SUCCESS);
    }
    println!("ptm: the store is not current:\n{}\n  fix: run `cargo ptm prepare` and commit the .ptm/ directories", problems.join("\n"));
    Ok(ExitCode::from(1))
}

/// The targets a crate's store index records for any of its models.
fn recorded_targets(store: &Store, crate_dir: &std::path::Path) -> Result<Vec<String>, String> {
    let decls = ptm_build::manifest::read(&crate_dir.join("Cargo.toml"), None).map_err(|e| e.to_string())?;
    let mut targets: Vec<String> = decls.iter().flat_map(|d| store.indexed(&d.name).unwrap_or_default()).map(|record| record.target).collect();
    targets.sort();
    targets.dedup();
    if targets.is_empty() {
        targets.push(crates::host_triple()?);
    }
    Ok(targets)
}
