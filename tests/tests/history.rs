//! What a build embeds depends on the declaration and its files alone, and nothing that
//! chose or fed it can change without cargo running the build again.

use ptm_tests::{logging_python, sha256_of, starts, Fixture};
use std::path::{Path, PathBuf};

/// Two scripted float models built from the same PyTorch classes (nn.Linear) at other
/// sizes: TorchScript's process-wide mangling gives the second one scripted in a process
/// other type names, and so other bytes.
const TARGET_MODEL: &str = r#"
import torch
from torch import nn

class Target(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)

def build_model():
    torch.manual_seed(0)
    return Target().eval()
"#;

const OTHER_MODEL: &str = r#"
import torch
from torch import nn

class Other(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.fc2 = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc2(self.fc(x))

def build_model():
    torch.manual_seed(1)
    return Other().eval()
"#;

fn table(name: &str, file: &str) -> String {
    format!("[package.metadata.models.{name}]\nsource = \"models/{file}:build_model\"\n\n[[package.metadata.models.{name}.inputs]]\nname = \"x\"\ndtype = \"float32\"\nshape = [1, 4]\n")
}

/// A fixture crate declaring exactly `models` (name, file).
fn crate_with(models: &[(&str, &str)]) -> Fixture {
    let fixture = Fixture::new("python-dynamic");
    fixture.write("models/target.py", TARGET_MODEL);
    fixture.write("models/other.py", OTHER_MODEL);
    fixture.set_models(&models.iter().map(|(name, file)| table(name, file)).collect::<Vec<_>>().join("\n"));
    fixture
}

fn target_sha(fixture: &Fixture, env: &[(&str, &Path)]) -> String {
    let build = fixture.build(env);
    assert!(build.success, "{}", build.stderr);
    sha256_of(&build.out_dir.unwrap().join("ptm/target.ptl"))
}

#[test]
fn a_model_gets_the_same_bytes_alone_first_second_and_rebuilt_alone() {
    // Models convert in name order: `after` converts after `target`, `before` before it.
    let alone = target_sha(&crate_with(&[("target", "target.py")]), &[]);
    let first = target_sha(&crate_with(&[("target", "target.py"), ("zz_after", "other.py")]), &[]);
    let second_crate = crate_with(&[("before", "other.py"), ("target", "target.py")]);
    let second_build = second_crate.build(&[]);
    assert!(second_build.success, "{}", second_build.stderr);
    let second = sha256_of(&second_build.out_dir.clone().unwrap().join("ptm/target.ptl"));
    assert_eq!(first, alone, "converted before another model");
    assert_eq!(second, alone, "converted after another model");

    // Delete the target's cache entry alone: it converts again on its own.
    let key = second_build.report().models.iter().find(|m| m.name == "target").unwrap().cache_key.clone();
    std::fs::remove_dir_all(second_crate.cache.join("v1").join(&key)).unwrap();
    second_crate.touch("Cargo.toml");
    let repaired = second_crate.build(&[]);
    assert!(repaired.success, "{}", repaired.stderr);
    assert!(repaired.stderr.contains("ptm: target: converted in") && !repaired.stderr.contains("ptm: before: converted in"), "{}", repaired.stderr);
    assert_eq!(sha256_of(&repaired.out_dir.unwrap().join("ptm/target.ptl")), alone, "rebuilt alone");

    // Another crate directory, target directory and cache.
    let elsewhere = tempfile::tempdir().unwrap();
    let other_place = target_sha(&crate_with(&[("before", "other.py"), ("target", "target.py")]), &[("CARGO_TARGET_DIR", elsewhere.path())]);
    assert_eq!(other_place, alone, "built in another directory");
}

fn calibration_key(fixture: &Fixture) -> (bool, String, u32) {
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let model = build.report().models.remove(0);
    (build.ran_build_script(), model.cache_key, model.calibration_samples)
}

#[test]
fn a_calibration_sample_added_removed_or_renamed_reruns_the_build_and_changes_the_key() {
    let fixture = Fixture::new("trace-static");
    let (_, original, count) = calibration_key(&fixture);
    let (ran, _, _) = calibration_key(&fixture);
    assert!(!ran, "a no-op build does not rerun the build script");

    let dir = fixture.path().join("data/calibration");
    std::fs::copy(dir.join("03.pt"), dir.join("99.pt")).unwrap();
    let (ran, added, added_count) = calibration_key(&fixture);
    assert!(ran && added != original && added_count == count + 1, "added: ran {ran}, {added_count} samples");

    std::fs::remove_file(dir.join("99.pt")).unwrap();
    let (ran, removed, removed_count) = calibration_key(&fixture);
    assert!(ran && removed == original && removed_count == count, "removed: ran {ran}");

    std::fs::rename(dir.join("03.pt"), dir.join("98.pt")).unwrap();
    let (ran, renamed, renamed_count) = calibration_key(&fixture);
    assert!(ran && renamed != original && renamed_count == count, "renamed: ran {ran}");

    // A hidden file is neither hashed nor read, by the one rule both follow.
    std::fs::copy(dir.join("98.pt"), dir.join(".scratch.pt")).unwrap();
    let (_, hidden, hidden_count) = calibration_key(&fixture);
    assert!(hidden == renamed && hidden_count == count, "a hidden sample changed the key or was read");
}

/// A directory holding `name`, a logging stand-in for the project's Python.
fn interpreter_dir(scratch: &Path, dir: &str, name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch.join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("starts.log");
    let wrapper = logging_python(&dir, &log, false);
    std::fs::rename(wrapper, dir.join(name)).unwrap();
    (dir, log)
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    std::env::join_paths(dirs).unwrap()
}

const NO_PTM_PYTHON: (&str, &str) = ("PTM_PYTHON", "");

#[test]
fn python_found_on_path_reruns_the_build_when_path_changes() {
    let fixture = Fixture::new("python-dynamic");
    let scratch = tempfile::tempdir().unwrap();
    let (one, one_log) = interpreter_dir(scratch.path(), "one", "python3");
    let (two, _) = interpreter_dir(scratch.path(), "two", "python3");
    let path_one = path_with(&one);
    let path_two = path_with(&two);
    let env = |path: &std::ffi::OsString| vec![(NO_PTM_PYTHON.0, PathBuf::from(NO_PTM_PYTHON.1)), ("PATH", PathBuf::from(path))];
    let build = fixture.build_env(&env(&path_one));
    assert!(build.success, "{}", build.stderr);
    assert!(starts(&one_log) > 0, "python3 on PATH was not the one used");
    assert!(!fixture.build_env(&env(&path_one)).ran_build_script(), "an unchanged PATH reran the build script");
    let moved = fixture.build_env(&env(&path_two));
    assert!(moved.success && moved.ran_build_script(), "a PATH that finds another python3 did not rerun the build script:\n{}", moved.stderr);
}

#[test]
fn a_venv_above_the_crate_is_watched_and_conda_is_found() {
    let fixture = Fixture::new("python-dynamic");
    let venv = fixture.path().join(".venv");
    let (_, log) = interpreter_dir(&venv, "bin", "python");
    fixture.write(".venv/pyvenv.cfg", "home = /usr/bin\n");
    let env = vec![(NO_PTM_PYTHON.0, PathBuf::from(NO_PTM_PYTHON.1))];
    let build = fixture.build_env(&env);
    assert!(build.success, "{}", build.stderr);
    assert!(starts(&log) > 0, "the crate's .venv was not used");
    assert!(!fixture.build_env(&env).ran_build_script());
    // Making the environment again rewrites pyvenv.cfg.
    fixture.touch(".venv/pyvenv.cfg");
    assert!(fixture.build_env(&env).ran_build_script(), "a remade .venv did not rerun the build script");

    let conda = tempfile::tempdir().unwrap();
    let (_, conda_log) = interpreter_dir(conda.path(), "bin", "python");
    let with_conda = vec![(NO_PTM_PYTHON.0, PathBuf::from(NO_PTM_PYTHON.1)), ("CONDA_PREFIX", conda.path().to_path_buf())];
    let build = fixture.build_env(&with_conda);
    assert!(build.success && build.ran_build_script(), "{}", build.stderr);
    assert!(starts(&conda_log) > 0, "CONDA_PREFIX's python was not used");
}

#[test]
fn paths_outside_the_workspace_or_absolute_build_with_a_warning() {
    let fixture = Fixture::new("python-dynamic");
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.path().join("models/tiny.pth"), outside.path().join("tiny.pth")).unwrap();
    let relative = format!("../{}/tiny.pth", outside.path().file_name().unwrap().to_string_lossy());
    // The fixture and `outside` are both directories of the system's temporary directory.
    assert!(fixture.path().join(&relative).is_file());
    fixture.replace("weights = \"models/tiny.pth\"", &format!("weights = \"{relative}\""));
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        build.stderr.contains("ptm: model `tiny`: `package.metadata.models.tiny.weights`") && build.stderr.contains("lies outside the workspace"),
        "{}",
        build.stderr
    );

    let absolute = outside.path().join("tiny.pth").display().to_string();
    fixture.replace(&format!("weights = \"{relative}\""), &format!("weights = \"{absolute}\""));
    let build = fixture.build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(build.stderr.contains(&format!("\"{absolute}\" is absolute")) && build.stderr.contains("`cargo package` leaves it out"), "{}", build.stderr);
}
