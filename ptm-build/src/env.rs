//! Every environment variable ptm-build reads goes through here, so cargo learns
//! to rerun the build script when it changes.

use std::ffi::OsString;

/// Variables ptm reads. Kept in one list so the docs and the code agree.
pub const PTM_PYTHON: &str = "PTM_PYTHON";
/// Where the conversion cache lives.
pub const PTM_CACHE_DIR: &str = "PTM_CACHE_DIR";
/// Set to 1 to use a torch other than the tested version.
pub const PTM_ALLOW_UNTESTED_TORCH: &str = "PTM_ALLOW_UNTESTED_TORCH";

/// Set to 1 to build only from the cache and the committed store, never starting Python.
pub const PTM_OFFLINE: &str = "PTM_OFFLINE";
/// An activated virtual environment, searched for Python after PTM_PYTHON.
pub const VIRTUAL_ENV: &str = "VIRTUAL_ENV";
/// An activated conda environment, searched after VIRTUAL_ENV.
pub const CONDA_PREFIX: &str = "CONDA_PREFIX";

/// Every variable any build path may read. Declared on every run, whatever path the
/// build takes, so that cargo sees the same instructions from a cache hit as from a miss
/// (a changed set of instructions alone makes cargo rerun the script).
pub const WATCHED: &[&str] = &[
    PTM_PYTHON,
    PTM_CACHE_DIR,
    PTM_ALLOW_UNTESTED_TORCH,
    PTM_OFFLINE,
    VIRTUAL_ENV,
    CONDA_PREFIX,
    crate::libtorch::LIBTORCH,
    crate::libtorch::PTM_LIBTORCH_LITE_DIR,
];

/// Tells cargo about every variable in [`WATCHED`].
pub fn watch_all() {
    if in_build_script() {
        for name in WATCHED {
            println!("cargo:rerun-if-env-changed={name}");
        }
    }
}

/// Reads `name` (one of [`WATCHED`]) and, inside a build script, tells cargo to rerun when it changes.
pub fn var(name: &str) -> Option<OsString> {
    debug_assert!(WATCHED.contains(&name), "{name} is read but not watched");
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// True when a variable is set to something other than `0`, `false` or empty.
pub fn flag(name: &str) -> bool {
    var(name).is_some_and(|value| value != "0" && value != "false")
}

/// Cargo sets OUT_DIR and TARGET only for build scripts; elsewhere (the CLI, tests)
/// `cargo:` lines would be noise on stdout.
pub fn in_build_script() -> bool {
    std::env::var_os("OUT_DIR").is_some() && std::env::var_os("TARGET").is_some()
}

/// Tells cargo to rerun the build script when a variable outside [`WATCHED`] changes:
/// for those read only on some paths (PATH, when it chose the interpreter).
pub fn rerun_if_env_changed(name: &str) {
    if in_build_script() {
        println!("cargo:rerun-if-env-changed={name}");
    }
}

/// Tells cargo to rerun the build script when `path` changes.
pub fn rerun_if_changed(path: &std::path::Path) {
    if in_build_script() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Shows `message` as a cargo warning (one line per line of the message).
pub fn warning(message: &str) {
    if in_build_script() {
        for line in message.lines() {
            println!("cargo:warning=ptm: {line}");
        }
    } else {
        eprintln!("warning: ptm: {message}");
    }
}
