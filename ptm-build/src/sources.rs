//! What the worker is made of, embedded in ptm-build: the launcher, the `ptm_convert`
//! package and the C++ of the `.pte` runner. Written out before the worker starts, and
//! hashed into every key (a change of the converter is a change of every artifact).

use ptm_toolchain::executorch::SHIM as EXECUTORCH_SHIM;

/// The worker's source files, by their path in the directory ptm-build writes them to:
/// the launcher ptm-build runs, the `ptm_convert` package, and the C++ of the runner that
/// verifies `.pte` files (beside the package's modules, where `runner.py` looks). Their bytes
/// are part of every cache key.
pub const SOURCES: &[(&str, &str)] = &[
    ("ptm_worker.py", include_str!("../python/ptm_worker.py")),
    ("ptm_convert/__init__.py", include_str!("../python/ptm_convert/__init__.py")),
    ("ptm_convert/__main__.py", include_str!("../python/ptm_convert/__main__.py")),
    ("ptm_convert/worker.py", include_str!("../python/ptm_convert/worker.py")),
    ("ptm_convert/conversion.py", include_str!("../python/ptm_convert/conversion.py")),
    ("ptm_convert/report.py", include_str!("../python/ptm_convert/report.py")),
    ("ptm_convert/common.py", include_str!("../python/ptm_convert/common.py")),
    ("ptm_convert/pipeline.py", include_str!("../python/ptm_convert/pipeline.py")),
    ("ptm_convert/pte.py", include_str!("../python/ptm_convert/pte.py")),
    ("ptm_convert/source.py", include_str!("../python/ptm_convert/source.py")),
    ("ptm_convert/load.py", include_str!("../python/ptm_convert/load.py")),
    ("ptm_convert/inputs.py", include_str!("../python/ptm_convert/inputs.py")),
    ("ptm_convert/adapt.py", include_str!("../python/ptm_convert/adapt.py")),
    ("ptm_convert/trace.py", include_str!("../python/ptm_convert/trace.py")),
    ("ptm_convert/quantize.py", include_str!("../python/ptm_convert/quantize.py")),
    ("ptm_convert/layers.py", include_str!("../python/ptm_convert/layers.py")),
    ("ptm_convert/verify.py", include_str!("../python/ptm_convert/verify.py")),
    ("ptm_convert/compare.py", include_str!("../python/ptm_convert/compare.py")),
    ("ptm_convert/archive.py", include_str!("../python/ptm_convert/archive.py")),
    ("ptm_convert/runner.py", include_str!("../python/ptm_convert/runner.py")),
    ("ptm_convert/py.typed", include_str!("../python/ptm_convert/py.typed")),
    ("ptm_convert/ptm_executorch.h", EXECUTORCH_SHIM[0].1),
    ("ptm_convert/ptm_executorch.cpp", EXECUTORCH_SHIM[1].1),
    ("ptm_convert/ptm_tensor.h", ptm_toolchain::TENSOR_HEADER.1),
    ("ptm_convert/ptm_executorch_runner.cpp", include_str!("../executorch/ptm_executorch_runner.cpp")),
];

#[cfg(test)]
mod tests {
    use super::SOURCES;

    /// Every file of the package is written out with the worker, and so hashed into the
    /// keys: a module left out would fail to import only in a build.
    #[test]
    fn every_file_of_the_package_is_a_source() {
        let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/ptm_convert");
        let mut files: Vec<String> = std::fs::read_dir(&package)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".py") || name == "py.typed")
            .collect();
        files.sort();
        let mut listed: Vec<String> = SOURCES
            .iter()
            .filter_map(|(name, _)| name.strip_prefix("ptm_convert/"))
            .filter(|name| !name.ends_with(".h") && !name.ends_with(".cpp"))
            .map(String::from)
            .collect();
        listed.sort();
        assert_eq!(files, listed);
    }
}
