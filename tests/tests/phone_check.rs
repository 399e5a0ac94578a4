//! ptm built for the phone: the Android template and a library of the example app's
//! .ptl models, for each ABI, against the pytorch_android_lite AAR with every imported
//! name accounted for; the template's Kotlin against the library's JNI exports; and the
//! iOS static library against its C header (tools/phone-check/run, docs/device.md).
//! Needs what tools/test-tools installs (tools/test runs it first); without it the test
//! fails naming what is missing, unless PTM_SKIP_PHONE_CHECK=1 says to skip it.

#[test]
fn the_phone_builds_link_against_the_phones_own_libraries() {
    let out = std::process::Command::new(ptm_tests::repo().join("tools/phone-check/run")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        assert!(
            std::env::var_os("PTM_SKIP_PHONE_CHECK").is_some(),
            "the phone check's tools are missing (run tools/test-tools, or set PTM_SKIP_PHONE_CHECK=1 to skip it): {}",
            stderr.trim()
        );
        eprintln!("skipped the phone check, as PTM_SKIP_PHONE_CHECK asks: {}", stderr.trim());
        return;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = |label: &str| -> String {
        let found = stdout.lines().find(|l| l.starts_with(&format!("{label}: "))).unwrap_or_else(|| panic!("no line for {label}:\n{stdout}\n{stderr}"));
        assert!(found.starts_with(&format!("{label}: ok")), "{found}");
        found.to_string()
    };
    for abi in ["arm64-v8a", "armeabi-v7a", "x86_64"] {
        for library in ["mobile-lib", "example .ptl models"] {
            let found = line(&format!("android {abi} {library}"));
            // Linked against the AAR's interpreter and C++ runtime, and bionic's libraries alone.
            assert!(found.contains("libpytorch_jni_lite.so") && found.contains("libc++_shared.so") && found.contains("from the AAR's libraries"), "{found}");
        }
    }
    assert!(line("android control").contains("__errno_location"), "the check refuses a glibc name");
    // ExecuTorch's shim compiles for Android; what it needs from an ExecuTorch library is listed.
    let executorch = line("android arm64-v8a ExecuTorch shim");
    assert!(executorch.contains("extension::module::Module") && executorch.contains("extension::MmapDataLoader"), "{executorch}");
    assert!(line("android Models.kt native methods").contains("Java_com_example_myapp_Models_classify"));
    assert!(line("ios aarch64-apple-ios staticlib").contains("my_app_classify"));
    assert!(stderr.contains("ptm's C++ shim is not compiled"), "the iOS build says what it leaves out:\n{stderr}");
}
