//! Finding the ExecuTorch runtime that the `ptm` runtime's `executorch` backend links:
//! `PTM_EXECUTORCH_DIR_<target>` or `PTM_EXECUTORCH_DIR` (a directory with `include/`
//! and `lib/`), else the executorch package of the Python environment that converts,
//! whose wheel ships both. And how to compile against it: the shim's sources ([`SHIM`],
//! [`write_shim`]) and the [`Recipe`] (`executorch/recipe.json`, which the build-time
//! runner and the ARM check read too): the standard, definitions, include directories
//! and libraries.

use crate::env;
use crate::error::{Error, Tool};
use crate::libtorch::is_mobile;
use crate::python::{self, Interpreter};
use crate::vars::{DEP_PTM_EXECUTORCH_VERSION, PTM_EXECUTORCH_DIR};
use ptm_report::Format;
use serde::Deserialize;
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
    crate::write_sources(dir, &SHIM)?;
    crate::write_sources(dir, &[crate::TENSOR_HEADER])
}

/// Metadata key of the ExecuTorch release the runtime links (`1.5.1+cpu`), read by the
/// app's build script as `DEP_PTM_EXECUTORCH_VERSION` ([`check_linked_executorch`]).
pub const VERSION_METADATA: &str = "executorch_version";

/// Refuses `.pte` models exported by a newer ExecuTorch than the one the app's `ptm`
/// runtime links: that runtime would refuse each program at load. `exported` holds each
/// `.pte` model's exporting release; the linked one comes from the runtime's build script
/// through cargo (`links = "ptm"`), so the check runs only in an app that depends on
/// `ptm` with its `executorch` feature, and whose ExecuTorch release is known.
pub fn check_linked_executorch(exported: &[(String, String)]) -> Result<(), Error> {
    let Some(linked) = std::env::var(DEP_PTM_EXECUTORCH_VERSION).ok().filter(|v| !v.is_empty()) else { return Ok(()) };
    not_newer_than(exported, &linked)
}

fn not_newer_than(exported: &[(String, String)], linked: &str) -> Result<(), Error> {
    let Some(linked_release) = release(linked) else { return Ok(()) };
    let newer: Vec<&(String, String)> = exported.iter().filter(|(_, version)| release(version).is_some_and(|r| r > linked_release)).collect();
    let Some((_, version)) = newer.iter().max_by_key(|(_, version)| release(version)) else { return Ok(()) };
    let names: Vec<String> = newer.iter().map(|(model, _)| format!("`{model}`")).collect();
    Err(Error::Unusable {
        tool: Tool::Executorch,
        problem: format!(
            "model {} {} exported by ExecuTorch {}, newer than the ExecuTorch {linked} the ptm runtime links: the runtime would refuse {} at load",
            names.join(", "),
            if newer.len() == 1 { "was" } else { "were" },
            newer.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(", "),
            if newer.len() == 1 { "the program" } else { "the programs" }
        ),
        remedies: vec![
            format!("link ExecuTorch {version} or newer: set {PTM_EXECUTORCH_DIR} to it, or unset it to link the converting environment's executorch package"),
            format!("or convert with the linked release: pip install executorch=={} in the converting environment", linked.split('+').next().unwrap_or(linked)),
        ],
    })
}

/// `1.5.1+cpu` as (1, 5, 1); the runtime compares programs with the same order.
fn release(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split(['+', '-']).next()?.split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0), parts.next().flatten().unwrap_or(0)))
}

/// Metadata key the runtime's build script publishes for the library directory, read
/// by the app's build script as `DEP_PTM_EXECUTORCH_RPATH` ([`crate::libtorch::forward_rpath`]).
pub const RPATH_METADATA: &str = "executorch_rpath";

/// The recipe's file, as (file name, text): `executorch/recipe.json`. ptm-build writes
/// it beside the worker's modules with [`SHIM`], so it enters every cache key too.
pub const RECIPE_FILE: (&str, &str) = ("recipe.json", include_str!("../executorch/recipe.json"));

/// How C++ is compiled against ExecuTorch, parsed from [`RECIPE_FILE`]: the one recipe
/// of the runtime's build script, the build-time runner (`ptm_convert/runner.py`) and
/// the ARM check. Each item carries the reason it is there (`why`).
#[derive(Debug, Clone, Deserialize)]
pub struct Recipe {
    /// What the recipe is and who reads it.
    pub why: String,
    /// The C++ standard (`c++17`).
    pub std: Item<String>,
    /// The optimisation level, in every profile.
    pub opt_level: Item<u32>,
    /// Whether the compiler's warnings are shown (false: `-w`).
    pub warnings: Item<bool>,
    /// Definitions every translation unit including ExecuTorch's headers needs.
    pub defines: Vec<Define>,
    /// Include directories, in order, relative to the ExecuTorch directory.
    pub include_dirs: Vec<Dir>,
    /// Where the shared libraries are, relative to the ExecuTorch directory.
    pub lib_dir: Dir,
    /// ExecuTorch's libraries to link, in order.
    pub libraries: Vec<Library>,
    /// The system's libraries to link.
    pub system_libraries: Vec<SystemLibrary>,
    /// Whether a desktop binary records the library directory as its rpath.
    pub rpath: Item<bool>,
}

/// One value of the [`Recipe`] and why it is so.
#[derive(Debug, Clone, Deserialize)]
pub struct Item<T> {
    /// The value.
    pub value: T,
    /// Why.
    pub why: String,
}

/// A preprocessor definition (`-D<name>`).
#[derive(Debug, Clone, Deserialize)]
pub struct Define {
    /// The macro defined (without a value).
    pub name: String,
    /// Why.
    pub why: String,
}

/// A directory relative to the ExecuTorch directory.
#[derive(Debug, Clone, Deserialize)]
pub struct Dir {
    /// The relative path, `/`-separated.
    pub path: String,
    /// Why.
    pub why: String,
}

/// One of ExecuTorch's libraries (`lib<name>.so`).
#[derive(Debug, Clone, Deserialize)]
pub struct Library {
    /// The name the linker is given (`-l<name>`).
    pub name: String,
    /// Linked only when the library directory has it.
    pub optional: bool,
    /// Why.
    pub why: String,
}

/// A library of the system (`-l<name>`).
#[derive(Debug, Clone, Deserialize)]
pub struct SystemLibrary {
    /// The name the linker is given.
    pub name: String,
    /// Why.
    pub why: String,
}

impl Recipe {
    /// The recipe of [`RECIPE_FILE`] (checked by this crate's tests, so it parses).
    pub fn get() -> &'static Recipe {
        static RECIPE: std::sync::OnceLock<Recipe> = std::sync::OnceLock::new();
        RECIPE.get_or_init(|| serde_json::from_str(RECIPE_FILE.1).unwrap_or_else(|e| panic!("ptm-toolchain's executorch/recipe.json: {e}")))
    }

    /// The include directories inside the ExecuTorch directory `dir`, in order.
    pub fn include_dirs(&self, dir: &Path) -> Vec<PathBuf> {
        self.include_dirs.iter().map(|include| dir.join(&include.path)).collect()
    }

    /// The library directory inside the ExecuTorch directory `dir`.
    pub fn lib_dir(&self, dir: &Path) -> PathBuf {
        dir.join(&self.lib_dir.path)
    }

    /// ExecuTorch's libraries to link from `lib_dir`: the required ones, and the optional
    /// ones it has.
    pub fn libraries(&self, lib_dir: &Path) -> Vec<&str> {
        self.libraries.iter().filter(|l| !l.optional || lib_dir.join(format!("lib{}.so", l.name)).exists()).map(|l| l.name.as_str()).collect()
    }

    /// What a compiler is given to build `found`'s C++: the recipe applied to one ExecuTorch.
    pub fn compile(&self, found: &Executorch) -> Compile<'_> {
        Compile {
            std: &self.std.value,
            opt_level: self.opt_level.value,
            warnings: self.warnings.value,
            defines: self.defines.iter().map(|d| d.name.as_str()).collect(),
            include_dirs: found.include_dirs.clone(),
            lib_dir: found.lib_dir.clone(),
            libraries: self.libraries(&found.lib_dir),
            system_libraries: self.system_libraries.iter().map(|l| l.name.as_str()).collect(),
            rpath: self.rpath.value,
        }
    }
}

/// The [`Recipe`] applied to one [`Executorch`]: what the runtime's build script gives
/// `cc::Build` and the linker, field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct Compile<'a> {
    /// The C++ standard.
    pub std: &'a str,
    /// The optimisation level.
    pub opt_level: u32,
    /// Whether warnings are shown (false: `-w`).
    pub warnings: bool,
    /// `-D` definitions.
    pub defines: Vec<&'a str>,
    /// `-I` directories, in order.
    pub include_dirs: Vec<PathBuf>,
    /// `-L` directory.
    pub lib_dir: PathBuf,
    /// ExecuTorch's libraries to link (`-l`), in order.
    pub libraries: Vec<&'a str>,
    /// The system's libraries to link (`-l`).
    pub system_libraries: Vec<&'a str>,
    /// Whether a desktop binary gets `-Wl,-rpath,<lib_dir>`.
    pub rpath: bool,
}

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
    let python = python::find(out_dir, Some(Format::Pte))?;
    let package = package_dir(&python)?;
    laid_out(&package, format!("the executorch package of {} (chosen by {})", python.path.display(), python.origin))
}

fn laid_out(dir: &Path, origin: String) -> Result<Executorch, Error> {
    let recipe = Recipe::get();
    let include = dir.join("include");
    let lib_dir = recipe.lib_dir(dir);
    for needed in [include.join("executorch/extension/module/module.h"), lib_dir.join("libexecutorch.so")] {
        if !needed.exists() {
            return Err(Error::Unusable {
                tool: Tool::Executorch,
                problem: format!("the ExecuTorch of {origin} has no {}", needed.display()),
                remedies: vec![
                    "install executorch 1.5.1 in that environment (tools/setup in the ptm checkout)".into(),
                    format!("or set {PTM_EXECUTORCH_DIR} to a directory with ExecuTorch's include/ and lib/"),
                ],
            });
        }
    }
    Ok(Executorch {
        include_dirs: recipe.include_dirs(dir),
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
        tool: Tool::Executorch,
        problem: format!("could not start {} (chosen by {}): {e}", python.path.display(), python.origin),
        remedies: vec!["set PTM_PYTHON to a working Python with executorch".into()],
    })?;
    if !output.status.success() {
        return Err(Error::Unusable {
            tool: Tool::Executorch,
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

    /// What the runtime's build script gives `cc::Build` and the linker, for an
    /// ExecuTorch laid out as the wheel is: every item of recipe.json, the threadpool
    /// library only where it exists.
    #[test]
    fn the_recipe_parses_and_is_what_the_runtime_compiles_with() {
        let recipe = Recipe::get();
        let dir = std::env::temp_dir().join(format!("ptm-recipe-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("include/executorch/extension/module")).unwrap();
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("include/executorch/extension/module/module.h"), "").unwrap();
        std::fs::write(dir.join("lib/libexecutorch.so"), "").unwrap();
        let found = laid_out(&dir, "a test".into()).unwrap();
        let expected = Compile {
            std: "c++17",
            opt_level: 2,
            warnings: false,
            defines: vec!["C10_USING_CUSTOM_GENERATED_MACROS", "ET_EVENT_TRACER_ENABLED"],
            include_dirs: vec![dir.join("include"), dir.join("include/executorch/runtime/core/portable_type/c10")],
            lib_dir: dir.join("lib"),
            libraries: vec!["executorch"],
            system_libraries: vec!["dl"],
            rpath: true,
        };
        assert_eq!(recipe.compile(&found), expected, "a build that folds the threadpool into libexecutorch");
        std::fs::write(dir.join("lib/libexecutorch_threadpool.so"), "").unwrap();
        assert_eq!(recipe.compile(&found).libraries, ["executorch", "executorch_threadpool"]);
        let whys = [&recipe.why, &recipe.std.why, &recipe.opt_level.why, &recipe.warnings.why, &recipe.lib_dir.why, &recipe.rpath.why]
            .into_iter()
            .chain(recipe.defines.iter().map(|d| &d.why))
            .chain(recipe.include_dirs.iter().map(|d| &d.why))
            .chain(recipe.libraries.iter().map(|l| &l.why))
            .chain(recipe.system_libraries.iter().map(|l| &l.why));
        for why in whys {
            assert!(!why.trim().is_empty(), "every item of recipe.json says why it is there");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_program_newer_than_the_linked_executorch_is_refused_at_build_time() {
        let exported = |pairs: &[(&str, &str)]| pairs.iter().map(|(m, v)| (m.to_string(), v.to_string())).collect::<Vec<_>>();
        assert!(not_newer_than(&exported(&[("a", "1.5.1+cpu"), ("b", "1.4.0")]), "1.5.1").is_ok());
        assert!(not_newer_than(&exported(&[("a", "1.5.1+cpu")]), "1.6.0+cpu").is_ok(), "an older program runs");
        assert!(not_newer_than(&exported(&[("a", "1.5.1+cpu")]), "dev").is_ok(), "an unknown linked release is not refused");
        let text = not_newer_than(&exported(&[("a", "1.5.1+cpu"), ("b", "1.4.0"), ("c", "1.5.0")]), "1.4.2+cpu").unwrap_err().to_string();
        assert!(text.contains("model `a`, `c` were exported by ExecuTorch 1.5.1+cpu, 1.5.0, newer than the ExecuTorch 1.4.2+cpu"), "{text}");
        assert!(text.contains("link ExecuTorch 1.5.1+cpu or newer") && text.contains("pip install executorch==1.4.2"), "{text}");
    }

    #[test]
    fn the_release_is_read_from_version_py() {
        let text = "from typing import Optional\n__version__ = \"1.5.1+cpu\"\ngit_version: Optional[str] = 'abc'\n";
        assert_eq!(version_of(text).as_deref(), Some("1.5.1+cpu"));
        assert_eq!(version_of("__version__ = ''\n"), None);
        assert_eq!(version_of("nothing here"), None);
    }
}
