//! One build: declarations -> cache keys -> cache hits or one worker run -> `$OUT_DIR/ptm/`.
//!
//! ```text
//! $OUT_DIR/ptm/
//!   models.json      ptm_report::Bundle, read by ptm::include_models!()
//!   <name>.ptl       one Lite Interpreter file per declared model
//!   selected_operators.yaml   every operator the models use, for a selective libtorch-lite
//! ```

use crate::cache::{Cache, Entry};
use crate::error::Error;
use crate::fsutil;
use crate::hash::files_below;
use crate::key::{inputs_of, key_with, Inputs};
use crate::manifest::{ModelDecl, Source};
use crate::progress::{self, Origin, Progress, Sink};
use crate::store::{Miss, Store};
use crate::worker::{self, Converted, Job};
use ptm_report::{Bundle, Format, ModelReport};
use ptm_toolchain::env;
use ptm_toolchain::python::{self, Interpreter, Torch};
use ptm_toolchain::toolchains;
use ptm_toolchain::vars::PTM_OFFLINE;
use ptm_toolchain::{Error as ToolchainError, Tool};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything a build needs to know, resolved.
pub struct Context {
    /// The crate's directory (holds Cargo.toml).
    pub crate_dir: PathBuf,
    /// Where `ptm/` goes.
    pub out_dir: PathBuf,
    /// The conversion cache.
    pub cache: Cache,
    /// Where ExecuTorch's runner and the torch probes are kept (the cache's root unless
    /// `PTM_TOOLCHAIN_DIR` or the builder says otherwise).
    pub toolchain_dir: PathBuf,
    /// An explicit interpreter, overriding discovery.
    pub python: Option<PathBuf>,
    /// An explicit interpreter for one format's models, before [`Context::python`].
    pub python_for: BTreeMap<Format, PathBuf>,
    /// The Rust target triple the app is built for, which picks per-target settings.
    pub target: Option<String>,
    /// Build only from the cache and the store (`PTM_OFFLINE=1`).
    pub offline: bool,
    /// Where progress goes, when not to stderr.
    pub(crate) progress: Option<Sink>,
    /// When a model stuck in one stage is reported, and killed.
    pub(crate) supervision: worker::Supervision,
}

impl Context {
    fn emit(&self, event: Progress<'_>) {
        progress::emit(self.progress.as_ref(), event);
    }

    /// A warning for the user: cargo's in a build script, else a line of progress.
    fn warn(&self, message: &str) {
        if env::in_build_script() || self.progress.is_none() {
            env::warning(message);
        } else {
            self.emit(Progress::Line(&format!("warning: ptm: {message}")));
        }
    }
}

/// A declared model and the key of its artifact.
pub struct Planned {
    /// The declaration.
    pub decl: ModelDecl,
    /// Content hash of everything that goes into the .ptl.
    pub key: String,
    /// The digests of the files the declaration reads, hashed once with the key.
    pub provenance: ptm_report::Provenance,
}

/// What one build did for one model.
#[derive(Debug, Clone)]
pub struct ModelOutcome {
    /// The declared name.
    pub name: String,
    /// The artifact's key.
    pub key: String,
    /// The torch version in the key.
    pub torch: String,
    /// For a `.pte`, the ExecuTorch version in the key.
    pub executorch: Option<String>,
    /// Where the artifact came from.
    pub origin: Origin,
    /// The entry the artifact was taken from.
    pub entry: Entry,
}

/// A whole build's result: the report it wrote and how it got each model.
pub struct Outcome {
    /// What models.json now holds.
    pub bundle: Bundle,
    /// One per declared model, in declaration order.
    pub models: Vec<ModelOutcome>,
}

/// Reads the declarations and tells cargo which files to watch.
fn declarations(ctx: &Context) -> Result<Vec<ModelDecl>, Error> {
    let manifest = ctx.crate_dir.join("Cargo.toml");
    env::rerun_if_changed(&manifest);
    // Watched only once it exists: cargo reruns a script for ever over a missing file.
    // A store created later matters to offline builds, and PTM_OFFLINE is watched.
    let index = Store::of(&ctx.crate_dir).root().join("index.json");
    if index.is_file() {
        env::rerun_if_changed(&index);
    }
    let decls = crate::manifest::read(&manifest, ctx.target.as_deref())?;
    for decl in &decls {
        for warning in &decl.warnings {
            env::warning(&format!("model `{}`: {warning}", decl.name));
        }
        for input in inputs_of(decl) {
            let path = ctx.crate_dir.join(input);
            // A directory is watched as such, so a file added, removed or renamed in it
            // reruns the build (and changes the key); its files for their contents.
            if path.is_dir() {
                env::rerun_if_changed(&path);
            }
            for file in files_below(&path)? {
                env::rerun_if_changed(&file);
            }
        }
    }
    Ok(decls)
}

/// The calibration samples the worker reads, relative to the crate: the `.pt` and
/// `.pth` files of the walk that the key hashed.
fn calibration_files(decl: &ModelDecl, crate_dir: &Path) -> Result<Vec<String>, Error> {
    let Some(dir) = &decl.calibration else { return Ok(Vec::new()) };
    let samples = crate::hash::named_files(crate_dir, dir)?
        .into_iter()
        .filter(|(_, file)| file.extension().is_some_and(|ext| ext == "pt" || ext == "pth"))
        .map(|(name, _)| name)
        .collect();
    Ok(samples)
}

/// The interpreter that converts `format`'s models, and its torch.
fn interpreter(ctx: &Context, format: Format) -> Result<(Interpreter, Torch), Error> {
    let interpreter = match (ctx.python_for.get(&format), &ctx.python) {
        (Some(path), _) => Interpreter { path: path.clone(), origin: format!("Builder::python_for({format})"), from_path: false },
        (None, Some(path)) => Interpreter { path: path.clone(), origin: "Builder::python".into(), from_path: false },
        (None, None) => python::find(&ctx.crate_dir, Some(format))?,
    };
    let torch = python::torch(&interpreter, &ctx.toolchain_dir)?;
    python::watch(&interpreter, &torch);
    Ok((interpreter, torch))
}

/// The ExecuTorch version in a model's key: a `.pte`'s exporter, nothing for a `.ptl`.
fn executorch_of(format: Format, torch: &Torch) -> Option<String> {
    (format == Format::Pte).then(|| torch.executorch.clone()).flatten()
}

/// Runs a whole build: the cache, then the store, then one worker for what is left.
/// With `PTM_OFFLINE=1`, or when no Python with torch is found, only the cache and the
/// store are used, and no Python starts.
pub fn build(ctx: &Context) -> Result<Outcome, Error> {
    let decls = declarations(ctx)?;
    if decls.is_empty() {
        return write_outputs(ctx, &[], &[], &BTreeMap::new()).map(|bundle| Outcome { bundle, models: Vec::new() });
    }
    if ctx.offline {
        return without_python(ctx, decls, format!("{PTM_OFFLINE}=1 is set"));
    }
    // One interpreter per format declared; both are usually the same one.
    let mut found: BTreeMap<Format, (Interpreter, Torch)> = BTreeMap::new();
    for decl in &decls {
        if found.contains_key(&decl.format) {
            continue;
        }
        match interpreter(ctx, decl.format) {
            Ok(pair) => found.insert(decl.format, pair),
            // With a store, a machine without Python builds what the store holds.
            Err(Error::Toolchain(ToolchainError::Unusable { tool: Tool::Python, problem, .. })) if Store::of(&ctx.crate_dir).exists() => {
                return without_python(ctx, decls, problem)
            }
            Err(other) => return Err(other),
        };
    }
    let torch_of = |format: Format| &found[&format].1;
    let planned: Vec<Planned> = decls
        .into_iter()
        .map(|decl| {
            let torch = torch_of(decl.format);
            let inputs = Inputs::hash(&decl, &ctx.crate_dir)?;
            let key = key_with(&decl, &inputs, &torch.version, executorch_of(decl.format, torch).as_deref());
            Ok(Planned { key, provenance: inputs.provenance(&decl), decl })
        })
        .collect::<Result<_, Error>>()?;
    let store = Store::of(&ctx.crate_dir);
    let mut origins = Vec::new();
    let mut entries: Vec<Option<Entry>> = Vec::new();
    let mut corrupt_reported = false;
    for plan in &planned {
        let (entry, origin) = match ctx.cache.get(&plan.key) {
            Some(entry) => (Some(entry), Origin::Cache),
            None => match store.get(&plan.decl.name, &plan.key) {
                Ok(entry) => (Some(entry), Origin::Store),
                Err(miss) => {
                    report_store_miss(ctx, &store, &plan.decl.name, &miss, &torch_of(plan.decl.format).version, &mut corrupt_reported);
                    (None, Origin::Converted)
                }
            },
        };
        if entry.is_some() {
            ctx.emit(Progress::Done { model: &plan.decl.name, origin });
        }
        entries.push(entry);
        origins.push(origin);
    }
    if entries.iter().any(Option::is_none) {
        let missing: Vec<bool> = entries.iter().map(Option::is_none).collect();
        // One worker per interpreter, each converting the formats it was chosen for.
        let mut by_interpreter: Vec<(&Interpreter, &Torch, Vec<Format>)> = Vec::new();
        for (format, (interpreter, torch)) in &found {
            match by_interpreter.iter_mut().find(|(i, _, _)| i.path == interpreter.path) {
                Some((_, _, formats)) => formats.push(*format),
                None => by_interpreter.push((interpreter, torch, vec![*format])),
            }
        }
        for (interpreter, torch, formats) in by_interpreter {
            convert_missing(ctx, &planned, &mut entries, interpreter, torch, &formats)?;
        }
        for (plan, _) in planned.iter().zip(missing).filter(|(_, missing)| *missing) {
            ctx.emit(Progress::Done { model: &plan.decl.name, origin: Origin::Converted });
        }
    }
    let entries: Vec<Entry> = entries.into_iter().map(|e| e.expect("every miss was converted or returned an error")).collect();
    let pythons: BTreeMap<Format, String> = found.iter().map(|(format, (i, _))| (*format, format!("{} ({})", i.path.display(), i.origin))).collect();
    let bundle = write_outputs(ctx, &planned, &entries, &pythons)?;
    check_budgets(ctx, &planned, &bundle)?;
    let models = planned
        .iter()
        .zip(entries)
        .zip(origins)
        .map(|((plan, entry), origin)| {
            let torch = torch_of(plan.decl.format);
            ModelOutcome {
                name: plan.decl.name.clone(),
                key: plan.key.clone(),
                torch: torch.version.clone(),
                executorch: executorch_of(plan.decl.format, torch),
                origin,
                entry,
            }
        })
        .collect();
    Ok(Outcome { bundle, models })
}

/// Warns when the committed store could not provide `model` for a reason its owner must
/// hear about, although converting repairs this build: a damaged entry or a corrupt
/// index (reported once per build) stays wrong in the repository until prepared again,
/// and a store from another build of the same torch release converts every time.
fn report_store_miss(ctx: &Context, store: &Store, model: &str, miss: &Miss, torch: &str, corrupt_reported: &mut bool) {
    match miss {
        Miss::Damaged(_) => {
            ctx.warn(&format!("model `{model}`: the committed store's entry is {miss}; converting it instead (run `cargo ptm prepare` to repair the store)"))
        }
        Miss::Corrupt { .. } if !*corrupt_reported => {
            *corrupt_reported = true;
            ctx.warn(&format!("{miss}; converting instead"));
        }
        Miss::Stale => {
            if let Some(recorded) = store.same_release_other_build(model, torch) {
                ctx.warn(&format!("model `{model}`: the committed store was prepared with torch {recorded} and this build has torch {torch}: keys hold the full torch version, build tag included (docs/TOOLCHAIN.md), so it converts again; build with {}=1 to take the store's artifact, or prepare the store with this torch", PTM_OFFLINE));
            }
        }
        _ => {}
    }
}

/// Every model from the cache or the store, keyed with the torch version the store
/// recorded; `why` says why Python is not used.
fn without_python(ctx: &Context, decls: Vec<ModelDecl>, why: String) -> Result<Outcome, Error> {
    let store = Store::of(&ctx.crate_dir);
    let mut planned = Vec::new();
    let mut models = Vec::new();
    let mut missing = Vec::new();
    for decl in decls {
        // A file that cannot be hashed makes the entry stale, as Store::find says.
        let Ok(inputs) = Inputs::hash(&decl, &ctx.crate_dir) else {
            missing.push((decl.name.clone(), Miss::Stale.to_string()));
            continue;
        };
        let found = store
            .find_hashed(&decl, &inputs, Some(&ctx.cache))
            .map(|(key, torch, entry, cached)| (key, torch, entry, if cached { Origin::Cache } else { Origin::Store }));
        match found {
            Ok((key, record, entry, origin)) => {
                ctx.emit(Progress::Done { model: &decl.name, origin });
                models.push(ModelOutcome { name: decl.name.clone(), key: key.clone(), torch: record.torch, executorch: record.executorch, origin, entry });
                planned.push(Planned { provenance: inputs.provenance(&decl), decl, key });
            }
            Err(miss) => missing.push((decl.name.clone(), miss.to_string())),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Offline { crate_dir: ctx.crate_dir.clone(), why, models: missing });
    }
    let entries: Vec<Entry> = models.iter().map(|m| m.entry.clone()).collect();
    let bundle = write_outputs(ctx, &planned, &entries, &BTreeMap::new())?;
    check_budgets(ctx, &planned, &bundle)?;
    Ok(Outcome { bundle, models })
}

/// Converts the missing models of `formats` with `python`, after checking that its
/// torch (and ExecuTorch) is a validated toolchain for the formats it has to make.
fn convert_missing(
    ctx: &Context,
    planned: &[Planned],
    entries: &mut [Option<Entry>],
    python: &Interpreter,
    torch: &Torch,
    formats: &[Format],
) -> Result<(), Error> {
    let mine = |index: usize| entries[index].is_none() && formats.contains(&planned[index].decl.format);
    let needed: Vec<Format> = formats.iter().copied().filter(|f| (0..planned.len()).any(|i| mine(i) && planned[i].decl.format == *f)).collect();
    if needed.is_empty() {
        return Ok(());
    }
    toolchains::check(python, torch, &needed)?;
    // Lock in key order so two builds never wait on each other in a cycle; then look
    // again, since another build may have converted while we waited.
    let mut keys: Vec<&str> = (0..planned.len()).filter(|&i| mine(i)).map(|i| planned[i].key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let _locks = keys.iter().map(|key| ctx.cache.lock(key)).collect::<Result<Vec<_>, _>>()?;
    let mut todo: Vec<usize> = Vec::new();
    for (index, plan) in planned.iter().enumerate() {
        if !formats.contains(&plan.decl.format) {
            continue;
        }
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
    let samples: Vec<Vec<String>> = todo.iter().map(|&i| calibration_files(&planned[i].decl, &ctx.crate_dir)).collect::<Result<_, _>>()?;
    let scratch = ctx.cache.staging()?;
    let staged: Vec<PathBuf> = todo.iter().map(|_| ctx.cache.staging()).collect::<Result<_, _>>()?;
    let jobs: Vec<Job<'_>> = todo
        .iter()
        .zip(&staged)
        .zip(samples)
        .map(|((&i, dir), calibration_files)| Job {
            decl: &planned[i].decl,
            out: dir.join(crate::cache::artifact_file(planned[i].decl.format)),
            calibration_files,
            key: &planned[i].key,
        })
        .collect();
    let names: Vec<&str> = jobs.iter().map(|job| job.decl.name.as_str()).collect();
    let runners = ctx.toolchain_dir.join("runners");
    // The worker runs in the crate's directory.
    let runners = std::path::absolute(&runners).unwrap_or(runners);
    let finished =
        worker::run(python, &ctx.crate_dir, &jobs, &scratch, &runners, ctx.supervision, &mut |line| match line.strip_prefix(worker::WARNING_PREFIX) {
            Some(warning) => ctx.warn(warning),
            None => ctx.emit(progress::classify(line, &names)),
        });
    let _ = std::fs::remove_dir_all(&scratch);
    let finished = finished.inspect_err(|_| staged.iter().for_each(|dir| drop(std::fs::remove_dir_all(dir))))?;
    // A worker that died still leaves the models it verified: they are published like
    // any other, so the next build converts only the rest.
    let mut first_error = finished.died;
    for ((&index, dir), result) in todo.iter().zip(&staged).zip(finished.results) {
        match result {
            None => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Some(Ok(converted)) => {
                if let Some(risk) = &converted.trace_risk {
                    // Once, when it converts: the report keeps it for the wrapper's docs.
                    ctx.warn(&format!("model `{}`: {risk}", planned[index].decl.name));
                }
                let key = &planned[index].key;
                let entry = ctx.cache.publish(key, dir, &serde_json::to_string_pretty(&converted).unwrap_or_default())?;
                // Every slot planned under this key gets the entry.
                for (slot, plan) in entries.iter_mut().zip(planned) {
                    if &plan.key == key {
                        *slot = Some(entry.clone());
                    }
                }
            }
            Some(Err(error)) => {
                let _ = std::fs::remove_dir_all(dir);
                if first_error.is_some() {
                    ctx.emit(Progress::Line(&error.to_string()));
                }
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Writes `ptm/`: each artifact and models.json, where `pythons` names the interpreter of
/// each format (none in a build from the store).
fn write_outputs(ctx: &Context, planned: &[Planned], entries: &[Entry], pythons: &BTreeMap<Format, String>) -> Result<Bundle, Error> {
    let dir = ctx.out_dir.join("ptm");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let mut models = Vec::new();
    for (plan, entry) in planned.iter().zip(entries) {
        let artifact = format!("{}.{}", plan.decl.name, plan.decl.format);
        fsutil::copy_if_changed(&entry.artifact, &dir.join(&artifact))?;
        if let Some((reference, _)) = &entry.reference {
            fsutil::copy_if_changed(reference, &dir.join(reference_file(&plan.decl.name)))?;
        }
        let converted: Converted =
            serde_json::from_str(&entry.report).map_err(|e| Error::io("parse cache report of", &entry.artifact, std::io::Error::other(e)))?;
        models.push(report_of(plan, artifact, entry, converted, pythons.get(&plan.decl.format).cloned()));
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

/// Fails the build for the first model (in name order) over its budget, naming every
/// limit it crosses; the others' figures are in models.json and `cargo ptm report`.
fn check_budgets(ctx: &Context, planned: &[Planned], bundle: &Bundle) -> Result<(), Error> {
    let mut over = Vec::new();
    for model in &bundle.models {
        let tables = planned.iter().find(|p| p.decl.name == model.name).map(|p| &p.decl.budget_tables);
        let crossed: Vec<(String, String, String)> = model
            .budget_checks()
            .into_iter()
            .filter(|check| !check.passed())
            .map(|check| {
                let table = tables.and_then(|t| t.get(check.key)).cloned().unwrap_or_else(|| format!("package.metadata.models.{}.budget", model.name));
                (format!("{table}.{}", check.key), check.figure_text(), check.limit_text())
            })
            .collect();
        if !crossed.is_empty() {
            over.push(Error::Budget { manifest: ctx.crate_dir.join("Cargo.toml"), model: model.name.clone(), crossed: crossed.into() });
        }
    }
    match over.len() {
        0 => Ok(()),
        1 => Err(over.remove(0)),
        _ => Err(Error::Declarations(over)),
    }
}

/// The app's operator list for a selective libtorch-lite build, beside models.json.
pub const SELECTED_OPERATORS: &str = "selected_operators.yaml";

/// Every operator any model needs, once, sorted: the YAML list PyTorch's
/// `SELECTED_OP_LIST` takes (what `yaml.dump(sorted(ops))` writes).
fn selected_operators(models: &[ModelReport]) -> String {
    let all: std::collections::BTreeSet<&str> = models.iter().flat_map(|m| m.operators.iter().map(String::as_str)).collect();
    let mut text = String::from(
        "# Operators of every model in this crate, for a selective libtorch-lite build\n# (SELECTED_OP_LIST, see docs/device.md). Written by ptm-build.\n",
    );
    for op in all {
        text.push_str(&format!("- {op}\n"));
    }
    text
}

fn report_of(plan: &Planned, artifact: String, entry: &Entry, c: Converted, python: Option<String>) -> ModelReport {
    let decl = &plan.decl;
    let source = match &decl.source {
        Source::Python { file, callable } => format!("{}:{callable}", file.display()),
        Source::TorchScript { file } => file.display().to_string(),
    };
    ModelReport {
        name: decl.name.clone(),
        source,
        format: decl.format,
        artifact,
        artifact_sha256: entry.artifact_sha256.clone(),
        reference: entry.reference.as_ref().map(|_| reference_file(&decl.name)),
        reference_sha256: entry.reference.as_ref().map(|(_, sha256)| sha256.clone()),
        embed: decl.embed,
        export: decl.export,
        quantize: decl.quantize,
        engine: decl.engine,
        optimize: decl.optimize,
        inputs: c.inputs,
        outputs: c.outputs,
        sizes: c.sizes,
        operators: c.operators,
        bytecode_version: c.bytecode_version,
        drift: c.drift,
        torch: c.torch,
        python,
        cache_key: plan.key.clone(),
        calibration_samples: c.calibration_samples,
        warnings: c.warnings,
        trace_risk: c.trace_risk,
        layers: c.layers,
        layers_unavailable: c.layers_unavailable,
        executorch: c.executorch,
        delegated_operators: c.delegated_operators,
        undelegated_operators: c.undelegated_operators,
        planned_memory: c.planned_memory,
        budget: decl.budget,
        provenance: ptm_report::Provenance { python_version: c.python_version, torchao: c.torchao, ..plan.provenance.clone() },
        program_schema: (decl.format == Format::Pte).then(|| program_schema(&entry.artifact)).flatten(),
    }
}

/// A `.pte`'s schema identifier: its FlatBuffer file identifier, `ET` and two digits at
/// byte 4.
fn program_schema(artifact: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(artifact).ok()?.read_exact(&mut head).ok()?;
    let id = &head[4..8];
    (id.starts_with(b"ET") && id[2..].iter().all(u8::is_ascii_digit)).then(|| String::from_utf8_lossy(id).into_owned())
}

/// Where `ptm/` holds a model's self-check reference data: beside its artifact, named
/// like it (`cargo ptm assets` ships the two together, and `load_from` finds one from
/// the other).
fn reference_file(model: &str) -> String {
    format!("{model}.{}", ptm_report::REFERENCE_EXTENSION)
}

fn remove_stale_artifacts(dir: &Path, models: &[ModelReport]) {
    let Ok(listing) = std::fs::read_dir(dir) else { return };
    let reference = format!(".{}", ptm_report::REFERENCE_EXTENSION);
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = if name.ends_with(&reference) {
            !models.iter().any(|m| m.reference.as_deref() == Some(name.as_str()))
        } else {
            (name.ends_with(".ptl") || name.ends_with(".pte")) && !models.iter().any(|m| m.artifact == name)
        };
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
