//! What the worker is made of, embedded in ptm-build: the launcher, the `ptm_convert`
//! package, and the C++ of the `.pte` runner with the recipe that compiles it. Written
//! out before the worker starts, and hashed into every key (a change of the converter
//! is a change of every artifact).

use ptm_toolchain::executorch::{RECIPE_FILE, SHIM};

/// The worker's own files, by their path in the directory ptm-build writes them to: the
/// launcher ptm-build runs, the `ptm_convert` package and the runner's `main`.
const SOURCES: &[(&str, &str)] = &[
    ("ptm_worker.py", include_str!("../python/ptm_worker.py")),
    ("ptm_convert/__init__.py", include_str!("../python/ptm_convert/__init__.py")),
    ("ptm_convert/__main__.py", include_str!("../python/ptm_convert/__main__.py")),
    ("ptm_convert/worker.py", include_str!("../python/ptm_convert/worker.py")),
    ("ptm_convert/conversion.py", include_str!("../python/ptm_convert/conversion.py")),
    ("ptm_convert/report.py", include_str!("../python/ptm_convert/report.py")),
    ("ptm_convert/common.py", include_str!("../python/ptm_convert/common.py")),
    ("ptm_convert/pipeline.py", include_str!("../python/ptm_convert/pipeline.py")),
    ("ptm_convert/pte.py", include_str!("../python/ptm_convert/pte.py")),
    ("ptm_convert/patterns.py", include_str!("../python/ptm_convert/patterns.py")),
    ("ptm_convert/provenance.py", include_str!("../python/ptm_convert/provenance.py")),
    ("ptm_convert/decompositions.py", include_str!("../python/ptm_convert/decompositions.py")),
    ("ptm_convert/replay.py", include_str!("../python/ptm_convert/replay.py")),
    ("ptm_convert/pt2e.py", include_str!("../python/ptm_convert/pt2e.py")),
    ("ptm_convert/recurrent.py", include_str!("../python/ptm_convert/recurrent.py")),
    ("ptm_convert/source.py", include_str!("../python/ptm_convert/source.py")),
    ("ptm_convert/load.py", include_str!("../python/ptm_convert/load.py")),
    ("ptm_convert/inputs.py", include_str!("../python/ptm_convert/inputs.py")),
    ("ptm_convert/adapt.py", include_str!("../python/ptm_convert/adapt.py")),
    ("ptm_convert/trace.py", include_str!("../python/ptm_convert/trace.py")),
    ("ptm_convert/quantize.py", include_str!("../python/ptm_convert/quantize.py")),
    ("ptm_convert/layers.py", include_str!("../python/ptm_convert/layers.py")),
    ("ptm_convert/verify.py", include_str!("../python/ptm_convert/verify.py")),
    ("ptm_convert/compare.py", include_str!("../python/ptm_convert/compare.py")),
    ("ptm_convert/reference.py", include_str!("../python/ptm_convert/reference.py")),
    ("ptm_convert/archive.py", include_str!("../python/ptm_convert/archive.py")),
    ("ptm_convert/runner.py", include_str!("../python/ptm_convert/runner.py")),
    ("ptm_convert/py.typed", include_str!("../python/ptm_convert/py.typed")),
    ("ptm_convert/ptm_executorch_runner.cpp", include_str!("../executorch/ptm_executorch_runner.cpp")),
];

/// Every source file of the worker, by its path in the directory ptm-build writes them
/// to: [`SOURCES`], then ptm-toolchain's ExecuTorch shim (every file of it), the C
/// header of the types it shares with the Lite Interpreter's shim and the recipe that
/// compiles it, beside the package's modules, where `runner.py` looks for
/// them. Their bytes are part of every cache key.
pub fn all() -> impl Iterator<Item = (String, &'static str)> {
    let shim: &'static [(&str, &str)] = &SHIM;
    let toolchain = shim.iter().chain([&ptm_toolchain::TENSOR_HEADER, &RECIPE_FILE]).map(|(name, text)| (format!("ptm_convert/{name}"), *text));
    SOURCES.iter().map(|(name, text)| (name.to_string(), *text)).chain(toolchain)
}

#[cfg(test)]
mod tests {
    use super::all;

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
        let mut listed: Vec<String> = all()
            .filter_map(|(name, _)| name.strip_prefix("ptm_convert/").map(String::from))
            .filter(|name| name.ends_with(".py") || name == "py.typed")
            .collect();
        listed.sort();
        assert_eq!(files, listed);
    }

    /// The runner is compiled from every file of the shim, with the recipe, all written
    /// beside the package's modules.
    #[test]
    fn the_shim_and_the_recipe_are_written_beside_the_package() {
        let names: Vec<String> = all().map(|(name, _)| name).collect();
        for (file, _) in ptm_toolchain::executorch::SHIM.iter().chain([&ptm_toolchain::executorch::RECIPE_FILE]) {
            assert!(names.contains(&format!("ptm_convert/{file}")), "{file}");
        }
    }
}
