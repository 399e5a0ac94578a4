//! The example app's models self-checked on aarch64 under qemu by `cargo ptm
//! device-test` (.ptl files in PyTorch's aarch64 libtorch, .pte files in ExecuTorch's
//! aarch64 runtime), the same test failing on altered reference data, and a .pte app's
//! typed wrapper on aarch64 against its host build. Needs aarch64-linux-gnu-g++,
//! qemu-aarch64-static and Rust's aarch64 target (tools/test-tools installs them, and
//! tools/test runs it first); without them the test fails naming them, unless
//! PTM_SKIP_ARM_CHECK=1 says to skip it.

#[test]
fn the_example_apps_models_pass_their_self_checks_on_aarch64() {
    let Some((stdout, stderr)) = ptm_tests::device_check("arm-check", "PTM_SKIP_ARM_CHECK") else { return };
    assert!(stdout.contains("ptm device-test: 6 models of `example-app` on aarch64-linux"), "{stdout}\n{stderr}");
    for (model, format) in
        [("digits", "ptl"), ("digits_fp32", "ptl"), ("review", "ptl"), ("digits_pte", "pte"), ("digits_fp32_pte", "pte"), ("review_pte", "pte")]
    {
        let header = format!(".{format} model `{model}`, ");
        let at = stdout.find(&header).unwrap_or_else(|| panic!("no self-check of {model}:\n{stdout}"));
        let verdict = stdout[at..].lines().nth(1).unwrap_or_default();
        assert!(verdict.starts_with("  `logits`: relative") && verdict.ends_with(": ok"), "{model}: {verdict}");
    }
    assert!(stdout.contains("all 6 models pass their self-checks"), "{stdout}");
    // Altered reference data fails the device test, naming the output.
    let tampered = stdout.lines().find(|l| l.starts_with("tampered reference:")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(tampered.ends_with(": ok") && tampered.contains("`scores`: relative") && tampered.contains("FAILS"), "{tampered}");
    // The typed Rust wrapper cross-compiled for aarch64.
    let app = stdout.lines().find(|l| l.starts_with("rust_app_pte:")).unwrap_or_else(|| panic!("no line for the Rust app on aarch64:\n{stdout}\n{stderr}"));
    assert!(app.ends_with(": ok") && app.contains("aarch64"), "{app}");
}
