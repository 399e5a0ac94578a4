//! The one error type of ptm-build.
//!
//! Every message a user can cause names what is at fault (the model, the Cargo.toml
//! key or the file), what was found, what was expected and how to fix it. `Debug`
//! prints the same text as `Display`, so `fn main() -> Result<(), ptm_build::Error>`
//! in build.rs ends with the message, never a panic backtrace.

use ptm_toolchain::vars::PTM_OFFLINE;
use std::fmt;
use std::path::PathBuf;

/// A place in the manifest, 1-based as editors count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Line number.
    pub line: usize,
    /// Column of the first character pointed at, in characters.
    pub column: usize,
    /// The whole line.
    pub text: String,
    /// How many characters of it are pointed at (at least 1).
    pub width: usize,
}

/// Why a build could not produce its models. Kept under 128 bytes (boxed strings where
/// a variant would outgrow it), so that `fn main() -> Result<(), ptm_build::Error>` in a
/// build script passes clippy's `result_large_err`.
#[non_exhaustive]
pub enum Error {
    /// A value under `[package.metadata.models]` is wrong.
    Manifest {
        /// The Cargo.toml that holds it.
        manifest: PathBuf,
        /// Full dotted key, e.g. `package.metadata.models.review.dtype`.
        key: String,
        /// What the file says (or that it says nothing).
        found: Box<str>,
        /// What ptm accepts there.
        expected: Box<str>,
        /// What to write instead.
        fix: Box<str>,
        /// Where the key is in the file (or where it belongs, when it is missing);
        /// boxed to keep `Result<_, Error>` small in every build script.
        location: Option<Box<Location>>,
    },
    /// A file the manifest names does not exist or cannot be read.
    MissingFile {
        /// The Cargo.toml that names it.
        manifest: PathBuf,
        /// The key that names it.
        key: String,
        /// The path, resolved against the crate directory.
        path: PathBuf,
        /// What to do.
        fix: String,
        /// Where the key is in the file.
        location: Option<Box<Location>>,
    },
    /// Several declarations are wrong: each error, in declaration order.
    Declarations(Vec<Error>),
    /// The Python worker could not be started. (Finding no usable Python with torch, or
    /// the wrong torch, is an [`Error::Toolchain`] since ptm-toolchain does the finding.)
    Python {
        /// What went wrong, with the interpreter tried.
        problem: String,
        /// Every way to fix it.
        remedies: Vec<String>,
    },
    /// The torch side failed to convert a model.
    Conversion {
        /// The model's name.
        model: String,
        /// The pipeline stage that failed: load, export, quantize, optimize, save, verify.
        stage: String,
        /// torch's or ptm's message.
        message: String,
        /// What to try.
        hint: Option<String>,
        /// Last frames of the Python traceback, when there is one.
        traceback: Box<str>,
    },
    /// A model's figures cross the budget its declaration sets
    /// (`[package.metadata.models.<name>.budget]`). Its artifact is cached all the same:
    /// a raised budget judges it again without converting.
    Budget {
        /// The Cargo.toml that sets the budget.
        manifest: PathBuf,
        /// The model's name.
        model: String,
        /// Each crossed limit: its full key, the model's figure and the limit, as read.
        crossed: Box<[(String, String, String)]>,
    },
    /// The Python worker died without a result.
    Worker {
        /// The interpreter that ran it.
        python: PathBuf,
        /// How it ended.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
        /// Models it had converted and verified before it died (cached all the same).
        converted: Box<[String]>,
        /// Models it had not converted.
        unfinished: Box<[String]>,
    },
    /// An environment variable ptm reads holds a value it cannot use. No longer made:
    /// such a value is now an [`Error::Toolchain`] holding `ptm_toolchain::Error::Variable`,
    /// with the same message.
    #[deprecated(note = "a variable's unusable value is now Error::Toolchain(ptm_toolchain::Error::Variable { .. })")]
    Variable {
        /// The variable.
        variable: String,
        /// Its value.
        found: String,
        /// What it must hold instead.
        expected: String,
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
    /// Python was not to be used (or not found), and the store lacks some models.
    Offline {
        /// The crate whose store was read.
        crate_dir: PathBuf,
        /// Why no Python ran.
        why: String,
        /// Each model the cache and the store could not provide, and why.
        models: Vec<(String, String)>,
    },
    /// The process environment is not that of a build script.
    Environment {
        /// The variable that is missing or wrong.
        variable: String,
        /// What to do.
        fix: String,
    },
    /// Finding the Python and torch that convert (or the libtorch and ExecuTorch the
    /// runtime links, which ptm-build checks the models against) failed, or a variable
    /// that chooses them is unusable: the message names the variable to set.
    Toolchain(ptm_toolchain::Error),
}

impl From<ptm_toolchain::Error> for Error {
    fn from(error: ptm_toolchain::Error) -> Error {
        Error::Toolchain(error)
    }
}

impl Error {
    pub(crate) fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { action: action.into(), path: path.into(), source }
    }
}

/// `path:line:column`, as rustc and cargo name a place, or the path alone.
fn place(manifest: &std::path::Path, location: &Option<Box<Location>>) -> String {
    match location {
        Some(at) => format!("{}:{}:{}", manifest.display(), at.line, at.column),
        None => manifest.display().to_string(),
    }
}

/// The line with a caret under the key, as rustc shows source.
fn snippet(f: &mut fmt::Formatter<'_>, location: &Option<Box<Location>>) -> fmt::Result {
    let Some(at) = location else { return Ok(()) };
    let gutter = " ".repeat(at.line.to_string().len());
    writeln!(f, "{gutter} |")?;
    writeln!(f, "{} | {}", at.line, at.text)?;
    writeln!(f, "{gutter} | {}{}", " ".repeat(at.column - 1), "^".repeat(at.width))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Manifest { manifest, key, found, expected, fix, location } => {
                writeln!(f, "ptm: invalid model declaration: `{key}` in {}", place(manifest, location))?;
                snippet(f, location)?;
                writeln!(f, "  found:    {found}")?;
                writeln!(f, "  expected: {expected}")?;
                write!(f, "  fix:      {fix}")
            }
            Error::MissingFile { manifest, key, path, fix, location } => {
                writeln!(f, "ptm: `{key}` in {} names a file that does not exist", place(manifest, location))?;
                snippet(f, location)?;
                writeln!(f, "  path:     {}", path.display())?;
                write!(f, "  fix:      {fix}")
            }
            Error::Declarations(errors) => {
                for (index, error) in errors.iter().enumerate() {
                    write!(f, "{}{error}", if index == 0 { "" } else { "\n\n" })?;
                }
                write!(f, "\n\nptm: {} model declarations are wrong; each is named above", errors.len())
            }
            Error::Python { problem, remedies } => {
                writeln!(f, "ptm: {problem}")?;
                write!(f, "  fix, any of:")?;
                for remedy in remedies {
                    write!(f, "\n    - {remedy}")?;
                }
                Ok(())
            }
            Error::Conversion { model, stage, message, hint, traceback } => {
                write!(f, "ptm: model `{model}` failed at stage `{stage}`:\n  {}", message.trim_end().replace('\n', "\n  "))?;
                if let Some(hint) = hint {
                    write!(f, "\n  fix:      {hint}")?;
                }
                if !traceback.trim().is_empty() {
                    write!(f, "\n  last Python frames:\n    {}", traceback.trim_end().replace('\n', "\n    "))?;
                }
                Ok(())
            }
            Error::Budget { manifest, model, crossed } => {
                write!(f, "ptm: model `{model}` is over its budget in {}:", manifest.display())?;
                for (key, figure, limit) in crossed.iter() {
                    let (what, past) = if key.ends_with("min_top1") { ("top-1 agreement", "below") } else { ("figure", "over") };
                    write!(f, "\n  `{key}`: the {what} is {figure}, {past} the budget of {limit}")?;
                }
                write!(
                    f,
                    "\n  fix:      make the model fit (quantize it, keep fewer layers in float, calibrate on real data) or, if the new figures are right, raise the budget; `cargo ptm report` shows every figure beside its budget"
                )
            }
            Error::Worker { python, status, stderr, converted, unfinished } => {
                writeln!(f, "ptm: the Python worker ({}) {status} without a result", python.display())?;
                let list = |names: &[String]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
                if !converted.is_empty() {
                    writeln!(f, "  converted before it died, and cached: {}", list(converted))?;
                }
                if !unfinished.is_empty() {
                    writeln!(f, "  not converted: {}", list(unfinished))?;
                }
                write!(f, "  its stderr ended with:\n    {}", stderr.trim_end().replace('\n', "\n    "))
            }
            #[allow(deprecated)] // Still displayed for code that makes one.
            Error::Variable { variable, found, expected } => {
                write!(f, "ptm: environment variable {variable} is `{found}`\n  expected: {expected}\n  fix:      set {variable} to {expected}, or unset it")
            }
            Error::Io { action, path, source } => {
                write!(f, "ptm: could not {action} {}: {source}", path.display())
            }
            Error::Offline { crate_dir, why, models } => {
                writeln!(f, "ptm: building without Python ({why}), and the committed store cannot provide every model:")?;
                for (model, reason) in models {
                    writeln!(f, "  - `{model}`: {reason}")?;
                }
                write!(
                    f,
                    "  fix:      on a machine with Python and torch, run `cargo ptm prepare` in {} and commit its .ptm/ directory{}",
                    crate_dir.display(),
                    if why.contains(PTM_OFFLINE) { "" } else { "; or make Python with torch available (PTM_PYTHON, a .venv, VIRTUAL_ENV)" }
                )
            }
            Error::Environment { variable, fix } => {
                write!(f, "ptm: environment variable {variable} is not set\n  fix:      {fix}")
            }
            Error::Toolchain(error) => fmt::Display::fmt(error, f),
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
            // Transparent: the toolchain error's message is shown as this one's.
            Error::Toolchain(error) => std::error::Error::source(error),
            _ => None,
        }
    }
}
