//! The committed model store: `.ptm/` beside Cargo.toml, written by `cargo ptm prepare`.
//!
//! ```text
//! .ptm/
//!   index.json                 model name -> key and the torch (and ExecuTorch) that converted it
//!   v1/<key>/...               entries laid out and verified as in the cache
//!   .gitignore                 keeps the cache's lock and staging directories out of git
//! ```
//!
//! Keys need the torch version, which only Python can tell; the index records it, so a
//! build with no Python recomputes each key from the files and the recorded version and
//! uses the entry only when they agree.

use crate::cache::{Cache, Entry, Lookup};
use crate::error::Error;
use crate::fsutil::write_if_changed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Directory name of the store, beside Cargo.toml.
pub const STORE_DIR: &str = ".ptm";

/// One model's artifact for one target, as `cargo ptm prepare` records it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The model's name.
    pub model: String,
    /// The target triple it was built for.
    pub target: String,
    /// Its key (what invalidates it: `key.rs`).
    pub key: String,
    /// The torch version that converted and verified it.
    pub torch: String,
    /// For a `.pte`, the ExecuTorch version that exported it (part of its key).
    pub executorch: Option<String>,
    /// The cache entry holding the artifact and its report.
    pub entry: Entry,
}

/// The store of one crate.
pub struct Store {
    entries: Cache,
    root: PathBuf,
}

/// What the store says of one model for one target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Indexed {
    /// The Rust target triple it was prepared for (per-target settings change keys).
    pub target: String,
    /// The key the entry was stored under.
    pub key: String,
    /// The torch version that converted it (part of the key).
    pub torch: String,
    /// For a `.pte`, the ExecuTorch version that exported it (part of its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executorch: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    schema: u32,
    models: BTreeMap<String, Vec<Indexed>>,
}

/// Why a model cannot come from the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// The index has no entry for it.
    NotPrepared,
    /// Its files or declaration changed since `prepare`.
    Stale,
    /// This file of its entry is missing or does not match its recorded hash.
    Damaged(PathBuf),
    /// `index.json` cannot be read as an index.
    Corrupt {
        /// The index file.
        index: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::NotPrepared => f.write_str("not in the store"),
            Miss::Stale => f.write_str("stale: its declaration or files changed since the store was prepared"),
            Miss::Damaged(file) => write!(f, "damaged: {} is missing or does not match its recorded hash", file.display()),
            Miss::Corrupt { index, problem } => write!(f, "the store index {} is corrupt ({problem}); `cargo ptm prepare` writes it again", index.display()),
        }
    }
}

impl Store {
    /// The store of the crate in `crate_dir`.
    pub fn of(crate_dir: &Path) -> Store {
        let root = crate_dir.join(STORE_DIR);
        Store { entries: Cache::new(&root), root }
    }

    /// The store whose directory is `root` (a `.ptm/`, or a copy of one elsewhere).
    pub fn at(root: &Path) -> Store {
        Store { entries: Cache::new(root), root: root.to_path_buf() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `cargo ptm prepare` ever wrote this store.
    pub fn exists(&self) -> bool {
        self.root.join("index.json").is_file()
    }

    /// Every model the index holds, by name.
    pub fn models(&self) -> Result<Vec<String>, Miss> {
        Ok(self.index()?.models.into_keys().collect())
    }

    /// What the index says of `model`, one record per prepared target.
    pub fn indexed(&self, model: &str) -> Result<Vec<Indexed>, Miss> {
        Ok(self.index()?.models.get(model).cloned().unwrap_or_default())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The index; empty when there is none, [`Miss::Corrupt`] when it cannot be read.
    fn index(&self) -> Result<Index, Miss> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(Miss::Corrupt { index: path, problem: e.to_string() }),
        };
        serde_json::from_slice(&bytes).map_err(|e| Miss::Corrupt { index: path, problem: e.to_string() })
    }

    /// Why the index cannot be read, if it cannot.
    pub fn index_problem(&self) -> Option<Miss> {
        self.index().err()
    }

    /// A torch version the index records for `model` that is the same release as
    /// `torch` with another build tag (`2.11.0+cpu` against `2.11.0+cu130`).
    pub fn same_release_other_build(&self, model: &str, torch: &str) -> Option<String> {
        let release = |version: &str| version.split('+').next().unwrap_or_default().to_string();
        self.indexed(model).ok()?.into_iter().map(|r| r.torch).find(|recorded| recorded != torch && release(recorded) == release(torch))
    }

    /// The entry for `model` if the store holds it under `key` and it is intact.
    pub fn get(&self, model: &str, key: &str) -> Result<Entry, Miss> {
        self.lookup(&self.indexed(model)?, key)
    }

    /// [`Store::get`] against index records already read.
    fn lookup(&self, indexed: &[Indexed], key: &str) -> Result<Entry, Miss> {
        if indexed.is_empty() {
            return Err(Miss::NotPrepared);
        }
        if !indexed.iter().any(|i| i.key == key) {
            return Err(Miss::Stale);
        }
        match self.entries.inspect(key) {
            Lookup::Intact(entry) => Ok(entry),
            Lookup::Damaged(file) => Err(Miss::Damaged(file)),
            Lookup::Missing => Err(Miss::NotPrepared),
        }
    }

    /// The entry for `decl` as a build without Python gets it: the key recomputed from
    /// today's files and each recorded torch version, looked up in `cache` first (when
    /// given), then in the store. Returns the key, the record that matched (the torch and
    /// ExecuTorch versions), the entry and whether it came from the cache.
    pub fn find(&self, decl: &crate::manifest::ModelDecl, crate_dir: &Path, cache: Option<&Cache>) -> Result<(String, Indexed, Entry, bool), Miss> {
        let inputs = crate::key::Inputs::hash(decl, crate_dir).map_err(|_| Miss::Stale)?;
        self.find_hashed(decl, &inputs, cache)
    }

    /// [`Store::find`] with the declaration's files already hashed: each file is hashed
    /// once, whatever the number of recorded torch versions.
    pub(crate) fn find_hashed(
        &self,
        decl: &crate::manifest::ModelDecl,
        inputs: &crate::key::Inputs,
        cache: Option<&Cache>,
    ) -> Result<(String, Indexed, Entry, bool), Miss> {
        let indexed = self.indexed(&decl.name)?;
        if indexed.is_empty() {
            return Err(Miss::NotPrepared);
        }
        let mut last = Miss::Stale;
        for record in &indexed {
            let key = crate::key::key_with(decl, inputs, &record.torch, record.executorch.as_deref());
            if let Some(entry) = cache.and_then(|c| c.get(&key)) {
                return Ok((key, record.clone(), entry, true));
            }
            match self.lookup(&indexed, &key) {
                Ok(entry) => return Ok((key, record.clone(), entry, false)),
                Err(miss) => last = miss,
            }
        }
        Err(last)
    }

    /// Records `entries`: each replaces the record of its model and target. Records of other targets stay for
    /// the models `entries` name; models it does not name are dropped, with every entry
    /// no record uses any more. An unreadable index is replaced (see [`Store::index_problem`]).
    pub fn write(&self, entries: &[Stored]) -> Result<(), Error> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io("create directory", &self.root, e))?;
        write_if_changed(
            &self.root.join(".gitignore"),
            b"# The cache's working directories; everything else here is meant to be committed.\nlocks/\nstaging/\n",
        )?;
        let mut index = Index { schema: 1, models: BTreeMap::new() };
        let written = |model: &str, target: &str| entries.iter().any(|e| e.model == model && e.target == target);
        for (model, records) in self.index().unwrap_or_default().models {
            if entries.iter().any(|e| e.model == model) {
                let kept: Vec<Indexed> = records.into_iter().filter(|r| !written(&model, &r.target)).collect();
                if !kept.is_empty() {
                    index.models.insert(model, kept);
                }
            }
        }
        for Stored { model, target, key, torch, executorch, entry } in entries {
            let found = self.entries.inspect(key);
            if !matches!(found, Lookup::Intact(_)) {
                if matches!(found, Lookup::Damaged(_)) {
                    // A build only reports a damaged entry; preparing replaces it (a
                    // publish never overwrites an existing directory).
                    self.entries.remove_key(key);
                }
                let staged = self.entries.staging()?;
                let file = entry.artifact.file_name().unwrap_or_default();
                crate::fsutil::copy_if_changed(&entry.artifact, &staged.join(file))?;
                if let Some((reference, _)) = &entry.reference {
                    crate::fsutil::copy_if_changed(reference, &staged.join(crate::cache::REFERENCE_FILE))?;
                }
                self.entries.publish(key, &staged, &entry.report)?;
            }
            index.models.entry(model.clone()).or_default().push(Indexed {
                target: target.clone(),
                key: key.clone(),
                torch: torch.clone(),
                executorch: executorch.clone(),
            });
        }
        for records in index.models.values_mut() {
            records.sort_by(|a, b| a.target.cmp(&b.target));
        }
        let text = serde_json::to_string_pretty(&index).unwrap_or_default() + "\n";
        write_if_changed(&self.root.join("index.json"), text.as_bytes())?;
        for (dir, _, _) in self.entries.entries() {
            let used = dir.file_name().is_some_and(|key| index.models.values().flatten().any(|m| key.to_string_lossy() == m.key));
            if !used {
                self.entries.remove(&dir);
            }
        }
        let _ = std::fs::remove_dir_all(self.root.join("staging"));
        let _ = std::fs::remove_dir_all(self.root.join("locks"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache entry holding `bytes` as its artifact, as a conversion would publish it.
    fn converted(cache: &Cache, key: &str, bytes: &[u8]) -> Entry {
        let staged = cache.staging().unwrap();
        std::fs::write(staged.join("model.ptl"), bytes).unwrap();
        cache.publish(key, &staged, "{\"seconds\": 1.0}").unwrap()
    }

    fn record(model: &str, target: &str, key: &str, entry: &Entry) -> Stored {
        Stored { model: model.into(), target: target.into(), key: key.into(), torch: "2.11.0+cu130".into(), executorch: None, entry: entry.clone() }
    }

    #[test]
    fn entries_are_found_by_model_and_key_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let (arm, x86) = (converted(&cache, "k-arm", b"arm bytes"), converted(&cache, "k-x86", b"x86 bytes"));
        let store = Store::of(dir.path());
        assert!(!store.exists());
        store.write(&[record("review", "x86_64-unknown-linux-gnu", "k-x86", &x86), record("review", "aarch64-linux-android", "k-arm", &arm)]).unwrap();

        assert!(store.exists());
        assert_eq!(std::fs::read(store.get("review", "k-arm").unwrap().artifact).unwrap(), b"arm bytes");
        assert_eq!(std::fs::read(store.get("review", "k-x86").unwrap().artifact).unwrap(), b"x86 bytes");
        assert_eq!(store.get("review", "k-changed").unwrap_err(), Miss::Stale);
        assert_eq!(store.get("digits", "k-x86").unwrap_err(), Miss::NotPrepared);
        let targets: Vec<String> = store.indexed("review").unwrap().into_iter().map(|r| r.target).collect();
        assert_eq!(targets, ["aarch64-linux-android", "x86_64-unknown-linux-gnu"], "sorted, so the index diffs cleanly");
        let ignored = std::fs::read_to_string(store.root().join(".gitignore")).unwrap();
        assert!(ignored.contains("locks/") && ignored.contains("staging/"));
    }

    #[test]
    fn preparing_one_target_keeps_the_others_and_drops_what_nothing_uses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let (arm, x86, x86_new) = (converted(&cache, "k-arm", b"arm"), converted(&cache, "k-x86", b"x86"), converted(&cache, "k-x86-2", b"x86 v2"));
        let digits = converted(&cache, "k-digits", b"digits");
        let store = Store::of(dir.path());
        store.write(&[record("review", "arm", "k-arm", &arm), record("review", "x86", "k-x86", &x86), record("digits", "x86", "k-digits", &digits)]).unwrap();

        // The next prepare covers x86 only and no longer declares `digits`.
        store.write(&[record("review", "x86", "k-x86-2", &x86_new)]).unwrap();
        let keys: Vec<String> = store.indexed("review").unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["k-arm", "k-x86-2"]);
        assert_eq!(store.indexed("digits").unwrap(), []);
        let stored: Vec<String> = std::fs::read_dir(store.root().join("v1")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        let mut stored = stored;
        stored.sort();
        assert_eq!(stored, ["k-arm", "k-x86-2"], "entries no record uses are removed");
    }

    #[test]
    fn a_damaged_entry_and_a_corrupt_index_are_named_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let entry = converted(&cache, "k", b"model bytes");
        let store = Store::of(dir.path());
        store.write(&[record("review", "x86", "k", &entry)]).unwrap();

        let stored = store.get("review", "k").unwrap().artifact;
        std::fs::write(&stored, b"model bytez").unwrap();
        assert_eq!(store.get("review", "k").unwrap_err(), Miss::Damaged(stored.clone()));
        // Writing again repairs it from the cache entry.
        store.write(&[record("review", "x86", "k", &entry)]).unwrap();
        assert_eq!(std::fs::read(store.get("review", "k").unwrap().artifact).unwrap(), b"model bytes");

        std::fs::write(store.root().join("index.json"), b"{ not json").unwrap();
        let miss = store.get("review", "k").unwrap_err();
        assert!(matches!(&miss, Miss::Corrupt { index, .. } if index.ends_with("index.json")), "{miss:?}");
        assert!(miss.to_string().contains("cargo ptm prepare"), "{miss}");
        assert!(store.index_problem().is_some());
        store.write(&[record("review", "x86", "k", &entry)]).unwrap();
        assert!(store.index_problem().is_none());
        assert!(store.get("review", "k").is_ok());
    }

    #[test]
    fn another_build_of_the_same_torch_release_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let entry = converted(&cache, "k", b"bytes");
        let store = Store::of(dir.path());
        store.write(&[record("review", "x86", "k", &entry)]).unwrap();
        assert_eq!(store.same_release_other_build("review", "2.11.0+cpu").as_deref(), Some("2.11.0+cu130"));
        assert_eq!(store.same_release_other_build("review", "2.11.0+cu130"), None);
        assert_eq!(store.same_release_other_build("review", "2.12.0+cpu"), None);
    }
}
