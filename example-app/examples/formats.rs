//! `.ptl` against `.pte` for the same declarations, in one process, alternating round by
//! round (tools/bench/formats runs it; BENCHMARKS.md has the figures): load time and
//! single-thread forward latency of the review and digits models, each a median.
//!
//! `formats <rounds>` prints `<model> <format> load_us <median> forward_us <median>`.

use std::time::{Duration, Instant};

ptm::include_models!();

fn median(mut values: Vec<Duration>) -> f64 {
    values.sort();
    values[values.len() / 2].as_secs_f64() * 1e6
}

/// Loads `load` `loads` times and then times `calls` forwards of the last handle.
fn measure<M>(loads: usize, calls: usize, load: impl Fn() -> M, forward: impl Fn(&M)) -> (Vec<Duration>, Vec<Duration>) {
    let mut load_times = Vec::new();
    let mut model = None;
    for _ in 0..loads {
        let start = Instant::now();
        model = Some(load());
        load_times.push(start.elapsed());
    }
    let model = model.expect("at least one load");
    for _ in 0..calls / 10 {
        forward(&model); // warm-up
    }
    let mut forward_times = Vec::new();
    for _ in 0..calls {
        let start = Instant::now();
        forward(&model);
        forward_times.push(start.elapsed());
    }
    (load_times, forward_times)
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(5);
    let ids: [i64; 128] = std::array::from_fn(|i| if i == 0 { 101 } else { 1000 + (i as i64 * 7919) % 29_000 });
    let pixels: [f32; 64] = std::array::from_fn(|i| (i % 17) as f32);
    let mut times: Vec<(&str, &str, Vec<Duration>, Vec<Duration>)> = Vec::new();
    let mut record = |model: &'static str, format: &'static str, (loads, forwards): (Vec<Duration>, Vec<Duration>)| match times
        .iter_mut()
        .find(|(m, f, ..)| *m == model && *f == format)
    {
        Some(entry) => {
            entry.2.extend(loads);
            entry.3.extend(forwards);
        }
        None => times.push((model, format, loads, forwards)),
    };
    for _ in 0..rounds {
        record("review", "ptl", measure(5, 50, || Review::load_from(Review::BUILD_ARTIFACT).unwrap(), |m| drop(m.forward(&ids).unwrap())));
        record("review", "pte", measure(5, 50, || ReviewPte::load_from(ReviewPte::BUILD_ARTIFACT).unwrap(), |m| drop(m.forward(&ids).unwrap())));
        record("digits", "ptl", measure(5, 500, || Digits::load().unwrap(), |m| drop(m.forward(&pixels).unwrap())));
        record("digits", "pte", measure(5, 500, || DigitsPte::load().unwrap(), |m| drop(m.forward(&pixels).unwrap())));
        record("digits_fp32", "ptl", measure(5, 500, || DigitsFp32::load().unwrap(), |m| drop(m.forward(&pixels).unwrap())));
        record("digits_fp32", "pte", measure(5, 500, || DigitsFp32Pte::load().unwrap(), |m| drop(m.forward(&pixels).unwrap())));
    }
    println!("threads {}", ptm::num_threads());
    for (model, format, loads, forwards) in times {
        println!("{model} {format} load_us {:.1} forward_us {:.2}", median(loads), median(forwards));
    }
}
