//! Helpers for building the fixture crates in `tests/fixtures/` with cargo.
//!
//! Each test copies a fixture into a temporary directory (so it can change files),
//! points its path dependencies at this checkout, and builds it with a target
//! directory shared by all fixture builds (`target/fixtures`), so ptm's own crates
//! compile once, and a toolchain directory shared by all (`target/ptm-toolchain`), so
//! ExecuTorch's runner compiles and torch is probed once while each fixture's model cache
//! starts empty. It links neither the runtime nor torch: `cargo-ptm`'s torch-free tests
//! use it too.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// `PTM_TOOLCHAIN_DIR` of every fixture build: ExecuTorch's runner and the torch probes,
/// shared, unlike the model caches. A test that damages what is in it uses its own.
pub fn toolchain_dir() -> PathBuf {
    repo().join("target/ptm-toolchain")
}

/// The project's Python (made by tools/setup).
pub fn venv_python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(python.is_file(), "run tools/setup first: {} is missing", python.display());
    python
}

/// The python of the validated toolchain for `series` (`2.14`): the project's .venv for
/// the default one, else the environment `tools/toolchains/run install <series>` makes.
pub fn toolchain_python(series: &str) -> PathBuf {
    if ptm_toolchain::toolchains::Table::get().default == series {
        return venv_python();
    }
    let python = repo().join(format!(".toolchains/torch-{series}/bin/python"));
    assert!(python.is_file(), "run `tools/toolchains/run install {series}` first: {} is missing", python.display());
    python
}

/// The series of the newest toolchain that makes `.pte` files and cannot make `.ptl`
/// files: an app of both formats needs a second environment beside it.
pub fn pte_only_series() -> String {
    use ptm_report::Format;
    let table = ptm_toolchain::toolchains::Table::get();
    let newest = table.newest_for(Format::Pte).expect("a toolchain makes .pte files");
    assert!(newest.cannot_make(Format::Ptl).is_some(), "the newest .pte toolchain ({}) also makes .ptl files", newest.torch);
    newest.series.clone()
}

/// A fixture crate copied into a temporary directory.
pub struct Fixture {
    dir: tempfile::TempDir,
    /// Cache directory private to this fixture.
    pub cache: PathBuf,
}

/// The outcome of one `cargo build` of a fixture.
pub struct Build {
    /// Whether cargo succeeded.
    pub success: bool,
    /// Everything cargo printed on stderr.
    pub stderr: String,
    /// The build script's OUT_DIR, when it ran or was fresh.
    pub out_dir: Option<PathBuf>,
    /// The fixture's binary, when it has one and it was built.
    pub executable: Option<PathBuf>,
    /// What rustc said about the fixture's own code (errors and warnings, rendered).
    pub diagnostics: String,
}

impl Build {
    /// Whether cargo ran the fixture's build script in this build.
    pub fn ran_build_script(&self) -> bool {
        self.stderr.lines().any(|l| l.contains("Running `") && l.contains("build-script-build"))
    }

    /// The report the build wrote.
    pub fn report(&self) -> ptm_report::Bundle {
        let path = self.out_dir.as_ref().expect("build script output dir").join("ptm/models.json");
        ptm_report::Bundle::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }
}

impl Fixture {
    /// Copies `tests/fixtures/<name>`.
    pub fn new(name: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("tests/fixtures").join(name), dir.path());
        let manifest = dir.path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let root = repo().display().to_string();
        // Cargo hashes a path package relative to its workspace root, and every copy is
        // its own root: copies sharing a name would share a fingerprint and an OUT_DIR
        // in the shared target directory.
        static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let copy = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let package = format!("name = \"fixture-{name}\"");
        let unique = format!("name = \"fixture-{name}-{}-{copy}\"", std::process::id());
        let text = text.replace("path = \"../../../", &format!("path = \"{root}/")).replacen(&package, &unique, 1);
        std::fs::write(&manifest, text).unwrap();
        let cache = dir.path().join(".ptm-cache");
        Fixture { dir, cache }
    }

    /// Copies `templates/<name>`, its `ptm` and `ptm-build` dependencies pointed at
    /// this checkout and its package renamed to be unique, as a user would set it up.
    pub fn template(name: &str, package: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("templates").join(name), dir.path());
        let manifest = dir.path().join("Cargo.toml");
        let root = repo().display().to_string();
        let unique = format!("{package}-{}", std::process::id());
        let text = std::fs::read_to_string(&manifest)
            .unwrap()
            .replacen("ptm = \"=0.1.0\"", &format!("ptm = {{ path = \"{root}/ptm\" }}"), 1)
            .replacen("ptm-build = \"=0.1.0\"", &format!("ptm-build = {{ path = \"{root}/ptm-build\" }}"), 1)
            .replacen(&format!("name = \"{package}\""), &format!("name = \"{unique}\""), 1);
        std::fs::write(&manifest, text).unwrap();
        let cache = dir.path().join(".ptm-cache");
        Fixture { dir, cache }
    }

    /// The fixture's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `cargo build -v` with PTM_PYTHON set to the project's Python unless `env`
    /// overrides it.
    pub fn build(&self, env: &[(&str, &Path)]) -> Build {
        self.build_with_args(&[], env)
    }

    /// [`Fixture::build`] with owned values.
    pub fn build_env(&self, env: &[(&str, PathBuf)]) -> Build {
        let borrowed: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        self.build(&borrowed)
    }

    /// Writes `text` to a file of the fixture, creating its directory.
    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Replaces `old`, which must be there, with `new` in the fixture's Cargo.toml.
    pub fn replace(&self, old: &str, new: &str) {
        let manifest = self.path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains(old), "{old} is not in {}", manifest.display());
        std::fs::write(&manifest, text.replacen(old, new, 1)).unwrap();
    }

    /// Replaces every model table of the fixture's Cargo.toml with `tables`.
    pub fn set_models(&self, tables: &str) {
        let manifest = self.path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let start = text.find("[package.metadata.models.").expect("a model table");
        std::fs::write(&manifest, format!("{}{tables}", &text[..start])).unwrap();
    }

    /// `build` with extra cargo arguments (`--target <triple>`, say).
    pub fn build_with_args(&self, args: &[&str], env: &[(&str, &Path)]) -> Build {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "-vv", "--message-format=json-diagnostic-short"])
            .args(args)
            .current_dir(self.path())
            .env("CARGO_TARGET_DIR", repo().join("target/fixtures"))
            .env("PTM_CACHE_DIR", &self.cache)
            .env("PTM_TOOLCHAIN_DIR", toolchain_dir())
            .env("PTM_PYTHON", venv_python())
            .env_remove("VIRTUAL_ENV")
            .env_remove("CONDA_PREFIX");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let messages: Vec<serde_json::Value> = stdout.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
        let ours = |m: &&serde_json::Value| m["package_id"].as_str().is_some_and(|id| id.contains("fixture-"));
        let out_dir = messages.iter().filter(|m| m["reason"] == "build-script-executed").filter(ours).find_map(|m| m["out_dir"].as_str().map(PathBuf::from));
        let executable = messages.iter().filter(|m| m["reason"] == "compiler-artifact").filter(ours).find_map(|m| m["executable"].as_str().map(PathBuf::from));
        let diagnostics = messages
            .iter()
            .filter(|m| m["reason"] == "compiler-message")
            .filter(ours)
            .filter_map(|m| m["message"]["rendered"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Build { success: output.status.success(), stderr: String::from_utf8_lossy(&output.stderr).into_owned(), out_dir, executable, diagnostics }
    }

    /// Moves a file's modification time forward, as an editor save would.
    pub fn touch(&self, relative: &str) {
        let file = std::fs::File::options().append(true).open(self.path().join(relative)).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        file.set_modified(later).unwrap();
    }
}

/// Runs one of the project's device checks (`tools/<name>/run`): its stdout and stderr,
/// or None when its tools are missing (exit 3) and `skip_variable` is set. Without that
/// variable a missing tool fails the test, naming it: a check that cannot run does not pass.
pub fn device_check(name: &str, skip_variable: &str) -> Option<(String, String)> {
    let out = std::process::Command::new(repo().join("tools").join(name).join("run")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(3) {
        assert!(
            std::env::var_os(skip_variable).is_some(),
            "the tools of tools/{name} are missing (run tools/test-tools, or set {skip_variable}=1 to skip it): {}",
            stderr.trim()
        );
        eprintln!("skipped tools/{name}, as {skip_variable} asks: {}", stderr.trim());
        return None;
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    Some((stdout, stderr))
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Hex sha256 of a file, computed here independently of ptm-build.
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A stand-in interpreter that records each start in `log` and then runs the real
/// Python, or fails when `fail` is set. Returns its path.
pub fn logging_python(dir: &Path, log: &Path, fail: bool) -> PathBuf {
    let path = dir.join("python-logged");
    let body = if fail {
        format!("#!/bin/sh\necho started >> '{}'\necho 'this interpreter must not be started' >&2\nexit 1\n", log.display())
    } else {
        format!("#!/bin/sh\necho started >> '{}'\nexec '{}' \"$@\"\n", log.display(), venv_python().display())
    };
    std::fs::write(&path, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// How many times a [`logging_python`] started.
pub fn starts(log: &Path) -> usize {
    std::fs::read_to_string(log).map(|t| t.lines().count()).unwrap_or(0)
}

/// AddressSanitizer's runtime library of the machine's gcc, to preload into a binary
/// that was not built with it: its `dlopen` check refuses deep binding.
pub fn asan_runtime() -> std::path::PathBuf {
    let out = std::process::Command::new("gcc").arg("-print-file-name=libasan.so").output().expect("gcc runs (apt-get install gcc)");
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_absolute() && path.exists(), "gcc has no libasan.so ({}): apt-get install libasan8", path.display());
    path
}
