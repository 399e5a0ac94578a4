//! The one error type of ptm-toolchain.
//!
//! Every message names what is at fault (the interpreter and what chose it, the
//! directory, the variable) and lists every way to fix it. `Debug` prints the same text
//! as `Display`, so a build script's `main` returning this error ends with the message,
//! never a panic backtrace. ptm-build carries it whole (`ptm_build::Error::Toolchain`),
//! so a conversion shows the same text.

use std::fmt;
use std::path::PathBuf;

/// Why the Python, torch, libtorch or ExecuTorch a build needs could not be used.
#[non_exhaustive]
pub enum Error {
    /// No usable Python with torch, libtorch or ExecuTorch was found, or the one found
    /// is the wrong release.
    Unusable {
        /// Which of them.
        tool: Tool,
        /// What went wrong, with what was tried and what chose it.
        problem: String,
        /// Every way to fix it.
        remedies: Vec<String>,
    },
    /// An environment variable ptm reads holds a value it cannot use.
    Variable {
        /// The variable.
        variable: String,
        /// Its value.
        found: String,
        /// What it must hold instead.
        expected: String,
    },
    /// The process environment is not that of a build script, or lacks a variable this
    /// build needs.
    Environment {
        /// The variable that is missing or wrong.
        variable: String,
        /// What to do.
        fix: String,
    },
    /// A file-system operation failed.
    Io {
        /// What ptm was doing.
        action: String,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What an [`Error::Unusable`] is about, for code that handles one case: a missing
/// Python, say, which a build from a committed store can do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tool {
    /// The Python interpreter that converts, or its torch.
    Python,
    /// The libtorch the `ptm` runtime links, or its agreement with the converting torch.
    Libtorch,
    /// The ExecuTorch the `ptm` runtime's `executorch` backend links.
    Executorch,
}

impl Error {
    /// A failed file-system operation: `action` (a verb, "write") on `path`.
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { action: action.into(), path: path.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unusable { problem, remedies, .. } => {
                writeln!(f, "ptm: {problem}")?;
                write!(f, "  fix, any of:")?;
                for remedy in remedies {
                    write!(f, "\n    - {remedy}")?;
                }
                Ok(())
            }
            Error::Variable { variable, found, expected } => {
                write!(f, "ptm: environment variable {variable} is `{found}`\n  expected: {expected}\n  fix:      set {variable} to {expected}, or unset it")
            }
            Error::Environment { variable, fix } => {
                write!(f, "ptm: environment variable {variable} is not set\n  fix:      {fix}")
            }
            Error::Io { action, path, source } => {
                write!(f, "ptm: could not {action} {}: {source}", path.display())
            }
        }
    }
}

// Same text as Display: `main() -> Result<(), Error>` prints Debug.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
