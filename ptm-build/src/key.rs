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

/// Every file a declaration reads, each hashed once ([`crate::hash::file_digests`]): the
/// key is made of them, and models.json records them ([`Inputs::provenance`]).
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Each declared path of [`inputs_of`], in its order, with its files' names and sha256.
    files: Vec<(PathBuf, Vec<(String, String)>)>,
}

impl Inputs {
    /// Hashes every file `decl` reads.
    pub fn hash(decl: &ModelDecl, crate_dir: &Path) -> Result<Inputs, Error> {
        let files = inputs_of(decl)
            .into_iter()
            .map(|declared| Ok((declared.to_path_buf(), crate::hash::file_digests(crate_dir, declared)?)))
            .collect::<Result<_, Error>>()?;
        Ok(Inputs { files })
    }

    fn digest(&self, declared: &Path) -> Option<String> {
        self.files.iter().find(|(path, _)| path == declared).map(|(path, files)| crate::hash::digest_of(path, files))
    }

    /// The digests models.json records for `decl`'s source, weights, depends and
    /// calibration samples.
    pub fn provenance(&self, decl: &ModelDecl) -> ptm_report::Provenance {
        ptm_report::Provenance {
            source_sha256: self.digest(decl.source.file()),
            weights_sha256: decl.weights.as_deref().and_then(|w| self.digest(w)),
            depends_sha256: decl.depends.iter().filter_map(|d| self.digest(d)).collect(),
            calibration_sha256: decl.calibration.as_deref().and_then(|c| self.digest(c)),
            ..Default::default()
        }
    }
}

/// sha256 over the declaration (minus what does not change the artifact), every input
/// file, the worker's source, the torch version, for a `.pte` the ExecuTorch version
/// that exports it, and the ptm-build version.
pub fn key_of(decl: &ModelDecl, crate_dir: &Path, torch_version: &str, executorch_version: Option<&str>) -> Result<String, Error> {
    Ok(key_with(decl, &Inputs::hash(decl, crate_dir)?, torch_version, executorch_version))
}

/// [`key_of`] over inputs already hashed.
pub fn key_with(decl: &ModelDecl, inputs: &Inputs, torch_version: &str, executorch_version: Option<&str>) -> String {
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
    for (_, files) in &inputs.files {
        hasher.files("input", files);
    }
    hasher.finish()
}
