//! Prints what the build made of each declared model.

const REPORT: &str = include_str!(concat!(env!("OUT_DIR"), "/ptm/models.json"));

fn main() {
    let bundle = ptm_report::Bundle::from_json(REPORT).expect("models.json written by this crate's build");
    for model in &bundle.models {
        let size = |stage: &str| model.sizes.iter().find(|s| s.stage == stage).map_or(0.0, |s| s.bytes as f64 / 1e6);
        let lite = model.drift.iter().find(|d| d.stage == "lite");
        println!("{}: {} ({} INT8, {}), fp32 parameters {:.2} MB -> .ptl {:.2} MB ({:.2}x)", model.name, model.source, model.quantize, model.engine, size("source"), size("ptl"), size("ptl") / size("source"));
        if let Some(d) = lite {
            let top1 = d.top1.map_or_else(|| "n/a".to_string(), |t| format!("{:.1}%", t * 100.0));
            println!("  Lite Interpreter vs source: relative error {:.4}, top-1 agreement {top1} over {} samples", d.relative, d.samples);
        }
        println!("  operators: {}", model.operators.join(", "));
    }
}
