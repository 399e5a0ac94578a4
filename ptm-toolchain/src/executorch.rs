//! Finding the ExecuTorch runtime that the `ptm` runtime's `executorch` backend links:
//! `PTM_EXECUTORCH_DIR_<target>` or `PTM_EXECUTORCH_DIR` (a directory with `include/`
//! and `lib/`), else the executorch package of the Python environment that converts,
//! whose wheel ships both. And how to compile against it: the shim's sources ([`SHIM`],
//! [`write_shim`]), the [`DEFINES`] its headers need and the [`RUNTIME_LIBRARIES`] to link.

use crate::env;
use crate::error::Error;
use crate::libtorch::is_mobile;
use crate::python::{self, Interpreter};
use crate::vars::PTM_EXECUTORCH_DIR;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C++ over ExecuTorch's runtime, as (file name, text): the header and the source
/// that the `ptm` runtime's `executorch` backend compiles, and that ptm-build compiles
/// into the runner verifying each `.pte`, so a model is verified in the code that runs
/// it. Both are among the conversion worker's sources, whose bytes enter every cache key.
pub const SHIM: [(&str, &str); 2] =
    [("ptm_executorch.h", include_str!("../executorch/ptm_executorch.h")), ("ptm_executorch.cpp", include_str!("../executorch/ptm_executorch.cpp"))];

/// Writes [`SHIM`] and the [`crate::TENSOR_HEADER`] it includes into `dir` for a
/// compiler to read (see [`crate::write_sources`]).
pub fn write_shim(dir: &Path) -> Result<(), Error> {
    crate::write_sources(dir, &[SHIM[0], SHIM[1], crate::TENSOR_HEADER])
}

/// Metadata key the runtime's build script publishes for the library directory, read
/// by the app's build script as `DEP_PTM_EXECUTORCH_RPATH` ([`crate::libtorch::forward_rpath`]).
pub const RPATH_METADATA: &str = "executorch_rpath";

/// Definitions every translation unit including ExecuTorch's headers needs: the
/// vendored c10 headers cannot compile without the first, and the wheel's libraries
/// are built with the second, which changes the layout of classes in the headers.
pub const DEFINES: &[&str] = &["C10_USING_CUSTOM_GENERATED_MACROS", "ET_EVENT_TRACER_ENABLED"];

/// The libraries the shim calls: the Program/Method API and the threadpool. The backend
/// and kernel libraries register themselves from static constructors, which nothing
/// references, so the shim loads them by name when it starts instead.
pub const RUNTIME_LIBRARIES: &[&str] = &["executorch", "executorch_threadpool"];

/// An ExecuTorch to compile against and link.
#[derive(Debug, Clone)]
pub struct Executorch {
    /// Include directories, in order.
    pub include_dirs: Vec<PathBuf>,
    /// Where the shared libraries are.
    pub lib_dir: PathBuf,
    /// What chose it, for messages.
    pub origin: String,
    /// The files whose change means another ExecuTorch.
    pub watch: Vec<PathBuf>,
    /// Its release (`1.5.1+cpu`), from the `version.py` beside `include/` when there is
    /// one: the runtime refuses programs exported by a newer release.
    pub version: Option<String>,
}

/// The ExecuTorch for `target`; see the module docs for the order.
pub fn locate(target: &str, out_dir: &Path) -> Result<Executorch, Error> {
    if let Some((dir, variable)) = env::var_for_target(PTM_EXECUTORCH_DIR, target) {
        let dir = PathBuf::from(dir);
        return laid_out(&dir, format!("{variable}={}", dir.display()));
    }
    if is_mobile(target) {
        return Err(Error::Environment {
            variable: PTM_EXECUTORCH_DIR.into(),
            fix: format!(
                "{target} runs ExecuTorch's libraries for that platform, not the host's: unpack them and set {PTM_EXECUTORCH_DIR}_{} (or {PTM_EXECUTORCH_DIR}) to a directory with include/ and lib/ (docs/device.md)",
                target.replace('-', "_")
            ),
        });
    }
    let python = python::find(out_dir)?;
    let package = package_dir(&python)?;
    laid_out(&package, format!("the executorch package of {} (chosen by {})", python.path.display(), python.origin))
}

fn laid_out(dir: &Path, origin: String) -> Result<Executorch, Error> {
    let include = dir.join("include");
    let lib_dir = dir.join("lib");
    for needed in [include.join("executorch/extension/module/module.h"), lib_dir.join("libexecutorch.so")] {
        if !needed.exists() {
            return Err(Error::Unusable {
                problem: format!("the ExecuTorch of {origin} has no {}", needed.display()),
                remedies: vec![
                    "install executorch 1.5.1 in that environment (tools/setup in the ptm checkout)".into(),
                    format!("or set {PTM_EXECUTORCH_DIR} to a directory with ExecuTorch's include/ and lib/"),
                ],
            });
        }
    }
    Ok(Executorch {
        include_dirs: vec![include.clone(), include.join("executorch/runtime/core/portable_type/c10")],
        watch: vec![lib_dir.clone(), dir.join("version.py")],
        version: std::fs::read_to_string(dir.join("version.py")).ok().as_deref().and_then(version_of),
        lib_dir,
        origin,
    })
}

/// `__version__ = "1.5.1+cpu"` in an executorch package's version.py.
fn version_of(text: &str) -> Option<String> {
    let line = text.lines().find(|line| line.trim_start().starts_with("__version__"))?;
    let value = line.split_once('=')?.1.trim().trim_matches(|c| c == '"' || c == '\'');
    (!value.is_empty()).then(|| value.to_string())
}

/// The directory of the interpreter's executorch package (a namespace package: found
/// through a module inside it).
fn package_dir(python: &Interpreter) -> Result<PathBuf, Error> {
    let script = "import os, executorch.version as v; print(os.path.dirname(os.path.abspath(v.__file__)))";
    let output = Command::new(&python.path).args(["-c", script]).output().map_err(|e| Error::Unusable {
        problem: format!("could not start {} (chosen by {}): {e}", python.path.display(), python.origin),
        remedies: vec!["set PTM_PYTHON to a working Python with executorch".into()],
    })?;
    if !output.status.success() {
        return Err(Error::Unusable {
            problem: format!(
                "{} (chosen by {}) has no executorch package: {}",
                python.path.display(),
                python.origin,
                String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default()
            ),
            remedies: vec![
                "pip install executorch==1.5.1 in that environment (tools/setup does, in the ptm checkout)".into(),
                format!("or set {PTM_EXECUTORCH_DIR} to a directory with ExecuTorch's include/ and lib/"),
            ],
        });
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_is_written_once_and_left_alone_after() {
        let dir = std::env::temp_dir().join(format!("ptm-shim-{}", std::process::id()));
        write_shim(&dir).unwrap();
        let header = dir.join(SHIM[0].0);
        assert_eq!(std::fs::read_to_string(&header).unwrap(), SHIM[0].1);
        let written = std::fs::metadata(&header).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_shim(&dir).unwrap();
        assert_eq!(std::fs::metadata(&header).unwrap().modified().unwrap(), written);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_release_is_read_from_version_py() {
        let text = "from typing import Optional\n__version__ = \"1.5.1+cpu\"\ngit_version: Optional[str] = 'abc'\n";
        assert_eq!(version_of(text).as_deref(), Some("1.5.1+cpu"));
        assert_eq!(version_of("__version__ = ''\n"), None);
        assert_eq!(version_of("nothing here"), None);
    }
}
