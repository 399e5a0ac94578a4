//! Converts the benchmark's models and compiles the direct C++ baseline against the
//! headers the ptm runtime was compiled with.

fn main() -> Result<(), ptm_build::Error> {
    ptm_build::bundle()?;
    println!("cargo:rerun-if-changed=direct.cpp");
    let mut build = cc::Build::new();
    build.cpp(true).std("c++17").file("direct.cpp").warnings(false).opt_level(2);
    let includes = std::env::var_os("DEP_PTM_INCLUDE").unwrap_or_default();
    for dir in std::env::split_paths(&includes) {
        build.include(dir);
    }
    if let Ok(abi) = std::env::var("DEP_PTM_CXX11_ABI") {
        build.define("_GLIBCXX_USE_CXX11_ABI", abi.as_str());
    }
    build.compile("ptm_bench_direct");
    Ok(())
}
