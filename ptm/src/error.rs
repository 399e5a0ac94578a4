//! The runtime's error type: what failed, in which model, and torch's own words.
//!
//! `Error` is one pointer wide, so the `Result` of every forward stays as small as its
//! outputs; the details live in [`ErrorKind`].

use crate::DType;
use std::fmt;

/// Why a model could not be loaded or run; [`Error::kind`] tells which way.
#[derive(Clone, PartialEq)]
pub struct Error(Box<ErrorKind>);

impl Error {
    /// What went wrong, with its details.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error(Box::new(kind))
    }
}

/// The ways loading or running a model can fail.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// libtorch refused the file or bytes.
    Load {
        /// The file, or `embedded bytes of <model>`.
        what: String,
        /// torch's message.
        message: String,
    },
    /// The model raised while running.
    Run {
        /// The model's name.
        model: String,
        /// The method that ran.
        method: String,
        /// torch's message.
        message: String,
    },
    /// An input's shape does not fit the model.
    Shape {
        /// The model's name.
        model: String,
        /// The input's name.
        input: String,
        /// The declared shape, dynamic dimensions by name, e.g. `[batch, 16]`.
        expected: String,
        /// The shape the caller gave.
        given: Vec<usize>,
        /// Why it does not fit.
        problem: String,
    },
    /// An output did not have the element type the wrapper was generated for.
    OutputType {
        /// The model's name.
        model: String,
        /// The output's name.
        output: String,
        /// The type in the build's report.
        expected: DType,
        /// What the model returned, or `None` for a type ptm cannot hold.
        found: Option<DType>,
    },
    /// The model returned another number of tensors than its report says.
    OutputCount {
        /// The model's name.
        model: String,
        /// Outputs in the report.
        expected: usize,
        /// Tensors returned.
        found: usize,
    },
    /// A process-wide setting was refused.
    Setting {
        /// torch's message.
        message: String,
    },
    /// The file or bytes are not a Lite Interpreter archive (empty, truncated, not a zip,
    /// or a full TorchScript file).
    NotLite {
        /// The file, or `embedded bytes of <model>`.
        what: String,
        /// What it is instead.
        problem: String,
    },
    /// The bytes are not an ExecuTorch program.
    NotProgram {
        /// The file, or `embedded bytes of <model>`.
        what: String,
        /// What it is instead.
        problem: String,
    },
    /// The program was made for another ExecuTorch than the one linked (a newer release,
    /// or another schema).
    Incompatible {
        /// The file, or `embedded bytes of <model>`.
        what: String,
        /// What the program needs and what the runtime is.
        problem: String,
    },
    /// An output holds values its element type cannot (a bool that is neither 0 nor 1).
    OutputValue {
        /// The model's name.
        model: String,
        /// The output's name.
        output: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The file is another model than the wrapper was generated for.
    WrongModel {
        /// The file, or `embedded bytes of <model>`.
        what: String,
        /// The model the wrapper expected.
        expected: String,
        /// The key of the declaration the wrapper was generated from.
        expected_key: String,
        /// What the file says of itself.
        found: String,
    },
    /// Self-check reference data that cannot be used: damaged, not reference data, or
    /// recorded for another build of the model.
    Reference {
        /// Which reference data.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The model's outputs in this runtime are past the tolerance the build held them
    /// to, on the samples the build recorded: every output's figures, the failing ones
    /// with why.
    SelfCheck {
        /// What the self-check measured.
        check: crate::SelfCheck,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Load { what, message } => write!(f, "ptm: could not load {what}: {}", message.trim_end()),
            ErrorKind::Run { model, method, message } => write!(f, "ptm: model `{model}` failed in `{method}`: {}", message.trim_end()),
            ErrorKind::Shape { model, input, expected, given, problem } => {
                write!(f, "ptm: input `{input}` of model `{model}` has shape {given:?}, expected {expected}: {problem}")
            }
            ErrorKind::OutputType { model, output, expected, found } => {
                let found = found.map_or_else(|| "a type ptm cannot hold".to_string(), |d| d.to_string());
                write!(f, "ptm: output `{output}` of model `{model}` is {found}, but its wrapper was generated for {expected}; rebuild so the wrapper matches the model")
            }
            ErrorKind::OutputCount { model, expected, found } => {
                write!(f, "ptm: model `{model}` returned {found} tensors, its report lists {expected} outputs; rebuild so the wrapper matches the model")
            }
            ErrorKind::Setting { message } => write!(f, "ptm: {}", message.trim_end()),
            ErrorKind::NotLite { what, problem } | ErrorKind::NotProgram { what, problem } | ErrorKind::Incompatible { what, problem } => {
                write!(f, "ptm: could not load {what}: {problem}")
            }
            ErrorKind::OutputValue { model, output, problem } => write!(f, "ptm: output `{output}` of model `{model}` {problem}"),
            ErrorKind::WrongModel { what, expected, expected_key, found } => write!(
                f,
                "ptm: {what} holds {found}, not model `{expected}` (key {}...) that this wrapper was generated for: load the file the build wrote for `{expected}`",
                expected_key.chars().take(12).collect::<String>()
            ),
            ErrorKind::Reference { what, problem } => write!(f, "ptm: cannot use {what}: {problem}"),
            ErrorKind::SelfCheck { check } => {
                let failed: Vec<String> =
                    check.outputs.iter().filter_map(|o| o.problem.as_ref().map(|p| format!("output `{}`: {p}", o.name))).collect();
                write!(f, "ptm: model `{}` failed its self-check: {}\n{check}", check.model, failed.join("; "))
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

// Same text as Display: `fn main() -> Result<(), Box<dyn Error>>` prints Debug.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}
