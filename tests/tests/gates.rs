//! The build-time gates, tripped and passed through cargo with real torch.

use ptm_tests::Fixture;

/// Adds `key` to the model's table, or appends `table` at the end of Cargo.toml.
fn declare(fixture: &Fixture, key: Option<&str>, table: Option<&str>) {
    let manifest = fixture.path().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    if let Some(key) = key {
        text = text.replace("quantize = \"dynamic\"\n", &format!("quantize = \"dynamic\"\n{key}\n"));
    }
    if let Some(table) = table {
        text = format!("{text}\n{table}\n");
    }
    std::fs::write(&manifest, text).unwrap();
}

fn engine_in_report(out_dir: &std::path::Path) -> String {
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("ptm/models.json")).unwrap()).unwrap();
    report["models"][0]["engine"].as_str().unwrap().to_string()
}

// This machine has no standard library for ARM targets, so these builds stop when rustc
// compiles the crate itself; the build script, which runs on the host with TARGET set
// to the ARM triple, has decided by then.
const ARM: &str = "aarch64-unknown-linux-gnu";

#[test]
fn fbgemm_for_an_arm_target_fails_the_build_with_the_fix() {
    let fixture = Fixture::new("python-dynamic");
    declare(&fixture, Some("engine = \"fbgemm\""), None);
    let build = fixture.build_with_args(&["--target", ARM], &[]);
    assert!(!build.success);
    assert!(build.out_dir.is_none(), "the build script must fail");
    let text = &build.stderr;
    assert!(text.contains("`package.metadata.models.tiny.engine`") && text.contains(&format!("\"fbgemm\" while building for {ARM}")), "{text}");
    assert!(text.contains("fbgemm has x86 kernels only") && text.contains("[package.metadata.models.tiny.target.x86_64] engine = \"fbgemm\""), "{text}");
}

#[test]
fn an_x86_only_override_keeps_qnnpack_for_arm_and_fbgemm_for_the_host() {
    let fixture = Fixture::new("python-dynamic");
    declare(&fixture, None, Some("[package.metadata.models.tiny.target.x86_64]\nengine = \"fbgemm\""));
    let arm = fixture.build_with_args(&["--target", ARM], &[]);
    let out_dir = arm.out_dir.unwrap_or_else(|| panic!("the build script failed for {ARM}:\n{}", arm.stderr));
    assert_eq!(engine_in_report(&out_dir), "qnnpack");
    let host = fixture.build(&[]);
    assert!(host.success, "{}", host.stderr);
    assert_eq!(engine_in_report(&host.out_dir.unwrap()), "fbgemm");
}
