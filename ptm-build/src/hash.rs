//! Content hashing for cache keys and entry verification.

use crate::error::Error;
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

/// The files of a declared file or directory ([`named_files`]), each with its sha256:
/// hashed once, for the key ([`KeyHasher::files`]) and for models.json ([`digest_of`]).
pub fn file_digests(root: &Path, declared: &Path) -> Result<Vec<(String, String)>, Error> {
    named_files(root, declared)?.into_iter().map(|(name, file)| Ok((name, file_sha256(&file)?))).collect()
}

/// The digest of a declared path, as models.json records it, from its [`file_digests`]:
/// a file's sha256 (what `sha256sum` prints), or for a directory the sha256 over each
/// file's name and sha256, in order.
pub fn digest_of(declared: &Path, files: &[(String, String)]) -> String {
    if let [(name, digest)] = files {
        if Path::new(name) == declared {
            return digest.clone();
        }
    }
    let mut hasher = Sha256::new();
    for (name, digest) in files {
        hasher.update(format!("{name}\0{digest}\n").as_bytes());
    }
    hex(&hasher.finalize())
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

    /// Adds a file, or every file below a directory in sorted order ([`file_digests`]),
    /// each named as the declaration reaches it, so that moving the crate does not
    /// change the key.
    pub fn files(&mut self, label: &str, files: &[(String, String)]) {
        for (name, digest) in files {
            self.field(label, name.as_bytes());
            self.field("sha256", digest.as_bytes());
        }
    }

    /// The key, hex.
    pub fn finish(self) -> String {
        hex(&self.inner.finalize())
    }
}

/// Every file of `declared` ([`files_below`] of `root/declared`), each with its name as
/// the declaration reaches it: `declared` followed by the path inside it, with `/`
/// separators. A path that leaves `root` (`../shared/x.py`) keeps its declared form, so
/// its name is the same in every checkout.
pub fn named_files(root: &Path, declared: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let base = root.join(declared);
    let files = files_below(&base)?;
    Ok(files
        .into_iter()
        .map(|file| {
            let inner = file.strip_prefix(&base).unwrap_or(Path::new(""));
            let name = if inner.as_os_str().is_empty() { declared.to_path_buf() } else { declared.join(inner) };
            (name.to_string_lossy().replace('\\', "/"), file)
        })
        .collect())
}

/// `path` itself if it is a file, else every file below it, sorted by path. Hidden
/// entries and Python byte-code caches are skipped (the one rule for the key, the
/// watched files and the samples the worker reads). Symbolic links are followed; one
/// that leads back to a directory above it is an error instead of an endless walk.
pub fn files_below(path: &Path) -> Result<Vec<PathBuf>, Error> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let walk =
        walkdir::WalkDir::new(path).follow_links(true).sort_by_file_name().into_iter().filter_entry(|entry| entry.depth() == 0 || !skipped(entry.file_name()));
    let mut files = Vec::new();
    for entry in walk {
        let entry = entry.map_err(|e| walk_error(path, e))?;
        if !entry.file_type().is_dir() {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

fn skipped(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name == "__pycache__"
}

fn walk_error(root: &Path, error: walkdir::Error) -> Error {
    let at = error.path().unwrap_or(root).to_path_buf();
    if let Some(ancestor) = error.loop_ancestor() {
        let loop_error =
            std::io::Error::other(format!("it is a symbolic link back to {}, above it; remove the link or point it elsewhere", ancestor.display()));
        return Error::io("walk into", at, loop_error);
    }
    let io = error.into_io_error().unwrap_or_else(|| std::io::Error::other("directory walk failed"));
    Error::io("list", at, io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_digest_is_a_files_sha256_or_a_directorys_listing_of_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/b")).unwrap();
        std::fs::write(dir.path().join("data/a.pt"), b"a").unwrap();
        std::fs::write(dir.path().join("data/b/c.pt"), b"c").unwrap();
        let digest = |declared: &str| digest_of(Path::new(declared), &file_digests(dir.path(), Path::new(declared)).unwrap());
        assert_eq!(digest("data/a.pt"), hex_sha256(b"a"), "a file's digest is what sha256sum prints");
        let listing = format!("data/a.pt\0{}\ndata/b/c.pt\0{}\n", hex_sha256(b"a"), hex_sha256(b"c"));
        assert_eq!(digest("data"), hex_sha256(listing.as_bytes()));
        // A directory holding one file is still a listing, not that file's digest.
        assert_eq!(digest("data/b"), hex_sha256(format!("data/b/c.pt\0{}\n", hex_sha256(b"c")).as_bytes()));
        std::fs::write(dir.path().join("data/b/c.pt"), b"changed").unwrap();
        assert_ne!(digest("data"), hex_sha256(listing.as_bytes()));
        assert!(file_digests(dir.path(), Path::new("missing")).is_err());
    }

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
            h.files("cal", &file_digests(root, Path::new("d")).unwrap());
            h.finish()
        };
        assert_eq!(key(one.path()), key(two.path()));
        std::fs::write(two.path().join("d/sub/a.pt"), b"changed").unwrap();
        assert_ne!(key(one.path()), key(two.path()));
        assert_eq!(hex_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    #[cfg(unix)]
    fn hidden_entries_are_skipped_and_a_symlink_loop_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cal");
        std::fs::create_dir_all(dir.join(".cache")).unwrap();
        std::fs::create_dir_all(dir.join("__pycache__")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        for file in ["a.pt", ".hidden.pt", ".cache/c.pt", "__pycache__/x.pyc", "b/d.pt"] {
            std::fs::write(dir.join(file), b"x").unwrap();
        }
        let found: Vec<PathBuf> = files_below(&dir).unwrap().iter().map(|f| f.strip_prefix(&dir).unwrap().to_path_buf()).collect();
        assert_eq!(found, [PathBuf::from("a.pt"), PathBuf::from("b/d.pt")]);

        std::os::unix::fs::symlink(&dir, dir.join("b/loop")).unwrap();
        let text = files_below(&dir).unwrap_err().to_string();
        assert!(text.contains("b/loop") && text.contains("symbolic link back to"), "{text}");
    }
}
