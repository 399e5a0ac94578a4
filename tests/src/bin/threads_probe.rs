//! Loads a model in a fresh process and prints libtorch's intra-op thread count after
//! it, for tests/tests/threads.rs (the count is process-wide, so each case needs its
//! own process). `--set 2` calls `ptm::set_num_threads(2)` before loading;
//! `--untouched` prints libtorch's own default without loading anything; `--pte` loads
//! the ExecuTorch program instead and then tries to resize the pool.

#[allow(dead_code)]
mod models {
    ptm::include_models!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--untouched") {
        println!("threads {}", ptm::num_threads());
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--set") {
        ptm::set_num_threads(args[at + 1].parse().expect("a thread count")).expect("set_num_threads");
    }
    if args.iter().any(|a| a == "--pte") {
        // ExecuTorch's pool: sized before the first program loads, refused after.
        let program = models::ClassifierPte::load().expect("the .pte loads");
        let features = [0.5f32; 16];
        program.forward(&features).expect("forward runs on the pool it was loaded with");
        match ptm::set_num_threads(3) {
            Ok(()) => println!("threads {} resized after loading", ptm::num_threads()),
            Err(error) => println!("threads {} refused: {error}", ptm::num_threads()),
        }
        program.forward(&features).expect("the program still runs");
        return;
    }
    match models::Classifier::load_from(models::Classifier::BUILD_ARTIFACT) {
        Ok(_) => println!("threads {}", ptm::num_threads()),
        Err(error) => println!("error {error}"),
    }
}
