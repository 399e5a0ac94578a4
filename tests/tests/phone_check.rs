//! ptm built for the phone: the Android template and a library of the example app's
//! .ptl models, for each ABI, against the pytorch_android_lite AAR with every imported
//! name accounted for; the template's Kotlin against the library's JNI exports; and the
//! iOS static library against its C header (tools/phone-check/run, docs/device.md).
//! Needs what tools/test-tools installs (tools/test runs it first); without it the test
//! fails naming what is missing, unless PTM_SKIP_PHONE_CHECK=1 says to skip it.

#[test]
fn the_phone_builds_link_against_the_phones_own_libraries() {
    let Some((stdout, stderr)) = ptm_tests::device_check("phone-check", "PTM_SKIP_PHONE_CHECK") else { return };
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
