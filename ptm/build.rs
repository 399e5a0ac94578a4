//! Compiles the C++ shims of the enabled backends and links what they run on: the
//! Lite Interpreter's against the chosen libtorch (feature `lite`), ExecuTorch's against
//! the chosen ExecuTorch (feature `executorch`).

use ptm_toolchain::vars::{DOCS_RS, OUT_DIR, TARGET};
use ptm_toolchain::{env, executorch, libtorch, vars, Error};
use std::path::{Path, PathBuf};

fn main() {
    if let Err(error) = run() {
        eprintln!("{error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Error> {
    let target = std::env::var(TARGET).unwrap_or_default();
    let out_dir = PathBuf::from(std::env::var_os(OUT_DIR).unwrap_or_default());
    // What chooses the libtorch and the ExecuTorch (the list says why not PTM_CACHE_DIR).
    env::watch(vars::RUNTIME_WATCHED);
    println!("cargo:rerun-if-changed=shim");
    env::rerun_if_env_changed(DOCS_RS);
    // docs.rs (DOCS_RS) and the `doc-only` feature document the crate with no libtorch
    // and no Python: nothing is compiled or linked, so such a build documents and
    // type-checks but cannot link a binary.
    if std::env::var_os(DOCS_RS).is_some() || std::env::var_os("CARGO_FEATURE_DOC_ONLY").is_some() {
        println!("cargo:rustc-env=PTM_LIBTORCH_ORIGIN=none (a documentation build: DOCS_RS or the doc-only feature)");
        println!("cargo:rustc-env=PTM_EXECUTORCH_ORIGIN=none (a documentation build: DOCS_RS or the doc-only feature)");
        println!("cargo:rustc-env=PTM_EXECUTORCH_VERSION=");
        return Ok(());
    }
    if std::env::var_os(vars::PTM_NO_SHIM).is_some_and(|v| v == "1") {
        println!(
            "cargo:warning=ptm: {}=1: the C++ shims are not compiled for {target} and nothing is linked; this checks the Rust side only, and the library cannot link into an app",
            vars::PTM_NO_SHIM
        );
        println!("cargo:rustc-env=PTM_LIBTORCH_ORIGIN=none ({}=1)", vars::PTM_NO_SHIM);
        println!("cargo:rustc-env=PTM_EXECUTORCH_ORIGIN=none ({}=1)", vars::PTM_NO_SHIM);
        println!("cargo:rustc-env=PTM_EXECUTORCH_VERSION=");
        return Ok(());
    }
    if target.contains("apple-ios") && !cfg!(target_os = "macos") && std::env::var_os(vars::SDKROOT).is_none() {
        return Err(Error::Environment {
            variable: vars::SDKROOT.into(),
            fix: format!(
                "{target}: ptm's C++ shim is compiled with Apple's iOS SDK, which only macOS has (Xcode): build on macOS, or set {} to an iOS SDK; {}=1 checks the Rust side alone, and that library cannot link into an app",
                vars::SDKROOT,
                vars::PTM_NO_SHIM
            ),
        });
    }
    let lite = std::env::var_os("CARGO_FEATURE_LITE").is_some();
    let executorch = std::env::var_os("CARGO_FEATURE_EXECUTORCH").is_some();
    if !lite && !executorch {
        return Err(Error::Environment {
            variable: "CARGO_FEATURE_LITE".into(),
            fix: "enable a backend of the ptm crate: its default feature `lite` (the Lite Interpreter, for .ptl models) or `executorch` (for .pte models), or both".into(),
        });
    }
    match executorch {
        true => link_executorch(&target, &out_dir, lite)?,
        false => {
            println!("cargo:rustc-env=PTM_EXECUTORCH_ORIGIN=none (the executorch feature is off)");
            println!("cargo:rustc-env=PTM_EXECUTORCH_VERSION=");
        }
    }
    match lite {
        true => link_libtorch(&target, &out_dir),
        false => {
            println!("cargo:rustc-env=PTM_LIBTORCH_ORIGIN=none (the lite feature is off)");
            Ok(())
        }
    }
}

/// ExecuTorch's shim, from the source ptm-build compiles the `.pte` runner from, so a
/// model runs in the code that verified it.
fn link_executorch(target: &str, out_dir: &Path, beside_libtorch: bool) -> Result<(), Error> {
    let found = executorch::locate(target, out_dir)?;
    if beside_libtorch && target.contains("android") {
        println!(
            "cargo:warning=ptm: both backends (lite and executorch) for {target}: bionic cannot load ExecuTorch's backend with its own symbols first (no RTLD_DEEPBIND), so its XNNPACK may bind to libtorch's and .pte models fail to run; ship one backend per Android app"
        );
    }
    for path in &found.watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let dir = out_dir.join("executorch-shim");
    executorch::write_shim(&dir)?;
    // The one recipe (ptm-toolchain's executorch/recipe.json), which the build-time
    // runner and the ARM check compile with too.
    let recipe = executorch::Recipe::get().compile(&found);
    let mut build = cc::Build::new();
    build.cpp(true).std(recipe.std).file(dir.join("ptm_executorch.cpp")).include(&dir).warnings(recipe.warnings).opt_level(recipe.opt_level);
    if !recipe.warnings {
        build.flag("-w");
    }
    for define in &recipe.defines {
        build.define(define, None);
    }
    // Deep-bind the backend's libraries only when libtorch's own XNNPACK shares the
    // process (the shim says why).
    if beside_libtorch {
        build.define("PTM_ET_DEEPBIND", None);
    }
    for include in &recipe.include_dirs {
        build.include(include);
    }
    build.compile("ptm_executorch");
    println!("cargo:rustc-link-search=native={}", recipe.lib_dir.display());
    for name in recipe.libraries.iter().chain(&recipe.system_libraries) {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
    if recipe.rpath && !libtorch::is_mobile(target) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", recipe.lib_dir.display());
        println!("cargo:{}={}", executorch::RPATH_METADATA, recipe.lib_dir.display());
    }
    println!("cargo:rustc-env=PTM_EXECUTORCH_ORIGIN={}", found.origin);
    println!("cargo:rustc-env=PTM_EXECUTORCH_VERSION={}", found.version.as_deref().unwrap_or_default());
    // For ptm_build::bundle() in the app's build script: the .pte models must not be
    // newer than the runtime that loads them.
    println!("cargo:{}={}", executorch::VERSION_METADATA, found.version.as_deref().unwrap_or_default());
    // For build scripts of crates that compile their own C++ against the same ExecuTorch.
    let includes = std::env::join_paths(&found.include_dirs).map_err(|e| Error::Environment {
        variable: vars::PTM_EXECUTORCH_DIR.into(),
        fix: format!("the ExecuTorch include paths cannot be joined ({e}); use a path without the separator"),
    })?;
    println!("cargo:executorch_include={}", includes.to_string_lossy());
    Ok(())
}

fn link_libtorch(target: &str, out_dir: &Path) -> Result<(), Error> {
    let torch = libtorch::locate(target, out_dir)?;
    for path in &torch.watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    // The input and output types, shared with ExecuTorch's shim.
    let shared = out_dir.join("ptm-include");
    ptm_toolchain::write_sources(&shared, &[ptm_toolchain::TENSOR_HEADER])?;
    let mut build = cc::Build::new();
    // Optimized in every profile: the shim sits on every call, and nobody steps through it.
    build.cpp(true).std("c++17").file("shim/ptm_shim.cpp").include("shim").include(&shared).warnings(false).opt_level(2);
    for dir in &torch.include_dirs {
        build.include(dir);
    }
    if let Some(abi) = torch.cxx11_abi {
        build.define("_GLIBCXX_USE_CXX11_ABI", if abi { "1" } else { "0" });
    }
    build.compile("ptm_shim");

    if target.contains("android") {
        // Searched first: the AARs' libraries as shipped are refused by the NDK's lld.
        if let Some(dir) = libtorch::link_copies(&torch, &out_dir.join("libtorch-link"))? {
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
    }
    println!("cargo:rustc-link-search=native={}", torch.lib_dir.display());
    for name in &torch.dylibs {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
    // For build scripts of crates that compile their own C++ against the same libtorch.
    let includes = std::env::join_paths(&torch.include_dirs).map_err(|e| Error::Environment {
        variable: vars::LIBTORCH.into(),
        fix: format!("the libtorch include paths cannot be joined ({e}); use a path without the separator"),
    })?;
    println!("cargo:include={}", includes.to_string_lossy());
    if let Some(abi) = torch.cxx11_abi {
        println!("cargo:cxx11_abi={}", u8::from(abi));
    }
    if torch.rpath {
        // For this crate's own tests; apps get theirs from ptm_build::bundle().
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", torch.lib_dir.display());
        println!("cargo:{}={}", libtorch::RPATH_METADATA, torch.lib_dir.display());
    }
    println!("cargo:rustc-env=PTM_LIBTORCH_ORIGIN={}", torch.origin);
    // For ptm_build::bundle() in the app's build script: the models must have been
    // verified with the torch this runtime links.
    if let Some(version) = &torch.version {
        println!("cargo:{}={version}", libtorch::TORCH_VERSION_METADATA);
    }
    println!("cargo:{}={}", libtorch::TORCH_ORIGIN_METADATA, torch.origin);
    Ok(())
}
