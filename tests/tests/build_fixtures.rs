//! Real fixture crates built through cargo with real torch.

use ptm_report::Dim;
use ptm_tests::{logging_python, sha256_of, starts, venv_python, Fixture};

fn assert_built(build: &ptm_tests::Build) {
    assert!(build.success, "cargo build failed:\n{}", build.stderr);
}

#[test]
fn python_source_with_weights_and_dynamic_int8() {
    let fixture = Fixture::new("python-dynamic");
    let build = fixture.build(&[]);
    assert_built(&build);
    let report = build.report();
    let tiny = &report.models[0];
    assert_eq!((tiny.name.as_str(), tiny.quantize.as_str(), tiny.engine.as_str()), ("tiny", "dynamic", "qnnpack"));
    assert_eq!(tiny.outputs[0].name, "scores");
    assert_eq!(tiny.outputs[0].shape, vec![Dim::Fixed(1), Dim::Fixed(4)]);
    assert!(tiny.operators.contains(&"quantized::linear_dynamic".to_string()), "{:?}", tiny.operators);
    let ptl = build.out_dir.as_ref().unwrap().join("ptm/tiny.ptl");
    assert_eq!(sha256_of(&ptl), tiny.artifact_sha256, "the report names the artifact's hash");
    let stages: Vec<&str> = tiny.drift.iter().map(|d| d.stage.as_str()).collect();
    // Eager dynamic quantization precedes export: the first TorchScript module is INT8.
    assert_eq!(stages, ["quantized", "optimized", "lite"]);
    assert_eq!(tiny.drift.last().unwrap().samples, 8, "the deciding stage sees every example input");
    // And, for top-1 alone, more up to 200 rows of the classifier-shaped output.
    assert_eq!(tiny.drift.last().unwrap().outputs[0].top1_rows, Some(200));
    assert!(tiny.drift.iter().all(|d| d.worst_relative().is_some_and(|r| r <= 0.25)), "{:?}", tiny.drift);
}

#[test]
fn torchscript_source_with_graph_mode_dynamic_int8() {
    let fixture = Fixture::new("torchscript-dynamic");
    let build = fixture.build(&[]);
    assert_built(&build);
    let model = &build.report().models[0];
    assert_eq!(model.source, "models/tiny.pt");
    assert_eq!(model.inputs[0].shape[0], Dim::dynamic("batch", 2));
    // The output follows the input's batch size, found by running a second size.
    assert_eq!(model.outputs[0].shape, vec![Dim::dynamic("batch", 2), Dim::Fixed(4)]);
    assert!(model.operators.contains(&"quantized::linear_dynamic".to_string()), "{:?}", model.operators);
}

#[test]
fn trace_with_static_int8_from_calibration_samples() {
    let fixture = Fixture::new("trace-static");
    let build = fixture.build(&[]);
    assert_built(&build);
    let conv = &build.report().models[0];
    assert_eq!(conv.export, "trace");
    assert!(conv.operators.iter().any(|op| op.starts_with("quantized::conv2d")), "{:?}", conv.operators);
    assert!(conv.operators.iter().any(|op| op == "quantized::linear"), "{:?}", conv.operators);
    // The calibration samples are compared too: 8 generated examples + 16 samples.
    assert_eq!(conv.drift.last().unwrap().samples, 24);
}

#[test]
fn a_no_op_build_does_not_rerun_the_build_script() {
    let fixture = Fixture::new("python-dynamic");
    assert_built(&fixture.build(&[]));
    let again = fixture.build(&[]);
    assert_built(&again);
    assert!(!again.ran_build_script(), "the build script reran on a no-op build:\n{}", again.stderr);
}

#[test]
fn a_cache_hit_starts_no_python() {
    let fixture = Fixture::new("python-dynamic");
    let log = fixture.path().join("python.log");
    let python = logging_python(fixture.path(), &log, false);
    let first = fixture.build(&[("PTM_PYTHON", &python)]);
    assert_built(&first);
    assert!(starts(&log) >= 1, "the first build converts with Python");
    let converted = first.report();

    // Same path, now a program that fails: any start would break the build.
    logging_python(fixture.path(), &log, true);
    let before = starts(&log);
    fixture.touch("Cargo.toml");
    let second = fixture.build(&[("PTM_PYTHON", &python)]);
    assert_built(&second);
    assert!(second.ran_build_script(), "touching Cargo.toml reruns the build script:\n{}", second.stderr);
    assert_eq!(starts(&log), before, "a cache hit must not start Python");
    assert_eq!(second.report(), converted);
}

#[test]
fn a_changed_weights_file_reconverts() {
    let fixture = Fixture::new("python-dynamic");
    let first = fixture.build(&[]);
    assert_built(&first);
    let before = first.report().models[0].clone();

    let weights = fixture.path().join("models/tiny.pth");
    let script = format!("import torch; s = torch.load(r'{0}', weights_only=True); s['out.bias'] += 1.0; torch.save(s, r'{0}')", weights.display());
    assert!(std::process::Command::new(venv_python()).args(["-c", &script]).status().unwrap().success());
    let second = fixture.build(&[]);
    assert_built(&second);
    assert!(second.ran_build_script(), "a changed weights file reruns the build script");
    let after = &second.report().models[0];
    assert_ne!(after.cache_key, before.cache_key);
    assert_ne!(after.artifact_sha256, before.artifact_sha256);
    assert!(second.stderr.contains("ptm: tiny: loading weights models/tiny.pth"), "the model was converted again:\n{}", second.stderr);
}

#[test]
fn a_conversion_error_fails_cargo_with_the_message() {
    let fixture = Fixture::new("python-dynamic");
    let manifest = fixture.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("shape = [1, 16]", "shape = [1, 15]");
    std::fs::write(&manifest, text).unwrap();
    let build = fixture.build(&[]);
    assert!(!build.success);
    assert!(build.stderr.contains("model `tiny` failed at stage `load`") && build.stderr.contains("forward failed on the example inputs"), "{}", build.stderr);
    assert!(build.stderr.contains("check the declared inputs"), "{}", build.stderr);
    assert!(!build.stderr.contains("panicked"), "{}", build.stderr);
    assert!(!fixture.cache.join("v1").exists() || std::fs::read_dir(fixture.cache.join("v1")).unwrap().count() == 0, "a failed conversion leaves no entry");
}

#[test]
fn what_model_code_writes_to_stdout_never_reaches_cargo() {
    // A build script's stdout is cargo's directive stream. Model code (or a C extension
    // it loads) writing to file descriptor 1 must not be able to issue directives.
    let fixture = Fixture::new("python-dynamic");
    let model = fixture.path().join("models/tiny.py");
    let text = std::fs::read_to_string(&model).unwrap();
    std::fs::write(&model, format!("import os\nos.write(1, b\"cargo:warning=written by model code\\n\")\n{text}")).unwrap();
    let build = fixture.build(&[]);
    assert_built(&build);
    let turned_into_warning = build.stderr.lines().any(|l| l.starts_with("warning:") && l.contains("written by model code"));
    assert!(!turned_into_warning, "cargo obeyed a directive from model code:\n{}", build.stderr);
    assert!(build.stderr.contains("written by model code"), "the output stays visible on stderr:\n{}", build.stderr);
}
