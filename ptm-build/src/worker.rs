//! Runs the Python worker (`python/ptm_convert/worker.py`) on the models that missed the cache.
//!
//! One process serves every model of a build: torch's import alone costs seconds. It
//! converts each model in a child forked after that import, so that a model's bytes do
//! not depend on what else the build converted (docs in `python/ptm_convert/worker.py`). The
//! request and the result are JSON files; the worker's stdout goes to our stderr, its
//! stderr is streamed through (progress lines) and its tail is kept for the error when
//! it dies. Each model's result is also left in a file of its own as soon as it is
//! verified, so the models that finished before the worker died are not lost with it.

use crate::error::Error;
use crate::manifest::ModelDecl;
pub use ptm_report::Converted;
use ptm_toolchain::python::Interpreter;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The start of a worker line that is a warning for the user (`WARNING_PREFIX` in
/// `ptm_convert/worker.py`): a model stuck in one stage.
pub const WARNING_PREFIX: &str = "ptm-warning: ";

/// How the worker watches each model's process: a warning after `heartbeat` in one
/// stage, and the process killed after `timeout` in all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Supervision {
    /// Time in one stage before each warning.
    pub heartbeat: Duration,
    /// Time after which a model's conversion is killed, if any.
    pub timeout: Option<Duration>,
}

impl Default for Supervision {
    fn default() -> Supervision {
        // Long enough that no healthy stage of a small model warns, short enough that a
        // stuck build says so before anyone gives up on it.
        Supervision { heartbeat: Duration::from_secs(60), timeout: None }
    }
}

/// What one worker run produced: per job, its result, or `None` when the worker died
/// before the job finished; and the worker's death, if it died.
pub struct Finished {
    /// One per job, in order.
    pub results: Vec<Option<Result<Converted, Error>>>,
    /// Why the worker as a whole failed.
    pub died: Option<Error>,
}

/// One model to convert and where its .ptl goes.
pub struct Job<'a> {
    /// The declaration.
    pub decl: &'a ModelDecl,
    /// Where the worker writes the .ptl.
    pub out: PathBuf,
    /// The calibration samples to read, relative to the crate: the files the key hashed.
    pub calibration_files: Vec<String>,
    /// The declaration's key, written into the .ptl's identity record.
    pub key: &'a str,
}

#[derive(Serialize)]
struct Request<'a> {
    crate_dir: &'a Path,
    /// How many models may convert at once.
    jobs: usize,
    heartbeat_seconds: f64,
    timeout_seconds: Option<f64>,
    models: Vec<RequestModel<'a>>,
}

#[derive(Serialize)]
struct RequestModel<'a> {
    decl: &'a ModelDecl,
    out: &'a Path,
    calibration_files: &'a [String],
    key: &'a str,
    ptm_build: &'static str,
    /// Where the runner that verifies `.pte` files is compiled, once per ExecuTorch, and
    /// the operators of the patterns ExecuTorch builds are recorded (patterns.py).
    runner_dir: &'a Path,
}

#[derive(Deserialize)]
struct Response {
    models: Vec<ModelResult>,
}

#[derive(Deserialize)]
struct ModelResult {
    name: String,
    ok: bool,
    report: Option<Converted>,
    stage: Option<String>,
    message: Option<String>,
    hint: Option<String>,
    traceback: Option<String>,
}

/// Converts `jobs` in one worker process started in `scratch`. The error is the worker
/// failing to start; [`Finished`] holds each model's result, and the worker's death.
/// Each line the worker writes to stderr goes to `on_line` as it comes.
pub fn run(
    python: &Interpreter,
    crate_dir: &Path,
    jobs: &[Job<'_>],
    scratch: &Path,
    runner_dir: &Path,
    supervision: Supervision,
    on_line: &mut dyn FnMut(&str),
) -> Result<Finished, Error> {
    let package = scratch.join("ptm_convert");
    std::fs::create_dir_all(&package).map_err(|e| Error::io("create", package, e))?;
    for (name, text) in crate::sources::all() {
        crate::fsutil::write_atomic(&scratch.join(name), text.as_bytes())?;
    }
    let request_path = scratch.join("request.json");
    let result_path = scratch.join("result.json");
    let request = Request {
        crate_dir,
        jobs: parallel_jobs(),
        heartbeat_seconds: supervision.heartbeat.as_secs_f64(),
        timeout_seconds: supervision.timeout.map(|t| t.as_secs_f64()),
        models: jobs
            .iter()
            .map(|j| RequestModel {
                decl: j.decl,
                out: &j.out,
                calibration_files: &j.calibration_files,
                key: j.key,
                ptm_build: env!("CARGO_PKG_VERSION"),
                runner_dir,
            })
            .collect(),
    };
    crate::fsutil::write_atomic(&request_path, serde_json::to_string_pretty(&request).unwrap_or_default().as_bytes())?;

    let mut child = Command::new(&python.path)
        .arg("-B")
        .arg("-u")
        .arg(scratch.join("ptm_worker.py"))
        .arg(&request_path)
        .arg(&result_path)
        .current_dir(crate_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Set iteration order is part of what a conversion may depend on.
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::null())
        // A build script's stdout is cargo's directive stream: nothing the model code
        // or a library it loads writes may land there.
        .stdout(std::io::stderr())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Python {
            problem: format!("could not start {} (chosen by {}): {e}", python.path.display(), python.origin),
            remedies: vec!["set PTM_PYTHON to a working Python with torch".into()],
        })?;

    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            on_line(&line);
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait().map_err(|e| Error::io("wait for", &python.path, e))?;
    let response: Option<Response> = read_json(&result_path);
    if let Some(response) = response.filter(|r| r.models.len() == jobs.len()) {
        return Ok(Finished { results: response.models.into_iter().map(|m| Some(m.into_result())).collect(), died: None });
    }
    // Dead: what each child left behind (`Paths` in ptm_convert/worker.py names the files).
    let results: Vec<Option<Result<Converted, Error>>> =
        (0..jobs.len()).map(|index| read_json::<ModelResult>(&scratch.join(format!("result.json.{index}"))).map(ModelResult::into_result)).collect();
    let names = |finished: bool| -> Box<[String]> {
        jobs.iter().zip(&results).filter(|(_, r)| matches!(r, Some(Ok(_))) == finished).map(|(job, _)| job.decl.name.clone()).collect()
    };
    let died =
        Error::Worker { python: python.path.clone(), status: describe(status), stderr: tail.join("\n"), converted: names(true), unfinished: names(false) };
    Ok(Finished { results, died: Some(died) })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

impl ModelResult {
    fn into_result(self) -> Result<Converted, Error> {
        match (self.ok, self.report) {
            (true, Some(report)) => Ok(report),
            _ => Err(Error::Conversion {
                model: self.name,
                stage: self.stage.unwrap_or_else(|| "unknown".into()),
                message: self.message.unwrap_or_default(),
                hint: self.hint,
                traceback: self.traceback.unwrap_or_default().into(),
            }),
        }
    }
}

/// Cargo's job count for this build (`-j`, `NUM_JOBS` in build scripts), else one. How
/// many models convert at once changes how long a build takes, never its bytes.
fn parallel_jobs() -> usize {
    std::env::var("NUM_JOBS").ok().and_then(|n| n.parse().ok()).filter(|&n| n > 0).unwrap_or(1)
}

fn describe(status: std::process::ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".into(),
    }
}
