//! Build-time conversion of PyTorch models into PyTorch Mobile Lite Interpreter files
//! (`.ptl`) or ExecuTorch programs (`.pte`), each verified in the runtime that runs it.
//!
//! # Tutorial
//!
//! 1. Declare the models your app ships in its own `Cargo.toml`:
//!
//! ```toml
//! [package.metadata.models.review]
//! source = "models/review.py:build_model"   # a callable returning the nn.Module
//! quantize = "dynamic"
//!
//! [[package.metadata.models.review.inputs]]
//! name = "input_ids"
//! dtype = "int64"
//! shape = [1, 128]
//! range = [0, 30522]
//! ```
//!
//! 2. Add `ptm-build` as a build-dependency and call it from `build.rs`:
//!
//! ```no_run
//! fn main() -> Result<(), ptm_build::Error> {
//!     ptm_build::bundle()?;
//!     Ok(())
//! }
//! ```
//!
//! 3. `cargo build`. Every declared model is loaded, exported to TorchScript, quantized,
//!    run through `optimize_for_mobile`, saved as a `.ptl`, loaded back in the Lite
//!    Interpreter and compared with the source model. The result lands in
//!    `$OUT_DIR/ptm/<name>.ptl` with a report in `$OUT_DIR/ptm/models.json`, which
//!    `ptm::include_models!()` turns into typed Rust wrappers.
//!
//! The full table of keys is in the repository's `docs/manifest.md`.
//!
//! # Caching
//!
//! Each artifact is cached under a sha256 of its declaration, every input file, the
//! worker's source, the torch version and this crate's version, in `PTM_CACHE_DIR` or
//! else `<target dir>/ptm-cache`. A build whose models are all cached starts no Python.
//! What concerns the toolchain rather than a model (ExecuTorch's runner that verifies
//! `.pte` files, each interpreter's torch probe) is kept in `PTM_TOOLCHAIN_DIR`, else in
//! the cache too, so that a new cache need not compile the runner or probe torch again.
//!
//! # Sourcing Python and torch
//!
//! The interpreter is `PTM_PYTHON`, else `$VIRTUAL_ENV/bin/python`, else `.venv/bin/python`
//! in the crate's directory or any parent, else `python3` on PATH. `PTM_PYTHON_PTL` and
//! `PTM_PYTHON_PTE` come first for their format's models, for an app whose `.ptl` models
//! need an older torch than its `.pte` models (each format's runtime then links its
//! interpreter's libtorch or ExecuTorch). Its torch (and, for `.pte` models, its
//! ExecuTorch) must be a validated toolchain ([`ptm_toolchain::toolchains`]; the table
//! is in the repository's `docs/compatibility.md`); `PTM_ALLOW_UNTESTED_TORCH=1` accepts
//! another.
//!
//! # Environment variables
//!
//! | variable | effect |
//! |---|---|
//! | `PTM_PYTHON` | the Python interpreter to run the conversion with |
//! | `PTM_PYTHON_PTL`, `PTM_PYTHON_PTE` | the interpreter for one format's models, before `PTM_PYTHON` |
//! | `PTM_CACHE_DIR` | where converted models are cached |
//! | `PTM_TOOLCHAIN_DIR` | where ExecuTorch's runner and the torch probes are kept (default: the cache) |
//! | `PTM_ALLOW_UNTESTED_TORCH` | `1` converts with a torch or ExecuTorch outside the validated toolchains |
//! | `PTM_OFFLINE` | `1` builds only from the cache and the committed store (`.ptm/`) |
//! | `PTM_HEARTBEAT_SECONDS` | a model in one stage this long gets a warning, again each time as long (default 60) |
//! | `PTM_MODEL_TIMEOUT` | seconds after which a model's conversion is killed and the build fails (default: no limit) |
//! | `LIBTORCH` | the `ptm` runtime links this unpacked libtorch instead of the Python environment's |
//! | `PTM_LIBTORCH_LITE_DIR` | the `ptm` runtime links this mobile libtorch-lite (Android, iOS) |
//!
//! # Linking the runtime
//!
//! `bundle()` also gives the app's binaries and tests an rpath to the desktop libtorch
//! the `ptm` runtime linked ([`ptm_toolchain::libtorch::forward_rpath`]), so they run without
//! `LD_LIBRARY_PATH`.
#![deny(missing_docs)]

mod cache;
mod error;
mod fsutil;
mod hash;
mod key;
pub mod manifest;
mod pipeline;
mod progress;
mod sources;
mod store;
mod worker;

pub use error::Error;
pub use progress::Origin;
pub use progress::Progress;
pub use ptm_report::{Bundle, Format, ModelReport};

/// What `cargo ptm` shares with a build: the cache, the committed store and what a build
/// produced. Not for apps: a build script needs only [`bundle`] or [`Builder`], and this
/// module changes with ptm's releases as `cargo ptm` needs. Finding Python, libtorch and
/// ExecuTorch is the `ptm-toolchain` crate's; the cache entry's report is
/// `ptm_report::Converted`.
pub mod tooling {
    pub use crate::cache::{Cache, Entry};
    pub use crate::pipeline::{ModelOutcome, Outcome};

    /// The committed model store, `.ptm/` beside Cargo.toml.
    pub mod store {
        pub use crate::store::{Indexed, Miss, Store, Stored, STORE_DIR};
    }

    /// What invalidates an artifact, for ptm-build's own tests of the keys.
    #[doc(hidden)]
    pub use crate::key::key_of;
}

use ptm_toolchain::vars::{CARGO_MANIFEST_DIR, OUT_DIR, PTM_CACHE_DIR, PTM_HEARTBEAT_SECONDS, PTM_MODEL_TIMEOUT, PTM_OFFLINE, PTM_TOOLCHAIN_DIR, TARGET};
use ptm_toolchain::{cache_dir, env, executorch, libtorch};
use std::path::PathBuf;

/// Converts the models declared in the crate's Cargo.toml; the one call of a build.rs.
///
/// Equivalent to `Builder::new().bundle()`.
pub fn bundle() -> Result<Bundle, Error> {
    Builder::new().bundle()
}

/// Overrides for what [`bundle`] reads from the build script's environment.
///
/// ```no_run
/// fn main() -> Result<(), ptm_build::Error> {
///     ptm_build::Builder::new().cache_dir("/var/cache/ptm").bundle()?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    crate_dir: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    toolchain_dir: Option<PathBuf>,
    python: Option<PathBuf>,
    python_for: std::collections::BTreeMap<ptm_report::Format, PathBuf>,
    target: Option<String>,
    offline: bool,
    progress: Option<progress::Sink>,
    heartbeat: Option<std::time::Duration>,
    model_timeout: Option<std::time::Duration>,
}

impl Builder {
    /// A builder that reads everything from the environment cargo gives build scripts.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The directory holding the Cargo.toml to read (default: `CARGO_MANIFEST_DIR`).
    pub fn crate_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.crate_dir = Some(dir.into());
        self
    }

    /// Where `ptm/` is written (default: `OUT_DIR`).
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.out_dir = Some(dir.into());
        self
    }

    /// The conversion cache (default: `PTM_CACHE_DIR`, else `<target dir>/ptm-cache`).
    pub fn cache_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Where ExecuTorch's runner and the torch probes are kept, which concern the
    /// toolchain rather than a model (default: `PTM_TOOLCHAIN_DIR`, else the cache). Builds
    /// with caches of their own that share it compile the runner once.
    pub fn toolchain_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.toolchain_dir = Some(dir.into());
        self
    }

    /// The Python interpreter (default: see the crate docs).
    pub fn python(&mut self, path: impl Into<PathBuf>) -> &mut Builder {
        self.python = Some(path.into());
        self
    }

    /// The Python interpreter for `format`'s models alone, before [`Builder::python`]
    /// (default: `PTM_PYTHON_PTL` or `PTM_PYTHON_PTE`, then as for every model).
    ///
    /// ```no_run
    /// use ptm_build::Format;
    /// fn main() -> Result<(), ptm_build::Error> {
    ///     ptm_build::Builder::new().python_for(Format::Ptl, "/opt/torch-2.11/bin/python").bundle()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn python_for(&mut self, format: Format, path: impl Into<PathBuf>) -> &mut Builder {
        self.python_for.insert(format, path.into());
        self
    }

    /// Builds only from the cache and the committed store, as `PTM_OFFLINE=1` does.
    pub fn offline(&mut self, offline: bool) -> &mut Builder {
        self.offline = offline;
        self
    }

    /// How long a model may stay in one stage of its conversion before a warning says so,
    /// again each time as long (default: `PTM_HEARTBEAT_SECONDS`, else one minute).
    pub fn heartbeat(&mut self, interval: std::time::Duration) -> &mut Builder {
        self.heartbeat = Some(interval);
        self
    }

    /// How long a model's conversion may take before its process is killed and the
    /// build fails naming it (default: `PTM_MODEL_TIMEOUT`, else no limit).
    ///
    /// ```no_run
    /// fn main() -> Result<(), ptm_build::Error> {
    ///     ptm_build::Builder::new().model_timeout(std::time::Duration::from_secs(600)).bundle()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn model_timeout(&mut self, limit: std::time::Duration) -> &mut Builder {
        self.model_timeout = Some(limit);
        self
    }

    /// Sends what the build does to `callback` instead of printing the worker's lines
    /// to stderr: each model's steps, where its artifact came from, and every other
    /// line the conversion printed. `cargo ptm prepare` draws progress bars with it.
    pub fn progress(&mut self, callback: impl Fn(Progress<'_>) + Send + Sync + 'static) -> &mut Builder {
        self.progress = Some(progress::Sink::new(callback));
        self
    }

    /// Converts what the cache and the store lack, like [`Builder::bundle`], and says
    /// where each model came from.
    pub fn build(&self) -> Result<tooling::Outcome, Error> {
        let outcome = pipeline::build(&self.context()?)?;
        // The libtorch the runtime links runs the .ptl models; the .pte models may come
        // from another torch (PTM_PYTHON_PTE).
        let converted: Vec<(String, String)> =
            outcome.bundle.models.iter().filter(|m| m.format == Format::Ptl).map(|m| (m.name.clone(), m.torch.clone())).collect();
        libtorch::check_linked_torch(&converted)?;
        let exported: Vec<(String, String)> = outcome.bundle.models.iter().filter_map(|m| Some((m.name.clone(), m.executorch.clone()?))).collect();
        executorch::check_linked_executorch(&exported)?;
        libtorch::forward_rpath();
        Ok(outcome)
    }

    /// Builds for `target` (a Rust target triple) instead of cargo's `TARGET`.
    pub fn target(&mut self, triple: impl Into<String>) -> &mut Builder {
        self.target = Some(triple.into());
        self
    }

    /// Converts what the cache lacks and writes `ptm/` into the output directory.
    pub fn bundle(&self) -> Result<Bundle, Error> {
        Ok(self.build()?.bundle)
    }

    fn context(&self) -> Result<pipeline::Context, Error> {
        env::watch_all();
        let required = |value: &Option<PathBuf>, variable: &str| {
            value.clone().or_else(|| std::env::var_os(variable).map(PathBuf::from)).ok_or_else(|| Error::Environment {
                variable: variable.into(),
                fix: "call ptm_build::bundle() from build.rs, where cargo sets it, or set it with the Builder".into(),
            })
        };
        let crate_dir = required(&self.crate_dir, CARGO_MANIFEST_DIR)?;
        let out_dir = required(&self.out_dir, OUT_DIR)?;
        let cache_dir = self.cache_dir.clone().or_else(|| env::var(PTM_CACHE_DIR).map(PathBuf::from));
        let cache = cache::Cache::locate(cache_dir, &out_dir);
        let toolchain_dir = cache_dir::toolchain(self.toolchain_dir.clone().or_else(|| env::var(PTM_TOOLCHAIN_DIR).map(PathBuf::from)), cache.root());
        let target = self.target.clone().or_else(|| std::env::var(TARGET).ok().filter(|t| !t.is_empty()));
        let offline = self.offline || env::flag(PTM_OFFLINE);
        let mut supervision = worker::Supervision::default();
        if let Some(heartbeat) = self.heartbeat.map_or_else(|| env::seconds(PTM_HEARTBEAT_SECONDS), |h| Ok(Some(h)))? {
            supervision.heartbeat = heartbeat;
        }
        supervision.timeout = self.model_timeout.map_or_else(|| env::seconds(PTM_MODEL_TIMEOUT), |t| Ok(Some(t)))?;
        Ok(pipeline::Context {
            crate_dir,
            out_dir,
            cache,
            toolchain_dir,
            python: self.python.clone(),
            python_for: self.python_for.clone(),
            target,
            offline,
            progress: self.progress.clone(),
            supervision,
        })
    }
}
