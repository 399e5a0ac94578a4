//! Finding the Python that has torch, and what torch it has.
//!
//! Lookup order: for one format's models `PTM_PYTHON_PTL` or `PTM_PYTHON_PTE` first, then
//! `PTM_PYTHON`, then `VIRTUAL_ENV`, then `CONDA_PREFIX`, then a `.venv` in the crate's
//! directory or any parent (the workspace's), then `python3` on PATH. Whatever
//! made the choice is watched ([`watch`]): the variables always, PATH when it decided, the
//! environment's `pyvenv.cfg` (rewritten when the environment is made again) and torch's
//! `version.py` (rewritten when torch is installed again).
//!
//! Asking Python for its torch version costs an interpreter start and a torch import
//! (seconds). The answer is kept in the toolchain directory and trusted while torch's
//! `version.py` and the environment's site-packages directory keep their size and
//! modification time (installing a package changes the directory), so a cache hit
//! starts no Python at all. Which torch may convert which format is
//! [`crate::toolchains`]' question.

use crate::env;
use crate::error::{Error, Tool};
use crate::toolchains::{python_variable, Table};
use crate::vars::{CONDA_PREFIX, PATH, PTM_PYTHON, VIRTUAL_ENV};
use ptm_report::Format;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

/// A Python interpreter and how it was chosen.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// Path of the executable.
    pub path: PathBuf,
    /// Which rule chose it, for messages.
    pub origin: String,
    /// Whether PATH chose it, so that a changed PATH reruns the build.
    pub from_path: bool,
}

/// What the interpreter's torch is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Torch {
    /// `torch.__version__`, e.g. `2.11.0+cu130`.
    pub version: String,
    /// The torch package directory; libraries are in `lib/`, headers in `include/`.
    pub dir: PathBuf,
    /// `torch._C._GLIBCXX_USE_CXX11_ABI`.
    pub cxx11_abi: bool,
    /// torch's `version.py`, rewritten whenever torch is installed.
    #[serde(default)]
    pub version_file: PathBuf,
    /// The release of the executorch package beside it (`1.5.1+cpu`), if there is one.
    #[serde(default)]
    pub executorch: Option<String>,
    /// The site-packages directory holding torch, whose stamp changes when a package is
    /// installed or removed there.
    #[serde(default)]
    pub site_packages: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Probe {
    python: PathBuf,
    version_stamp: Stamp,
    #[serde(default)]
    site_packages_stamp: Option<Stamp>,
    torch: Torch,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Stamp {
    len: u64,
    modified_ns: u128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(Stamp { len: meta.len(), modified_ns: modified.as_nanos() })
}

fn remedies() -> Vec<String> {
    let default = Table::get().default_toolchain();
    let executorch = default.executorch.as_deref().map(|e| format!(" executorch=={e}")).unwrap_or_default();
    vec![
        format!(
            "run `tools/setup` in the ptm checkout, or create a .venv beside your workspace's Cargo.toml: python3 -m venv .venv && .venv/bin/pip install torch=={}{executorch}",
            default.torch
        ),
        "set PTM_PYTHON to a Python executable that has torch installed".into(),
        "activate a virtual environment or conda environment that has torch (VIRTUAL_ENV, CONDA_PREFIX)".into(),
        "build from a committed model store instead (PTM_OFFLINE=1, see the ptm-build docs)".into(),
    ]
}

/// Finds the interpreter to use, without starting it: for `format`'s models when given
/// (its own variable first), else for any.
pub fn find(crate_dir: &Path, format: Option<Format>) -> Result<Interpreter, Error> {
    let variables = format.map(python_variable).into_iter().chain([PTM_PYTHON]);
    for variable in variables {
        let Some(path) = env::var(variable) else { continue };
        let path = PathBuf::from(path);
        let resolved = if path.components().count() == 1 { which(&path).unwrap_or(path.clone()) } else { path.clone() };
        if !resolved.is_file() {
            return Err(Error::Unusable {
                tool: Tool::Python,
                problem: format!("{variable}={} does not name an executable file", path.display()),
                remedies: remedies(),
            });
        }
        return Ok(Interpreter { path: resolved, origin: variable.into(), from_path: false });
    }
    for (variable, python) in [(VIRTUAL_ENV, venv_python as fn(&Path) -> PathBuf), (CONDA_PREFIX, conda_python)] {
        if let Some(prefix) = env::var(variable) {
            let path = python(Path::new(&prefix));
            if path.is_file() {
                return Ok(Interpreter { path, origin: format!("{variable}={}", Path::new(&prefix).display()), from_path: false });
            }
        }
    }
    for dir in crate_dir.ancestors() {
        let path = venv_python(&dir.join(".venv"));
        if path.is_file() {
            return Ok(Interpreter { path, origin: format!("the .venv in {}", dir.display()), from_path: false });
        }
    }
    match which(Path::new("python3")) {
        Some(path) => Ok(Interpreter { path, origin: "python3 on PATH".into(), from_path: true }),
        None => Err(Error::Unusable {
            tool: Tool::Python,
            problem: format!("no Python found: PTM_PYTHON, VIRTUAL_ENV and CONDA_PREFIX are unset, no .venv above {}, no python3 on PATH", crate_dir.display()),
            remedies: remedies(),
        }),
    }
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn conda_python(prefix: &Path) -> PathBuf {
    if cfg!(windows) {
        prefix.join("python.exe")
    } else {
        prefix.join("bin").join("python")
    }
}

/// Tells cargo to rerun the build when what chose `python`, or its torch, changes (the
/// variables themselves are watched by [`env::watch_all`]).
pub fn watch(python: &Interpreter, torch: &Torch) {
    if python.from_path {
        env::rerun_if_env_changed(PATH);
    }
    // `<env>/bin/python` -> `<env>/pyvenv.cfg`, which making the environment again rewrites.
    if let Some(config) = python.path.parent().and_then(Path::parent).map(|env| env.join("pyvenv.cfg")).filter(|c| c.is_file()) {
        env::rerun_if_changed(&config);
    }
    if torch.version_file.is_file() {
        env::rerun_if_changed(&torch.version_file);
    }
}

fn which(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os(PATH)?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

const PROBE: &str = r#"
import json, os, sys
try:
    import torch
except Exception as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
    sys.exit(0)
try:
    from executorch import version as executorch
    executorch = executorch.__version__
except Exception:
    executorch = None
print(json.dumps({"version": torch.__version__, "dir": os.path.dirname(torch.__file__),
                  "version_file": torch.version.__file__, "executorch": executorch,
                  "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI)}))
"#;

/// The torch of `python`, from its probe record in `toolchain_dir` (`PTM_TOOLCHAIN_DIR`,
/// else the cache: [`crate::cache_dir::toolchain`]) when still valid. Builds sharing the
/// directory may probe at once: a record is replaced whole (written aside, then renamed), and one
/// that cannot be read or parsed only costs another probe.
pub fn torch(python: &Interpreter, toolchain_dir: &Path) -> Result<Torch, Error> {
    let record = probe_record(toolchain_dir, &python.path);
    if let Some(probe) = std::fs::read(&record).ok().and_then(|bytes| serde_json::from_slice::<Probe>(&bytes).ok()) {
        let fresh = probe.python == python.path
            && stamp(&probe.torch.version_file).as_ref() == Some(&probe.version_stamp)
            // A record from before site-packages was stamped has no stamp: probe again.
            && probe.site_packages_stamp.is_some()
            && stamp(&probe.torch.site_packages) == probe.site_packages_stamp;
        if fresh {
            return Ok(probe.torch);
        }
    }
    let output = Command::new(&python.path).args(["-B", "-c", PROBE]).output().map_err(|e| Error::Unusable {
        tool: Tool::Python,
        problem: format!("could not start {} (chosen by {}): {e}", python.path.display(), python.origin),
        remedies: remedies(),
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer: serde_json::Value = stdout.lines().last().and_then(|line| serde_json::from_str(line).ok()).ok_or_else(|| Error::Unusable {
        tool: Tool::Python,
        problem: format!(
            "{} (chosen by {}) did not answer the torch probe: {}",
            python.path.display(),
            python.origin,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        remedies: remedies(),
    })?;
    if let Some(error) = answer.get("error").and_then(|e| e.as_str()) {
        return Err(Error::Unusable {
            tool: Tool::Python,
            problem: format!("torch is not importable by {} (chosen by {}): {error}", python.path.display(), python.origin),
            remedies: remedies(),
        });
    }
    let text = |key: &str| answer.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let dir = PathBuf::from(text("dir"));
    let torch = Torch {
        version: text("version"),
        site_packages: dir.parent().map(Path::to_path_buf).unwrap_or_default(),
        dir,
        cxx11_abi: answer.get("cxx11_abi").and_then(|v| v.as_bool()).unwrap_or(true),
        version_file: PathBuf::from(text("version_file")),
        executorch: answer.get("executorch").and_then(|v| v.as_str()).map(String::from),
    };
    if let Some(version_stamp) = stamp(&torch.version_file) {
        let site_packages_stamp = stamp(&torch.site_packages);
        let probe = Probe { python: python.path.clone(), version_stamp, site_packages_stamp, torch: torch.clone() };
        // A lost race or a read-only cache only costs the next build another probe.
        let _ = write_atomic(&record, serde_json::to_string_pretty(&probe).unwrap_or_default().as_bytes());
    }
    Ok(torch)
}

/// `probes/<python>.json` in the toolchain directory, named by the start of the sha256 of
/// the interpreter's path (the layout ptm-build's cache documents).
fn probe_record(toolchain_dir: &Path, python: &Path) -> PathBuf {
    let id: String = Sha256::digest(python.as_os_str().as_encoded_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect();
    toolchain_dir.join("probes").join(format!("{id}.json"))
}

/// Writes `bytes` to a name of this process and thread's own and renames it over
/// `path`, so that builds probing at once never read half a record.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}
