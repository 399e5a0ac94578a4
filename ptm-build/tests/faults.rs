//! The build under faults, with real torch: a worker that dies or cannot fork after
//! some models finished, a model stuck in one stage, a damaged ExecuTorch runner. Each
//! fault is made at the process boundary (a `sitecustomize` in the interpreter the
//! build starts, or a file damaged on disk), never by replacing torch.

mod common;
use common::{venv_python, Project, TINY_MODEL};
use ptm_build::tooling::Outcome;
use ptm_build::{Builder, Error, Origin, Progress};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Builds `project` with `python`, collecting every progress line; `configure` sets more.
fn build(project: &Project, python: &Path, configure: impl FnOnce(&mut Builder)) -> (Result<Outcome, Error>, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let mut builder = Builder::new();
    builder.crate_dir(project.path()).out_dir(project.path().join("out")).cache_dir(project.path().join("cache")).python(python).progress(move |event| {
        let line = match event {
            Progress::Step { model, step } => format!("ptm: {model}: {step}"),
            Progress::Line(line) => line.to_string(),
            Progress::Done { model, origin } => format!("done: {model}: {origin:?}"),
        };
        sink.lock().unwrap().push(line);
    });
    configure(&mut builder);
    let result = builder.build();
    let lines = lines.lock().unwrap().clone();
    (result, lines)
}

fn origins(outcome: &Outcome) -> Vec<(String, Origin)> {
    outcome.models.iter().map(|m| (m.name.clone(), m.origin)).collect()
}

/// A `.pte` model, so that its conversion runs ExecuTorch's runner from the cache.
fn pte_project() -> Project {
    Project::new(&common::model("format = \"pte\"")).file("tiny.py", TINY_MODEL)
}

fn runner_of(project: &Project) -> PathBuf {
    let runners = project.path().join("cache/runners");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&runners).unwrap().map(|e| e.unwrap().path().join("ptm_executorch_runner")).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

fn assert_intact(runner: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(runner).unwrap();
    assert!(metadata.is_file() && metadata.permissions().mode() & 0o111 != 0, "{}", runner.display());
    let recorded = std::fs::read_to_string(runner.with_file_name("ptm_executorch_runner.sha256")).unwrap();
    use sha2::Digest;
    let actual: String = sha2::Sha256::digest(std::fs::read(runner).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(recorded.trim(), actual, "the recorded hash is the runner's");
}

#[test]
fn a_damaged_executorch_runner_is_compiled_again() {
    let project = pte_project();
    let (result, lines) = build(&project, &venv_python(), |_| {});
    result.unwrap();
    assert_eq!(lines.iter().filter(|l| l.contains("compiling ExecuTorch's runner")).count(), 1, "{lines:#?}");
    let runner = runner_of(&project);
    assert_intact(&runner);
    let good = std::fs::read(&runner).unwrap();

    type Damage = fn(&Path, &[u8]);
    let damages: [(&str, Damage, &str); 4] = [
        ("truncated", |runner, good| std::fs::write(runner, &good[..good.len() / 2]).unwrap(), "does not match its recorded hash"),
        ("a script", |runner, _| std::fs::write(runner, "#!/bin/sh\nexit 0\n").unwrap(), "does not match its recorded hash"),
        (
            "not executable",
            |runner, _| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(runner, std::fs::Permissions::from_mode(0o644)).unwrap()
            },
            "is not executable",
        ),
        (
            "a directory",
            |runner, _| {
                std::fs::remove_file(runner).unwrap();
                std::fs::create_dir_all(runner.join("inside")).unwrap();
            },
            "is not a regular file",
        ),
    ];
    for (what, damage, problem) in damages {
        damage(&runner, &good);
        // Without its cache entry, the model converts, and so runs the runner, again.
        std::fs::remove_dir_all(project.path().join("cache/v1")).unwrap();
        let (result, lines) = build(&project, &venv_python(), |_| {});
        let outcome = result.unwrap_or_else(|e| panic!("runner {what}: {e}"));
        assert_eq!(origins(&outcome), [("tiny".to_string(), Origin::Converted)], "runner {what}");
        let said = format!("ptm: tiny: ExecuTorch's runner {} {problem}; compiling it again", runner.display());
        assert!(lines.contains(&said), "runner {what}: no `{said}` in {lines:#?}");
        assert_intact(&runner);
    }
}
