//! Forward latency of the example app's models (digits FP32, digits static INT8, the
//! BERT-like review model) at the thread count ptm applies: PTM_NUM_THREADS, unset for
//! ptm's default of one, 0 for libtorch's own default. Each model runs for at most
//! MAX_CALLS calls or BUDGET, whichever comes first, so a pathological setting cannot
//! run for minutes. Prints one line per model: name, median microseconds, calls.
//! tools/bench/threads runs it for each setting, idle and under load.

#[allow(dead_code)]
mod models {
    ptm::include_models!();
}

use models::{Digits, DigitsFp32, Review};
use std::time::{Duration, Instant};

const MAX_CALLS: usize = 200;
const BUDGET: Duration = Duration::from_secs(3);

fn median_micros(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

fn time(name: &str, mut call: impl FnMut() -> Result<(), ptm::Error>) -> Result<(), ptm::Error> {
    call()?; // warm-up
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < MAX_CALLS && started.elapsed() < BUDGET {
        let t = Instant::now();
        call()?;
        samples.push(t.elapsed());
    }
    println!("{name} {:.1} {}", median_micros(samples.clone()), samples.len());
    Ok(())
}

fn main() -> Result<(), ptm::Error> {
    let (digits, digits_fp32, review) = (Digits::load()?, DigitsFp32::load()?, Review::load()?);
    println!("threads {}", ptm::num_threads());
    let pixels: [f32; 64] = std::array::from_fn(|i| ((i * 7) % 17) as f32);
    let ids: [i64; 128] = std::array::from_fn(|i| ((i * 7919) % 30522) as i64);
    time("digits_fp32", || digits_fp32.forward(&pixels).map(drop))?;
    time("digits_int8", || digits.forward(&pixels).map(drop))?;
    time("review_int8", || review.forward(&ids).map(drop))?;
    Ok(())
}
