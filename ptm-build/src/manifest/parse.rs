//! TOML -> [`ModelDecl`]: the model table, its per-target tables, outputs and tolerances,
//! with an error naming the key for every mistake. `values`, `paths` and `inputs` read
//! the typed values, the files and the example inputs.

use super::ctx::{is_identifier, snake_case, Ctx};
use super::decl::{default_tolerance, Engine, Export, Format, InputDecl, ModelDecl, Quantize, Source, Tolerance, RUNTIMES};
use super::paths::workspace_root;
use super::suggest::closest;
use super::targets::{self, is_arm};
use super::values::{describe, UNKNOWN_KEY};
use crate::error::Error;
use ptm_report::Dim;
use std::path::Path;
use toml::{Table, Value};

const MODEL_KEYS: &[&str] = &[
    "source",
    "weights",
    "depends",
    "export",
    "quantize",
    "calibration",
    "engine",
    "optimize",
    "optimize_blocklist",
    "preserved_methods",
    "embed",
    "outputs",
    "inputs",
    "tolerance",
    "target",
    "accept_trace_risk",
    "lints",
    "runtime",
    "max_bytecode",
    "quantize_skip",
    "format",
    "budget",
];
/// Keys a `[...models.<name>.target.<triple or arch>]` table may override.
const TARGET_KEYS: &[&str] = &["engine", "quantize", "optimize", "format", "budget"];
const FORMATS: &[(&str, Format)] = &[("ptl", Format::Ptl), ("pte", Format::Pte)];
/// Keys of the Lite Interpreter path that mean nothing to an ExecuTorch program, and why.
const PTL_ONLY: &[(&str, &str)] = &[
    ("export", "every .pte leaves Python through torch.export"),
    ("accept_trace_risk", "torch.export has no trace risk: it fails on value-dependent control flow instead of tracing one branch"),
    ("runtime", "it names a Lite Interpreter release"),
    ("max_bytecode", "it is a Lite Interpreter bytecode version"),
    ("optimize_blocklist", "it names optimize_for_mobile passes; a .pte is lowered to XNNPACK instead"),
    ("preserved_methods", "a .pte holds forward only"),
    ("lints", "the mobile lints read TorchScript"),
];
const TOLERANCE_KEYS: &[&str] = &["relative", "top1"];
const QUANTIZE: &[(&str, Quantize)] = &[("none", Quantize::None), ("dynamic", Quantize::Dynamic), ("static", Quantize::Static)];
const ENGINES: &[(&str, Engine)] = &[("qnnpack", Engine::Qnnpack), ("fbgemm", Engine::Fbgemm)];
const BLOCKLIST: &[&str] =
    &["conv_bn_fusion", "insert_fold_prepack_ops", "remove_dropout", "fuse_add_relu", "hoist_conv_packed_params", "vulkan_automatic_gpu_transfer"];

/// Reads `manifest` and parses its model declarations for `target` (a Rust target
/// triple; `None` applies no per-target table).
pub fn read(manifest: &Path, target: Option<&str>) -> Result<Vec<ModelDecl>, Error> {
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io("read", manifest, e))?;
    parse(manifest, &text, target)
}

/// Parses the model declarations of a Cargo.toml whose text is `text`, for `target`.
/// Files named by the declarations are resolved against the manifest's directory and
/// must exist.
pub fn parse(manifest: &Path, text: &str, target: Option<&str>) -> Result<Vec<ModelDecl>, Error> {
    let document: Table = text.parse().map_err(|e: toml::de::Error| Error::Manifest {
        manifest: manifest.to_path_buf(),
        key: "(the file)".into(),
        found: e.message().into(),
        expected: "valid TOML".into(),
        fix: "correct the TOML syntax".into(),
        location: e.span().and_then(|span| super::locate::at(text, span)).map(Box::new),
    })?;
    let crate_dir = manifest.parent().unwrap_or(Path::new("."));
    let Some(models) = document.get("package").and_then(|p| p.get("metadata")).and_then(|m| m.get("models")) else {
        return Ok(Vec::new());
    };
    let workspace = workspace_root(crate_dir);
    let ctx = Ctx { manifest, crate_dir, workspace: &workspace, target, warnings: Default::default() };
    let models =
        ctx.table(models, "package.metadata.models", "a table of models, one `[package.metadata.models.<name>]` each").map_err(|e| located(e, text))?;
    // Every model's first mistake at once, each pointing at its line.
    let mut decls = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in models {
        match ctx.model(name, value) {
            Ok(decl) => decls.push(decl),
            Err(error) => errors.push(located(error, text)),
        }
    }
    errors.sort_by_key(|e| match e {
        Error::Manifest { location: Some(at), .. } | Error::MissingFile { location: Some(at), .. } => at.line,
        _ => usize::MAX,
    });
    match errors.len() {
        0 => Ok(decls),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Declarations(errors)),
    }
}

/// The error with the place of its key in `text`.
fn located(error: Error, text: &str) -> Error {
    match error {
        Error::Manifest { manifest, key, found, expected, fix, location: None } => {
            // A wrong value is pointed at; an unknown key, itself.
            let location = super::locate::locate(text, &key, &*found == UNKNOWN_KEY).map(Box::new);
            Error::Manifest { manifest, key, found, expected, fix, location }
        }
        Error::MissingFile { manifest, key, path, fix, location: None } => {
            let location = super::locate::locate(text, &key, false).map(Box::new);
            Error::MissingFile { manifest, key, path, fix, location }
        }
        other => other,
    }
}

/// An error met while resolving the model for the target of the table `table`, saying so.
fn in_target(error: Error, table: &str, spec: &str) -> Error {
    match error {
        Error::Manifest { manifest, key, found, expected, fix, location } => {
            let found = format!("{found}, in a build for {spec} (with [{table}] applied)").into();
            Error::Manifest { manifest, key, found, expected, fix, location }
        }
        other => other,
    }
}

impl Ctx<'_> {
    /// The model as this build resolves it, after resolving it as the target of each of
    /// its `target` tables would: a contradiction that only a phone's build meets (a
    /// Lite-only key beside `target.aarch64.format = "pte"`) fails the desktop build too.
    fn model(&self, name: &str, value: &Value) -> Result<ModelDecl, Error> {
        let decl = self.resolve(name, value)?;
        let tables = value.get("target").and_then(Value::as_table).map(|t| t.keys().collect::<Vec<_>>()).unwrap_or_default();
        for spec in tables {
            if self.target == Some(spec.as_str()) {
                continue;
            }
            // Its warnings are this build's already, and would be shown twice.
            let other = Ctx { target: Some(spec), warnings: Default::default(), ..*self };
            other.resolve(name, value).map_err(|error| in_target(error, &format!("package.metadata.models.{name}.target.{spec}"), spec))?;
        }
        Ok(decl)
    }

    fn resolve(&self, name: &str, value: &Value) -> Result<ModelDecl, Error> {
        let prefix = format!("package.metadata.models.{name}");
        if !is_identifier(name) {
            let fixed = snake_case(name);
            return Err(self.error(
                &prefix,
                format!("the name \"{name}\""),
                "a snake_case Rust identifier (a-z, 0-9, _; not a keyword), the wrapper type is its CamelCase form",
                format!("rename the table to [package.metadata.models.{fixed}]"),
            ));
        }
        let table = self.table(value, &prefix, "a table with at least `source` and `inputs`")?;
        self.check_keys(table, &prefix, MODEL_KEYS)?;
        self.warnings.borrow_mut().clear();

        let source = self.source(table, &prefix)?;
        let weights = match self.string(table, &prefix, "weights")? {
            Some(w) => Some(self.existing_path(
                &format!("{prefix}.weights"),
                w,
                "point `weights` at a state_dict saved with torch.save(model.state_dict(), path), or remove the key",
            )?),
            None => None,
        };
        let depends = self
            .strings(table, &prefix, "depends")?
            .iter()
            .map(|d| self.existing_path(&format!("{prefix}.depends"), d, "list only files or directories that exist, relative to Cargo.toml"))
            .collect::<Result<_, _>>()?;
        let export = self.choice(table, &prefix, "export", &[("script", Export::Script), ("trace", Export::Trace)], Export::Script)?;
        let accept_trace_risk = self.boolean(table, &prefix, "accept_trace_risk", false)?;
        let lints = self.boolean(table, &prefix, "lints", true)?;
        let (runtime, max_bytecode) = self.runtime(table, &prefix)?;
        let overrides = self.target_tables(table, &prefix)?;
        let mut quantize = self.choice(table, &prefix, "quantize", QUANTIZE, Quantize::None)?;
        let declared_quantize = quantize;
        let mut engine = self.choice(table, &prefix, "engine", ENGINES, Engine::Qnnpack)?;
        let mut engine_key = format!("{prefix}.engine");
        let mut optimize = self.boolean(table, &prefix, "optimize", true)?;
        let mut format = self.choice(table, &prefix, "format", FORMATS, Format::Ptl)?;
        let mut format_key = format!("{prefix}.format");
        for (override_prefix, values) in &overrides {
            quantize = self.choice(values, override_prefix, "quantize", QUANTIZE, quantize)?;
            if values.contains_key("format") {
                format = self.choice(values, override_prefix, "format", FORMATS, format)?;
                format_key = format!("{override_prefix}.format");
            }
            optimize = self.boolean(values, override_prefix, "optimize", optimize)?;
            if values.contains_key("engine") {
                engine = self.choice(values, override_prefix, "engine", ENGINES, engine)?;
                engine_key = format!("{override_prefix}.engine");
            }
        }
        // Checked once the format is known: for a .pte the key is wrong whatever `export` says.
        if format == Format::Pte {
            self.check_pte_keys(table, &prefix, &overrides, &format_key, engine, &engine_key)?;
            self.check_pte_source(&source, &prefix, &format_key)?;
        } else if accept_trace_risk && export == Export::Script {
            return Err(self.error(
                &format!("{prefix}.accept_trace_risk"),
                "true with export = \"script\"".into(),
                "accept_trace_risk only with export = \"trace\"",
                "remove accept_trace_risk: a scripted model keeps its control flow",
            ));
        }
        if let Some(target) = self.target.filter(|t| is_arm(t)) {
            if engine == Engine::Fbgemm {
                return Err(self.error(
                    &engine_key,
                    format!("\"fbgemm\" while building for {target}"),
                    "qnnpack for ARM targets: fbgemm has x86 kernels only, so a model packed for it runs on a phone without INT8 speed-up, if at all",
                    format!("remove the key (qnnpack is the default and also runs on x86), or keep fbgemm for x86 builds only: [{prefix}.target.x86_64] engine = \"fbgemm\""),
                ));
            }
        }
        let calibration = match self.string(table, &prefix, "calibration")? {
            Some(c) => Some(self.existing_path(
                &format!("{prefix}.calibration"),
                c,
                "point `calibration` at a directory of .pt samples (each a tensor or a tuple of tensors, one per input)",
            )?),
            None if quantize == Quantize::Static => {
                return Err(self.missing(
                    &format!("{prefix}.calibration"),
                    "a directory of calibration samples: static quantization measures activation ranges on real data",
                    "add calibration = \"data/<dir>\" with .pt samples, or use quantize = \"dynamic\", which needs none",
                ));
            }
            None => None,
        };
        if let Some(dir) = &calibration {
            if !self.crate_dir.join(dir).is_dir() {
                return Err(self.error(
                    &format!("{prefix}.calibration"),
                    format!("the file {}", dir.display()),
                    "a directory of .pt samples",
                    "point `calibration` at the directory that holds the samples",
                ));
            }
        }
        let quantize_skip = self.quantize_skip(table, &prefix, declared_quantize, quantize)?;
        let optimize_blocklist = self.strings(table, &prefix, "optimize_blocklist")?;
        for pass in &optimize_blocklist {
            if !BLOCKLIST.contains(&pass.as_str()) {
                let fix = closest(pass, BLOCKLIST).map_or_else(|| "remove it".to_string(), |near| format!("write \"{near}\""));
                return Err(self.error(&format!("{prefix}.optimize_blocklist"), format!("\"{pass}\""), format!("names from: {}", BLOCKLIST.join(", ")), fix));
            }
        }
        let preserved_methods = self.strings(table, &prefix, "preserved_methods")?;
        let embed = self.boolean(table, &prefix, "embed", true)?;
        let outputs = self.strings(table, &prefix, "outputs")?;
        for (index, output) in outputs.iter().enumerate() {
            if !is_identifier(output) {
                return Err(self.error(
                    &format!("{prefix}.outputs"),
                    format!("\"{output}\""),
                    "snake_case Rust identifiers, one per output",
                    format!("write \"{}\"", snake_case(output)),
                ));
            }
            if outputs[..index].contains(output) {
                return Err(self.error(
                    &format!("{prefix}.outputs"),
                    format!("\"{output}\" a second time"),
                    "a different name for every output: each becomes a field of the generated output struct",
                    "rename one of them",
                ));
            }
        }
        let inputs = self.inputs(table, &prefix)?;
        if format == Format::Pte {
            self.check_pte_examples(&inputs, &prefix, &format_key)?;
        }
        let tolerance = self.tolerance(table, &prefix, quantize)?;
        let (budget, budget_tables) = self.budget(table, &prefix, &overrides, format)?;
        // What a .pte is converted with, whatever the Lite Interpreter defaults say.
        let (export, engine, lints) = match format {
            Format::Ptl => (export, engine, lints),
            Format::Pte => (Export::TorchExport, Engine::Xnnpack, false),
        };
        Ok(ModelDecl {
            name: name.to_string(),
            format,
            source,
            weights,
            depends,
            export,
            accept_trace_risk,
            quantize,
            calibration,
            quantize_skip,
            engine,
            optimize,
            optimize_blocklist,
            preserved_methods,
            lints,
            runtime,
            max_bytecode,
            embed,
            outputs,
            inputs,
            tolerance,
            budget,
            budget_tables,
            warnings: self.warnings.take(),
        })
    }

    /// A `.pte` model's table (and the target tables that apply) may not hold the Lite
    /// Interpreter's keys, nor choose fbgemm, which ExecuTorch does not run.
    fn check_pte_keys(
        &self,
        table: &Table,
        prefix: &str,
        overrides: &[(String, &Table)],
        format_key: &str,
        engine: Engine,
        engine_key: &str,
    ) -> Result<(), Error> {
        let chosen = format!("with format = \"pte\" ({format_key})");
        for (key, why) in PTL_ONLY {
            if table.contains_key(*key) {
                return Err(self.error(
                    &format!("{prefix}.{key}"),
                    format!("`{key}` {chosen}"),
                    "only keys that apply to an ExecuTorch program",
                    format!("remove `{key}`, or build a .ptl with format = \"ptl\" ({format_key}): `{key}` belongs to the .ptl path; {why}"),
                ));
            }
        }
        let fbgemm_declared = table.get("engine").and_then(|v| v.as_str()) == Some("fbgemm")
            || overrides.iter().any(|(_, values)| values.get("engine").and_then(|v| v.as_str()) == Some("fbgemm"));
        if engine == Engine::Fbgemm || fbgemm_declared {
            return Err(self.error(
                engine_key,
                format!("\"fbgemm\" {chosen}"),
                "no engine: a .pte runs INT8 in ExecuTorch's XNNPACK delegate on every CPU",
                "remove `engine`, or keep fbgemm for the targets that build a .ptl",
            ));
        }
        Ok(())
    }

    /// torch.export specialises a dimension whose example size is 1 (and 0) to that
    /// constant, so a `.pte` exported at 1 would take no other size. With a step the
    /// dimension is `step * Dim`, whose example is the example divided by the step.
    fn check_pte_examples(&self, inputs: &[InputDecl], prefix: &str, format_key: &str) -> Result<(), Error> {
        for (index, input) in inputs.iter().enumerate() {
            for dim in &input.shape {
                if let (Dim::Dynamic { name, example, .. }, Some((min, max))) = (dim, dim.range()) {
                    let step = dim.step();
                    if step > 1 && *example == step {
                        return Err(self.error(
                            &format!("{prefix}.inputs[{index}].shape"),
                            format!("`{name}` with the example size {example}, one step, with format = \"pte\" ({format_key})"),
                            "an example size of two steps or more: torch.export exports the dimension as a number of steps and treats 1 step as a constant",
                            format!("write \"{name}={}:{min}..{} step {step}\"", 2 * step, max.max(2 * step)),
                        ));
                    }
                }
                let Dim::Dynamic { name, example: 1, .. } = dim else { continue };
                let range = dim.range().map(|(min, max)| format!(":{min}..{}", max.max(2))).unwrap_or_default();
                return Err(self.error(
                    &format!("{prefix}.inputs[{index}].shape"),
                    format!("`{name}` with the example size 1, with format = \"pte\" ({format_key})"),
                    "an example size of 2 or more: torch.export treats a size of 1 as a constant and would build a program that takes only 1",
                    format!("write \"{name}=2{range}\" (the example is only the size the build runs; a range keeps 1 allowed)"),
                ));
            }
        }
        Ok(())
    }

    /// A `.pte` is captured by torch.export from the Python module; a TorchScript archive
    /// holds a compiled graph that torch.export cannot read, so it would fail at export.
    fn check_pte_source(&self, source: &Source, prefix: &str, format_key: &str) -> Result<(), Error> {
        let Source::TorchScript { file } = source else { return Ok(()) };
        Err(self.error(
            &format!("{prefix}.source"),
            format!("the TorchScript archive \"{}\" with format = \"pte\" ({format_key})", file.display()),
            "a Python source \"<file>.py:<callable>\": torch.export captures the nn.Module from Python, and a TorchScript archive holds none",
            format!(
                "write source = \"models/<file>.py:build_model\" (the callable that returns the nn.Module), or build a .ptl from the archive with format = \"ptl\" ({format_key})"
            ),
        ))
    }

    /// `quantize_skip = ["classifier", "features.0"]`: module names as
    /// `named_modules()` spells them, kept in float. Empty when this target does not
    /// quantize (a target table may turn quantization off for one architecture).
    fn quantize_skip(&self, table: &Table, prefix: &str, declared: Quantize, quantize: Quantize) -> Result<Vec<String>, Error> {
        let skip = self.strings(table, prefix, "quantize_skip")?;
        let key = format!("{prefix}.quantize_skip");
        if !skip.is_empty() && declared == Quantize::None && quantize == Quantize::None {
            return Err(self.error(
                &key,
                format!("{} module(s) with quantize = \"none\"", skip.len()),
                "quantize_skip only with quantize = \"dynamic\" or \"static\"",
                "remove quantize_skip, or declare the quantization it refines",
            ));
        }
        for (index, name) in skip.iter().enumerate() {
            let valid = !name.is_empty() && name.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if !valid {
                return Err(self.error(
                    &key,
                    format!("\"{name}\""),
                    "module names as model.named_modules() spells them (`classifier`, `features.0`)",
                    "write the module's dotted name",
                ));
            }
            if skip[..index].contains(name) {
                return Err(self.error(&key, format!("\"{name}\" a second time"), "each module once", "remove the repeated name"));
            }
        }
        Ok(if quantize == Quantize::None { Vec::new() } else { skip })
    }

    /// `runtime = "<release>"` or `max_bytecode = <n>`: the newest bytecode the app's
    /// Lite Interpreter reads.
    fn runtime(&self, table: &Table, prefix: &str) -> Result<(Option<String>, Option<u32>), Error> {
        let known = RUNTIMES.iter().map(|(r, _)| format!("\"{r}\"")).collect::<Vec<_>>().join(", ");
        let runtime = self.string(table, prefix, "runtime")?;
        let max = match table.get("max_bytecode") {
            None => None,
            Some(Value::Integer(n)) if (1..=u32::MAX as i64).contains(n) => Some(*n as u32),
            Some(other) => {
                return Err(self.error(&format!("{prefix}.max_bytecode"), describe(other), "a bytecode version, a positive integer", "write max_bytecode = 7"))
            }
        };
        match (runtime, max) {
            (Some(_), Some(_)) => Err(self.error(
                &format!("{prefix}.max_bytecode"),
                "both runtime and max_bytecode".into(),
                "one of them",
                "keep runtime = \"<release>\" for a PyTorch Mobile release, or max_bytecode for a runtime of your own",
            )),
            (Some(release), None) => match RUNTIMES.iter().find(|(r, _)| *r == release) {
                Some((r, version)) => Ok((Some(r.to_string()), Some(*version))),
                None => {
                    let names: Vec<&str> = RUNTIMES.iter().map(|(r, _)| *r).collect();
                    let fix = match closest(release, &names) {
                        Some(near) if release.starts_with("1.") => format!("write runtime = \"{near}\""),
                        _ if release.starts_with("2.") || release.starts_with("3.") => {
                            "remove runtime: PyTorch Mobile releases ended with 1.13, and newer runtimes read what ptm writes (bytecode 8)".to_string()
                        }
                        _ => format!("write one of: {known}, or max_bytecode = <n> for a runtime of your own"),
                    };
                    Err(self.error(
                        &format!("{prefix}.runtime"),
                        format!("\"{release}\""),
                        format!("a PyTorch Mobile release: {known} (bytecode before v4, for releases before 1.8, cannot be written by torch 2.x)"),
                        fix,
                    ))
                }
            },
            (None, max) => Ok((None, max)),
        }
    }

    /// The `target.<spec>` tables that apply to this build, least specific first: the
    /// architecture (`aarch64`), then the full triple (`aarch64-linux-android`).
    fn target_tables<'v>(&self, table: &'v Table, prefix: &str) -> Result<Vec<(String, &'v Table)>, Error> {
        let Some(value) = table.get("target") else { return Ok(Vec::new()) };
        let key = format!("{prefix}.target");
        let tables = self.table(value, &key, "a table of per-target tables: [<model>.target.<triple or arch>]")?;
        let mut found = Vec::new();
        for (spec, value) in tables {
            let spec_prefix = format!("{key}.{spec}");
            let values = self.table(value, &spec_prefix, "a table of overrides")?;
            self.check_keys(values, &spec_prefix, TARGET_KEYS)?;
            // Every table is checked, not only this build's, so a typo fails on any machine.
            self.choice(values, &spec_prefix, "engine", ENGINES, Engine::Qnnpack)?;
            self.choice(values, &spec_prefix, "quantize", QUANTIZE, Quantize::None)?;
            self.boolean(values, &spec_prefix, "optimize", true)?;
            if !targets::is_known(spec) {
                let fix = match targets::suggestion(spec) {
                    Some(near) => format!("did you mean `{near}`? rename the table to [{key}.{near}]"),
                    None => "name the table after an architecture (x86_64, aarch64, armv7, i686) or a full triple (aarch64-linux-android)".into(),
                };
                self.warnings.borrow_mut().push(format!(
                    "[{spec_prefix}] in {}: `{spec}` is neither an architecture (the first part of a triple, as x86_64 in x86_64-linux-android) nor a target triple rustc knows, so the table applies to no build; {fix}",
                    self.manifest.display()
                ));
            }
            if let Some(target) = self.target {
                let rank = targets::rank(spec, target);
                if rank > 0 {
                    found.push((rank, spec_prefix, values));
                }
            }
        }
        found.sort_by_key(|(rank, _, _)| *rank);
        Ok(found.into_iter().map(|(_, prefix, values)| (prefix, values)).collect())
    }

    fn tolerance(&self, table: &Table, prefix: &str, quantize: Quantize) -> Result<Tolerance, Error> {
        let mut tolerance = default_tolerance(quantize);
        let Some(value) = table.get("tolerance") else { return Ok(tolerance) };
        let key = format!("{prefix}.tolerance");
        let t = self.table(value, &key, "a table: tolerance = { relative = 0.05, top1 = 0.95 }")?;
        self.check_keys(t, &key, TOLERANCE_KEYS)?;
        if let Some(relative) = self.number(t, &key, "relative")? {
            tolerance.relative = relative;
        }
        if let Some(top1) = self.number(t, &key, "top1")? {
            if top1 > 1.0 {
                return Err(self.error(&format!("{key}.top1"), top1.to_string(), "a share between 0 and 1", "write top1 = 0.95"));
            }
            tolerance.top1 = top1;
        }
        Ok(tolerance)
    }
}
