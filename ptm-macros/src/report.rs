//! Finding and checking the build script's models.json.

use ptm_report::{Bundle, REPORT_FILE, SCHEMA};
use std::path::PathBuf;

/// The report and where it lives.
pub struct Loaded {
    pub bundle: Bundle,
    /// `$OUT_DIR/ptm`, absolute.
    pub dir: PathBuf,
    /// The report file itself.
    pub file: PathBuf,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn manifest() -> String {
    std::env::var("CARGO_MANIFEST_DIR").map_or_else(|_| "Cargo.toml".into(), |dir| format!("{dir}/Cargo.toml"))
}

pub fn load() -> Result<Loaded, String> {
    let how = "add `ptm-build` under [build-dependencies] and a build.rs whose main calls `ptm_build::bundle()`";
    let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| format!("ptm::include_models!() found no build script output (OUT_DIR is not set): {how}"))?;
    let dir = PathBuf::from(out_dir).join("ptm");
    let file = dir.join(REPORT_FILE);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("ptm::include_models!() found no {} ({e}): the build script did not call ptm_build::bundle(); {how}", file.display()))?;
    let header: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON ({e}); rebuild with `cargo clean -p <crate>`", file.display()))?;
    let writer = header.get("ptm_build").and_then(|v| v.as_str()).unwrap_or("unknown");
    let schema = header.get("schema").and_then(|v| v.as_u64()).unwrap_or(0);
    if writer != VERSION || schema != u64::from(SCHEMA) {
        return Err(format!(
            "{} was written by ptm-build {writer} (report schema {schema}), but this ptm is {VERSION} (schema {SCHEMA}): depend on the same version of ptm and ptm-build, e.g. ptm = \"={VERSION}\" and ptm-build = \"={VERSION}\"",
            file.display()
        ));
    }
    let bundle = Bundle::from_json(&text)
        .map_err(|e| format!("{} does not match report schema {SCHEMA} ({e}); rebuild with `cargo clean -p <crate>`", file.display()))?;
    if bundle.models.is_empty() {
        return Err(format!(
            "no models declared: add a [package.metadata.models.<name>] table to {} (see ptm-build's documentation) or remove ptm::include_models!()",
            manifest()
        ));
    }
    Ok(Loaded { bundle, dir, file })
}
