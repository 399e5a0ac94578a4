//! The report ptm-build writes to `$OUT_DIR/ptm/models.json` and ptm-macros reads.
//!
//! One crate owns the schema so that the writer and the reader cannot drift apart.
//! [`SCHEMA`] changes whenever a field changes meaning; the macro refuses a report
//! written by another schema, with a message naming both versions.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// Version of the models.json layout.
pub const SCHEMA: u32 = 2;

/// File name of the report inside `$OUT_DIR/ptm/`.
pub const REPORT_FILE: &str = "models.json";

/// The extension of a model's self-check reference data beside its artifact
/// (`review.ptl` and `review.reference`).
pub const REFERENCE_EXTENSION: &str = "reference";

/// Everything one build script produced for one crate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    /// [`SCHEMA`] of the writer.
    pub schema: u32,
    /// Version of the ptm-build crate that wrote this file.
    pub ptm_build: String,
    /// One entry per declared model, sorted by name.
    pub models: Vec<ModelReport>,
}

/// What ptm knows about one converted model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelReport {
    /// The declared name (`[package.metadata.models.<name>]`), snake_case.
    pub name: String,
    /// The `source` value as declared, relative to the crate.
    pub source: String,
    /// The artifact's format: a Lite Interpreter `.ptl` or an ExecuTorch `.pte`.
    #[serde(default)]
    pub format: Format,
    /// File name of the artifact, relative to the directory holding models.json.
    pub artifact: String,
    /// sha256 of the artifact, hex.
    pub artifact_sha256: String,
    /// File name of the self-check's reference data (the samples the build verified on,
    /// the source model's outputs and the tolerance), beside the artifact; `None` for a
    /// conversion made before ptm recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// sha256 of the reference data, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_sha256: Option<String>,
    /// Whether the app embeds the artifact (`include_bytes!`) or loads it from a path.
    pub embed: bool,
    /// How the model left Python: TorchScript (script, trace) or torch.export.
    pub export: Export,
    /// Which INT8 quantization ran.
    pub quantize: Quantize,
    /// The quantized kernels the model was converted for (XNNPACK for a `.pte`).
    pub engine: Engine,
    /// Whether `optimize_for_mobile` ran (`.ptl`), or the XNNPACK delegate took the
    /// graph (`.pte`).
    pub optimize: bool,
    /// The model's inputs, in call order.
    pub inputs: Vec<TensorSpec>,
    /// The model's outputs, in order, as observed on the example inputs.
    pub outputs: Vec<TensorSpec>,
    /// Size in bytes after each step, in pipeline order, each as ptm writes a .ptl
    /// (normalized, without source-range records), so the figures do not depend on
    /// the machine or directory that converted.
    pub sizes: Vec<StageSize>,
    /// Operators the runtime itself must provide, sorted: for a `.ptl` every operator
    /// the Lite Interpreter runs (`_export_operator_list`); for a `.pte` those left
    /// outside the XNNPACK delegate.
    pub operators: Vec<String>,
    /// Bytecode version of the saved .ptl (0 for a `.pte`).
    #[serde(default)]
    pub bytecode_version: u32,
    /// Output drift against the source model after each stage.
    pub drift: Vec<StageDrift>,
    /// Torch version that converted the model.
    pub torch: String,
    /// The Python interpreter this build converts the model's format with, and what
    /// chose it (`/venv/bin/python (PTM_PYTHON_PTE)`): an app whose formats need two torch
    /// releases has two. Absent when no Python was used (a build from the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// Content hash of everything that went into the artifact.
    pub cache_key: String,
    /// Calibration samples static quantization read (0 without static quantization).
    #[serde(default)]
    pub calibration_samples: u32,
    /// Findings that did not fail the build (mobile lints, observers without data); the
    /// build repeats them as cargo warnings, also when the model comes from the cache.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// What `accept_trace_risk = true` accepted: the trace gate's findings. Printed when
    /// the model converts and shown in the wrapper's docs, not repeated on every build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_risk: Option<String>,
    /// Each quantized layer's output, float against INT8 (torch's numeric suite for a
    /// `.ptl`, the float and INT8 PT2E graphs run node by node for a `.pte`), worst
    /// first; empty for float models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerDrift>,
    /// Why a quantized model has no per-layer figures (a TorchScript source, a model
    /// torch.fx cannot trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_unavailable: Option<String>,
    /// For a `.pte`: the ExecuTorch release that exported it (`1.5.1+cpu`). The app's
    /// build refuses a runtime that links an older ExecuTorch, and the runtime refuses
    /// the program at load when the build could not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executorch: Option<String>,
    /// For a `.pte`: the program's schema identifier (`ET12`, its FlatBuffer file
    /// identifier), which the linked ExecuTorch must read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_schema: Option<String>,
    /// For a `.pte`: how many of its graph's operators the XNNPACK delegate runs (counted
    /// inside each delegated subgraph) and how many stay outside it, on ExecuTorch's
    /// portable kernels; a build warns when a quarter or more stay outside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_operators: Option<u32>,
    /// See [`ModelReport::delegated_operators`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undelegated_operators: Option<u32>,
    /// For a `.pte`: the bytes ExecuTorch's memory plan reserves for the program's
    /// activations (the sum of its execution plan's planned buffers), which a load
    /// allocates; the weights are in [`ModelReport::sizes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_memory: Option<u64>,
    /// The limits the manifest's `budget` table sets, which the build held this model to.
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
    /// What the artifact was made from and with, for release review.
    #[serde(default)]
    pub provenance: Provenance,
}

/// What a model's artifact was made from and with, beside [`ModelReport::torch`] and
/// [`ModelReport::executorch`]. A file's digest is its sha256 (what `sha256sum` prints);
/// a directory's is the sha256 over each file's path and sha256, in path order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// The Python source or TorchScript archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    /// The state_dict, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// The `depends` files and directories, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_sha256: Vec<String>,
    /// The calibration samples, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_sha256: Option<String>,
    /// The Python version that converted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    /// The torchao version installed beside that torch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torchao: Option<String>,
}

/// A model's budget: the figures past which its build fails (`[package.metadata.models.<name>.budget]`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Budget {
    /// Largest artifact, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Largest planned memory of a `.pte`, in bytes ([`ModelReport::planned_memory`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<u64>,
    /// Smallest top-1 agreement of any classifier-shaped output in the runtime stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_top1: Option<f64>,
    /// Largest relative error of any float output in the runtime stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drift: Option<f64>,
}

impl Budget {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Budget::default()
    }

    /// Each limit set, against a model's figures: the artifact's bytes, its planned
    /// memory, the runtime stage's worst top-1 agreement and worst relative error.
    pub fn checks(&self, bytes: Option<u64>, planned_memory: Option<u64>, top1: Option<f64>, relative: Option<f64>) -> Vec<BudgetCheck> {
        let checks = [
            ("max_bytes", self.max_bytes.map(|b| b as f64), bytes.map(|b| b as f64)),
            ("max_memory", self.max_memory.map(|b| b as f64), planned_memory.map(|b| b as f64)),
            ("min_top1", self.min_top1, top1),
            ("max_drift", self.max_drift, relative),
        ];
        checks.into_iter().filter_map(|(key, limit, figure)| limit.map(|limit| BudgetCheck { key, limit, figure })).collect()
    }
}

/// One quantized layer's output in the quantized model against the float model, on the
/// same samples (torch.ao.ns for a `.ptl`; for a `.pte`, the layer's node in the INT8
/// PT2E graph against the same node in the float one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerDrift {
    /// The module's name in the source model (`model.named_modules()`), the name
    /// `quantize_skip` takes.
    pub name: String,
    /// The quantized module's type (`Linear`, `Conv2d`, `ConvReLU2d`, `Embedding`, ...).
    pub kind: String,
    /// Signal-to-quantization-noise ratio of its output in dB, worst sample: higher is
    /// better; below about 20 dB a layer loses visibly.
    pub sqnr_db: f64,
    /// Largest absolute difference over the largest float value, worst sample.
    pub relative: f64,
}

/// Declares a closed set of words as an enum that serializes as its snake_case word
/// (what Cargo.toml and models.json say) and displays the same.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// The word Cargo.toml and models.json use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares with the word, as Cargo.toml spells it.
        impl PartialEq<&str> for $name {
            fn eq(&self, word: &&str) -> bool {
                self.as_str() == *word
            }
        }
    };
}

words!(
    /// How the model becomes TorchScript.
    Export {
        /// `torch.jit.script`: keeps control flow; needs type-annotated code.
        Script = "script",
        /// `torch.jit.trace` on the example inputs: records one execution path.
        Trace = "trace",
        /// `torch.export` (how every `.pte` leaves Python): guards on shapes, fails on
        /// control flow that depends on values.
        TorchExport = "torch.export",
    }
);

words!(
    /// Which INT8 quantization runs.
    Quantize {
        /// Float model as exported.
        None = "none",
        /// Dynamic INT8 weights for Linear/LSTM/GRU, 8-bit weight-only embeddings.
        Dynamic = "dynamic",
        /// Post-training static INT8 with calibration samples.
        Static = "static",
    }
);

words!(
    /// Quantized kernel library the model is converted for.
    Engine {
        /// ARM (and x86) kernels; what Android and iOS run.
        Qnnpack = "qnnpack",
        /// x86-only kernels.
        Fbgemm = "fbgemm",
        /// ExecuTorch's XNNPACK delegate (every `.pte`).
        Xnnpack = "xnnpack",
    }
);

words!(
    /// A step of the conversion, after which sizes and drift are measured.
    Stage {
        /// The source model (its parameters and buffers).
        Source = "source",
        /// After export to TorchScript.
        Exported = "exported",
        /// After INT8 quantization.
        Quantized = "quantized",
        /// After `optimize_for_mobile`.
        Optimized = "optimized",
        /// The saved .ptl.
        Ptl = "ptl",
        /// The .ptl as the Lite Interpreter runs it.
        Lite = "lite",
        /// The saved .pte.
        Pte = "pte",
        /// The .pte as ExecuTorch's native runtime runs it.
        Executorch = "executorch",
    }
);

words!(
    /// The artifact a model ships as.
    Format {
        /// A PyTorch Mobile Lite Interpreter file.
        Ptl = "ptl",
        /// An ExecuTorch program with the XNNPACK delegate.
        Pte = "pte",
    }
);

impl Default for Format {
    /// What a declaration without `format` gets, and what reports before it recorded.
    fn default() -> Format {
        Format::Ptl
    }
}

impl Format {
    /// The stage at which the artifact ran in the runtime an app links.
    pub fn runtime_stage(self) -> Stage {
        match self {
            Format::Ptl => Stage::Lite,
            Format::Pte => Stage::Executorch,
        }
    }

    /// What runs it, for messages and docs.
    pub fn runtime_name(self) -> &'static str {
        match self {
            Format::Ptl => "the Lite Interpreter",
            Format::Pte => "ExecuTorch",
        }
    }
}

impl ModelReport {
    /// The drift measured in the runtime an app links, if the report has it.
    pub fn runtime_drift(&self) -> Option<&StageDrift> {
        let stage = self.format.runtime_stage();
        self.drift.iter().find(|d| d.stage == stage)
    }

    /// Each limit its budget sets, against the model's figure.
    pub fn budget_checks(&self) -> Vec<BudgetCheck> {
        let drift = self.runtime_drift();
        self.budget.checks(
            self.sizes.last().map(|s| s.bytes),
            self.planned_memory,
            drift.and_then(StageDrift::worst_top1),
            drift.and_then(StageDrift::worst_relative),
        )
    }
}

/// A size as people read it: `5.06 MB`, `12.3 kB`, `512 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    match bytes as f64 {
        b if b >= 1e6 => format!("{:.2} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        _ => format!("{bytes} bytes"),
    }
}

/// One limit of a model's budget, against the model's figure.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetCheck {
    /// The budget's key: `max_bytes`, `max_memory`, `min_top1` or `max_drift`.
    pub key: &'static str,
    /// The limit.
    pub limit: f64,
    /// The model's figure: the artifact's bytes, its planned memory, the runtime stage's
    /// worst top-1 agreement or relative error; none where the model has no such figure.
    pub figure: Option<f64>,
}

impl BudgetCheck {
    /// Whether the figure exists and is within the limit.
    pub fn passed(&self) -> bool {
        match self.figure {
            Some(figure) if self.key.starts_with("min_") => figure >= self.limit,
            Some(figure) => figure <= self.limit,
            None => false,
        }
    }

    /// The figure, as a person reads it, or why there is none.
    pub fn figure_text(&self) -> String {
        match self.figure {
            Some(figure) => self.format(figure),
            None => match self.key {
                "max_memory" => "no planned memory recorded".into(),
                "min_top1" => "no classifier-shaped output".into(),
                "max_drift" => "no float output".into(),
                _ => "no figure".into(),
            },
        }
    }

    /// The limit, as a person reads it.
    pub fn limit_text(&self) -> String {
        self.format(self.limit)
    }

    fn format(&self, value: f64) -> String {
        match self.key {
            "max_bytes" | "max_memory" if value >= 1e3 => format!("{} ({} bytes)", human_bytes(value as u64), value as u64),
            "max_bytes" | "max_memory" => human_bytes(value as u64),
            "min_top1" => format!("{value:.3}"),
            _ if value == 0.0 || value >= 1e-3 => format!("{value:.4}"),
            _ => format!("{value:.2e}"),
        }
    }
}

/// An input or output tensor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorSpec {
    /// Argument or field name.
    pub name: String,
    /// Element type: float32, float64, float16, int64, int32, int16, int8, uint8, bool.
    pub dtype: String,
    /// Dimensions, outermost first.
    pub shape: Vec<Dim>,
}

/// One dimension of a tensor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Dim {
    /// A size known at build time.
    Fixed(u64),
    /// A size known only at run time; `example` is the size used at build time. A match
    /// that lists the fields needs `..`: more may come.
    Dynamic {
        /// The dimension's name, shared by every input that uses it.
        name: String,
        /// The size the build used for its example inputs.
        example: u64,
        /// The smallest size allowed, when the declaration gives a range
        /// (`"tokens=32:1..128"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        /// The largest size allowed, when the declaration gives a range: a `.pte` was
        /// exported for sizes up to it and plans its memory for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
        /// When the declaration gives one (`"height=64:32..128 step 16"`), the sizes
        /// allowed are the multiples of it in the range: a model whose strides or
        /// pooling take only such sizes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
    },
}

impl Dim {
    /// The size used at build time.
    pub fn example(&self) -> u64 {
        match self {
            Dim::Fixed(n) => *n,
            Dim::Dynamic { example, .. } => *example,
        }
    }

    /// A dynamic dimension without a declared range.
    pub fn dynamic(name: impl Into<String>, example: u64) -> Dim {
        Dim::Dynamic { name: name.into(), example, min: None, max: None, step: None }
    }

    /// The step between allowed sizes of a dynamic dimension: 1 unless declared.
    pub fn step(&self) -> u64 {
        match self {
            Dim::Dynamic { step: Some(step), .. } => *step,
            _ => 1,
        }
    }

    /// The declared range `(min, max)` of a dynamic dimension, when it has one (a bound
    /// left out is 1, or unbounded above).
    pub fn range(&self) -> Option<(u64, u64)> {
        match self {
            Dim::Dynamic { min, max, .. } if min.is_some() || max.is_some() => Some((min.unwrap_or(1), max.unwrap_or(u64::MAX))),
            _ => None,
        }
    }
}

/// Size of the model after one pipeline step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageSize {
    /// The step it was measured after.
    pub stage: Stage,
    /// Bytes of the model serialized at that step.
    pub bytes: u64,
}

/// How far the outputs moved from the source model's after one stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageDrift {
    /// The stage whose module was measured.
    pub stage: Stage,
    /// How many input samples were compared.
    pub samples: u32,
    /// Each output against its own source output, in output order.
    pub outputs: Vec<OutputDrift>,
}

/// One output after one stage, against the same output of the source model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputDrift {
    /// The output's name.
    pub name: String,
    /// Largest absolute difference over every element of every sample.
    pub max_abs: f64,
    /// Largest absolute value of the source output: the scale `relative` divides by.
    pub source_max_abs: f64,
    /// `max_abs / source_max_abs`, for float outputs; `None` for integer and bool outputs.
    pub relative: Option<f64>,
    /// Share of rows whose arg-max agrees, for classifier-shaped float outputs.
    pub top1: Option<f64>,
    /// How many rows `top1` counts: the runtime stage compares up to 200, as many as the
    /// model's cost allows, so that one flipped row does not decide a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_rows: Option<u64>,
    /// The 95% Wilson interval of `top1` over those rows: where the agreement over every
    /// input lies, given the rows compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_interval: Option<[f64; 2]>,
    /// Elements that differ, for integer and bool outputs (compared exactly).
    pub mismatched: Option<u64>,
    /// Elements compared, over every sample.
    pub elements: u64,
}

impl StageDrift {
    /// The largest relative error of any float output.
    pub fn worst_relative(&self) -> Option<f64> {
        self.outputs.iter().filter_map(|o| o.relative).reduce(f64::max)
    }

    /// The lowest top-1 agreement of any classifier-shaped output.
    pub fn worst_top1(&self) -> Option<f64> {
        self.outputs.iter().filter_map(|o| o.top1).reduce(f64::min)
    }

    /// The largest absolute difference of any output.
    pub fn max_abs(&self) -> f64 {
        self.outputs.iter().map(|o| o.max_abs).fold(0.0, f64::max)
    }
}

/// The wrapper type name `ptm::include_models!()` generates for a model:
/// `review_model_2` -> `ReviewModel2`.
pub fn type_name(model: &str) -> String {
    model
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

impl Bundle {
    /// Parses a models.json document.
    pub fn from_json(text: &str) -> Result<Bundle, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Pretty JSON with a trailing newline, stable for identical input.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("report serializes");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_round_trip_as_number_or_object() {
        let spec = TensorSpec { name: "ids".into(), dtype: "int64".into(), shape: vec![Dim::Fixed(1), Dim::dynamic("tokens", 128)] };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(text, r#"{"name":"ids","dtype":"int64","shape":[1,{"name":"tokens","example":128}]}"#);
        assert_eq!(serde_json::from_str::<TensorSpec>(&text).unwrap(), spec);
        assert_eq!(spec.shape[1].example(), 128);
        assert_eq!(spec.shape[1].range(), None);
    }

    #[test]
    fn a_range_is_written_only_when_declared() {
        let ranged = Dim::Dynamic { name: "tokens".into(), example: 32, min: Some(1), max: Some(128), step: None };
        let text = serde_json::to_string(&ranged).unwrap();
        assert_eq!(text, r#"{"name":"tokens","example":32,"min":1,"max":128}"#);
        assert_eq!(serde_json::from_str::<Dim>(&text).unwrap(), ranged);
        assert_eq!(ranged.range(), Some((1, 128)));
        // A models.json written before ranges existed still reads.
        assert_eq!(serde_json::from_str::<Dim>(r#"{"name":"tokens","example":32}"#).unwrap(), Dim::dynamic("tokens", 32));
    }

    #[test]
    fn a_budget_check_passes_within_its_limit_and_fails_without_a_figure() {
        let check = |key, limit, figure| BudgetCheck { key, limit, figure };
        assert!(check("max_bytes", 100.0, Some(100.0)).passed() && !check("max_bytes", 100.0, Some(101.0)).passed());
        assert!(check("min_top1", 0.9, Some(0.95)).passed() && !check("min_top1", 0.9, Some(0.85)).passed());
        assert!(!check("max_memory", 1e6, None).passed(), "a limit with nothing to hold it to fails");
        assert_eq!(check("max_bytes", 5_061_234.0, None).limit_text(), "5.06 MB (5061234 bytes)");
        assert_eq!(check("max_memory", 2048.0, None).limit_text(), "2.0 kB (2048 bytes)");
        assert_eq!(check("max_memory", 1e6, None).figure_text(), "no planned memory recorded");
        assert_eq!(check("min_top1", 0.9, Some(0.875)).figure_text(), "0.875");
        // An empty budget is left out of models.json; a set one round-trips.
        let budget = Budget { max_bytes: Some(6_000_000), min_top1: Some(0.9), ..Budget::default() };
        assert!(Budget::default().is_empty() && !budget.is_empty());
        assert_eq!(serde_json::to_string(&budget).unwrap(), r#"{"max_bytes":6000000,"min_top1":0.9}"#);
    }
}

/// What the worker measured for one converted model: a cache entry's `report.json`, read
/// back by ptm-build and by `cargo ptm`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Converted {
    /// Inputs as declared.
    pub inputs: Vec<TensorSpec>,
    /// Outputs as observed on the example inputs.
    pub outputs: Vec<TensorSpec>,
    /// Size after each step.
    pub sizes: Vec<StageSize>,
    /// Operators the Lite Interpreter needs.
    pub operators: Vec<String>,
    /// Bytecode version of the .ptl.
    pub bytecode_version: u32,
    /// Drift against the source model after each stage.
    pub drift: Vec<StageDrift>,
    /// torch.__version__ of the worker.
    pub torch: String,
    /// Calibration samples static quantization read.
    #[serde(default)]
    pub calibration_samples: u32,
    /// Conversion time.
    pub seconds: f64,
    /// Time per pipeline stage, in order (kept in the cache entry, not in models.json,
    /// which must not vary between builds).
    #[serde(default)]
    pub stage_seconds: Vec<StageSeconds>,
    /// Findings that do not fail the build: mobile lints, observers without data.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// What an accepted trace risk accepted.
    #[serde(default)]
    pub trace_risk: Option<String>,
    /// Each quantized layer against the float model, worst first.
    #[serde(default)]
    pub layers: Vec<LayerDrift>,
    /// Why a quantized model has no per-layer figures.
    #[serde(default)]
    pub layers_unavailable: Option<String>,
    /// The ExecuTorch release that exported a `.pte` (`1.5.1+cpu`); none for a `.ptl`.
    #[serde(default)]
    pub executorch: Option<String>,
    /// A `.pte`'s operators inside the XNNPACK delegate; none for a `.ptl`.
    #[serde(default)]
    pub delegated_operators: Option<u32>,
    /// A `.pte`'s operators outside the delegate, run on ExecuTorch's portable kernels.
    #[serde(default)]
    pub undelegated_operators: Option<u32>,
    /// A `.pte`'s planned memory in bytes; none for a `.ptl`, or a conversion that did not record it.
    #[serde(default)]
    pub planned_memory: Option<u64>,
    /// The Python version that converted it.
    #[serde(default)]
    pub python_version: Option<String>,
    /// The torchao version installed beside that torch, if any.
    #[serde(default)]
    pub torchao: Option<String>,
}

/// How long one stage of a conversion took.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageSeconds {
    /// `load`, `export`, `quantize`, `optimize`, `save`, `backport` or `verify`.
    pub stage: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}
