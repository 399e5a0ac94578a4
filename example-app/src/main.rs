//! ptm's example app: three models converted at build time, each to both formats, run in
//! the Lite Interpreter (.ptl) and in ExecuTorch (.pte) side by side.
//!
//! - `digits` (static INT8, embedded) and `digits_fp32` (float, embedded) classify the
//!   450 held-out images of scikit-learn's 8x8 digits; the app prints the accuracies.
//! - `review`, the BERT-like classifier of 128 tokens (dynamic INT8 with 8-bit
//!   embeddings), ships as an asset file and is loaded with `load_from`.
//!
//! Last, each model's self-check: the samples the build verified it on, run again here and
//! compared with the source model's outputs (on a phone, this is what says the model
//! still computes what it computed at build time).
//!
//! `example-app [review.ptl] [review.pte]`: without paths, the files the build wrote.

use std::error::Error;
use std::time::{Duration, Instant};

ptm::include_models!();

/// 65 bytes per image: 64 pixels (0..16, row-major) then the label (models/train_digits.py).
const TEST_SET: &[u8] = include_bytes!("../data/digits-test.bin");

fn main() -> Result<(), Box<dyn Error>> {
    // ptm runs models on one intra-op thread unless told otherwise (PTM_NUM_THREADS, or
    // ptm::set_num_threads): these models are small, and a contended pool of libtorch's
    // default size made forwards many times slower (BENCHMARKS.md).
    digits()?;
    println!();
    let ptl = std::env::args().nth(1).unwrap_or_else(|| Review::BUILD_ARTIFACT.to_string());
    let pte = std::env::args().nth(2).unwrap_or_else(|| ReviewPte::BUILD_ARTIFACT.to_string());
    review(&ptl, &pte)?;
    println!();
    self_checks(&ptl, &pte)?;
    Ok(())
}

/// Every model's self-check: embedded models against their embedded reference data,
/// asset models against the `.reference` file beside the asset.
fn self_checks(ptl_path: &str, pte_path: &str) -> Result<(), Box<dyn Error>> {
    println!("self-checks: each model on the samples its build verified, against the source model's outputs");
    let checks = [
        Digits::load()?.self_check()?,
        DigitsFp32::load()?.self_check()?,
        Review::load_from(ptl_path)?.self_check()?,
        DigitsPte::load()?.self_check()?,
        DigitsFp32Pte::load()?.self_check()?,
        ReviewPte::load_from(pte_path)?.self_check()?,
    ];
    for check in checks {
        println!("  {check}");
    }
    Ok(())
}

/// One digits model, whatever its runtime: pixels in, logits out.
type Classifier<'a> = dyn Fn(&[f32; 64]) -> Result<Vec<f32>, ptm::Error> + 'a;

struct Score {
    correct: usize,
    latencies: Vec<Duration>,
}

fn classify(images: &[([f32; 64], u8)], mut run: impl FnMut(&[f32; 64]) -> Result<Vec<f32>, ptm::Error>) -> Result<Score, ptm::Error> {
    let mut score = Score { correct: 0, latencies: Vec::with_capacity(images.len()) };
    for (pixels, label) in images {
        let start = Instant::now();
        let logits = run(pixels)?;
        score.latencies.push(start.elapsed());
        if argmax(&logits) == usize::from(*label) {
            score.correct += 1;
        }
    }
    Ok(score)
}

fn digits() -> Result<(), Box<dyn Error>> {
    let images: Vec<([f32; 64], u8)> = TEST_SET.chunks_exact(65).map(|record| (std::array::from_fn(|i| f32::from(record[i])), record[64])).collect();
    let (int8, fp32) = (Digits::load()?, DigitsFp32::load()?);
    let (int8_pte, fp32_pte) = (DigitsPte::load()?, DigitsFp32Pte::load()?);
    let runs: [(&str, &ptm::ModelInfo, &Classifier); 4] = [
        ("FP32 .ptl", &DigitsFp32::INFO, &|p| Ok(fp32.forward(p)?.logits.to_vec())),
        ("INT8 static .ptl", &Digits::INFO, &|p| Ok(int8.forward(p)?.logits.to_vec())),
        ("FP32 .pte", &DigitsFp32Pte::INFO, &|p| Ok(fp32_pte.forward(p)?.logits.to_vec())),
        ("INT8 static .pte", &DigitsPte::INFO, &|p| Ok(int8_pte.forward(p)?.logits.to_vec())),
    ];
    let percent = |s: &Score| 100.0 * s.correct as f64 / images.len() as f64;
    println!("digits: {} held-out 8x8 images of scikit-learn's digits, embedded models (load())", images.len());
    println!("  {:<18} {:>9} {:>10} {:>14}  runtime, INT8 kernels", "", "accuracy", "file", "median latency");
    for (label, info, run) in runs {
        classify(&images, run)?; // warm-up pass
        let score = classify(&images, run)?;
        let kernels = if info.quantize == "none" { "float".to_string() } else { info.engine.to_string() };
        let runtime = if label.ends_with(".pte") { "ExecuTorch" } else { "Lite Interpreter" };
        println!(
            "  {label:<18} {:>8.2}% {:>7.1} KB {:>11.1} us  {runtime}, {kernels}",
            percent(&score),
            info.artifact_bytes() as f64 / 1e3,
            micros(median(&score.latencies))
        );
    }
    Ok(())
}

fn review(ptl_path: &str, pte_path: &str) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let ptl = Review::load_from(ptl_path)?;
    let ptl_load = started.elapsed();
    let started = Instant::now();
    let pte = ReviewPte::load_from(pte_path)?;
    let pte_load = started.elapsed();
    let (ptl_info, pte_info) = (&Review::INFO, &ReviewPte::INFO);
    let source = ptl_info.size("source").unwrap_or(0) as f64 / 1e6;
    println!("review: BERT-like classifier, 128 tokens, {} INT8, asset files loaded with load_from", ptl_info.quantize);
    println!("  (its weights are seeded, not trained: what it shows is size and speed, not sentiment)");
    println!("  {:<30} {:>12} {:>12}", "", ".ptl", ".pte");
    println!("  {:<30} {:>12} {:>12}", "runtime, INT8 kernels", format!("Lite, {}", ptl_info.engine), format!("ET, {}", pte_info.engine));
    let mb = |bytes: u64| bytes as f64 / 1e6;
    println!("  {:<30} {:>9.2} MB {:>9.2} MB", format!("file (fp32 parameters {source:.2} MB)"), mb(ptl_info.artifact_bytes()), mb(pte_info.artifact_bytes()));
    println!("  {:<30} {:>11.2}x {:>11.2}x", "file / fp32 parameters", mb(ptl_info.artifact_bytes()) / source, mb(pte_info.artifact_bytes()) / source);
    println!("  {:<30} {:>9.1} ms {:>9.1} ms", "load", ptl_load.as_secs_f64() * 1e3, pte_load.as_secs_f64() * 1e3);
    for sequence in 0..4u64 {
        let ids = tokens(sequence);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut ptl_times, mut pte_times) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let start = Instant::now();
            a = ptl.forward(&ids)?.logits.to_vec();
            ptl_times.push(start.elapsed());
            let start = Instant::now();
            b = pte.forward(&ids)?.logits.to_vec();
            pte_times.push(start.elapsed());
        }
        let used = ids.iter().filter(|&&id| id != 0).count();
        println!(
            "  {:<30} {:>9.2} ms {:>9.2} ms  class {} / {}, logits {a:.3?} / {b:.3?}",
            format!("sequence {sequence} ({used:>3} tokens), median"),
            micros(median(&ptl_times)) / 1e3,
            micros(median(&pte_times)) / 1e3,
            argmax(&a),
            argmax(&b),
        );
    }
    Ok(())
}

/// A token sequence as a WordPiece tokenizer lays it out: `[CLS]` words `[SEP]`, then padding.
fn tokens(sequence: u64) -> [i64; 128] {
    let words = 24 + 30 * sequence as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ sequence;
    let mut ids = [0i64; 128];
    ids[0] = 101;
    for id in ids.iter_mut().take(words + 1).skip(1) {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        *id = 1000 + (state >> 33) as i64 % 29_000;
    }
    ids[words + 1] = 102;
    ids
}

fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
