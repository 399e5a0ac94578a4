//! Validated toolchains with real environments: the project's .venv (the default
//! toolchain) and the newest `.pte` toolchain, made by `tools/toolchains/run install`.

mod common;

use common::{error_text, model, pte_only_series, toolchain_dir, toolchain_python, venv_python, Project, TINY_MODEL};
use ptm_build::Format;

fn two_formats() -> Project {
    let pte = model("format = \"pte\"\nquantize = \"dynamic\"").replace("models.tiny", "models.current");
    let ptl = model("quantize = \"dynamic\"").replace("models.tiny", "models.legacy");
    Project::new(&format!("{ptl}\n{pte}")).file("tiny.py", TINY_MODEL)
}

fn builder(project: &Project) -> ptm_build::Builder {
    let mut builder = ptm_build::Builder::new();
    builder.crate_dir(project.path()).out_dir(project.path().join("out")).cache_dir(project.path().join("cache")).toolchain_dir(toolchain_dir());
    builder
}

#[test]
fn a_ptl_model_in_a_toolchain_that_cannot_make_it_fails_naming_why_and_the_fix() {
    let series = pte_only_series();
    let project = two_formats();
    let text = error_text(builder(&project).python(toolchain_python(&series)).bundle());
    assert!(text.contains(&format!("torch {series}.")) && text.contains("cannot make .ptl files"), "{text}");
    assert!(text.contains("set PTM_PYTHON_PTL (or PTM_PYTHON) to its python") && text.contains("PTM_ALLOW_UNTESTED_TORCH=1"), "{text}");
    // The .pte half is fine in this environment and is not blamed.
    assert!(!text.contains(".pte files"), "{text}");
    assert!(!project.path().join("out/ptm/legacy.ptl").exists() && !project.path().join("out/ptm/current.pte").exists());
}

#[test]
fn each_format_converts_in_its_own_toolchain_and_says_so() {
    let series = pte_only_series();
    let project = two_formats();
    let newest = toolchain_python(&series);
    let bundle = builder(&project).python(venv_python()).python_for(Format::Pte, &newest).bundle().unwrap_or_else(|e| panic!("{e}"));
    let model = |name: &str| bundle.models.iter().find(|m| m.name == name).unwrap();
    let (legacy, current) = (model("legacy"), model("current"));
    assert!(current.torch.starts_with(&format!("{series}.")), "{}", current.torch);
    assert_eq!(ptm_toolchain::toolchains::series(&legacy.torch), ptm_toolchain::toolchains::Table::get().default);
    assert!(current.executorch.is_some() && legacy.executorch.is_none());
    let python = |m: &ptm_build::ModelReport| m.python.clone().unwrap_or_default();
    assert!(python(current).contains(&newest.display().to_string()) && python(current).contains("Builder::python_for(pte)"), "{}", python(current));
    assert!(python(legacy).contains("Builder::python"), "{}", python(legacy));
    for m in [legacy, current] {
        let drift = m.runtime_drift().unwrap_or_else(|| panic!("{} was verified in its runtime", m.name));
        assert!(drift.outputs.iter().all(|o| o.max_abs < 0.05), "{}: {drift:?}", m.name);
    }
    // Converted once: a second build with the same choice hits the cache for both, each
    // under a key of its own toolchain.
    let again = builder(&project).python(venv_python()).python_for(Format::Pte, &newest).build().unwrap_or_else(|e| panic!("{e}"));
    assert!(again.models.iter().all(|m| m.origin == ptm_build::Origin::Cache), "{:?}", again.models.iter().map(|m| m.origin).collect::<Vec<_>>());
}
