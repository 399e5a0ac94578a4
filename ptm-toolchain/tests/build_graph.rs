//! The `ptm` runtime's build script compiles against libtorch and ExecuTorch with this
//! crate and `cc`; it must not take in what only a conversion needs (ptm-build's
//! manifest parser, its file walker), which every app would otherwise compile for the
//! runtime too.

use std::path::Path;
use std::process::Command;

/// Crates the runtime's build graph must not hold.
const CONVERSION_ONLY: &[&str] = &["ptm-build", "toml", "toml_edit", "walkdir"];

#[test]
fn the_runtimes_build_script_needs_the_toolchain_and_cc_alone() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("ptm-toolchain sits in the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Normal edges too: what a build dependency depends on is compiled for the build script.
    let output = Command::new(cargo).args(["tree", "-p", "ptm", "-e", "normal,build", "--all-features"]).current_dir(workspace).output().expect("cargo starts");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates = build_dependencies(&tree);
    // Guards against a passing test over output it no longer understands.
    for needed in ["ptm-toolchain", "cc", "serde"] {
        assert!(crates.contains(&needed), "{needed} missing from the runtime's build dependencies {crates:?} in:\n{tree}");
    }
    let found: Vec<&&str> = CONVERSION_ONLY.iter().filter(|name| crates.contains(name)).collect();
    assert!(found.is_empty(), "the ptm runtime's build script takes in {found:?}, which only a conversion needs:\n{tree}");
}

/// The crates below the top-level `[build-dependencies]` of `cargo tree`'s drawing (its
/// root's normal dependencies come before it, none come after).
fn build_dependencies(tree: &str) -> Vec<&str> {
    tree.lines()
        .skip_while(|line| *line != "[build-dependencies]")
        .skip(1)
        .map(|line| line.trim_start_matches(|c: char| "│├└─ ".contains(c) || c.is_whitespace()))
        .filter(|line| !line.starts_with('['))
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}
