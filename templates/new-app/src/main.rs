//! Runs the model declared in Cargo.toml through its generated wrapper.

ptm::include_models!();

fn main() -> Result<(), ptm::Error> {
    // Models run on one intra-op thread unless PTM_NUM_THREADS or ptm::set_num_threads
    // (called before the first load) says otherwise: libtorch's default of a thread per
    // core can be many times slower on a busy machine (BENCHMARKS.md in ptm).
    let classifier = Classifier::load()?;
    let features: [f32; 16] = std::array::from_fn(|i| i as f32 / 16.0);
    let out = classifier.forward(&features)?;
    let best = out.scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
    println!("classifier: class {best}, scores {:?}, shape {:?}", out.scores.data(), out.scores.shape());
    Ok(())
}
