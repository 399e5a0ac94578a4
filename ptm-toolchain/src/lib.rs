//! Finds what ptm builds with: the Python and torch that convert models, the libtorch
//! and the ExecuTorch the `ptm` runtime links, and every environment variable that
//! chooses them.
//!
//! Two build scripts ask the same questions, and must get the same answers: ptm-build's
//! (converting models in the app's build script) and the `ptm` runtime's (compiling its
//! C++ shims and linking libtorch or ExecuTorch), so that a model runs in the torch that
//! verified it. This crate is what they share. It is small on purpose: the runtime's
//! build script depends on it and `cc` alone, never on the conversion's manifest parser,
//! hashing or cache (`tests/build_graph.rs` checks the build graph).
//!
//! # Modules
//!
//! | module | its job |
//! |---|---|
//! | [`vars`] | the name of every environment variable ptm reads; nothing else |
//! | [`env`](mod@env) | reading them (`VAR_<target>` before `VAR`, as `cc` reads `CC`) and the `cargo:` lines that tell cargo what a build depends on |
//! | [`python`] | the interpreter (`PTM_PYTHON_PTL`/`PTM_PYTHON_PTE`, `PTM_PYTHON`, `VIRTUAL_ENV`, `CONDA_PREFIX`, a `.venv`, `python3`) and its torch |
//! | [`toolchains`] | the validated torch and ExecuTorch releases, and which formats each makes |
//! | [`libtorch`] | the libtorch the runtime links, and what it tells the app's build script |
//! | [`elf`] | the count of local symbols in a shared library's dynamic symbol table, repaired on the copy the runtime links against (the Android AARs' libraries) |
//! | [`executorch`] | the ExecuTorch the runtime links, the shim compiled against it and how |
//! | [`cache_dir`] | where ptm's cache lives, and its toolchain directory (the last torch probe of each interpreter, ExecuTorch's runner) |
//! | [`Error`] | why any of it failed, naming the variable to set |
//! | [`TENSOR_HEADER`] | the C types of inputs and outputs both runtimes' shims share |
//!
//! # In a build script
//!
//! ```no_run
//! use ptm_toolchain::{env, libtorch, vars};
//!
//! fn main() -> Result<(), ptm_toolchain::Error> {
//!     env::watch(vars::RUNTIME_WATCHED);
//!     let target = std::env::var(vars::TARGET).unwrap_or_default();
//!     let out_dir = std::path::PathBuf::from(std::env::var_os(vars::OUT_DIR).unwrap_or_default());
//!     let torch = libtorch::locate(&target, &out_dir)?;
//!     println!("cargo:rustc-link-search=native={}", torch.lib_dir.display());
//!     Ok(())
//! }
//! ```
//!
//! # Environment variables
//!
//! | variable | effect |
//! |---|---|
//! | `PTM_PYTHON` | the Python interpreter that converts, and whose torch the runtime links |
//! | `PTM_PYTHON_PTL`, `PTM_PYTHON_PTE` | the interpreter for one format's models (and its runtime), before `PTM_PYTHON` |
//! | `VIRTUAL_ENV`, `CONDA_PREFIX` | an activated environment, searched after `PTM_PYTHON` |
//! | `PTM_ALLOW_UNTESTED_TORCH` | `1` converts with a torch or ExecuTorch outside the validated toolchains ([`toolchains`]) |
//! | `PTM_CACHE_DIR` | where ptm's cache lives |
//! | `PTM_TOOLCHAIN_DIR` | where ptm keeps ExecuTorch's runner and each interpreter's torch probe (default: the cache) |
//! | `LIBTORCH` | the runtime links this unpacked libtorch instead of the Python environment's |
//! | `PTM_LIBTORCH_LITE_DIR[_<target>]` | the runtime links this mobile libtorch-lite (Android, iOS) |
//! | `PTM_EXECUTORCH_DIR[_<target>]` | the runtime's `executorch` backend links this ExecuTorch |
//! | `PTM_NO_SHIM` | `1`: the runtime compiles no C++ and links nothing (a check of the Rust side where the target's SDK is missing; the library cannot link into an app) |
//! | `SDKROOT` | Apple's iOS SDK, for an iOS build off macOS |
//!
//! ptm-build reads `PTM_OFFLINE`, `PTM_HEARTBEAT_SECONDS` and `PTM_MODEL_TIMEOUT` as well
//! (its crate docs say what they do); their names are in [`vars`] with the rest.
#![deny(missing_docs)]

pub mod cache_dir;
pub mod elf;
pub mod env;
mod error;
pub mod executorch;
pub mod libtorch;
pub mod python;
pub mod toolchains;
pub mod vars;

pub use error::{Error, Tool};

/// The C header both runtimes' shims share, as (file name, text): the input and output
/// types that cross ptm's C boundary, so that the `ptm` runtime marshals inputs and
/// releases outputs the same way for the Lite Interpreter and ExecuTorch.
pub const TENSOR_HEADER: (&str, &str) = ("ptm_tensor.h", include_str!("../include/ptm_tensor.h"));

/// Writes each (file name, text) of `files` into `dir` for a compiler to read, each only
/// when its bytes differ, so a rerun of a build script leaves the timestamps alone.
pub fn write_sources(dir: &std::path::Path, files: &[(&str, &str)]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    for (name, text) in files {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
    }
    Ok(())
}
