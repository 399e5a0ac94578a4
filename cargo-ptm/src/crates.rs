//! The crates `cargo ptm` works on, chosen as cargo chooses packages: `-p`, `--workspace`,
//! the package of the manifest at hand, or a virtual workspace's default members; of
//! those, the ones that declare models. Read with `cargo metadata`.

use crate::cli::CrateSelection;
use cargo_metadata::{Metadata, MetadataCommand, Package};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A crate that declares models.
pub struct Crate {
    /// The package name.
    pub name: String,
    /// The directory holding its Cargo.toml.
    pub dir: PathBuf,
    /// Its dependency on the `ptm` runtime, when it has one.
    pub runtime: Option<Runtime>,
}

/// Where a crate's `ptm` dependency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// A path dependency (a checkout, a workspace member).
    Path(PathBuf),
    /// A crates.io version requirement.
    Version(String),
    /// Another source (git, another registry), as cargo names it.
    Unsupported(String),
}

fn runtime_of(package: &Package) -> Option<Runtime> {
    let dependency = package.dependencies.iter().find(|d| d.name == "ptm" && d.kind == cargo_metadata::DependencyKind::Normal)?;
    Some(match (&dependency.path, dependency.source.as_deref()) {
        (Some(path), _) => Runtime::Path(path.as_std_path().to_path_buf()),
        (None, None | Some("registry+https://github.com/rust-lang/crates.io-index")) => Runtime::Version(dependency.req.to_string()),
        (None, Some(source)) => Runtime::Unsupported(source.to_string()),
    })
}

/// The crates to work on, and the workspace's target directory.
pub struct Workspace {
    /// Crates with `[package.metadata.models]`.
    pub crates: Vec<Crate>,
    /// Cargo's target directory, where the conversion cache lives by default.
    pub target_dir: PathBuf,
}

impl Workspace {
    /// Converts `krate`'s models for `target` (the cache first) into `out_dir/ptm/`,
    /// as its build script would for that target.
    pub fn bundle(&self, krate: &Crate, out_dir: &Path, target: &str) -> Result<ptm_report::Bundle, String> {
        ptm_build::Builder::new()
            .crate_dir(&krate.dir)
            .out_dir(out_dir)
            .cache_dir(self.cache_dir())
            .target(target.to_string())
            .bundle()
            .map_err(|e| e.to_string())
    }

    /// `PTM_CACHE_DIR`, else `<target dir>/ptm-cache`, as builds use it.
    pub fn cache_dir(&self) -> PathBuf {
        std::env::var_os("PTM_CACHE_DIR").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| self.target_dir.join("ptm-cache"))
    }
}

/// Reads the workspace and selects its crates.
pub fn find(selection: &CrateSelection) -> Result<Workspace, String> {
    let manifest = match &selection.manifest_path {
        Some(path) => std::fs::canonicalize(path).map_err(|e| format!("--manifest-path {}: {e}", path.display()))?,
        None => nearest_manifest()?,
    };
    let mut command = MetadataCommand::new();
    command.no_deps().manifest_path(&manifest);
    if let Some(cargo) = std::env::var_os("CARGO") {
        command.cargo_path(cargo);
    }
    let metadata = command.exec().map_err(|e| format!("cargo metadata failed: {e}"))?;
    let members: Vec<&Package> = metadata.packages.iter().filter(|p| metadata.workspace_members.contains(&p.id)).collect();
    let chosen = choose(&metadata, &members, selection, &manifest)?;
    let crates = chosen
        .into_iter()
        .filter(|p| p.metadata["models"].is_object())
        .map(|p| Crate {
            name: p.name.to_string(),
            dir: p.manifest_path.parent().map(|d| d.as_std_path().to_path_buf()).unwrap_or_default(),
            runtime: runtime_of(p),
        })
        .collect();
    Ok(Workspace { crates, target_dir: metadata.target_directory.clone().into_std_path_buf() })
}

fn choose<'a>(metadata: &Metadata, members: &[&'a Package], selection: &CrateSelection, manifest: &Path) -> Result<Vec<&'a Package>, String> {
    if !selection.package.is_empty() {
        let mut chosen = Vec::new();
        for spec in &selection.package {
            let found = members.iter().find(|p| p.name.as_str() == spec).ok_or_else(|| {
                let names: Vec<&str> = members.iter().map(|p| p.name.as_str()).collect();
                format!("package `{spec}` is not a member of the workspace (members: {})", names.join(", "))
            })?;
            chosen.push(*found);
        }
        return Ok(chosen);
    }
    if selection.workspace {
        return Ok(members.to_vec());
    }
    // The package whose manifest this is; at a virtual workspace's root, its default members.
    if let Some(package) = members.iter().find(|p| p.manifest_path.as_std_path() == manifest) {
        return Ok(vec![*package]);
    }
    let defaults: Vec<&Package> = members.iter().filter(|p| metadata.workspace_default_members.contains(&p.id)).copied().collect();
    Ok(if defaults.is_empty() { members.to_vec() } else { defaults })
}

/// The Cargo.toml cargo would use from the current directory: the nearest one upward.
fn nearest_manifest() -> Result<PathBuf, String> {
    let here = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    here.ancestors()
        .map(|dir| dir.join("Cargo.toml"))
        .find(|manifest| manifest.is_file())
        .ok_or_else(|| format!("no Cargo.toml in {} or any parent directory; pass --manifest-path", here.display()))
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
