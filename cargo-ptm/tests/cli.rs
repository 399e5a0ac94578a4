//! `cargo ptm` as a process: help, versions, exit codes and crate selection, as cargo's
//! own subcommands behave. Needs no torch: nothing here converts a model.

use std::path::Path;
use std::process::{Command, Output};

fn cargo_ptm(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-ptm")).arg("ptm").args(args).current_dir(dir).env("PTM_OFFLINE", "1").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A workspace of two crates that declare a model each and one that declares none.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("Cargo.toml", "[workspace]\nmembers = [\"app\", \"lib\", \"plain\"]\ndefault-members = [\"app\"]\nresolver = \"2\"\n");
    for (name, model) in [("app", Some("review")), ("lib", Some("digits")), ("plain", None)] {
        let mut manifest = format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
        if let Some(model) = model {
            manifest += &format!("\n[package.metadata.models.{model}]\nsource = \"m.py:build\"\n\n[[package.metadata.models.{model}.inputs]]\nname = \"x\"\ndtype = \"float32\"\nshape = [1, 4]\n");
            write(&format!("{name}/m.py"), "def build():\n    pass\n");
        }
        write(&format!("{name}/Cargo.toml"), &manifest);
        write(&format!("{name}/src/lib.rs"), "");
    }
    dir
}

#[test]
fn help_and_version_print_and_exit_zero() {
    let here = std::env::temp_dir();
    for args in [&["--help"][..], &["prepare", "--help"], &["report", "--help"], &["cache", "prune", "--help"], &["--version"]] {
        let out = cargo_ptm(args, &here);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(!stdout(&out).is_empty(), "{args:?}");
    }
    let help = stdout(&cargo_ptm(&["--help"], &here));
    for command in ["prepare", "report", "assets", "cache"] {
        assert!(help.contains(command), "{help}");
    }
    assert!(
        stdout(&cargo_ptm(&["prepare", "--help"], &here)).contains("--manifest-path")
            && stdout(&cargo_ptm(&["prepare", "--help"], &here)).contains("--workspace")
    );
    assert_eq!(stdout(&cargo_ptm(&["--version"], &here)).trim(), format!("cargo-ptm {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_two_and_failures_exit_one() {
    let here = std::env::temp_dir();
    for args in [
        &[][..],
        &["convert"],
        &["prepare", "--frobnicate"],
        &["cache", "prune"],
        &["assets", "--platform", "windows", "--out", "x"],
        &["cache", "prune", "--max-size", "lots"],
    ] {
        let out = cargo_ptm(args, &here);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--help"), "{args:?}: {}", stderr(&out));
    }
    let missing = cargo_ptm(&["prepare", "--check", "--manifest-path", "/nonexistent/Cargo.toml"], &here);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(stderr(&missing).starts_with("error: --manifest-path /nonexistent/Cargo.toml"), "{}", stderr(&missing));
}

#[test]
fn crates_are_selected_as_cargo_selects_packages() {
    let ws = workspace();
    // --check needs no Python: each selected crate's model is named as missing.
    let named = |out: &Output| -> Vec<String> {
        let mut found: Vec<String> = stdout(out).lines().filter_map(|l| l.strip_prefix("  - ")).map(|l| l.split(' ').next().unwrap().to_string()).collect();
        found.sort();
        found
    };
    let root = cargo_ptm(&["prepare", "--check"], ws.path());
    assert_eq!(root.status.code(), Some(1), "{}", stderr(&root));
    assert_eq!(named(&root), ["app"], "a workspace root means its default members");
    assert_eq!(named(&cargo_ptm(&["prepare", "--check", "--workspace"], ws.path())), ["app", "lib"]);
    assert_eq!(named(&cargo_ptm(&["prepare", "--check", "-p", "lib"], ws.path())), ["lib"]);
    assert_eq!(named(&cargo_ptm(&["prepare", "--check"], &ws.path().join("lib/src"))), ["lib"], "the package of the directory");
    let manifest = ws.path().join("lib/Cargo.toml");
    assert_eq!(named(&cargo_ptm(&["prepare", "--check", "--manifest-path", manifest.to_str().unwrap()], &std::env::temp_dir())), ["lib"]);

    let unknown = cargo_ptm(&["prepare", "--check", "-p", "nope"], ws.path());
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("package `nope` is not a member of the workspace (members: app, lib, plain)"), "{}", stderr(&unknown));
    let plain = cargo_ptm(&["prepare", "--check", "-p", "plain"], ws.path());
    assert!(plain.status.success() && stderr(&plain).contains("no crate here declares [package.metadata.models]"), "{}", stderr(&plain));
}

#[test]
fn report_without_a_build_says_what_to_run() {
    let ws = workspace();
    let out = cargo_ptm(&["report", "-p", "lib"], ws.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no build of `lib` has written a report") && stderr(&out).contains("run `cargo build` first"), "{}", stderr(&out));
}

#[test]
fn device_test_stops_before_building_when_its_runner_cannot_run() {
    let dir = workspace();
    let run = |args: &[&str]| {
        let out = cargo_ptm(&[&["device-test"][..], args].concat(), &dir.path().join("app"));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        stderr(&out)
    };
    // No device here: adb answers with none, and the error says what to do.
    let none = run(&["--target", "aarch64-linux-android", "--runner", "adb"]);
    assert!(none.contains("no Android device answers adb (adb devices lists none)") && none.contains("USB debugging"), "{none}");
    let _ = Command::new("adb").arg("kill-server").output();
    let linux = run(&["--target", "aarch64-unknown-linux-gnu", "--runner", "adb"]);
    assert!(linux.contains("aarch64-unknown-linux-gnu is not an Android target"), "{linux}");
    let wasm = run(&["--target", "wasm32-unknown-unknown", "--runner", "qemu"]);
    assert!(wasm.contains("does not know target architecture `wasm32`"), "{wasm}");
    // A crate that runs no ptm has nothing to run its models with.
    let unlinked = run(&["--target", "x86_64-unknown-linux-gnu", "--runner", "env"]);
    assert!(unlinked.contains("crate `app` does not depend on ptm"), "{unlinked}");
    assert!(!dir.path().join("target/ptm-device-test").exists(), "nothing was built");
    let usage = cargo_ptm(&["device-test"], dir.path());
    assert_eq!(usage.status.code(), Some(2), "--target is required: {}", stderr(&usage));
}
