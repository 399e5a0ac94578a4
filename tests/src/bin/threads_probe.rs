//! Loads a model in a fresh process and prints libtorch's intra-op thread count after
//! it, for tests/tests/threads.rs (the count is process-wide, so each case needs its
//! own process). `--set N` calls `ptm::set_num_threads(N)` before loading (printing
//! `refused <error>` when it is refused); `--untouched` prints libtorch's own default
//! without loading anything; `--pte` loads the ExecuTorch program instead and then
//! tries to resize the pool; `--follow` runs a model on a thread, changes the count
//! from another and prints what the first thread then runs with; `--race` loads and
//! frees programs on one thread while another resizes ExecuTorch's pool; `--app-log`
//! registers the app's own ExecuTorch log first, then fails a load; `--warn` runs the
//! dynamic INT8 model, about which libtorch warns.

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
        if let Err(error) = ptm::set_num_threads(args[at + 1].parse().expect("a thread count")) {
            println!("refused {error}");
        }
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
    if args.iter().any(|a| a == "--follow") {
        follow();
        return;
    }
    if args.iter().any(|a| a == "--race") {
        race();
        return;
    }
    if args.iter().any(|a| a == "--app-log") {
        app_log();
        return;
    }
    if args.iter().any(|a| a == "--engine-less") {
        engine_less();
        return;
    }
    if args.iter().any(|a| a == "--warn") {
        let classifier = models::Classifier::load_from(models::Classifier::BUILD_ARTIFACT).expect("loads");
        classifier.forward(&[0.5; 16]).expect("runs");
        println!("ran");
        return;
    }
    match models::Classifier::load_from(models::Classifier::BUILD_ARTIFACT) {
        Ok(_) => println!("threads {}", ptm::num_threads()),
        Err(error) => println!("error {error}"),
    }
}

/// A thread that already ran a model, then another thread's new count.
fn follow() {
    let classifier = std::sync::Arc::new(models::Classifier::load_from(models::Classifier::BUILD_ARTIFACT).expect("loads"));
    let (to_worker, from_main) = std::sync::mpsc::channel::<()>();
    let (to_main, from_worker) = std::sync::mpsc::channel::<usize>();
    let worker = {
        let classifier = std::sync::Arc::clone(&classifier);
        std::thread::spawn(move || {
            classifier.forward(&[0.5; 16]).expect("runs");
            to_main.send(ptm::num_threads()).unwrap();
            from_main.recv().unwrap();
            classifier.forward(&[0.5; 16]).expect("runs");
            to_main.send(ptm::num_threads()).unwrap();
        })
    };
    let before = from_worker.recv().unwrap();
    ptm::set_num_threads(2).expect("set");
    to_worker.send(()).unwrap();
    let after = from_worker.recv().unwrap();
    worker.join().unwrap();
    println!("threads {before} then {after}");
}

/// Loads racing resizes: every resize either refused (a program exists) or done while
/// none does, and nothing crashes.
fn race() {
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
        let program = models::SmallPte::load().expect("loads");
        program.forward(&[0.5; 8]).expect("runs on the pool it was loaded with");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let resized = resizer.join().unwrap();
    println!("raced {resized} resizes");
}

// Built by this crate's build script (tests/native/app_log.cpp).
#[link(name = "ptm_test_app_log", kind = "static")]
extern "C" {
    fn ptm_test_register_app_log() -> i32;
    fn ptm_test_app_log(out: *mut std::ffi::c_char, capacity: usize);
}

/// The app registers its own ExecuTorch log, then a program fails to load: the app's log
/// must get ExecuTorch's error line.
fn app_log() {
    // SAFETY: plain calls into tests/native/app_log.cpp.
    assert_eq!(unsafe { ptm_test_register_app_log() }, 1);
    let half = &models::SmallPte::BYTES[..models::SmallPte::BYTES.len() / 2];
    let error = ptm::Program::from_bytes(half, &ptm::Options::new("half")).expect_err("half a program");
    let mut text = vec![0 as std::ffi::c_char; 4096];
    // SAFETY: room for 4096 bytes, NUL included.
    unsafe { ptm_test_app_log(text.as_mut_ptr(), text.len()) };
    // SAFETY: NUL-terminated above.
    let logged = unsafe { std::ffi::CStr::from_ptr(text.as_ptr()) }.to_string_lossy().into_owned();
    println!("app log: {}", logged.trim_end().replace('\n', " | "));
    println!("error: {error}");
}

/// A quantized model loaded without naming its engine runs under the engine that was in
/// force when it loaded, even after another model switched it.
fn engine_less() {
    let fbgemm = models::ClassifierFbgemm::load().expect("loads");
    let bytes = std::fs::read(models::Classifier::BUILD_ARTIFACT).expect("the .ptl");
    let unnamed = ptm::Module::from_bytes(&bytes, &ptm::Options::new("unnamed")).expect("loads under fbgemm");
    let qnnpack = models::Classifier::load_from(models::Classifier::BUILD_ARTIFACT).expect("loads");
    let x = [0.5f32; 16];
    qnnpack.forward(&x).expect("runs");
    let after_qnnpack = ptm::Engine::current();
    let [_] = unnamed.forward::<1>(&[ptm::Input::new(&x, &[1, 16]).unwrap()]).expect("runs");
    println!("{after_qnnpack:?} then {:?}", ptm::Engine::current());
    drop(fbgemm);
}
