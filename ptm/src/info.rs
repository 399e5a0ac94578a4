//! What the build knew about a model, kept in the binary by the generated wrapper.

/// Facts of one model's conversion, from the build's models.json.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    /// The declared name.
    pub name: &'static str,
    /// The declared source, relative to the crate.
    pub source: &'static str,
    /// `script` or `trace`.
    pub export: &'static str,
    /// `none`, `dynamic` or `static`.
    pub quantize: &'static str,
    /// The quantized engine the model was converted for.
    pub engine: &'static str,
    /// Whether the .ptl is embedded in the binary.
    pub embed: bool,
    /// sha256 of the .ptl, hex.
    pub sha256: &'static str,
    /// Size in bytes after each step of the conversion, the last being the .ptl.
    pub sizes: &'static [(&'static str, u64)],
    /// Each output's difference against the source model per stage, with top-1
    /// agreement for classifier-shaped outputs.
    pub drift: &'static [Drift],
    /// Operators the model needs from the Lite Interpreter.
    pub operators: &'static [&'static str],
    /// Bytecode version of the .ptl.
    pub bytecode_version: u32,
    /// The torch that converted it.
    pub torch: &'static str,
}

/// How far one stage's outputs moved from the source model's, each output against its
/// own source output.
#[derive(Debug, Clone, Copy)]
pub struct Drift {
    /// `exported`, `quantized`, `optimized` or `lite`.
    pub stage: &'static str,
    /// Samples compared.
    pub samples: u32,
    /// One per output, in output order.
    pub outputs: &'static [OutputDrift],
    /// The largest absolute difference of any output.
    #[deprecated(since = "0.1.0", note = "drift is measured per output: read `outputs` or `output(name)`")]
    pub max_abs: f64,
    /// The largest relative difference of any float output (0 when there is none).
    #[deprecated(since = "0.1.0", note = "drift is measured per output: read `outputs` or `output(name)`")]
    pub relative: f64,
    /// The lowest top-1 agreement of any classifier-shaped output.
    #[deprecated(since = "0.1.0", note = "drift is measured per output: read `outputs` or `output(name)`")]
    pub top1: Option<f64>,
}

/// One output after one stage.
#[derive(Debug, Clone, Copy)]
pub struct OutputDrift {
    /// The output's name.
    pub name: &'static str,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// `max_abs` over the largest absolute source value, for float outputs.
    pub relative: Option<f64>,
    /// Share of rows whose arg-max agrees, for classifier-shaped outputs.
    pub top1: Option<f64>,
    /// Elements that differ, for integer and bool outputs.
    pub mismatched: Option<u64>,
}

impl Drift {
    /// The figures of the output named `name`.
    pub fn output(&self, name: &str) -> Option<&OutputDrift> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

impl ModelInfo {
    /// Bytes at the named step (`source`, `exported`, `ptl`, ...).
    pub fn size(&self, stage: &str) -> Option<u64> {
        self.sizes.iter().find(|(name, _)| *name == stage).map(|&(_, bytes)| bytes)
    }

    /// Bytes of the .ptl.
    pub fn artifact_bytes(&self) -> u64 {
        self.sizes.last().map_or(0, |&(_, bytes)| bytes)
    }

    /// The drift measured after `stage`.
    pub fn drift(&self, stage: &str) -> Option<&Drift> {
        self.drift.iter().find(|d| d.stage == stage)
    }
}
