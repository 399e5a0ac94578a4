//! The name of every environment variable ptm reads, in one short file that imports
//! nothing, so the docs, the build scripts and the code that reads them agree.
//!
//! Reading them is [`crate::env`](mod@crate::env)'s job.

/// The Python interpreter that converts models (and whose torch the runtime links).
pub const PTM_PYTHON: &str = "PTM_PYTHON";
/// The interpreter for `.ptl` models alone (and whose torch the `lite` runtime links),
/// before `PTM_PYTHON`: for an app whose formats need two torch releases.
pub const PTM_PYTHON_PTL: &str = "PTM_PYTHON_PTL";
/// The interpreter for `.pte` models alone (and whose ExecuTorch the `executorch`
/// runtime links), before `PTM_PYTHON`.
pub const PTM_PYTHON_PTE: &str = "PTM_PYTHON_PTE";
/// Where the conversion cache lives.
pub const PTM_CACHE_DIR: &str = "PTM_CACHE_DIR";
/// Where ptm keeps what it builds or learns about a toolchain rather than a model:
/// ExecuTorch's runner that verifies `.pte` files, and each interpreter's torch probe.
/// Default: the conversion cache, so that one directory holds both unless asked.
pub const PTM_TOOLCHAIN_DIR: &str = "PTM_TOOLCHAIN_DIR";
/// Set to 1 to convert with a torch (or ExecuTorch) outside the validated toolchains.
pub const PTM_ALLOW_UNTESTED_TORCH: &str = "PTM_ALLOW_UNTESTED_TORCH";
/// Set to 1 to build only from the cache and the committed store, never starting Python.
pub const PTM_OFFLINE: &str = "PTM_OFFLINE";
/// Seconds a model may stay in one stage before each warning that it is still there.
pub const PTM_HEARTBEAT_SECONDS: &str = "PTM_HEARTBEAT_SECONDS";
/// Seconds after which a model's conversion is killed and the build fails.
pub const PTM_MODEL_TIMEOUT: &str = "PTM_MODEL_TIMEOUT";
/// An activated virtual environment, searched for Python after PTM_PYTHON.
pub const VIRTUAL_ENV: &str = "VIRTUAL_ENV";
/// An activated conda environment, searched after VIRTUAL_ENV.
pub const CONDA_PREFIX: &str = "CONDA_PREFIX";
/// An unpacked desktop libtorch for the runtime, instead of the Python environment's.
pub const LIBTORCH: &str = "LIBTORCH";
/// A mobile libtorch-lite laid out as `include/` and `lib/`, for every target or (with
/// `_<target>`) for one.
pub const PTM_LIBTORCH_LITE_DIR: &str = "PTM_LIBTORCH_LITE_DIR";
/// `1`: the runtime compiles none of its C++ shims and links nothing, to check the Rust
/// side of a build where the target's C++ SDK is missing (an iOS build off macOS); such
/// a library cannot be linked into an app.
pub const PTM_NO_SHIM: &str = "PTM_NO_SHIM";
/// Apple's SDK for an iOS build off macOS (as `xcrun` finds it on macOS).
pub const SDKROOT: &str = "SDKROOT";
/// An explicit ExecuTorch, for every target or (with `_<target>`) for one.
pub const PTM_EXECUTORCH_DIR: &str = "PTM_EXECUTORCH_DIR";

/// Searched for `python3` when nothing else chose the interpreter.
pub const PATH: &str = "PATH";
/// Set by docs.rs: the runtime documents itself without compiling or linking anything.
pub const DOCS_RS: &str = "DOCS_RS";

/// Read by the runtime's ExecuTorch shim when it starts, not at build time: `0` loads
/// the backend's libraries without deep binding (docs/runtime.md).
pub const PTM_EXECUTORCH_DEEPBIND: &str = "PTM_EXECUTORCH_DEEPBIND";

/// What the `ptm` runtime's build script published (`links = "ptm"`) as it reaches the
/// build scripts of crates depending on `ptm`: cargo names it `DEP_PTM_` and the key in
/// capitals (the keys are in [`crate::libtorch`] and [`crate::executorch`]).
pub const DEP_PTM_RPATH: &str = "DEP_PTM_RPATH";
/// See [`DEP_PTM_RPATH`].
pub const DEP_PTM_EXECUTORCH_RPATH: &str = "DEP_PTM_EXECUTORCH_RPATH";
/// See [`DEP_PTM_RPATH`].
pub const DEP_PTM_TORCH_VERSION: &str = "DEP_PTM_TORCH_VERSION";
/// See [`DEP_PTM_RPATH`].
pub const DEP_PTM_TORCH_ORIGIN: &str = "DEP_PTM_TORCH_ORIGIN";
/// See [`DEP_PTM_RPATH`].
pub const DEP_PTM_EXECUTORCH_VERSION: &str = "DEP_PTM_EXECUTORCH_VERSION";

/// The directory of the Cargo.toml whose build script runs, set by cargo.
pub const CARGO_MANIFEST_DIR: &str = "CARGO_MANIFEST_DIR";
/// Set by cargo for build scripts only; with [`TARGET`], how ptm tells a build script
/// from the CLI or a test.
pub const OUT_DIR: &str = "OUT_DIR";
/// The target triple cargo builds for, set for build scripts.
pub const TARGET: &str = "TARGET";

/// Every variable a conversion's build path may read. Declared on every run, whatever
/// path the build takes, so that cargo sees the same instructions from a cache hit as
/// from a miss (a changed set of instructions alone makes cargo rerun the script).
pub const WATCHED: &[&str] = &[
    PTM_PYTHON,
    PTM_PYTHON_PTL,
    PTM_PYTHON_PTE,
    PTM_CACHE_DIR,
    PTM_TOOLCHAIN_DIR,
    PTM_ALLOW_UNTESTED_TORCH,
    PTM_OFFLINE,
    PTM_HEARTBEAT_SECONDS,
    PTM_MODEL_TIMEOUT,
    VIRTUAL_ENV,
    CONDA_PREFIX,
    LIBTORCH,
    PTM_LIBTORCH_LITE_DIR,
    PTM_EXECUTORCH_DIR,
];

/// What chooses the libtorch and the ExecuTorch the runtime links, watched by its build
/// script. Not PTM_CACHE_DIR or PTM_TOOLCHAIN_DIR: they only hold the record of the last
/// torch probe, so moving them changes no choice, and a rerun would recompile the shims
/// (about a minute).
pub const RUNTIME_WATCHED: &[&str] =
    &[LIBTORCH, PTM_LIBTORCH_LITE_DIR, PTM_EXECUTORCH_DIR, PTM_NO_SHIM, SDKROOT, PTM_PYTHON, PTM_PYTHON_PTL, PTM_PYTHON_PTE, VIRTUAL_ENV, CONDA_PREFIX];
