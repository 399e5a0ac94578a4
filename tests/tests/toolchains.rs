//! One app, two formats, two toolchains, built by cargo and run: the `.ptl` model from
//! the project's default toolchain, the `.pte` model from the newest one (which cannot
//! make `.ptl` files), each run by the runtime linked from its own environment.

use ptm_tests::{pte_only_series, toolchain_python, venv_python, Fixture};

/// The numbers of a line `<label> [a, b, c]` the fixture prints.
fn printed(stdout: &str, label: &str) -> Vec<f32> {
    let line = stdout.lines().find(|l| l.starts_with(&format!("{label} ["))).unwrap_or_else(|| panic!("no `{label}` line in {stdout}"));
    line[label.len() + 2..line.len() - 1].split(", ").map(|v| v.parse().unwrap()).collect()
}

/// The fixture model's eager output for its input, computed by torch.
fn eager() -> Vec<f32> {
    let fixture = ptm_tests::repo().join("tests/fixtures/two-toolchains/models");
    let script = "import sys, torch, tiny\nwith torch.no_grad():\n    print(' '.join(repr(v) for v in tiny.build_model()(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))[0].tolist()))";
    let output = std::process::Command::new(venv_python()).args(["-c", script]).current_dir(&fixture).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect()
}

#[test]
fn an_app_of_both_formats_builds_each_in_its_toolchain_and_runs_both() {
    let series = pte_only_series();
    let fixture = Fixture::new("two-toolchains");
    let build = fixture.build_env(&[("PTM_PYTHON_PTE", toolchain_python(&series))]);
    assert!(build.success, "{}", build.stderr);
    let run = std::process::Command::new(build.executable.as_ref().expect("the fixture's binary")).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    let expected = eager();
    for label in ["legacy", "current"] {
        let got = printed(&stdout, label);
        assert_eq!(got.len(), expected.len(), "{stdout}");
        assert!(got.iter().zip(&expected).all(|(g, e)| (g - e).abs() < 0.05), "{label}: {got:?} against eager {expected:?}");
    }
    let default = ptm_toolchain::toolchains::Table::get().default.clone();
    assert!(stdout.contains(&format!("torch: {default}.")) && stdout.contains(&format!(" {series}.")), "{stdout}");
    let report = build.report();
    let current = report.models.iter().find(|m| m.name == "current").unwrap();
    assert!(current.python.as_deref().is_some_and(|p| p.contains("PTM_PYTHON_PTE")), "{:?}", current.python);

    // The models with sizes chosen at run time, run from Rust at three sizes each, against
    // eager PyTorch on the same inputs (the newest toolchain's, which converted them).
    let script = r#"
import sys, torch, dynamic
torch.set_num_threads(1)
models = {"tagger": (dynamic.build_tagger(), dynamic.tagger_input), "bert": (dynamic.build_bert(), dynamic.bert_input),
          "squeeze": (dynamic.build_squeeze(), dynamic.squeeze_input)}
with torch.no_grad():
    for line in sys.stdin:
        label, size = line.split()
        model, make = models[label]
        out = model(make(int(size)))
        out = out.logits if hasattr(out, "logits") else out
        print(label, size, " ".join(repr(v) for v in out.flatten().tolist()))
"#;
    let runs: Vec<(&str, &str)> =
        stdout.lines().filter_map(|l| l.split_once(' ')).filter(|(label, rest)| ["tagger", "bert", "squeeze"].contains(label) && rest.contains(" [")).collect();
    assert_eq!(runs.len(), 9, "three sizes of three models: {stdout}");
    let asked: String = runs.iter().map(|(label, rest)| format!("{label} {}\n", rest.split(' ').next().unwrap())).collect();
    let mut python = std::process::Command::new(toolchain_python(&series))
        .args(["-c", script])
        .current_dir(fixture.path().join("models"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut python.stdin.take().unwrap(), asked.as_bytes()).unwrap();
    let eager = python.wait_with_output().unwrap();
    assert!(eager.status.success(), "{}", String::from_utf8_lossy(&eager.stderr));
    for ((label, rest), expected) in runs.iter().zip(String::from_utf8_lossy(&eager.stdout).lines()) {
        let size = rest.split(' ').next().unwrap();
        let got: Vec<f32> = rest[rest.find('[').unwrap() + 1..rest.len() - 1].split(", ").map(|v| v.parse().unwrap()).collect();
        let want: Vec<f32> = expected.split(' ').skip(2).map(|v| v.parse().unwrap()).collect();
        assert_eq!(got.len(), want.len(), "{label} at {size}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        // Float programs match closely; the encoder is dynamic INT8.
        let allowed = if *label == "bert" { 0.1 } else { 1e-3 };
        assert!(worst <= allowed * scale.max(1e-3), "{label} at {size}: off by {worst} (outputs up to {scale})");
    }
    assert!(stdout.contains("refused: ") && stdout.contains("`side` is 40, not one of its declared sizes 32..128 in steps of 16"), "{stdout}");
}
