//! One build: declarations -> cache keys -> cache hits or one worker run -> `$OUT_DIR/ptm/`.
//!
//! ```text
//! $OUT_DIR/ptm/
//!   models.json      ptm_report::Bundle, read by ptm::include_models!()
//!   <name>.ptl       one Lite Interpreter file per declared model
//! ```

use crate::cache::{Cache, Entry};
use crate::hash::{files_below, KeyHasher};
use crate::manifest::{ModelDecl, Source};
use crate::python::{self, Interpreter, Torch};
use crate::worker::{self, Converted, Job};
use crate::{env, fsutil, Error};
use ptm_report::{Bundle, ModelReport};
use std::path::{Path, PathBuf};

/// Everything a build needs to know, resolved.
pub struct Context {
    /// The crate's directory (holds Cargo.toml).
    pub crate_dir: PathBuf,
    /// Where `ptm/` goes.
    pub out_dir: PathBuf,
    /// The conversion cache.
    pub cache: Cache,
    /// An explicit interpreter, overriding discovery.
    pub python: Option<PathBuf>,
    /// The Rust target triple the app is built for, which picks per-target settings.
    pub target: Option<String>,
}

/// A declared model and the key of its artifact.
pub struct Planned {
    /// The declaration.
    pub decl: ModelDecl,
    /// Content hash of everything that goes into the .ptl.
    pub key: String,
}

/// Reads the declarations, tells cargo which files to watch, and computes every key.
/// Starts Python only when no earlier build recorded this interpreter's torch version.
pub fn plan(ctx: &Context) -> Result<(Vec<Planned>, Option<(Interpreter, Torch)>), Error> {
    let manifest = ctx.crate_dir.join("Cargo.toml");
    env::rerun_if_changed(&manifest);
    let decls = crate::manifest::read(&manifest, ctx.target.as_deref())?;
    if decls.is_empty() {
        return Ok((Vec::new(), None));
    }
    for decl in &decls {
        for input in inputs_of(decl) {
            for file in files_below(&ctx.crate_dir.join(input))? {
                env::rerun_if_changed(&file);
            }
        }
    }
    let interpreter = match &ctx.python {
        Some(path) => Interpreter { path: path.clone(), origin: "Builder::python".into() },
        None => python::find(&ctx.crate_dir)?,
    };
    let torch = python::torch(&interpreter, ctx.cache.root())?;
    let planned = decls
        .into_iter()
        .map(|decl| Ok(Planned { key: key_of(&decl, &ctx.crate_dir, &torch.version)?, decl }))
        .collect::<Result<_, Error>>()?;
    Ok((planned, Some((interpreter, torch))))
}

/// The files a declaration reads, relative to the crate.
pub fn inputs_of(decl: &ModelDecl) -> Vec<&Path> {
    let mut inputs = vec![decl.source.file().as_path()];
    inputs.extend(decl.weights.as_deref());
    inputs.extend(decl.depends.iter().map(PathBuf::as_path));
    inputs.extend(decl.calibration.as_deref());
    inputs
}

/// sha256 over the declaration (minus what does not change the artifact), every input
/// file, the worker's source, the torch version and the ptm-build version.
pub fn key_of(decl: &ModelDecl, crate_dir: &Path, torch_version: &str) -> Result<String, Error> {
    let mut hasher = KeyHasher::default();
    hasher.field("ptm-build", env!("CARGO_PKG_VERSION").as_bytes());
    for (name, text) in worker::SOURCES {
        hasher.field(name, text.as_bytes());
    }
    hasher.field("torch", torch_version.as_bytes());
    let mut canonical = serde_json::to_value(decl).unwrap_or_default();
    if let Some(fields) = canonical.as_object_mut() {
        // The name and embed mode change the wrapper, not the .ptl.
        fields.remove("name");
        fields.remove("embed");
    }
    hasher.field("declaration", canonical.to_string().as_bytes());
    for input in inputs_of(decl) {
        hasher.path("input", crate_dir, input)?;
    }
    Ok(hasher.finish())
}

/// Runs a whole build and returns the report it wrote.
pub fn run(ctx: &Context) -> Result<Bundle, Error> {
    let (planned, python) = plan(ctx)?;
    let mut entries: Vec<Option<Entry>> = planned.iter().map(|p| ctx.cache.get(&p.key)).collect();
    if entries.iter().any(Option::is_none) {
        let (interpreter, torch) = python.as_ref().expect("models were planned, so an interpreter was found");
        convert_missing(ctx, &planned, &mut entries, interpreter, torch)?;
    }
    let entries: Vec<Entry> = entries.into_iter().map(|e| e.expect("every miss was converted or returned an error")).collect();
    write_outputs(ctx, &planned, &entries)
}

fn convert_missing(ctx: &Context, planned: &[Planned], entries: &mut [Option<Entry>], python: &Interpreter, torch: &Torch) -> Result<(), Error> {
    python::check_version(python, torch)?;
    // Lock in key order so two builds never wait on each other in a cycle; then look
    // again, since another build may have converted while we waited.
    let mut keys: Vec<&str> = planned.iter().zip(entries.iter()).filter(|(_, e)| e.is_none()).map(|(p, _)| p.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let _locks = keys.iter().map(|key| ctx.cache.lock(key)).collect::<Result<Vec<_>, _>>()?;
    let mut todo: Vec<usize> = Vec::new();
    for (index, plan) in planned.iter().enumerate() {
        if entries[index].is_none() {
            entries[index] = ctx.cache.get(&plan.key);
        }
        if entries[index].is_none() && !todo.iter().any(|&t| planned[t].key == plan.key) {
            todo.push(index);
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let scratch = ctx.cache.staging()?;
    let staged: Vec<PathBuf> = todo.iter().map(|_| ctx.cache.staging()).collect::<Result<_, _>>()?;
    let jobs: Vec<Job<'_>> = todo.iter().zip(&staged).map(|(&i, dir)| Job { decl: &planned[i].decl, out: dir.join("model.ptl") }).collect();
    let results = worker::run(python, &ctx.crate_dir, &jobs, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let results = results.inspect_err(|_| staged.iter().for_each(|dir| drop(std::fs::remove_dir_all(dir))))?;
    let mut first_error = None;
    for ((&index, dir), result) in todo.iter().zip(&staged).zip(results) {
        match result {
            Ok(converted) => {
                let key = &planned[index].key;
                let entry = ctx.cache.publish(key, dir, &serde_json::to_string_pretty(&converted).unwrap_or_default())?;
                // Models declared twice alike share the key, and so the entry.
                for (slot, plan) in entries.iter_mut().zip(planned) {
                    if &plan.key == key {
                        *slot = Some(entry.clone());
                    }
                }
            }
            Err(error) => {
                let _ = std::fs::remove_dir_all(dir);
                if first_error.is_some() {
                    eprintln!("{error}");
                }
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn write_outputs(ctx: &Context, planned: &[Planned], entries: &[Entry]) -> Result<Bundle, Error> {
    let dir = ctx.out_dir.join("ptm");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let mut models = Vec::new();
    for (plan, entry) in planned.iter().zip(entries) {
        let artifact = format!("{}.ptl", plan.decl.name);
        fsutil::copy_if_changed(&entry.ptl, &dir.join(&artifact))?;
        let converted: Converted = serde_json::from_str(&entry.report).map_err(|e| Error::io("parse cache report of", &entry.ptl, std::io::Error::other(e)))?;
        models.push(report_of(plan, artifact, entry, converted));
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    for model in &models {
        for warning in &model.warnings {
            env::warning(&format!("model `{}`: {warning}", model.name));
        }
    }
    remove_stale_artifacts(&dir, &models);
    fsutil::write_if_changed(&dir.join(SELECTED_OPERATORS), selected_operators(&models).as_bytes())?;
    let bundle = Bundle { schema: ptm_report::SCHEMA, ptm_build: env!("CARGO_PKG_VERSION").into(), models };
    fsutil::write_if_changed(&dir.join(ptm_report::REPORT_FILE), bundle.to_json().as_bytes())?;
    Ok(bundle)
}

/// The app's operator list for a selective libtorch-lite build, beside models.json.
pub const SELECTED_OPERATORS: &str = "selected_operators.yaml";

/// Every operator any model needs, once, sorted: the YAML list PyTorch's
/// `SELECTED_OP_LIST` takes (what `yaml.dump(sorted(ops))` writes).
fn selected_operators(models: &[ModelReport]) -> String {
    let all: std::collections::BTreeSet<&str> = models.iter().flat_map(|m| m.operators.iter().map(String::as_str)).collect();
    let mut text = String::from("# Operators of every model in this crate, for a selective libtorch-lite build\n# (SELECTED_OP_LIST, see docs/device.md). Written by ptm-build.\n");
    for op in all {
        text.push_str(&format!("- {op}\n"));
    }
    text
}

fn report_of(plan: &Planned, artifact: String, entry: &Entry, c: Converted) -> ModelReport {
    let decl = &plan.decl;
    let source = match &decl.source {
        Source::Python { file, callable } => format!("{}:{callable}", file.display()),
        Source::TorchScript { file } => file.display().to_string(),
    };
    ModelReport {
        name: decl.name.clone(),
        source,
        artifact,
        artifact_sha256: entry.ptl_sha256.clone(),
        embed: decl.embed,
        export: word(&decl.export),
        quantize: word(&decl.quantize),
        engine: word(&decl.engine),
        optimize: decl.optimize,
        inputs: c.inputs,
        outputs: c.outputs,
        sizes: c.sizes,
        operators: c.operators,
        bytecode_version: c.bytecode_version,
        drift: c.drift,
        torch: c.torch,
        cache_key: plan.key.clone(),
        warnings: c.warnings,
    }
}

/// The snake_case word serde writes for a unit enum variant, as in Cargo.toml.
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn remove_stale_artifacts(dir: &Path, models: &[ModelReport]) {
    let Ok(listing) = std::fs::read_dir(dir) else { return };
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".ptl") && !models.iter().any(|m| m.artifact == name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
