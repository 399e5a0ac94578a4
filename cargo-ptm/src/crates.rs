//! The crates `cargo ptm` works on: the one at --manifest-path, or every member of its
//! workspace that declares models, found with `cargo metadata`.

use crate::args::Args;
use std::path::PathBuf;
use std::process::Command;

/// A crate that declares models.
pub struct Crate {
    /// The package name.
    pub name: String,
    /// The directory holding its Cargo.toml.
    pub dir: PathBuf,
}

/// The crates to work on, and the workspace's target directory.
pub struct Workspace {
    /// Crates with `[package.metadata.models]`.
    pub crates: Vec<Crate>,
    /// Cargo's target directory, where the conversion cache lives by default.
    pub target_dir: PathBuf,
}

impl Workspace {
    /// `PTM_CACHE_DIR`, else `<target dir>/ptm-cache`, as builds use it.
    pub fn cache_dir(&self) -> PathBuf {
        std::env::var_os("PTM_CACHE_DIR").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| self.target_dir.join("ptm-cache"))
    }
}

/// Reads the workspace with `cargo metadata`.
pub fn find(args: &Args) -> Result<Workspace, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["metadata", "--no-deps", "--format-version", "1"]);
    if let Some(path) = args.value("--manifest-path") {
        command.args(["--manifest-path", path]);
    }
    let output = command.output().map_err(|e| format!("could not run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed:\n{}", String::from_utf8_lossy(&output.stderr).trim_end()));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata printed something else than JSON: {e}"))?;
    let only = args.value("--manifest-path").map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p)));
    let mut crates = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let is_member = metadata["workspace_members"].as_array().into_iter().flatten().any(|m| m == &package["id"]);
        // A crate's own manifest selects that crate; a workspace manifest, every member.
        let workspace_manifest = metadata["workspace_root"].as_str().map(|r| PathBuf::from(r).join("Cargo.toml"));
        let selected = match &only {
            Some(path) if Some(path) == workspace_manifest.as_ref() => is_member,
            Some(path) => path == &manifest,
            None => is_member,
        };
        if selected && package["metadata"]["models"].is_object() {
            let dir = manifest.parent().map(PathBuf::from).unwrap_or_default();
            crates.push(Crate { name: package["name"].as_str().unwrap_or_default().to_string(), dir });
        }
    }
    let target_dir = PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target"));
    Ok(Workspace { crates, target_dir })
}

/// The host's target triple (`rustc -vV`), the default `--target`.
pub fn host_triple() -> Result<String, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().map_err(|e| format!("could not run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV named no host".to_string())
}
