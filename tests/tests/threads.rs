//! The runtime's intra-op thread count: one by default, PTM_NUM_THREADS, or the app's own
//! choice. Each case loads a model in a process of its own.

fn probe(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_threads_probe"));
    command.args(args).env_remove("PTM_NUM_THREADS").env_remove("OMP_NUM_THREADS");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn one_thread_unless_the_environment_or_the_app_says_otherwise() {
    assert_eq!(probe(&[], &[]), "threads 1");
    assert_eq!(probe(&[], &[("PTM_NUM_THREADS", "2")]), "threads 2");
    // 0 leaves libtorch's own default, whatever it is on this machine.
    assert_eq!(probe(&[], &[("PTM_NUM_THREADS", "0")]), probe(&["--untouched"], &[]));
    // The app's own call wins over the variable and the default.
    assert_eq!(probe(&["--set", "2"], &[("PTM_NUM_THREADS", "3")]), "threads 2");
    let error = probe(&[], &[("PTM_NUM_THREADS", "many")]);
    assert!(error.starts_with("error") && error.contains("PTM_NUM_THREADS=\"many\" is not a number of threads"), "{error}");
}

#[test]
fn executorchs_pool_is_sized_before_the_first_program_and_not_after() {
    // Sized by the app before loading (both backends take the count).
    let out = probe(&["--set", "2", "--pte"], &[]);
    assert!(out.starts_with("threads 2 refused: "), "{out}");
    // Resizing under a loaded XNNPACK delegate corrupted the heap: it is an error instead,
    // nothing changes (libtorch's count stays 2 too), and the program keeps running.
    assert!(out.contains("can change only while no model is loaded: set it before loading models"), "{out}");
}

#[test]
fn counts_beyond_the_cap_are_refused_and_a_refusal_changes_nothing() {
    let error = probe(&[], &[("PTM_NUM_THREADS", "16384")]);
    assert!(error.starts_with("error") && error.contains("PTM_NUM_THREADS: 16384 threads is more than ptm allows (256"), "{error}");
    // Refused: the default from the variable still applies when the first model loads.
    let out = probe(&["--set", "100000"], &[("PTM_NUM_THREADS", "3")]);
    assert!(out.starts_with("refused ptm: 100000 threads is more than ptm allows"), "{out}");
    assert!(out.ends_with("threads 3"), "{out}");
}

#[test]
fn zero_means_the_runtimes_default_from_the_variable_and_the_call_alike() {
    let default = probe(&["--untouched"], &[]);
    assert_eq!(probe(&["--set", "0"], &[]), default);
    assert_eq!(probe(&[], &[("PTM_NUM_THREADS", "0")]), default);
}

#[test]
fn a_thread_that_already_ran_a_model_takes_a_new_count() {
    assert_eq!(probe(&["--follow"], &[]), "threads 1 then 2");
}

#[test]
fn loading_programs_while_another_thread_resizes_the_pool_is_safe() {
    let out = probe(&["--race"], &[]);
    assert!(out.starts_with("raced "), "{out}");
}

#[test]
fn an_apps_own_executorch_log_is_kept() {
    let out = probe(&["--app-log"], &[]);
    // ExecuTorch's explanation reached the app's log; ptm's error still has the code.
    let (log, error) = out.split_once("\nerror: ").unwrap();
    assert!(log.contains("File size is too small"), "{out}");
    assert!(error.contains("ExecuTorch error"), "{out}");
}

#[test]
fn libtorchs_warnings_stay_off_the_apps_stderr() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_threads_probe")).arg("--warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Warning:"), "libtorch wrote to stderr: {stderr}");
}

/// threads_probe `--pte` with AddressSanitizer's runtime preloaded, which refuses deep binding.
fn under_asan(env: &[(&str, &str)]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_threads_probe"));
    command
        .arg("--pte")
        .env("LD_PRELOAD", ptm_tests::asan_runtime())
        .env("LD_LIBRARY_PATH", env!("PTM_TEST_EXECUTORCH_LIB"))
        .env("ASAN_OPTIONS", "detect_leaks=0")
        .env_remove("PTM_EXECUTORCH_DEEPBIND");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn deep_binding_is_used_beside_libtorch_and_can_be_turned_off() {
    // This binary links libtorch too: the backend is deep-bound, which a sanitizer refuses.
    assert!(under_asan(&[]).contains("with RTLD_DEEPBIND flag which is incompatible with sanitizer runtime"));
    // Turned off, the backend loads (and then binds to libtorch's XNNPACK, which is why
    // deep binding is the default here).
    let stderr = under_asan(&[("PTM_EXECUTORCH_DEEPBIND", "0")]);
    assert!(!stderr.contains("RTLD_DEEPBIND"), "{stderr}");
}

#[test]
fn a_quantized_model_loaded_without_an_engine_runs_under_the_one_it_loaded_with() {
    // Loaded while fbgemm was in force: its runs take fbgemm back from qnnpack.
    assert_eq!(probe(&["--engine-less"], &[]), "Some(Qnnpack) then Some(Fbgemm)");
}
