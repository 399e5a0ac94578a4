//! The example app's .ptl files run by PyTorch's aarch64 libtorch and its .pte files
//! run by ExecuTorch's aarch64 runtime, under qemu, agree with the host. Needs
//! aarch64-linux-gnu-g++ and qemu-aarch64-static (tools/test-tools installs them, and
//! tools/test runs it first); without them the test fails naming them, unless
//! PTM_SKIP_ARM_CHECK=1 says to skip it.

#[test]
fn the_example_apps_artifacts_agree_on_aarch64_and_the_host() {
    let Some((stdout, stderr)) = ptm_tests::device_check("arm-check", "PTM_SKIP_ARM_CHECK") else { return };
    for model in ["digits", "digits_fp32", "review", "digits_pte", "digits_fp32_pte", "review_pte"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{model}:"))).unwrap_or_else(|| panic!("no line for {model}:\n{stdout}"));
        assert!(line.ends_with(": ok"), "{line}");
    }
    // The typed Rust wrapper cross-compiled for aarch64, when Rust has that target.
    let app = stdout.lines().find(|l| l.starts_with("rust_app_pte:")).unwrap_or_else(|| panic!("no line for the Rust app on aarch64:\n{stdout}\n{stderr}"));
    assert!(app.ends_with(": ok") && app.contains("aarch64"), "{app}");
}
