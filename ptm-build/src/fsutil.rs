//! Writes that never leave a half-written file where a reader looks.

use crate::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name beside `path` that no other writer (process or thread) uses.
pub fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `bytes` to a temporary file and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    let temp = temp_sibling(path);
    std::fs::write(&temp, bytes).map_err(|e| Error::io("write", &temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io("rename into place", path, e)
    })
}

/// Writes only when the content differs, so timestamps (and cargo's fingerprints of
/// whatever depends on the file) stay put on a no-op build.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, Error> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    write_atomic(path, bytes)?;
    Ok(true)
}

/// Copies `from` to `to` unless `to` already holds the same bytes.
pub fn copy_if_changed(from: &Path, to: &Path) -> Result<bool, Error> {
    let bytes = std::fs::read(from).map_err(|e| Error::io("read", from, e))?;
    write_if_changed(to, &bytes)
}
