//! Mistakes with `ptm::include_models!()` are compile errors that read well.
//!
//! One test, because the cases differ in the OUT_DIR the macro sees, which is process
//! environment: each group sets it before trybuild compiles that group's files.

use std::path::{Path, PathBuf};

/// A `$OUT_DIR/ptm/models.json` made from this crate's real one by `edit`.
fn out_dir_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let real = Path::new(env!("OUT_DIR")).join("ptm/models.json");
    let mut report: serde_json::Value = serde_json::from_slice(&std::fs::read(real).unwrap()).unwrap();
    edit(&mut report);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui").join(name);
    std::fs::create_dir_all(dir.join("ptm")).unwrap();
    std::fs::write(dir.join("ptm/models.json"), serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    dir
}

fn compile_fail_with(out_dir: Option<&Path>, files: &[&str]) {
    match out_dir {
        Some(dir) => std::env::set_var("OUT_DIR", dir),
        None => std::env::remove_var("OUT_DIR"),
    }
    let cases = trybuild::TestCases::new();
    for file in files {
        cases.compile_fail(format!("ui/{file}.rs"));
    }
    // Compiles and compares when dropped, while OUT_DIR is as set above.
}

#[test]
fn ui() {
    compile_fail_with(Some(Path::new(env!("OUT_DIR"))), &["wrong_element_type", "wrong_length", "wrong_argument_count", "arguments"]);
    compile_fail_with(None, &["no_build_output"]);
    compile_fail_with(Some(&out_dir_with("no-models", |r| r["models"] = serde_json::json!([]))), &["no_models"]);
    compile_fail_with(Some(&out_dir_with("other-version", |r| r["ptm_build"] = "0.0.9".into())), &["other_version"]);
}
