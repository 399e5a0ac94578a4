//! The build under faults, with real torch: a worker that dies or cannot fork after
//! some models finished, a model stuck in one stage, a damaged ExecuTorch runner. Each
//! fault is made at the process boundary (a `sitecustomize` in the interpreter the
//! build starts, or a file damaged on disk), never by replacing torch.

mod common;
use common::{error_text, venv_python, Project, TINY_MODEL};
use ptm_build::tooling::Outcome;
use ptm_build::{Builder, Error, Origin, Progress};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Two models from one file, converted one after the other (one job at a time).
fn two_models() -> Project {
    let table = |name: &str| {
        format!("[package.metadata.models.{name}]\nsource = \"tiny.py:build_model\"\n\n[[package.metadata.models.{name}.inputs]]\nname = \"x\"\ndtype = \"float32\"\nshape = [1, 4]\n\n")
    };
    Project::new(&format!("{}{}", table("first"), table("second"))).file("tiny.py", TINY_MODEL)
}

/// An interpreter that runs the project's Python with `sitecustomize` loaded first: the
/// fault to inject, active only in the worker (whose arguments name ptm_worker.py).
fn faulty_python(project: &Project, sitecustomize: &str) -> PathBuf {
    let dir = project.path().join("fault");
    std::fs::create_dir_all(&dir).unwrap();
    let guarded = format!("import sys\nif any(a.endswith('ptm_worker.py') for a in sys.argv):\n{}", indent(sitecustomize));
    std::fs::write(dir.join("sitecustomize.py"), guarded).unwrap();
    let python = dir.join("python");
    std::fs::write(&python, format!("#!/bin/sh\nPYTHONPATH='{}' exec '{}' \"$@\"\n", dir.display(), venv_python().display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    python
}

fn indent(code: &str) -> String {
    code.lines().map(|line| format!("    {line}\n")).collect()
}

/// Builds `project` with `python`, collecting every progress line; `configure` sets more.
/// The toolchain directory is the project's own, not the one the other tests share: these
/// tests damage the runner in it.
fn build(project: &Project, python: &Path, configure: impl FnOnce(&mut Builder)) -> (Result<Outcome, Error>, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let mut builder = Builder::new();
    builder
        .crate_dir(project.path())
        .out_dir(project.path().join("out"))
        .cache_dir(project.path().join("cache"))
        .toolchain_dir(project.path().join("toolchain"))
        .python(python)
        .progress(move |event| {
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

fn text_of(result: Result<Outcome, Error>) -> String {
    error_text(result.map(|outcome| origins(&outcome)))
}

#[test]
fn a_worker_killed_after_one_model_keeps_that_model_cached() {
    let project = two_models();
    // The worker dies as it starts the second model: the first is converted and verified.
    let python = faulty_python(
        &project,
        "import os, signal\nforks = [0]\nreal_fork = os.fork\ndef fork():\n    forks[0] += 1\n    if forks[0] == 2:\n        os.kill(os.getpid(), signal.SIGKILL)\n    return real_fork()\nos.fork = fork",
    );
    let (result, _) = build(&project, &python, |_| {});
    let text = text_of(result);
    assert!(text.contains("the Python worker") && text.contains("was killed by a signal"), "{text}");
    assert!(text.contains("converted before it died, and cached: `first`") && text.contains("not converted: `second`"), "{text}");

    let (result, lines) = build(&project, &venv_python(), |_| {});
    let outcome = result.unwrap();
    assert_eq!(origins(&outcome), [("first".to_string(), Origin::Cache), ("second".to_string(), Origin::Converted)]);
    assert!(!lines.iter().any(|l| l.starts_with("ptm: first:")), "the first model was converted again: {lines:#?}");
}

#[test]
fn a_fork_that_keeps_failing_names_its_model_and_keeps_the_others() {
    let project = two_models();
    // Every fork after the first fails as it does when the machine is out of processes.
    let python = faulty_python(
        &project,
        "import errno, os\nforks = [0]\nreal_fork = os.fork\ndef fork():\n    forks[0] += 1\n    if forks[0] >= 2:\n        raise BlockingIOError(errno.EAGAIN, 'Resource temporarily unavailable')\n    return real_fork()\nos.fork = fork",
    );
    let (result, lines) = build(&project, &python, |_| {});
    let text = text_of(result);
    assert!(text.contains("model `second` failed at stage `start`"), "{text}");
    assert!(text.contains("os.fork failed 4 times") && text.contains("Resource temporarily unavailable"), "{text}");
    assert!(text.contains("cargo build -j 1"), "{text}");
    assert!(!text.contains("BlockingIOError: [Errno"), "a raw traceback: {text}");
    assert!(lines.iter().any(|l| l == "ptm: second: could not start its process ([Errno 11] Resource temporarily unavailable); trying again"), "{lines:#?}");

    let (result, _) = build(&project, &venv_python(), |_| {});
    assert_eq!(origins(&result.unwrap()), [("first".to_string(), Origin::Cache), ("second".to_string(), Origin::Converted)]);
}

#[test]
fn a_fork_that_fails_for_a_moment_is_tried_again() {
    let project = two_models();
    let python = faulty_python(
        &project,
        "import errno, os\nforks = [0]\nreal_fork = os.fork\ndef fork():\n    forks[0] += 1\n    if forks[0] in (2, 3):\n        raise BlockingIOError(errno.EAGAIN, 'Resource temporarily unavailable')\n    return real_fork()\nos.fork = fork",
    );
    let (result, lines) = build(&project, &python, |_| {});
    let outcome = result.unwrap();
    assert_eq!(origins(&outcome), [("first".to_string(), Origin::Converted), ("second".to_string(), Origin::Converted)]);
    assert_eq!(lines.iter().filter(|l| l.contains("trying again")).count(), 2, "{lines:#?}");
}

#[test]
fn a_stuck_model_is_reported_while_it_runs_and_killed_at_the_limit() {
    // One model sleeps in build_model, the other never returns from forward.
    let sleepy = TINY_MODEL.replace("def build_model():\n", "def build_model():\n    import time\n    time.sleep(600)\n");
    let spinning = TINY_MODEL.replace("return self.fc(x)", "while True:\n            pass");
    let table = |name: &str, file: &str| {
        format!("[package.metadata.models.{name}]\nsource = \"{file}:build_model\"\n\n[[package.metadata.models.{name}.inputs]]\nname = \"x\"\ndtype = \"float32\"\nshape = [1, 4]\n\n")
    };
    let project = Project::new(&format!("{}{}", table("sleepy", "sleepy.py"), table("spinning", "spinning.py")))
        .file("sleepy.py", &sleepy)
        .file("spinning.py", &spinning);
    let started = std::time::Instant::now();
    let (result, lines) = build(&project, &venv_python(), |builder| {
        builder.heartbeat(Duration::from_secs(1)).model_timeout(Duration::from_secs(5));
    });
    assert!(started.elapsed() < Duration::from_secs(120), "the limit did not stop the build: {:?}", started.elapsed());
    let text = text_of(result);
    for (model, shown) in [("sleepy", &text), ("spinning", &lines.join("\n"))] {
        assert!(shown.contains(&format!("model `{model}` failed at stage `load`")), "{model}: {shown}");
        assert!(
            shown
                .contains(&format!("the process converting `{model}` was still in stage `load` after 5 s, the limit PTM_MODEL_TIMEOUT=5 sets, and was killed")),
            "{shown}"
        );
        assert!(shown.contains(&format!("{model}.py:build_model")) && shown.contains("raise PTM_MODEL_TIMEOUT"), "{shown}");
        let warned = format!("warning: ptm: model `{model}` has been in stage `load` for ");
        let warnings: Vec<&String> = lines.iter().filter(|l| l.starts_with(&warned)).collect();
        assert!(warnings.len() >= 3, "a warning each second of the five: {lines:#?}");
        assert!(warnings[0].ends_with("and is still running; it is killed after 5 s (PTM_MODEL_TIMEOUT)"), "{}", warnings[0]);
    }
    assert!(!project.path().join("cache/v1").exists() || std::fs::read_dir(project.path().join("cache/v1")).unwrap().next().is_none());
}

#[test]
fn without_a_limit_the_heartbeat_names_the_variable_that_sets_one() {
    let slow = TINY_MODEL.replace("def build_model():\n", "def build_model():\n    import time\n    time.sleep(3)\n");
    let project = Project::new(&common::model("")).file("tiny.py", &slow);
    let (result, lines) = build(&project, &venv_python(), |builder| {
        builder.heartbeat(Duration::from_secs(1));
    });
    assert_eq!(origins(&result.unwrap()), [("tiny".to_string(), Origin::Converted)]);
    let warning = lines.iter().find(|l| l.starts_with("warning: ptm: model `tiny` has been in stage `load` for 1 s")).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(warning.ends_with("set PTM_MODEL_TIMEOUT=<seconds> to stop a model that is stuck"), "{warning}");
}

/// A `.pte` model, so that its conversion runs ExecuTorch's runner from the cache.
fn pte_project() -> Project {
    Project::new(&common::model("format = \"pte\"")).file("tiny.py", TINY_MODEL)
}

fn runner_of(project: &Project) -> PathBuf {
    let runners = project.path().join("toolchain/runners");
    // Each runner is a directory; the record of ExecuTorch's patterns is a file beside them.
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(&runners).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).map(|p| p.join("ptm_executorch_runner")).collect();
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
    // The lowering recorded the operators of the patterns it built, for later conversions.
    let records: Vec<PathBuf> = std::fs::read_dir(runner.parent().unwrap().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("executorch-patterns-"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert!(record["kinds"]["sdpa"].is_array() && record["kinds"]["upsample_bilinear2d"].is_array(), "{record}");
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

/// The runner and the torch probe concern the toolchain, not a model: a build with a new,
/// empty cache and the same toolchain directory converts the model again but neither
/// compiles the runner nor keeps either in the cache.
#[test]
fn a_new_cache_with_the_same_toolchain_directory_keeps_the_runner() {
    let project = pte_project();
    let compiled = |lines: &[String]| lines.iter().filter(|l| l.contains("compiling ExecuTorch's runner")).count();
    let (first, lines) = build(&project, &venv_python(), |_| {});
    assert_eq!(origins(&first.unwrap()), [("tiny".to_string(), Origin::Converted)]);
    assert_eq!(compiled(&lines), 1, "{lines:#?}");
    let runner = runner_of(&project);
    assert!(project.path().join("toolchain/probes").read_dir().unwrap().count() > 0, "the torch probe is in the toolchain directory");
    for kept in ["runners", "probes"] {
        assert!(!project.path().join("cache").join(kept).exists(), "{kept} are not in the model cache");
    }

    let another = project.path().join("another-cache");
    let (second, lines) = build(&project, &venv_python(), |builder| {
        builder.cache_dir(&another);
    });
    assert_eq!(origins(&second.unwrap()), [("tiny".to_string(), Origin::Converted)], "a new cache converts again");
    assert_eq!(compiled(&lines), 0, "the runner was compiled again for a new cache: {lines:#?}");
    assert_eq!(runner_of(&project), runner);
    assert_intact(&runner);
    assert!(another.join("v1").is_dir() && !another.join("runners").exists());
}
