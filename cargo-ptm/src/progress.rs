//! What `cargo ptm prepare` shows while it works: on a terminal, a line per model with a
//! spinner and its current step, finished with where its artifact came from; plain lines
//! when stderr is not a terminal or with `--json`; only warnings with `--quiet`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ptm_build::{Origin, Progress};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
    Quiet,
}

impl Mode {
    /// Bars only where someone watches a terminal that can redraw; `--json` keeps
    /// stderr plain so a log of it reads as text.
    pub fn choose(quiet: bool, json: bool) -> Mode {
        let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
        if quiet {
            Mode::Quiet
        } else if json || dumb || !std::io::stderr().is_terminal() {
            Mode::Lines
        } else {
            Mode::Bars
        }
    }
}

/// The display of one `cargo ptm prepare`, shared with the build's progress callback.
pub struct Display {
    mode: Mode,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Display {
    pub fn new(mode: Mode) -> Display {
        Display::with_target(mode, ProgressDrawTarget::stderr())
    }

    pub fn with_target(mode: Mode, target: ProgressDrawTarget) -> Display {
        Display { mode, multi: MultiProgress::with_draw_target(target), bars: Mutex::new(HashMap::new()) }
    }

    /// A line about the command itself (`preparing app for <target>`).
    pub fn note(&self, text: &str) {
        match self.mode {
            Mode::Bars => self.print(text),
            Mode::Lines => eprintln!("{text}"),
            Mode::Quiet => {}
        }
    }

    /// A warning, shown in every mode.
    pub fn warn(&self, text: &str) {
        match self.mode {
            Mode::Bars => self.print(&format!("warning: {text}")),
            Mode::Lines | Mode::Quiet => eprintln!("warning: {text}"),
        }
    }

    /// One event of a build.
    pub fn show(&self, event: Progress<'_>) {
        match (self.mode, event) {
            (Mode::Bars, Progress::Step { model, step }) => self.bar(model).set_message(step.to_string()),
            (Mode::Bars, Progress::Done { model, origin }) => {
                let bar = self.bar(model);
                bar.set_style(style("  {prefix:.bold} {msg} {elapsed:.dim}"));
                match origin_words(origin) {
                    Some(words) => bar.finish_with_message(words),
                    // The worker's last step already says so, with time and size.
                    None => bar.finish(),
                }
                self.bars.lock().unwrap_or_else(|e| e.into_inner()).remove(model);
            }
            (Mode::Bars, Progress::Line(line)) => self.print(line),
            (Mode::Lines, Progress::Step { model, step }) => eprintln!("ptm: {model}: {step}"),
            (Mode::Lines, Progress::Done { model, origin }) => {
                if let Some(words) = origin_words(origin) {
                    eprintln!("ptm: {model}: {words}");
                }
            }
            (Mode::Lines, Progress::Line(line)) => eprintln!("{line}"),
            (Mode::Quiet, Progress::Line(line)) if line.starts_with("warning:") => eprintln!("{line}"),
            (Mode::Quiet, _) => {}
        }
    }

    fn bar(&self, model: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(model.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner().with_style(style("{spinner:.green} {prefix:.bold} {wide_msg} {elapsed:.dim}")));
                bar.set_prefix(model.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }

    fn print(&self, text: &str) {
        // Above the bars; when the terminal cannot be drawn on, as a plain line.
        if self.multi.println(text).is_err() {
            eprintln!("{text}");
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Where an artifact came from, when the worker did not say it.
fn origin_words(origin: Origin) -> Option<&'static str> {
    match origin {
        Origin::Cache => Some("from the cache"),
        Origin::Store => Some("from the store"),
        Origin::Converted => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;

    fn screen() -> (InMemoryTerm, Display) {
        let term = InMemoryTerm::new(12, 100);
        let display = Display::with_target(Mode::Bars, ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 200));
        (term, display)
    }

    #[test]
    fn each_model_shows_its_step_then_where_it_came_from() {
        let (term, display) = screen();
        display.note("preparing app for x86_64-unknown-linux-gnu");
        display.show(Progress::Done { model: "digits", origin: Origin::Cache });
        display.show(Progress::Step { model: "review", step: "quantizing (dynamic INT8, qnnpack)" });
        // Drawn at the terminal's rate: wait until the step shows, not for a fixed time.
        let started = std::time::Instant::now();
        while !term.contents().contains("review quantizing") && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let during = term.contents();
        assert!(during.contains("review quantizing (dynamic INT8, qnnpack)"), "{during}");
        assert!(during.contains("digits from the cache"), "{during}");

        display.show(Progress::Line("hello from build_model"));
        display.show(Progress::Step { model: "review", step: "verifying in the Lite Interpreter" });
        display.show(Progress::Step { model: "review", step: "converted in 1.2 s, 5.10 MB" });
        display.show(Progress::Done { model: "review", origin: Origin::Converted });
        let after = term.contents();
        let lines: Vec<&str> = after.lines().map(str::trim_end).collect();
        assert_eq!(lines.first(), Some(&"preparing app for x86_64-unknown-linux-gnu"), "{after}");
        assert!(lines.contains(&"hello from build_model"), "printed above the bars: {after}");
        assert!(lines.iter().any(|l| l.trim_start().starts_with("review converted in 1.2 s, 5.10 MB")), "{after}");
        assert!(!after.contains("quantizing"), "a finished model shows its origin, not its last step: {after}");
    }
}
