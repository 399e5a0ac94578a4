//! The conversion cache: one directory per content hash.
//!
//! ```text
//! <cache>/                         PTM_CACHE_DIR, else <target dir>/ptm-cache
//!   v1/<key>/model.ptl|model.pte   the artifact (a Lite Interpreter or ExecuTorch file)
//!   v1/<key>/reference.bin         the self-check's reference data (ptm_convert/reference.py)
//!   v1/<key>/report.json           what the worker measured (ptm_report::Converted)
//!   v1/<key>/entry.json            the artifact's name and the sha256 of each file, checked on every read
//!   locks/<key>.lock               held (flock) while a build converts <key>
//!   staging/<unique>/              where a conversion writes before it is published
//!   probes/<python>.json           the torch version of each interpreter seen (ptm_toolchain::python)
//!   runners/executorch-<v>-<hash>/ ExecuTorch's runner that verifies .pte files (ptm_convert/runner.py)
//!   runners/executorch-patterns-<hash>.json
//!                                  the operators of the patterns ExecuTorch builds (ptm_convert/patterns.py)
//! ```
//!
//! The last three concern the toolchain, not a model: they are in `PTM_TOOLCHAIN_DIR`
//! instead when it is set (`ptm_toolchain::cache_dir::toolchain`), which caches of their
//! own can share.
//!
//! An entry appears by renaming a complete staging directory into place, so a reader
//! sees all of it or nothing; a directory rename onto an existing entry fails, so the
//! first publisher wins and later ones discard their copy. A killed conversion leaves
//! only a staging directory, which nothing reads.

use crate::error::Error;
use crate::fsutil::write_atomic;
use crate::hash::file_sha256;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

const LAYOUT: &str = "v1";
/// The artifact names an entry may hold.
const ARTIFACT_FILES: [&str; 2] = ["model.ptl", "model.pte"];
/// The self-check's reference data in an entry, as the worker writes it.
pub const REFERENCE_FILE: &str = "reference.bin";

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A verified cache entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The artifact inside the entry (`model.ptl` or `model.pte`).
    pub artifact: PathBuf,
    /// sha256 of the artifact.
    pub artifact_sha256: String,
    /// The self-check's reference data and its sha256, when the conversion wrote it.
    pub reference: Option<(PathBuf, String)>,
    /// The worker's report, as JSON text.
    pub report: String,
}

/// The name of the artifact in an entry, per format.
pub fn artifact_file(format: ptm_report::Format) -> &'static str {
    match format {
        ptm_report::Format::Ptl => "model.ptl",
        ptm_report::Format::Pte => "model.pte",
    }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    key: String,
    /// Entries written before `.pte` existed name no file: theirs is `model.ptl`.
    #[serde(default = "ptl_file")]
    file: String,
    #[serde(alias = "ptl_sha256")]
    artifact_sha256: String,
    report_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference_sha256: Option<String>,
}

fn ptl_file() -> String {
    artifact_file(ptm_report::Format::Ptl).into()
}

/// What [`Cache::inspect`] found under a key.
#[derive(Debug)]
pub enum Lookup {
    /// Nothing.
    Missing,
    /// An entry whose files do not match their recorded hashes (or are missing): the
    /// first such file.
    Damaged(PathBuf),
    /// A verified entry.
    Intact(Entry),
}

/// An exclusive lock on one key, released on drop (or when the process dies).
pub struct KeyLock {
    _file: File,
}

impl Cache {
    /// A cache rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// `explicit`, else `ptm-cache` in the target directory that holds `out_dir`: the
    /// one with cargo's CACHEDIR.TAG, shared by every crate of the workspace (and by the
    /// runtime's build script, through `ptm_toolchain::cache_dir`).
    pub fn locate(explicit: Option<PathBuf>, out_dir: &Path) -> Cache {
        Cache::new(ptm_toolchain::cache_dir::locate(explicit, out_dir))
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join(LAYOUT).join(key)
    }

    /// The entry for `key` if it is present and intact. A damaged entry is removed
    /// and reported as absent, so that the caller converts again.
    pub fn get(&self, key: &str) -> Option<Entry> {
        match self.inspect(key) {
            Lookup::Intact(entry) => Some(entry),
            Lookup::Missing => None,
            Lookup::Damaged(file) => {
                let dir = self.entry_dir(key);
                eprintln!("ptm: cache entry {} is damaged ({} does not match its recorded hash); converting again", dir.display(), file.display());
                self.discard(&dir);
                None
            }
        }
    }

    /// What is stored under `key`, changing nothing (the committed store reports damage
    /// instead of repairing it).
    pub fn inspect(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        if !dir.is_dir() {
            return Lookup::Missing;
        }
        match self.verify(key, &dir) {
            Ok(entry) => Lookup::Intact(entry),
            Err(file) => Lookup::Damaged(file),
        }
    }

    /// Every entry's directory, with its size in bytes and when it was published.
    pub fn entries(&self) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        let Ok(listing) = std::fs::read_dir(self.root.join(LAYOUT)) else { return Vec::new() };
        listing
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| {
                let dir = e.path();
                let bytes = std::fs::read_dir(&dir).map(|files| files.flatten().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0);
                let published = std::fs::metadata(dir.join("entry.json")).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                (dir, bytes, published)
            })
            .collect()
    }

    /// Removes one entry's directory (as found by [`Cache::entries`]).
    pub fn remove(&self, dir: &Path) {
        self.discard(dir);
    }

    /// Removes whatever is stored under `key`, so that it can be published again.
    pub(crate) fn remove_key(&self, key: &str) {
        self.discard(&self.entry_dir(key));
    }

    /// The entry, or the first of its files that is missing or does not match.
    fn verify(&self, key: &str, dir: &Path) -> Result<Entry, PathBuf> {
        let (entry_json, report_json) = (dir.join("entry.json"), dir.join("report.json"));
        let manifest: Manifest = std::fs::read(&entry_json)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(|m: &Manifest| m.key == key && ARTIFACT_FILES.contains(&m.file.as_str()))
            .ok_or(entry_json)?;
        let report =
            std::fs::read_to_string(&report_json).ok().filter(|r| crate::hash::hex_sha256(r.as_bytes()) == manifest.report_sha256).ok_or(report_json)?;
        let artifact = dir.join(&manifest.file);
        if file_sha256(&artifact).ok().as_ref() != Some(&manifest.artifact_sha256) {
            return Err(artifact);
        }
        let reference = match manifest.reference_sha256 {
            Some(sha256) => {
                let path = dir.join(REFERENCE_FILE);
                if file_sha256(&path).ok().as_ref() != Some(&sha256) {
                    return Err(path);
                }
                Some((path, sha256))
            }
            None => None,
        };
        Ok(Entry { artifact, artifact_sha256: manifest.artifact_sha256, reference, report })
    }

    fn discard(&self, dir: &Path) {
        // Rename first so a concurrent reader never sees a half-deleted entry.
        let grave = self.root.join("staging").join(format!("discarded-{}", crate::fsutil::temp_sibling(dir).file_name().unwrap_or_default().to_string_lossy()));
        let _ = std::fs::create_dir_all(self.root.join("staging"));
        if std::fs::rename(dir, &grave).is_ok() {
            let _ = std::fs::remove_dir_all(&grave);
        }
    }

    /// Blocks until this process holds the conversion lock of `key`.
    pub fn lock(&self, key: &str) -> Result<KeyLock, Error> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let path = dir.join(format!("{key}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io("open lock file", &path, e))?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(KeyLock { _file: file })
    }

    /// A fresh, empty directory to convert into.
    pub fn staging(&self) -> Result<PathBuf, Error> {
        let dir = crate::fsutil::temp_sibling(&self.root.join("staging").join("entry"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        Ok(dir)
    }

    /// Moves a staged conversion (`model.ptl` or `model.pte` in `staged`, with its
    /// `reference.bin` when there is one, plus `report`) into place under `key` and
    /// returns the entry now there (ours, or an earlier publisher's).
    pub fn publish(&self, key: &str, staged: &Path, report: &str) -> Result<Entry, Error> {
        let file = ARTIFACT_FILES.iter().find(|name| staged.join(name).is_file()).copied().unwrap_or(ARTIFACT_FILES[0]);
        let reference = staged.join(REFERENCE_FILE);
        let manifest = Manifest {
            key: key.to_string(),
            file: file.into(),
            artifact_sha256: file_sha256(&staged.join(file))?,
            report_sha256: crate::hash::hex_sha256(report.as_bytes()),
            reference_sha256: if reference.is_file() { Some(file_sha256(&reference)?) } else { None },
        };
        write_atomic(&staged.join("report.json"), report.as_bytes())?;
        write_atomic(&staged.join("entry.json"), serde_json::to_string_pretty(&manifest).unwrap_or_default().as_bytes())?;
        let dir = self.entry_dir(key);
        let parent = self.root.join(LAYOUT);
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("create directory", &parent, e))?;
        if std::fs::rename(staged, &dir).is_ok() {
            // Ours, hashed just above: no need to read it back.
            let reference = manifest.reference_sha256.map(|sha256| (dir.join(REFERENCE_FILE), sha256));
            return Ok(Entry { artifact: dir.join(file), artifact_sha256: manifest.artifact_sha256, reference, report: report.to_string() });
        }
        // Someone published first; theirs is as good as ours once verified.
        let _ = std::fs::remove_dir_all(staged);
        self.get(key).ok_or_else(|| Error::io("publish cache entry", &dir, std::io::Error::other("entry missing or damaged right after publishing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(cache: &Cache, bytes: &[u8]) -> PathBuf {
        let dir = cache.staging().unwrap();
        std::fs::write(dir.join("model.ptl"), bytes).unwrap();
        dir
    }

    #[test]
    fn published_entries_are_verified_and_damage_is_detected() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path());
        assert!(cache.get("k").is_none());
        let entry = cache.publish("k", &stage(&cache, b"ptl bytes"), "{}").unwrap();
        assert_eq!(std::fs::read(&entry.artifact).unwrap(), b"ptl bytes");
        assert_eq!(cache.get("k").unwrap().report, "{}");

        // Truncating the artifact makes the entry disappear instead of being used.
        std::fs::write(&entry.artifact, b"ptl").unwrap();
        assert!(cache.get("k").is_none());
        assert!(!root.path().join("v1/k").exists());
    }

    #[test]
    fn reference_data_is_published_with_the_artifact_and_its_damage_is_detected() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path());
        let staged = stage(&cache, b"pte bytes");
        std::fs::write(staged.join(REFERENCE_FILE), b"reference").unwrap();
        let entry = cache.publish("k", &staged, "{}").unwrap();
        let (path, sha256) = entry.reference.clone().unwrap();
        assert_eq!(sha256, crate::hash::hex_sha256(b"reference"));
        assert_eq!(cache.get("k").unwrap().reference, Some((path.clone(), sha256)));

        std::fs::write(&path, b"referencf").unwrap();
        assert!(matches!(cache.inspect("k"), Lookup::Damaged(file) if file == path));
        assert!(cache.get("k").is_none(), "an entry with altered reference data is converted again");
    }

    #[test]
    fn the_first_publisher_wins_and_the_second_gets_a_good_entry() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path());
        let first = stage(&cache, b"first");
        let second = stage(&cache, b"second");
        cache.publish("k", &first, "{}").unwrap();
        let entry = cache.publish("k", &second, "{}").unwrap();
        assert_eq!(std::fs::read(entry.artifact).unwrap(), b"first");
        assert!(!second.exists(), "the losing staging directory is cleaned up");
    }

    #[test]
    fn locates_the_target_directory_by_its_cachedir_tag() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("target/debug/build/app-123/out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(root.path().join("target/CACHEDIR.TAG"), "").unwrap();
        assert_eq!(Cache::locate(None, &out).root(), root.path().join("target/ptm-cache"));
        assert_eq!(Cache::locate(Some("/c".into()), &out).root(), Path::new("/c"));
    }
}
