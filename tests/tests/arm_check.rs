//! The example app's .ptl files run by PyTorch's aarch64 libtorch and its .pte files
//! run by ExecuTorch's aarch64 runtime, under qemu, agree with the host. Runs when aarch64-linux-gnu-g++ and qemu-aarch64-static are installed;
//! otherwise says that it was skipped.

#[test]
fn the_example_apps_artifacts_agree_on_aarch64_and_the_host() {
    let out = std::process::Command::new(ptm_tests::repo().join("tools/arm-check/run")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        eprintln!("SKIPPED the ARM check: {}", stderr.trim());
        assert!(stderr.contains("SKIPPED"), "{stderr}");
        return;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for model in ["digits", "digits_fp32", "review", "digits_pte", "digits_fp32_pte", "review_pte"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{model}:"))).unwrap_or_else(|| panic!("no line for {model}:\n{stdout}"));
        assert!(line.ends_with(": ok"), "{line}");
    }
    // The typed Rust wrapper cross-compiled for aarch64, when Rust has that target.
    let app = stdout.lines().find(|l| l.starts_with("rust_app_pte:") || l.starts_with("rust app on aarch64: SKIPPED")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(app.ends_with(": ok") || app.contains("SKIPPED"), "{app}");
    if app.ends_with(": ok") {
        assert!(app.contains("aarch64"), "{app}");
    }
}
