fn main() -> Result<(), ptm_build::Error> {
    ptm_build::bundle()?;
    // An app's own ExecuTorch log function, compiled against the ExecuTorch ptm links, for
    // threads_probe's `--app-log`.
    println!("cargo:rerun-if-changed=native/app_log.cpp");
    let includes = std::env::var_os("DEP_PTM_EXECUTORCH_INCLUDE").expect("ptm publishes ExecuTorch's include directories");
    let mut build = cc::Build::new();
    build.cpp(true).std("c++17").file("native/app_log.cpp").warnings(false);
    for dir in std::env::split_paths(&includes) {
        build.include(dir);
    }
    build.compile("ptm_test_app_log");
    // Where ExecuTorch's libraries are, for tests that preload a sanitizer runtime (whose
    // dlopen does not search the binary's rpath).
    if let Some(dir) = std::env::var_os("DEP_PTM_EXECUTORCH_RPATH") {
        println!("cargo:rustc-env=PTM_TEST_EXECUTORCH_LIB={}", dir.to_string_lossy());
    }
    // alloc_probe fails one malloc of the shims on purpose.
    println!("cargo:rustc-link-arg-bin=alloc_probe=-Wl,--wrap=malloc");
    Ok(())
}
