//! What a model declaration is once read: the types every part of the manifest reader
//! builds, and the defaults. At the bottom of the manifest module with `ctx`.

pub use ptm_report::{Budget, Engine, Export, Format, Quantize};

use serde::Serialize;
use std::path::PathBuf;

/// One declared model, defaults applied. Its JSON form is part of the cache key,
/// so field order and names are stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDecl {
    /// snake_case name; the generated wrapper type is its CamelCase form.
    pub name: String,
    /// What the model ships as: a Lite Interpreter `.ptl` or an ExecuTorch `.pte`.
    pub format: Format,
    /// Where the model comes from.
    pub source: Source,
    /// Optional state_dict, relative to the crate.
    pub weights: Option<PathBuf>,
    /// Extra files or directories the Python source imports; hashed and tracked.
    pub depends: Vec<PathBuf>,
    /// How the module leaves Python (torch.export for every `.pte`).
    pub export: Export,
    /// Build a trace that torch warned about or that diverged on other inputs anyway,
    /// with a warning instead of an error.
    pub accept_trace_risk: bool,
    /// Which INT8 quantization runs.
    pub quantize: Quantize,
    /// Directory of calibration samples, relative to the crate.
    pub calibration: Option<PathBuf>,
    /// Modules kept in float by INT8 quantization (`named_modules()` names).
    pub quantize_skip: Vec<String>,
    /// Quantized engine: `qnnpack` (ARM) or `fbgemm` (x86 only); XNNPACK for a `.pte`.
    pub engine: Engine,
    /// Whether `optimize_for_mobile` runs (`.ptl`), or the XNNPACK delegate takes the
    /// graph (`.pte`).
    pub optimize: bool,
    /// `optimize_for_mobile` passes to skip (MobileOptimizerType names, lower case).
    pub optimize_blocklist: Vec<String>,
    /// Methods besides `forward` that must survive optimization.
    pub preserved_methods: Vec<String>,
    /// Report `generate_mobile_module_lints` findings as cargo warnings.
    pub lints: bool,
    /// The mobile runtime release the app links (`runtime = "1.10"`), if declared.
    pub runtime: Option<String>,
    /// Newest bytecode version that runtime reads; newer artifacts are backported.
    pub max_bytecode: Option<u32>,
    /// Embed the .ptl in the binary, or ship it as an asset file.
    pub embed: bool,
    /// Names of the outputs, in order; empty means `output0`, `output1`, ...
    pub outputs: Vec<String>,
    /// The inputs, in `forward` argument order.
    pub inputs: Vec<InputDecl>,
    /// How far each output of the converted model may drift from the source model's.
    pub tolerance: Tolerance,
    /// The figures past which the build fails. Not part of the key: a new budget judges
    /// the same artifact again.
    #[serde(skip)]
    pub budget: Budget,
    /// The table each budget limit was read from, by limit (`max_bytes` ->
    /// `package.metadata.models.review.target.'cfg(...)'.budget`): the key a budget
    /// error names.
    #[serde(skip)]
    pub budget_tables: std::collections::BTreeMap<&'static str, String>,
    /// Findings about the declaration that do not stop the build (paths outside the
    /// workspace); shown as cargo warnings, not part of the key.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A Python file and a callable in it that returns an `nn.Module`.
    Python {
        /// The .py file, relative to the crate.
        file: PathBuf,
        /// The function or class to call.
        callable: String,
    },
    /// A TorchScript archive saved by `torch.jit.save`.
    TorchScript {
        /// The archive, relative to the crate.
        file: PathBuf,
    },
}

impl Source {
    /// The file the model comes from.
    pub fn file(&self) -> &PathBuf {
        match self {
            Source::Python { file, .. } | Source::TorchScript { file } => file,
        }
    }
}

/// One input of `forward`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputDecl {
    /// Argument name in the generated wrapper.
    pub name: String,
    /// Element type, one of [`DTYPES`].
    pub dtype: String,
    /// Dimensions, outermost first.
    pub shape: Vec<ptm_report::Dim>,
    /// Half-open value range `[low, high)` for generated example inputs.
    pub range: Option<[f64; 2]>,
}

/// Tolerances for the build's comparison with the source model, applied to each output
/// against its own source output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tolerance {
    /// Largest allowed `max |converted - source| / max |source|` of a float output.
    pub relative: f64,
    /// Smallest allowed top-1 agreement of a classifier-shaped output, and the share of
    /// equal elements of an integer output of a quantized model.
    pub top1: f64,
}

/// Mobile Lite Interpreter releases and the newest bytecode version each reads:
/// `kMaxSupportedBytecodeVersion` in `caffe2/serialize/versions.h` of that release's
/// torch (`kProducedBytecodeVersion` in 1.8 and 1.9, which had no maximum). Read from
/// the headers of the PyPI wheels; docs/manifest.md lists them.
pub const RUNTIMES: &[(&str, u32)] = &[("1.8", 4), ("1.9", 5), ("1.10", 7), ("1.11", 8), ("1.12", 9), ("1.13", 9)];

/// Element types an input may declare.
pub const DTYPES: &[&str] = &["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"];

/// Default tolerances: float models must match closely, quantized ones generously.
pub fn default_tolerance(quantize: Quantize) -> Tolerance {
    match quantize {
        Quantize::None => Tolerance { relative: 1e-3, top1: 0.99 },
        Quantize::Dynamic | Quantize::Static => Tolerance { relative: 0.25, top1: 0.9 },
    }
}

/// `review_model` -> `ReviewModel`: the wrapper type the macro generates.
pub use ptm_report::type_name;
