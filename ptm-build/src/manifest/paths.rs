//! The files a declaration names: its source, resolved against the crate and checked
//! to exist, with a warning for paths another checkout could not rebuild from.

use super::ctx::{is_python_name, Ctx};
use super::decl::Source;
use crate::error::Error;
use std::path::{Path, PathBuf};
use toml::Table;

/// The nearest directory at or above `crate_dir` whose Cargo.toml has a `[workspace]`
/// table, as cargo finds it; `crate_dir` itself when there is none.
pub(super) fn workspace_root(crate_dir: &Path) -> PathBuf {
    let declares_workspace = |dir: &Path| {
        std::fs::read_to_string(dir.join("Cargo.toml")).ok().and_then(|text| text.parse::<Table>().ok()).is_some_and(|t| t.contains_key("workspace"))
    };
    crate_dir.ancestors().find(|dir| declares_workspace(dir)).unwrap_or(crate_dir).to_path_buf()
}

/// `path` with `.` and `..` taken out by text alone, without touching the file system.
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

impl Ctx<'_> {
    /// A path relative to the crate that must exist. One that is absolute or leaves the
    /// workspace builds, with a warning: `cargo package` leaves it out, and the cache key
    /// hashes its absolute form, so no other checkout gets the same key.
    pub(super) fn existing_path(&self, key: &str, relative: &str, fix: &str) -> Result<PathBuf, Error> {
        let path = PathBuf::from(relative);
        let resolved = self.crate_dir.join(&path);
        if !resolved.exists() {
            return Err(Error::MissingFile { manifest: self.manifest.to_path_buf(), key: key.into(), path: resolved, fix: fix.into(), location: None });
        }
        let outside = if path.is_absolute() {
            Some("is absolute")
        } else if !normalized(&resolved).starts_with(normalized(self.workspace)) {
            Some("lies outside the workspace")
        } else {
            None
        };
        if let Some(why) = outside {
            self.warnings.borrow_mut().push(format!(
                "`{key}` in {}: \"{relative}\" {why} ({}): `cargo package` leaves it out and other checkouts cannot rebuild the same artifact; move it into {} and name it relative to Cargo.toml",
                self.manifest.display(),
                self.workspace.display(),
                self.workspace.display()
            ));
        }
        Ok(path)
    }

    pub(super) fn source(&self, table: &Table, prefix: &str) -> Result<Source, Error> {
        let key = format!("{prefix}.source");
        let Some(text) = self.string(table, prefix, "source")? else {
            return Err(self.missing(
                &key,
                "\"<file>.py:<callable>\" or \"<file>.pt\"",
                "add source = \"models/<file>.py:build_model\" (a callable returning the nn.Module) or a TorchScript archive \"models/<file>.pt\"",
            ));
        };
        if let Some((file, callable)) = text.rsplit_once(':').filter(|(file, _)| file.ends_with(".py")) {
            if !is_python_name(callable) {
                return Err(self.error(
                    &key,
                    format!("\"{text}\""),
                    "\"<file>.py:<callable>\" where <callable> is a Python name",
                    format!("write source = \"{file}:build_model\" with your function's name"),
                ));
            }
            let file = self.existing_path(&key, file, "point `source` at the Python file that defines the model, relative to Cargo.toml")?;
            return Ok(Source::Python { file, callable: callable.to_string() });
        }
        if text.ends_with(".py") {
            return Err(self.error(
                &key,
                format!("\"{text}\""),
                "\"<file>.py:<callable>\": a Python source names the callable that returns the nn.Module",
                format!("write source = \"{text}:build_model\" with your function's name"),
            ));
        }
        if text.ends_with(".pt") || text.ends_with(".pth") || text.ends_with(".ptl") || text.ends_with(".zip") {
            let file = self.existing_path(&key, text, "point `source` at a TorchScript archive saved with torch.jit.save, relative to Cargo.toml")?;
            return Ok(Source::TorchScript { file });
        }
        Err(self.error(
            &key,
            format!("\"{text}\""),
            "\"<file>.py:<callable>\" or a TorchScript archive \"<file>.pt\"",
            "write source = \"models/<file>.py:build_model\" or source = \"models/<file>.pt\"",
        ))
    }
}
