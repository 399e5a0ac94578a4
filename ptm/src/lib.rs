//! Runs PyTorch models in the Lite Interpreter (`.ptl`, feature `lite`, the default) or
//! in ExecuTorch's native runtime (`.pte`, feature `executorch`, no libtorch), through
//! typed wrappers generated from what `ptm-build` converted at compile time.
//!
//! ```ignore
//! ptm::include_models!();
//!
//! let review = Review::load()?;                 // the embedded .ptl
//! let scores = review.forward(&token_ids)?;     // token_ids: [i64; 128]
//! println!("{:?} {:?}", scores.logits.shape(), scores.logits.data());
//! ```
//!
//! For each model declared under `[package.metadata.models.<name>]` the macro
//! generates a type named after it, with `load()` (embedded models), `load_from(path)`,
//! and a `forward` whose arguments are named and typed as the model's inputs: a fixed
//! shape is a `&[T; N]` checked by the compiler, a shape with a dynamic dimension a
//! [`TensorRef`] checked when the model runs.
//!
//! # Linking
//!
//! On a desktop, ptm links the libtorch of the Python environment that converted the
//! models (`PTM_PYTHON`, `VIRTUAL_ENV`, a `.venv` above the target directory, or
//! `python3`), or `LIBTORCH`; apps find it at run time through an rpath that
//! `ptm_build::bundle()` sets. Android and iOS builds link PyTorch's mobile
//! libtorch-lite from `PTM_LIBTORCH_LITE_DIR` (see docs/device.md). The `executorch`
//! feature links ExecuTorch the same way: the converting environment's executorch
//! package, or `PTM_EXECUTORCH_DIR`; without the `lite` feature no libtorch is linked.
#![deny(missing_docs)]

#[cfg(feature = "lite")]
mod archive;
mod backend;
mod dtype;
mod error;
mod ffi;
mod file;
mod identity;
mod info;
#[cfg(feature = "lite")]
mod module;
mod options;
#[cfg(feature = "executorch")]
mod program;
mod self_check;
mod tensor;
mod threads;

#[doc(hidden)]
pub mod __private;

pub use dtype::{DType, Element};
pub use error::{Error, ErrorKind};
pub use identity::Identity;
pub use info::{Drift, ModelInfo, OutputDrift};
#[cfg(feature = "lite")]
pub use module::Module;
pub use options::{Engine, Options};
#[cfg(feature = "executorch")]
pub use program::Program;
pub use self_check::{OutputCheck, SelfCheck};
pub use tensor::{Input, Output, Tensor, TensorRef, MAX_RANK};
pub use threads::{num_threads, set_num_threads, MAX_THREADS, PTM_NUM_THREADS};

/// Generates a typed wrapper per model of this crate's `[package.metadata.models]`.
///
/// For a model declared as `[package.metadata.models.review]` it expands to `pub struct
/// Review` with `load()` (when embedded), `load_from(path)` and a typed `forward`, and
/// `pub struct ReviewOutput` with one field per output, each documented with the model's
/// shapes, quantization, sizes and measured drift. It takes no arguments: the models come
/// from the report the build script wrote (`$OUT_DIR/ptm/models.json`). The generated
/// code names this crate through `$crate`, so a renamed dependency
/// (`torch_rt = { package = "ptm", ... }`, then `torch_rt::include_models!()`) works.
#[macro_export]
macro_rules! include_models {
    ($($arguments:tt)*) => {
        $crate::__private::include_models!($crate; $($arguments)*);
    };
}

/// Which libtorch this build links, as chosen by the build script ("none" without the
/// `lite` feature).
pub const LIBTORCH: &str = env!("PTM_LIBTORCH_ORIGIN");

/// Which ExecuTorch this build links, as chosen by the build script ("none" without the
/// `executorch` feature).
pub const EXECUTORCH: &str = env!("PTM_EXECUTORCH_ORIGIN");
