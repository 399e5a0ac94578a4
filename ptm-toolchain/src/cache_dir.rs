//! Where ptm's cache lives, which the conversion fills: `PTM_CACHE_DIR`, else `ptm-cache`
//! in cargo's target directory, so that every crate of a workspace shares it. And where
//! what concerns the toolchain rather than a model is kept (ExecuTorch's runner, the torch
//! probes, which the runtime's build script reads too): `PTM_TOOLCHAIN_DIR`, else the cache.

use std::path::{Path, PathBuf};

/// `explicit` (the value of `PTM_CACHE_DIR` or a builder's setting) when given, else
/// `ptm-cache` in the target directory above `out_dir`: the one cargo marks with a
/// `CACHEDIR.TAG`, else the one holding `<profile>/build/`, else `out_dir` itself.
pub fn locate(explicit: Option<PathBuf>, out_dir: &Path) -> PathBuf {
    if let Some(root) = explicit {
        return root;
    }
    let target = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .or_else(|| out_dir.ancestors().find(|dir| dir.file_name().is_some_and(|n| n == "build")).and_then(Path::parent).and_then(Path::parent))
        .unwrap_or(out_dir);
    target.join("ptm-cache")
}

/// `explicit` (the value of `PTM_TOOLCHAIN_DIR` or a builder's setting) when given, else
/// the cache directory `cache`: a fresh cache for models can share one toolchain
/// directory, whose runner and probes then outlive it.
pub fn toolchain(explicit: Option<PathBuf>, cache: &Path) -> PathBuf {
    explicit.unwrap_or_else(|| cache.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_tag_the_target_directory_is_the_one_above_the_profile() {
        let out = Path::new("/nowhere/target/debug/build/app-123/out");
        assert_eq!(locate(None, out), Path::new("/nowhere/target/ptm-cache"));
        assert_eq!(locate(Some("/c".into()), out), Path::new("/c"));
        assert_eq!(locate(None, Path::new("/out")), Path::new("/out/ptm-cache"));
    }

    #[test]
    fn the_toolchain_directory_is_the_cache_unless_given() {
        assert_eq!(toolchain(None, Path::new("/c")), Path::new("/c"));
        assert_eq!(toolchain(Some("/t".into()), Path::new("/c")), Path::new("/t"));
    }
}
