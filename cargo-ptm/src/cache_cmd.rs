//! `cargo ptm cache size` and `cargo ptm cache prune`.

use crate::crates::Workspace;
use ptm_build::tooling::Cache;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

pub fn size(workspace: &Workspace) -> Result<ExitCode, String> {
    let cache = Cache::new(workspace.cache_dir());
    let entries = cache.entries();
    let total: u64 = entries.iter().map(|(_, bytes, _)| bytes).sum();
    println!("{}: {} entries, {}", cache.root().display(), entries.len(), mb(total));
    Ok(ExitCode::SUCCESS)
}

pub fn prune(workspace: &Workspace, older_than: Option<f64>, max_size: Option<f64>) -> Result<ExitCode, String> {
    if [older_than, max_size].into_iter().flatten().any(|n| n.is_nan() || n < 0.0) {
        return Err("cargo ptm cache prune: --older-than and --max-size take numbers >= 0".into());
    }
    let cache = Cache::new(workspace.cache_dir());
    let mut entries = cache.entries();
    // Oldest first: both rules remove from the front.
    entries.sort_by_key(|(_, _, published)| *published);
    let now = SystemTime::now();
    let mut total: u64 = entries.iter().map(|(_, bytes, _)| bytes).sum();
    let (mut removed, mut freed) = (0, 0);
    for (dir, bytes, published) in &entries {
        let too_old = older_than.is_some_and(|days| now.duration_since(*published).unwrap_or_default() > Duration::from_secs_f64(days * 86_400.0));
        let too_big = max_size.is_some_and(|limit| total as f64 > limit * 1e6);
        if too_old || too_big {
            cache.remove(dir);
            total -= bytes;
            removed += 1;
            freed += bytes;
        }
    }
    println!("{}: removed {removed} entries ({}), {} entries left, {}", cache.root().display(), mb(freed), entries.len() - removed, mb(total));
    Ok(ExitCode::SUCCESS)
}
