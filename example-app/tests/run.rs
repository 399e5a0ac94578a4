//! Runs the example app as a user would, with no library path set, and checks its
//! figures against ones computed here independently.

use std::path::Path;
use std::process::Command;

fn accuracy(output: &str, label: &str) -> f64 {
    let line = output.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no `{label}` line in:\n{output}"));
    let field = line.split_whitespace().find(|w| w.ends_with('%')).unwrap_or_else(|| panic!("no percentage in {line:?}"));
    field.trim_end_matches('%').parse().unwrap()
}

/// The FP32 model's held-out accuracy in eager PyTorch, from the committed weights.
fn eager_accuracy() -> f64 {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = crate_dir.join("../.venv/bin/python");
    let script = r#"
import sys, torch
sys.path.insert(0, "models")
from digits import build_model
model = build_model()
model.load_state_dict(torch.load("models/digits.pth", weights_only=True))
model.eval()
data = open("data/digits-test.bin", "rb").read()
records = [data[i:i + 65] for i in range(0, len(data), 65)]
pixels = torch.tensor([list(r[:64]) for r in records], dtype=torch.float32).reshape(-1, 1, 8, 8)
labels = torch.tensor([r[64] for r in records])
with torch.no_grad():
    print((model(pixels).argmax(1) == labels).float().mean().item() * 100)
"#;
    let out = Command::new(python).args(["-B", "-c", script]).current_dir(crate_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn the_app_classifies_digits_and_runs_the_review_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-app")).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));

    let eager = eager_accuracy();
    assert!(eager > 95.0, "{eager}%");
    for format in [".ptl", ".pte"] {
        let fp32 = accuracy(&stdout, &format!("FP32 {format}"));
        let int8 = accuracy(&stdout, &format!("INT8 static {format}"));
        assert!((fp32 - eager).abs() < 0.01, "the {format} FP32 accuracy {fp32}% differs from eager PyTorch's {eager}%");
        assert!(int8 >= fp32 - 1.0, "{format} INT8 {int8}% is more than a point below FP32 {fp32}%");
    }

    assert!(stdout.contains("asset files loaded with load_from"), "{stdout}");
    for sequence in 0..4 {
        let line = stdout.lines().find(|l| l.contains(&format!("sequence {sequence} ("))).unwrap_or_else(|| panic!("{stdout}"));
        // Both runtimes timed, and the two INT8 schemes agree on the class.
        assert_eq!(line.matches(" ms").count(), 2, "{line}");
        let classes = line.split("class ").nth(1).unwrap().split(',').next().unwrap();
        let (a, b) = classes.split_once(" / ").unwrap();
        assert_eq!(a, b, "{line}");
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains("executorch:"), "ExecuTorch's info log stays out of the app's stderr");

    // Every model's self-check, in both runtimes, embedded and asset models alike.
    for model in ["digits", "digits_fp32", "review", "digits_pte", "digits_fp32_pte", "review_pte"] {
        let at = stdout.find(&format!("model `{model}`, ")).unwrap_or_else(|| panic!("no self-check of {model}:\n{stdout}"));
        let verdict = stdout[at..].lines().nth(1).unwrap_or_default();
        assert!(verdict.contains("`logits`: relative") && verdict.ends_with(": ok"), "{model}: {verdict}");
    }
}

#[test]
fn a_missing_asset_is_an_error_naming_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-app")).arg("/nonexistent/review.ptl").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not load /nonexistent/review.ptl (model `review`)"), "{stderr}");
}
