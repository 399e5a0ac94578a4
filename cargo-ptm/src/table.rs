//! The summary `cargo ptm prepare` prints: one row per model and target.

use ptm_build::{ModelReport, Origin};
use ptm_report::{Format, Quantize, Stage};

/// One model's line.
pub struct Row {
    krate: String,
    model: String,
    target: String,
    source: String,
    quantize: String,
    format: Format,
    before: Option<u64>,
    after: u64,
    drift: Option<(f64, Option<f64>)>,
    worst_layer: Option<(String, f64)>,
    seconds: Option<f64>,
    origin: &'static str,
}

impl Row {
    /// From what the build reported and where the artifact came from.
    pub fn new(krate: &str, target: &str, report: &ModelReport, origin: Origin, seconds: Option<f64>) -> Row {
        // Measured in the runtime the app links: the Lite Interpreter's or ExecuTorch's.
        let runtime = report.runtime_drift();
        Row {
            krate: krate.to_string(),
            model: report.name.clone(),
            target: target.to_string(),
            source: report.source.clone(),
            quantize: if report.quantize == Quantize::None { "none".into() } else { format!("{} ({})", report.quantize, report.engine) },
            format: report.format,
            before: report.sizes.first().filter(|s| s.stage == Stage::Source).map(|s| s.bytes),
            after: report.sizes.last().map_or(0, |s| s.bytes),
            drift: runtime.map(|d| (d.worst_relative().unwrap_or(0.0), d.worst_top1())),
            worst_layer: report.layers.first().map(|l| (l.name.clone(), l.sqnr_db)),
            seconds: if origin == Origin::Converted { seconds } else { None },
            origin: match origin {
                Origin::Cache => "cache",
                Origin::Store => "store",
                Origin::Converted => "converted",
            },
        }
    }

    /// The same as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "crate": self.krate, "model": self.model, "target": self.target, "source": self.source,
            "quantize": self.quantize, "format": self.format, "bytes_before": self.before, "bytes_after": self.after,
            "runtime_relative_error": self.drift.map(|d| d.0), "runtime_top1": self.drift.and_then(|d| d.1),
            "worst_layer": self.worst_layer.as_ref().map(|(name, sqnr)| serde_json::json!({"name": name, "sqnr_db": sqnr})),
            "seconds": self.seconds, "from": self.origin,
        })
    }

    fn cells(&self) -> Vec<String> {
        let mb = |b: u64| format!("{:.2} MB", b as f64 / 1e6);
        vec![
            format!("{}/{}", self.krate, self.model),
            self.target.clone(),
            self.source.clone(),
            self.quantize.clone(),
            self.before.map_or("-".into(), mb),
            format!("{} .{}", mb(self.after), self.format),
            self.drift.map_or("-".into(), |(rel, top1)| match top1 {
                Some(t) => format!("{rel:.2e}, top-1 {:.1}%", t * 100.0),
                None => format!("{rel:.2e}"),
            }),
            self.worst_layer.as_ref().map_or("-".into(), |(name, sqnr)| format!("{name} {sqnr:.1} dB")),
            self.seconds.map_or("-".into(), |s| format!("{s:.1} s")),
            self.origin.to_string(),
        ]
    }
}

/// Rows as an aligned text table.
pub fn render(rows: &[Row]) -> String {
    let header: Vec<String> = ["model", "target", "source", "quantize", "before", "artifact", "drift (runtime)", "worst INT8 layer", "time", "from"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let lines: Vec<Vec<String>> = std::iter::once(header).chain(rows.iter().map(Row::cells)).collect();
    let widths: Vec<usize> = (0..lines[0].len()).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
