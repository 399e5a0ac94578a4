//! Content hashing for cache keys and entry verification.

use crate::Error;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Hex sha256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex sha256 of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String, Error> {
    let mut hasher = Sha256::new();
    stream_file(&mut hasher, path)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stream_file(hasher: &mut Sha256, path: &Path) -> Result<u64, Error> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
}

/// Builds a key from labelled fields; every field is length-prefixed so that no two
/// different sequences of fields hash alike.
pub struct KeyHasher {
    inner: Sha256,
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher { inner: Sha256::new() }
    }
}

impl KeyHasher {
    /// Adds a labelled byte string.
    pub fn field(&mut self, label: &str, bytes: &[u8]) {
        self.inner.update((label.len() as u64).to_le_bytes());
        self.inner.update(label.as_bytes());
        self.inner.update((bytes.len() as u64).to_le_bytes());
        self.inner.update(bytes);
    }

    /// Adds a file, or every file below a directory in sorted order, with paths
    /// relative to `root` so that moving the crate does not change the key.
    pub fn path(&mut self, label: &str, root: &Path, relative: &Path) -> Result<(), Error> {
        for file in files_below(&root.join(relative))? {
            let name = file.strip_prefix(root).unwrap_or(&file);
            self.field(label, name.to_string_lossy().replace('\\', "/").as_bytes());
            let digest = file_sha256(&file)?;
            self.field("sha256", digest.as_bytes());
        }
        Ok(())
    }

    /// The key, hex.
    pub fn finish(self) -> String {
        hex(&self.inner.finalize())
    }
}

/// `path` itself if it is a file, else every file below it, sorted, skipping
/// Python byte-code caches and hidden files.
pub fn files_below(path: &Path) -> Result<Vec<PathBuf>, Error> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io("list", path, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            !name.starts_with('.') && name != "__pycache__"
        })
        .collect();
    entries.sort();
    for entry in entries {
        files.extend(files_below(&entry)?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unambiguous() {
        let mut a = KeyHasher::default();
        a.field("x", b"ab");
        a.field("y", b"c");
        let mut b = KeyHasher::default();
        b.field("x", b"a");
        b.field("y", b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn directories_hash_in_sorted_order_and_by_relative_path() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        for root in [one.path(), two.path()] {
            std::fs::create_dir_all(root.join("d/sub")).unwrap();
            std::fs::write(root.join("d/b.pt"), b"b").unwrap();
            std::fs::write(root.join("d/sub/a.pt"), b"a").unwrap();
        }
        let key = |root: &Path| {
            let mut h = KeyHasher::default();
            h.path("cal", root, Path::new("d")).unwrap();
            h.finish()
        };
        assert_eq!(key(one.path()), key(two.path()));
        std::fs::write(two.path().join("d/sub/a.pt"), b"changed").unwrap();
        assert_ne!(key(one.path()), key(two.path()));
        assert_eq!(hex_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
