//! What a build tells a front end while it works ([`crate::Builder::progress`]): `cargo
//! ptm prepare` draws it as a bar per model; a build script prints the lines as they come.

use std::sync::Arc;

/// Where a model's artifact came from in this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The conversion cache.
    Cache,
    /// The committed store (`.ptm/`).
    Store,
    /// Converted by this build.
    Converted,
}

/// One thing a build reports while it works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress<'a> {
    /// The conversion of `model` reached a step, in the worker's words
    /// (`quantizing (dynamic INT8, qnnpack)`).
    Step {
        /// The declared model name.
        model: &'a str,
        /// What it is doing now.
        step: &'a str,
    },
    /// `model`'s artifact is ready, and where it came from.
    Done {
        /// The declared model name.
        model: &'a str,
        /// The cache, the store, or this build's conversion.
        origin: Origin,
    },
    /// Any other line: what the model's code or torch printed, or a ptm warning.
    Line(&'a str),
}

/// A progress callback, shareable between the builder's clones.
#[derive(Clone)]
pub(crate) struct Sink(Arc<dyn Fn(Progress<'_>) + Send + Sync>);

impl Sink {
    pub(crate) fn new(callback: impl Fn(Progress<'_>) + Send + Sync + 'static) -> Sink {
        Sink(Arc::new(callback))
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink(..)")
    }
}

/// Sends `progress` to the callback, or prints it as a build script's stderr always had
/// it: the worker's lines as they came, nothing for a finished model.
pub(crate) fn emit(sink: Option<&Sink>, progress: Progress<'_>) {
    match (sink, progress) {
        (Some(sink), progress) => (sink.0)(progress),
        (None, Progress::Step { model, step }) => eprintln!("ptm: {model}: {step}"),
        (None, Progress::Line(line)) => eprintln!("{line}"),
        (None, Progress::Done { .. }) => {}
    }
}

/// Reads one line of the worker's stderr: `ptm: <model>: <step>` for a model of this run
/// is a step; everything else is a line.
pub(crate) fn classify<'a>(line: &'a str, models: &[&str]) -> Progress<'a> {
    let step = line.strip_prefix("ptm: ").and_then(|rest| rest.split_once(": ")).filter(|(model, _)| models.contains(model));
    match step {
        Some((model, step)) => Progress::Step { model, step },
        None => Progress::Line(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_are_steps_of_the_models_being_converted() {
        let models = ["review", "digits"];
        assert_eq!(
            classify("ptm: review: quantizing (dynamic INT8, qnnpack)", &models),
            Progress::Step { model: "review", step: "quantizing (dynamic INT8, qnnpack)" }
        );
        assert_eq!(classify("ptm: digits: a: b", &models), Progress::Step { model: "digits", step: "a: b" });
        // The model's own prints, torch's warnings and other tools' prefixes stay lines.
        for line in ["ptm: other: step", "hello from build_model", "UserWarning: ptm: review: x", "ptm: review", ""] {
            assert_eq!(classify(line, &models), Progress::Line(line));
        }
    }
}
