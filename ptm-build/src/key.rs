//! What invalidates an artifact: the key of a declaration, a sha256 over everything that
//! goes into its conversion. Reviewable alone: a field that changes the bytes and is not
//! here is a stale-cache bug.

use crate::error::Error;
use crate::hash::KeyHasher;
use crate::manifest::ModelDecl;
use std::path::{Path, PathBuf};

/// The files a declaration reads, relative to the crate.
pub fn inputs_of(decl: &ModelDecl) -> Vec<&Path> {
    let mut inputs = vec![decl.source.file().as_path()];
    inputs.extend(decl.weights.as_deref());
    inputs.extend(decl.depends.iter().map(PathBuf::as_path));
    inputs.extend(decl.calibration.as_deref());
    inputs
}

/// sha256 over the declaration (minus what does not change the artifact), every input
/// file, the worker's source, the torch version, for a `.pte` the ExecuTorch version
/// that exports it, and the ptm-build version.
pub fn key_of(decl: &ModelDecl, crate_dir: &Path, torch_version: &str, executorch_version: Option<&str>) -> Result<String, Error> {
    let mut hasher = KeyHasher::default();
    hasher.field("ptm-build", env!("CARGO_PKG_VERSION").as_bytes());
    for (name, text) in crate::sources::all() {
        hasher.field(&name, text.as_bytes());
    }
    hasher.field("torch", torch_version.as_bytes());
    // A .ptl is made by torch alone; keeping ExecuTorch out of its key lets the two
    // formats come from two environments without converting the .ptl again.
    if let (ptm_report::Format::Pte, Some(executorch)) = (decl.format, executorch_version) {
        hasher.field("executorch", executorch.as_bytes());
    }
    let mut canonical = serde_json::to_value(decl).unwrap_or_default();
    if let Some(fields) = canonical.as_object_mut() {
        // The embed mode changes the wrapper, not the .ptl. The name stays: the .ptl
        // carries it in its identity record.
        fields.remove("embed");
    }
    hasher.field("declaration", canonical.to_string().as_bytes());
    for input in inputs_of(decl) {
        hasher.path("input", crate_dir, input)?;
    }
    Ok(hasher.finish())
}
