//! Process-wide cases of tests/tests/threads.rs, one per process: `--pool` sizes
//! ExecuTorch's pool, loads a program and tries to resize it after; `--race` loads and
//! frees programs on one thread while another resizes the pool.

use ptm_sanitize_pte::SmallPte;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--pool") => {
            ptm::set_num_threads(2).expect("a count before the first program");
            let program = SmallPte::load().expect("the .pte loads");
            program.forward(&[0.5; 8]).expect("runs on the pool it was loaded with");
            let refused = ptm::set_num_threads(3).is_err();
            program.forward(&[0.5; 8]).expect("the program still runs");
            println!("threads {} refused {refused}", ptm::num_threads());
        }
        Some("--race") => {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let resizer = {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut done = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        if ptm::set_num_threads(1 + done % 2).is_ok() {
                            done += 1;
                        }
                    }
                    done
                })
            };
            for _ in 0..300 {
                let program = SmallPte::load().expect("loads");
                program.forward(&[0.5; 8]).expect("runs on the pool it was loaded with");
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            println!("raced {} resizes", resizer.join().unwrap());
        }
        _ => panic!("pte_probe --pool | --race"),
    }
}
