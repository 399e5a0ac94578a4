//! Measures what ptm's runtime adds, against baselines measured in the same run.
//!
//! `cargo run --release -p ptm-bench-runtime -- [rounds]` (default 101). Rounds
//! alternate which side goes first; the figures are medians over rounds.

use std::ffi::{c_void, CString};
use std::hint::black_box;
use std::time::Instant;

ptm::include_models!();

extern "C" {
    fn ptm_bench_direct_load(path: *const std::ffi::c_char) -> *mut c_void;
    fn ptm_bench_direct_free(module: *mut c_void);
    fn ptm_bench_direct_run(module: *mut c_void, input: *const f32, iterations: usize, sink: *mut f32) -> f64;
}

const FORWARDS_PER_ROUND: usize = 5_000;
const WARM_UP: usize = 2_000;
const LOADS_PER_ROUND: usize = 5;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The 1-minute load average, from /proc/loadavg (0 where there is none).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|text| text.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map(|r| r.parse()).transpose()?.unwrap_or(101);
    // Both sides run single-threaded, as the example app does.
    ptm::set_num_threads(1)?;
    println!("libtorch: {}", ptm::LIBTORCH);
    let before = load_average();
    println!("load average before: {before:.2}");
    forward_overhead(rounds)?;
    load_paths(rounds)?;
    let after = load_average();
    // This run's own thread accounts for about 1 of the figure after it (tools/bench/lib/load.sh).
    let noisy = before > 1.0 || after > 2.0;
    println!("load average after: {after:.2}{}", if noisy { " (noisy: re-run on an idle machine before trusting a ratio near its target)" } else { "" });
    Ok(())
}

fn forward_overhead(rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let features: [f32; 16] = std::array::from_fn(|i| i as f32 / 16.0 - 0.5);
    let tiny = Tiny::load()?;
    let path = CString::new(Tiny::BUILD_ARTIFACT)?;
    // SAFETY: a valid C string; the handle is freed below.
    let direct = unsafe { ptm_bench_direct_load(path.as_ptr()) };
    if direct.is_null() {
        return Err("the direct C++ baseline could not load the model".into());
    }
    let run_direct = |iterations: usize| -> Result<(f64, f32), String> {
        let mut sink = 0f32;
        // SAFETY: a live handle and a 16-float input.
        let seconds = unsafe { ptm_bench_direct_run(direct, features.as_ptr(), iterations, &mut sink) };
        if seconds < 0.0 {
            Err("the direct C++ forward failed".into())
        } else {
            Ok((seconds, sink))
        }
    };
    // PTM_BENCH_SELF_CHECK=1 times the direct loop against itself: the method's own bias.
    let self_check = std::env::var_os("PTM_BENCH_SELF_CHECK").is_some_and(|v| v == "1");
    let run_generated = |iterations: usize| -> Result<(f64, f32), Box<dyn std::error::Error>> {
        if self_check {
            return Ok(run_direct(iterations)?);
        }
        let mut sink = 0f32;
        let start = Instant::now();
        for _ in 0..iterations {
            sink += tiny.forward(black_box(&features))?.scores[0];
        }
        Ok((start.elapsed().as_secs_f64(), sink))
    };
    // Warm-up, and proof that both sides compute the same thing.
    let (_, direct_sum) = run_direct(WARM_UP)?;
    let (_, generated_sum) = run_generated(WARM_UP)?;
    if direct_sum != generated_sum {
        return Err(format!("outputs differ: direct sum {direct_sum}, generated sum {generated_sum}").into());
    }

    let (mut direct_ns, mut generated_ns, mut ratios, mut added) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (d, g) = if round % 2 == 0 {
            let d = run_direct(FORWARDS_PER_ROUND)?.0;
            (d, run_generated(FORWARDS_PER_ROUND)?.0)
        } else {
            let g = run_generated(FORWARDS_PER_ROUND)?.0;
            (run_direct(FORWARDS_PER_ROUND)?.0, g)
        };
        let (d, g) = (d * 1e9 / FORWARDS_PER_ROUND as f64, g * 1e9 / FORWARDS_PER_ROUND as f64);
        println!("  round {round:>2}: direct C++ {d:>8.1} ns/call, generated forward {g:>8.1} ns/call, ratio {:.4}", g / d);
        direct_ns.push(d);
        generated_ns.push(g);
        ratios.push(g / d);
        added.push(g - d);
    }
    // SAFETY: loaded above, freed once.
    unsafe { ptm_bench_direct_free(direct) };
    println!("calls per side: {}", WARM_UP + rounds * FORWARDS_PER_ROUND);
    println!(
        "forward of `tiny` (Linear 16-32-4, float), {rounds} rounds of {FORWARDS_PER_ROUND} calls: direct C++ {:.1} ns, generated {:.1} ns; median ratio {:.4}x, median added {:.1} ns per call",
        median(&mut direct_ns),
        median(&mut generated_ns),
        median(&mut ratios),
        median(&mut added)
    );
    Ok(())
}

fn load_paths(rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let time = |load: &dyn Fn() -> Result<Review, ptm::Error>| -> Result<f64, ptm::Error> {
        let mut times = Vec::new();
        for _ in 0..LOADS_PER_ROUND {
            let start = Instant::now();
            black_box(load()?);
            times.push(start.elapsed().as_secs_f64());
        }
        Ok(median(&mut times))
    };
    let embedded = || Review::load();
    let file = || Review::load_from(Review::BUILD_ARTIFACT);
    time(&embedded)?;
    time(&file)?;
    let (mut embedded_ms, mut file_ms, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (e, f) = if round % 2 == 0 {
            let e = time(&embedded)?;
            (e, time(&file)?)
        } else {
            let f = time(&file)?;
            (time(&embedded)?, f)
        };
        println!("  round {round:>2}: embedded {:.2} ms, file {:.2} ms, ratio {:.4}", e * 1e3, f * 1e3, e / f);
        embedded_ms.push(e * 1e3);
        file_ms.push(f * 1e3);
        ratios.push(e / f);
    }
    println!(
        "load of `review` ({:.2} MB .ptl), {rounds} rounds of {LOADS_PER_ROUND} loads each way: embedded {:.2} ms, file {:.2} ms; median ratio {:.4}x",
        Review::INFO.artifact_bytes() as f64 / 1e6,
        median(&mut embedded_ms),
        median(&mut file_ms),
        median(&mut ratios)
    );
    Ok(())
}
