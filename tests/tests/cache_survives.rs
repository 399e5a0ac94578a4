//! The cache under concurrent builds, killed conversions and damaged entries.

use ptm_tests::{sha256_of, venv_python, Fixture};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn conversions(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains("ptm: tiny: converted in")).count()
}

fn entries(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("v1")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn concurrent_builds_sharing_a_cache_convert_each_model_once() {
    const BUILDS: usize = 4;
    let fixtures: Vec<Fixture> = (0..BUILDS).map(|_| Fixture::new("python-dynamic")).collect();
    let cache = tempfile::tempdir().unwrap();
    let targets: Vec<tempfile::TempDir> = (0..BUILDS).map(|_| tempfile::tempdir().unwrap()).collect();
    for round in 0..3u8 {
        // A new declaration each round, so every round starts from a cache miss.
        for fixture in &fixtures {
            let manifest = fixture.path().join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).unwrap();
            let text = match text.find("tolerance = ") {
                Some(_) => text
                    .lines()
                    .map(|l| if l.starts_with("tolerance = ") { format!("tolerance = {{ relative = 0.{} }}", 30 + round) } else { l.to_string() })
                    .collect::<Vec<_>>()
                    .join("\n"),
                None => text.replace("quantize = \"dynamic\"\n", &format!("quantize = \"dynamic\"\ntolerance = {{ relative = 0.{} }}\n", 30 + round)),
            };
            std::fs::write(&manifest, text).unwrap();
        }
        let cache = cache.path();
        let builds: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = fixtures
                .iter()
                .zip(&targets)
                .map(|(fixture, target)| scope.spawn(move || fixture.build(&[("PTM_CACHE_DIR", cache), ("CARGO_TARGET_DIR", target.path())])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for build in &builds {
            assert!(build.success, "round {round}:\n{}", build.stderr);
        }
        let converted: usize = builds.iter().map(|b| conversions(&b.stderr)).sum();
        assert_eq!(converted, 1, "round {round}: {BUILDS} builds converted {converted} times");
        let hashes: Vec<String> = builds.iter().map(|b| sha256_of(&b.out_dir.clone().unwrap().join("ptm/tiny.ptl"))).collect();
        assert!(hashes.iter().all(|h| h == &hashes[0]), "round {round}: {hashes:?}");
        assert_eq!(entries(cache), usize::from(round) + 1);
    }
}

/// Starts `cargo build` of `fixture` with a Python wrapper that records the worker's
/// process id in `pids`.
fn build_in_background(fixture: &Fixture, scratch: &Path) -> (std::process::Child, PathBuf) {
    let pids = scratch.join("worker.pid");
    let python = scratch.join("python");
    let body = format!("#!/bin/sh\ncase \"$*\" in *ptm_worker.py*) echo $$ >> '{}';; esac\nexec '{}' \"$@\"\n", pids.display(), venv_python().display());
    std::fs::write(&python, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new(env!("CARGO"))
        .args(["build", "-vv"])
        .current_dir(fixture.path())
        .env("CARGO_TARGET_DIR", ptm_tests::repo().join("target/fixtures"))
        .env("PTM_CACHE_DIR", &fixture.cache)
        .env("PTM_TOOLCHAIN_DIR", ptm_tests::toolchain_dir())
        .env("PTM_PYTHON", &python)
        .env_remove("VIRTUAL_ENV")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, pids)
}

/// Process ids of worker processes (the worker and its forked children) whose scratch
/// directory lies in `cache`.
fn workers_of(cache: &Path) -> Vec<String> {
    let cache = cache.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("ptm_worker.py") && cmdline.contains(&cache)).then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn a_conversion_killed_midway_leaves_nothing_a_later_build_trusts() {
    let fixture = Fixture::new("python-dynamic");
    // The model takes its time to build, so the kill lands inside the conversion.
    let model = fixture.path().join("models/tiny.py");
    let source = std::fs::read_to_string(&model).unwrap();
    // It marks that it got there (past torch's import), so the kill waits for that.
    let scratch = tempfile::tempdir().unwrap();
    let inside = scratch.path().join("inside-build-model");
    let entered = format!("def build_model():\n    import pathlib, time\n    pathlib.Path(r\"{}\").write_text(\"in\")\n    time.sleep(30)\n", inside.display());
    std::fs::write(&model, source.replace("def build_model():\n", &entered)).unwrap();
    let (cargo, pids) = build_in_background(&fixture, scratch.path());
    let started = Instant::now();
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pids).ok().and_then(|t| t.lines().next().map(str::to_string)) {
            break pid;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the worker never started");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Inside build_model's sleep.
    while !inside.exists() {
        assert!(started.elapsed() < Duration::from_secs(300), "the model never started building");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let output = cargo.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("the Python worker") && stderr.contains("without a result"), "{stderr}");
    assert_eq!(entries(&fixture.cache), 0, "a killed conversion published an entry");
    // The child converting the model dies with the worker instead of running on.
    let started = Instant::now();
    while !workers_of(&fixture.cache).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "worker processes outlived the killed worker: {:?}", workers_of(&fixture.cache));
        std::thread::sleep(Duration::from_millis(100));
    }

    // Fixed model, same cache: the next build converts and succeeds.
    std::fs::write(&model, source).unwrap();
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert_eq!(conversions(&build.stderr), 1);
    assert_eq!(entries(&fixture.cache), 1);
}

#[test]
fn a_truncated_cache_entry_is_detected_and_converted_again() {
    let fixture = Fixture::new("python-dynamic");
    let first = fixture.build(&[]);
    assert!(first.success, "{}", first.stderr);
    let entry = std::fs::read_dir(fixture.cache.join("v1")).unwrap().next().unwrap().unwrap().path();
    let ptl = entry.join("model.ptl");
    let bytes = std::fs::read(&ptl).unwrap();
    std::fs::write(&ptl, &bytes[..bytes.len() / 3]).unwrap();
    fixture.touch("Cargo.toml");
    let second = fixture.build(&[]);
    assert!(second.success, "{}", second.stderr);
    assert!(
        second.stderr.contains("is damaged (") && second.stderr.contains("model.ptl does not match its recorded hash); converting again"),
        "{}",
        second.stderr
    );
    assert_eq!(conversions(&second.stderr), 1);
    assert_eq!(std::fs::read(&ptl).unwrap(), bytes, "the entry was rebuilt whole");
}
