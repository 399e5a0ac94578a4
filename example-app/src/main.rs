//! ptm's example app: three models converted at build time, run in the Lite Interpreter.
//!
//! - `digits` (static INT8, embedded) and `digits_fp32` (float, embedded) classify the
//!   450 held-out images of scikit-learn's 8x8 digits; the app prints both accuracies.
//! - `review`, the BERT-like classifier of 128 tokens (dynamic INT8 with 8-bit
//!   embeddings), ships as an asset file and is loaded with `load_from`.
//!
//! `example-app [path/to/review.ptl]`: without a path, the file the build wrote.

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
    let asset = std::env::args().nth(1).unwrap_or_else(|| Review::BUILD_ARTIFACT.to_string());
    review(&asset)?;
    Ok(())
}

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
    let int8 = Digits::load()?;
    let fp32 = DigitsFp32::load()?;
    // One pass each to warm up, then the measured pass.
    classify(&images, |p| Ok(fp32.forward(p)?.logits.to_vec()))?;
    classify(&images, |p| Ok(int8.forward(p)?.logits.to_vec()))?;
    let float = classify(&images, |p| Ok(fp32.forward(p)?.logits.to_vec()))?;
    let quantized = classify(&images, |p| Ok(int8.forward(p)?.logits.to_vec()))?;

    let percent = |s: &Score| 100.0 * s.correct as f64 / images.len() as f64;
    println!("digits: {} held-out 8x8 images of scikit-learn's digits, embedded models (load())", images.len());
    println!("  {:<22} {:>9} {:>10} {:>14}", "", "accuracy", ".ptl", "median latency");
    for (label, score, info) in [("FP32", &float, &DigitsFp32::INFO), ("INT8 static, qnnpack", &quantized, &Digits::INFO)] {
        println!("  {label:<22} {:>8.2}% {:>7.1} KB {:>11.1} us", percent(score), info.artifact_bytes() as f64 / 1e3, micros(median(&score.latencies)));
    }
    println!(
        "  INT8 - FP32: {:+.2} points; INT8 is {:.2}x the size of FP32",
        percent(&quantized) - percent(&float),
        Digits::INFO.artifact_bytes() as f64 / DigitsFp32::INFO.artifact_bytes() as f64
    );
    Ok(())
}

fn review(asset: &str) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let model = Review::load_from(asset)?;
    let load = started.elapsed();
    let info = &Review::INFO;
    let source = info.size("source").unwrap_or(0) as f64 / 1e6;
    let ptl = info.artifact_bytes() as f64 / 1e6;
    println!(
        "review: BERT-like classifier, 128 tokens, {} INT8 ({}), asset file loaded with load_from in {:.1} ms",
        info.quantize,
        info.engine,
        load.as_secs_f64() * 1e3
    );
    println!("  fp32 parameters {source:.2} MB -> .ptl {ptl:.2} MB ({:.2}x)", ptl / source);
    println!("  (its weights are seeded, not trained: what it shows is size and speed, not sentiment)");
    for sequence in 0..4u64 {
        let ids = tokens(sequence);
        let mut latencies = Vec::new();
        let mut logits = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            logits = model.forward(&ids)?.logits.to_vec();
            latencies.push(start.elapsed());
        }
        let used = ids.iter().filter(|&&id| id != 0).count();
        println!(
            "  sequence {sequence} ({used:>3} tokens): class {} logits {logits:.3?}, median {:.2} ms over {} calls",
            argmax(&logits),
            micros(median(&latencies)) / 1e3,
            latencies.len()
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
