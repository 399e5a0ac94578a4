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

/// The `gates` fixture with its model's source callable, export and keys changed.
fn gates(callable: &str, export: &str, keys: &str) -> Fixture {
    let fixture = Fixture::new("gates");
    let manifest = fixture.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text
        .replace("models/gates.py:build_branchy", &format!("models/gates.py:{callable}"))
        .replace("export = \"trace\"\n", &format!("export = \"{export}\"\n{keys}\n"));
    std::fs::write(&manifest, text).unwrap();
    fixture
}

fn report_of(build: &ptm_tests::Build) -> serde_json::Value {
    let out_dir = build.out_dir.as_ref().unwrap_or_else(|| panic!("the build script failed:\n{}", build.stderr));
    serde_json::from_slice(&std::fs::read(out_dir.join("ptm/models.json")).unwrap()).unwrap()
}

#[test]
fn a_trace_that_froze_a_branch_fails_naming_the_warning_the_line_and_the_divergence() {
    let build = gates("build_branchy", "trace", "").build(&[]);
    assert!(!build.success);
    let text = &build.stderr;
    assert!(text.contains("model `branchy` failed at stage `export`") && text.contains("the trace does not hold for every valid input"), "{text}");
    assert!(text.contains("torch warned: Converting a tensor to a Python boolean"), "{text}");
    assert!(text.contains("at models/gates.py:15: `if x.shape[0] > 1:`"), "{text}");
    // At batch 1 the source model skips the centering the trace recorded at batch 4.
    assert!(text.contains("on `batch` = 1, output 0 differs from the source model"), "{text}");
    assert!(text.contains("torch's trace check failed: Graphs differed across invocations!"), "{text}");
    assert!(text.contains("write export = \"script\"") && text.contains("package.metadata.models.branchy.accept_trace_risk = true"), "{text}");
}

#[test]
fn scripting_the_same_model_keeps_the_branch_and_builds() {
    let build = gates("build_branchy", "script", "").build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert_eq!(report_of(&build)["models"][0]["export"], "script");
}

#[test]
fn an_accepted_trace_risk_warns_once_when_it_converts_and_stays_in_the_report_and_docs() {
    let fixture = gates("build_branchy", "trace", "accept_trace_risk = true");
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let warned = build.stderr.lines().filter(|l| l.starts_with("warning:") && l.contains("ptm: model `branchy`: trace risk accepted")).count();
    assert_eq!(warned, 1, "{}", build.stderr);
    assert!(build.stderr.contains("ptm: - torch warned: Converting a tensor to a Python boolean"), "{}", build.stderr);
    let report = report_of(&build);
    assert!(report["models"][0]["trace_risk"].as_str().unwrap().starts_with("trace risk accepted"), "{report}");
    assert_eq!(report["models"][0]["warnings"], serde_json::json!([]), "not repeated as a warning of every build");

    // A change that reruns the build script but not the conversion: no warning again.
    fixture.touch("build.rs");
    let again = fixture.build(&[]);
    assert!(again.success && again.ran_build_script(), "{}", again.stderr);
    assert!(!again.stderr.contains("trace risk"), "{}", again.stderr);
    assert_eq!(report_of(&again)["models"][0]["trace_risk"], report["models"][0]["trace_risk"]);
}

#[test]
fn a_branch_on_values_fails_although_every_shape_is_fixed() {
    let fixture = gates("build_value_branch", "trace", "");
    fixture.replace("shape = [\"batch=4\", 8]", "shape = [4, 8]");
    let build = fixture.build(&[]);
    assert!(!build.success);
    let text = &build.stderr;
    assert!(text.contains("model `branchy` failed at stage `export`") && text.contains("at models/gates.py:29: `if x.sum() > 0:`"), "{text}");
    assert!(text.contains("torch.export, which sees what a trace cannot, found: forward depends on a tensor's values, not only its sizes"), "{text}");
    assert!(text.contains("torch.where"), "{text}");
}

#[test]
fn a_branch_on_a_dynamic_dimension_fails_where_no_tried_size_reaches_it() {
    // Sizes 1, 3, 5 and 9 all take the same path as the example's 4: torch.export's
    // guard names the sizes above 20, and the first of them shows the other path.
    let build = gates("build_large_batch", "trace", "").build(&[]);
    assert!(!build.success);
    let text = &build.stderr;
    assert!(text.contains("at models/gates.py:43: `if x.shape[0] > 20:`"), "{text}");
    assert!(
        text.contains("torch.export found that the program holds only for some sizes of `batch`, and on `batch` = 21, output 0 differs from the source model"),
        "{text}"
    );
    for size in [1, 3, 5, 9] {
        assert!(!text.contains(&format!("on `batch` = {size},")), "size {size} takes the traced path: {text}");
    }
}

#[test]
fn the_seeds_batch_branch_with_a_fixed_batch_of_one_traces_without_a_warning() {
    let fixture = gates("build_branchy", "trace", "");
    fixture.replace("shape = [\"batch=4\", 8]", "shape = [1, 8]");
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(build.stderr.contains("torch.export: what torch warned about depends on no input value"), "{}", build.stderr);
    assert!(!build.stderr.contains("warning: ptm"), "{}", build.stderr);
    let model = &report_of(&build)["models"][0];
    assert_eq!(model["trace_risk"], serde_json::Value::Null);
    assert_eq!(model["warnings"], serde_json::json!([]));
}

#[test]
fn a_trace_without_data_dependent_code_passes_every_check() {
    let build = gates("build_straight", "trace", "").build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(!build.stderr.contains("trace risk"), "{}", build.stderr);
    assert_eq!(report_of(&build)["models"][0]["warnings"], serde_json::json!([]));
}

#[test]
fn a_model_that_does_not_script_fails_with_torchs_message_and_the_trace_hint() {
    let build = gates("build_varargs", "script", "").build(&[]);
    assert!(!build.success);
    let text = &build.stderr;
    assert!(text.contains("model `branchy` failed at stage `export`") && text.contains("torch.jit.script failed"), "{text}");
    assert!(text.contains("variable number of arguments"), "{text}");
    assert!(text.contains("try export = \"trace\""), "{text}");
}

#[test]
fn mobile_lints_are_cargo_warnings_unless_silenced() {
    let build = gates("build_unfolded", "trace", "").build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(build.stderr.lines().any(|l| l.starts_with("warning:") && l.contains("ptm: model `branchy`: mobile lint BATCHNORM")), "{}", build.stderr);
    assert!(!build.stderr.contains("BUNDLED_INPUT"), "{}", build.stderr);
    let quiet = gates("build_unfolded", "trace", "lints = false").build(&[]);
    assert!(quiet.success, "{}", quiet.stderr);
    assert!(!quiet.stderr.contains("mobile lint"), "{}", quiet.stderr);
}

/// The bytecode version of a .ptl, asked of torch directly.
fn bytecode_of(ptl: &std::path::Path) -> u32 {
    let out = std::process::Command::new(ptm_tests::venv_python())
        .args(["-c", "import sys, torch, torch.jit.mobile as m; print(m._get_model_bytecode_version(sys.argv[1]))"])
        .arg(ptl)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn an_older_runtime_gets_a_backported_artifact_that_loads_and_matches() {
    let fixture = Fixture::new("python-dynamic");
    declare(&fixture, Some("runtime = \"1.10\""), None);
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let out_dir = build.out_dir.unwrap();
    assert!(build.stderr.contains("backporting bytecode v8 to v7 (runtime 1.10)"), "{}", build.stderr);
    assert_eq!(bytecode_of(&out_dir.join("ptm/tiny.ptl")), 7);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("ptm/models.json")).unwrap()).unwrap();
    let model = &report["models"][0];
    assert_eq!(model["bytecode_version"], 7);
    // The Lite Interpreter stage ran on the backported file, within the quantized tolerance.
    let lite = model["drift"].as_array().unwrap().iter().find(|d| d["stage"] == "lite").unwrap();
    assert!(lite["samples"].as_u64().unwrap() >= 8 && lite["outputs"][0]["relative"].as_f64().unwrap() < 0.25, "{lite}");
}

#[test]
fn a_current_runtime_keeps_the_bytecode_and_an_impossible_one_fails() {
    let current = Fixture::new("python-dynamic");
    declare(&current, Some("runtime = \"1.13\""), None);
    let build = current.build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(!build.stderr.contains("backporting"), "{}", build.stderr);
    assert_eq!(bytecode_of(&build.out_dir.unwrap().join("ptm/tiny.ptl")), 8);

    let impossible = Fixture::new("python-dynamic");
    declare(&impossible, Some("max_bytecode = 3"), None);
    let build = impossible.build(&[]);
    assert!(!build.success);
    let text = &build.stderr;
    assert!(
        text.contains("model `tiny` failed at stage `backport`")
            && text.contains("cannot backport this model from bytecode v8 to v3, which max_bytecode = 3 reads"),
        "{text}"
    );
    assert!(text.contains("update the app's PyTorch Mobile library"), "{text}");
}

/// The report's Lite Interpreter drift, recomputed here from the documented example
/// inputs (seed 20240601, `randn` per declared shape) with eager PyTorch and the .ptl.
#[test]
fn the_reported_drift_matches_figures_computed_independently() {
    let fixture = Fixture::new("python-dynamic");
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let out_dir = build.out_dir.unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("ptm/models.json")).unwrap()).unwrap();
    let stages: Vec<&str> = report["models"][0]["drift"].as_array().unwrap().iter().map(|d| d["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["quantized", "optimized", "lite"], "every stage is kept");
    let lite_stage = report["models"][0]["drift"].as_array().unwrap().iter().find(|d| d["stage"] == "lite").unwrap().clone();
    assert_eq!(lite_stage["outputs"][0]["name"], "scores");
    let lite = lite_stage["outputs"][0].clone();

    let script = r#"
import json, sys, torch, torch.jit.mobile as mobile
torch.set_num_threads(1)
torch.backends.quantized.engine = "qnnpack"
sys.path.insert(0, "models")
from tiny import build_model
model = build_model()
model.load_state_dict(torch.load("models/tiny.pth", weights_only=True))
model.eval()
lite = mobile._load_for_lite_interpreter(sys.argv[1])
generator = torch.Generator().manual_seed(20240601)
inputs = [torch.randn(1, 16, generator=generator) for _ in range(8)]
# Top-1 alone is judged on 200 rows: the i-th sample more from seed 20240601 + 1000 + i.
more = [torch.randn(1, 16, generator=torch.Generator().manual_seed(20240601 + 1000 + i)) for i in range(192)]
max_abs = scale = 0.0
agree = 0
with torch.no_grad():
    for x in inputs:
        want, got = model(x).double(), lite(x).double()
        max_abs = max(max_abs, (want - got).abs().max().item())
        scale = max(scale, want.abs().max().item())
    for x in inputs + more:
        want, got = model(x).double(), lite(x).double()
        agree += int(want.argmax(-1).item() == got.argmax(-1).item())
print(json.dumps({"max_abs": max_abs, "source_max_abs": scale, "relative": max_abs / scale, "top1": agree / 200, "top1_rows": 200,
                  "samples": len(inputs)}))
"#;
    let out = std::process::Command::new(ptm_tests::venv_python())
        .args(["-B", "-c", script])
        .arg(out_dir.join("ptm/tiny.ptl"))
        .current_dir(fixture.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mine: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(mine["samples"], lite_stage["samples"]);
    assert_eq!(mine["top1"], lite["top1"]);
    assert_eq!(mine["top1_rows"], lite["top1_rows"]);
    for key in ["max_abs", "source_max_abs", "relative"] {
        let (a, b) = (mine[key].as_f64().unwrap(), lite[key].as_f64().unwrap());
        assert!(a > 0.0 && (a - b).abs() <= 1e-6 * a, "{key}: computed {a}, reported {b}");
    }
}

#[test]
fn drift_past_the_tolerance_fails_naming_the_first_stage_and_the_figures() {
    let fixture = Fixture::new("python-dynamic");
    declare(&fixture, Some("tolerance = { relative = 0.000001 }"), None);
    let build = fixture.build(&[]);
    assert!(!build.success);
    let text = &build.stderr;
    // INT8 weights move the outputs at the first stage; float tolerance catches it there.
    assert!(text.contains("model `tiny` failed at stage `verify`") && text.contains("outputs drifted from the source model at stage `quantized`"), "{text}");
    assert!(text.contains("(allowed 1e-06)") && text.contains("over 8 samples"), "{text}");
    assert!(text.contains("raise package.metadata.models.tiny.tolerance"), "{text}");
}

#[test]
fn a_static_int8_failure_shows_the_source_scale_and_the_calibration_count() {
    let fixture = Fixture::new("trace-static");
    fixture.replace("calibration = \"data/calibration\"\n", "calibration = \"data/calibration\"\ntolerance = { relative = 0.000001 }\n");
    let build = fixture.build(&[]);
    assert!(!build.success);
    let text = &build.stderr;
    assert!(text.contains("outputs drifted from the source model at stage `quantized`") && text.contains("- output `output0`: relative error"), "{text}");
    assert!(text.contains("source values up to"), "{text}");
    assert!(text.contains("static INT8 was calibrated on 16 sample(s) from data/calibration"), "{text}");
    assert!(text.contains("add calibration samples that cover the inputs the app sees (16 now)"), "{text}");
}
