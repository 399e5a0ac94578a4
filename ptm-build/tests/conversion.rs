//! Conversion failures through the real worker and torch: each names the model, the
//! stage and the fix.

mod common;
use common::{error_text, model, venv_python, Project, TINY_MODEL};

#[test]
fn a_python_source_converts_and_is_reported() {
    let project = Project::new(&model("quantize = \"dynamic\"\noutputs = [\"scores\"]")).file("tiny.py", TINY_MODEL);
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = std::sync::Arc::clone(&lines);
    let mut builder = project.builder(&venv_python());
    builder.progress(move |event| {
        if let ptm_build::Progress::Line(line) = event {
            sink.lock().unwrap().push(line.to_string());
        }
    });
    let bundle = builder.bundle().unwrap();
    // torch's warning on every qnnpack dynamic Linear call (that qnnpack ignores
    // reduce_range) concerns ptm's configuration, not the model: it does not reach the build.
    let lines = lines.lock().unwrap();
    assert!(!lines.iter().any(|line| line.contains("reduce_range")), "{lines:#?}");
    let tiny = &bundle.models[0];
    assert_eq!(tiny.outputs[0].name, "scores");
    assert_eq!(tiny.outputs[0].shape, vec![ptm_report::Dim::Fixed(1), ptm_report::Dim::Fixed(3)]);
    assert!(tiny.operators.iter().any(|op| op == "quantized::linear_dynamic"), "{:?}", tiny.operators);
    let ptl = std::fs::read(project.path().join("out/ptm/tiny.ptl")).unwrap();
    assert!(ptl.starts_with(b"PK"), "a .ptl is a zip archive");
    assert_eq!((tiny.executorch.as_deref(), tiny.program_schema.as_deref()), (None, None), "ExecuTorch's fields are a .pte's");
    assert!(!serde_json::to_string(tiny).unwrap().contains("executorch"), "and a .ptl's models.json leaves them out");
    let written = std::fs::read_to_string(project.path().join("out/ptm/models.json")).unwrap();
    assert_eq!(ptm_report::Bundle::from_json(&written).unwrap(), bundle);
}

#[test]
fn a_raising_callable_is_reported_with_its_message() {
    let source = TINY_MODEL.replace("    torch.manual_seed(0)\n", "    raise ValueError(\"no checkpoint configured\")\n");
    let text = error_text(Project::new(&model("")).file("tiny.py", &source).build());
    assert!(text.contains("model `tiny` failed at stage `load`") && text.contains("ValueError: no checkpoint configured"), "{text}");
    assert!(text.contains("last Python frames") && text.contains("tiny.py"), "{text}");
}

#[test]
fn a_missing_callable_lists_what_is_there() {
    let text = error_text(Project::new(&model("").replace("build_model", "make")).file("tiny.py", TINY_MODEL).build());
    assert!(text.contains("no callable `make`") && text.contains("build_model"), "{text}");
}

#[test]
fn a_model_that_does_not_script_suggests_trace() {
    let source = TINY_MODEL.replace("return self.fc(x)", "return self.fc(x) if len({1: 2}.items().__iter__.__name__) else x");
    let text = error_text(Project::new(&model("")).file("tiny.py", &source).build());
    assert!(text.contains("failed at stage `export`") && text.contains("torch.jit.script failed"), "{text}");
    assert!(text.contains("export = \\\"trace\\\"") || text.contains("export = \"trace\""), "{text}");
}

#[test]
fn weights_that_do_not_fit_are_explained() {
    let project = Project::new(&model("weights = \"w.pth\"")).file("tiny.py", TINY_MODEL);
    let status = std::process::Command::new(venv_python())
        .args(["-c", &format!("import torch; torch.save({{'fc.weight': torch.zeros(2, 2)}}, r'{}')", project.path().join("w.pth").display())])
        .status()
        .unwrap();
    assert!(status.success());
    let text = error_text(project.build());
    assert!(text.contains("w.pth does not fit the model") && text.contains("fc.bias"), "{text}");
}

#[test]
fn python_not_found_lists_every_remedy() {
    let project = Project::new(&model("")).file("tiny.py", TINY_MODEL);
    let text = error_text(project.build_with(std::path::Path::new("/nonexistent/python3")));
    assert!(text.contains("/nonexistent/python3"), "{text}");
    assert!(text.contains("PTM_PYTHON") && text.contains("tools/setup") && text.contains("PTM_OFFLINE"), "{text}");
}

#[test]
fn a_python_without_torch_is_named() {
    // The machine's own python3 has no torch; the project's .venv does.
    let bare =
        ["/usr/bin/python3", "/usr/local/bin/python3"].into_iter().map(std::path::PathBuf::from).chain(which_python3()).find(|p| p.is_file() && !has_torch(p));
    let Some(bare) = bare else {
        panic!("this test needs a python3 without torch on the machine");
    };
    let text = error_text(Project::new(&model("")).file("tiny.py", TINY_MODEL).build_with(&bare));
    assert!(text.contains("torch is not importable") && text.contains("No module named 'torch'") && text.contains("pip install torch==2.11.0"), "{text}");
}

fn which_python3() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("python3")).find(|p| p.is_file() && !p.starts_with(env!("CARGO_MANIFEST_DIR")))
}

fn has_torch(python: &std::path::Path) -> bool {
    std::process::Command::new(python).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn drift_past_the_tolerance_fails_with_the_figures() {
    let project = Project::new(&model("quantize = \"dynamic\"\ntolerance = { relative = 0.0000001 }")).file("tiny.py", TINY_MODEL);
    let text = error_text(project.build());
    assert!(text.contains("failed at stage `verify`") && text.contains("drifted from the source model at stage `quantized`"), "{text}");
    assert!(text.contains("allowed 1e-07") && text.contains("tolerance"), "{text}");
    assert!(text.contains("over 8 samples"), "a failing check measures every stage on every sample: {text}");
}

#[test]
fn concurrent_builds_of_one_model_both_succeed_and_share_one_entry() {
    let project = Project::new(&model("quantize = \"dynamic\"")).file("tiny.py", TINY_MODEL);
    let cache = project.path().join("shared-cache");
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let cache = cache.clone();
                let project = &project;
                scope.spawn(move || {
                    ptm_build::Builder::new()
                        .crate_dir(project.path())
                        .out_dir(project.path().join(format!("out{i}")))
                        .cache_dir(cache)
                        .toolchain_dir(common::toolchain_dir())
                        .python(venv_python())
                        .bundle()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let bundles: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(bundles[0], bundles[1]);
    let entries: Vec<_> = std::fs::read_dir(cache.join("v1")).unwrap().collect();
    assert_eq!(entries.len(), 1, "one entry for one model");
    let staging = std::fs::read_dir(cache.join("staging")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staging, 0, "no staging directory is left behind");
}

const EMBEDDING_MODEL: &str = r#"
import torch
from torch import nn

class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.fc = nn.Linear(32, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(ids).mean(1))

def build_model():
    torch.manual_seed(0)
    return Bag()
"#;

/// (name, data offset, data) of every record of a stored (uncompressed) zip archive.
fn zip_records(bytes: &[u8]) -> Vec<(String, usize, Vec<u8>)> {
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
    let mut records = Vec::new();
    let mut at = 0;
    while bytes[at..].starts_with(b"PK\x03\x04") {
        let (size, name_len, extra_len) = (u32_at(at + 18), u16_at(at + 26), u16_at(at + 28));
        let name = String::from_utf8_lossy(&bytes[at + 30..at + 30 + name_len]).into_owned();
        let start = at + 30 + name_len + extra_len;
        records.push((name, start, bytes[start..start + size].to_vec()));
        at = start + size;
    }
    records
}

#[test]
fn quantized_embeddings_are_stored_once_in_an_aligned_archive() {
    let metadata = "[package.metadata.models.bag]\nsource = \"bag.py:build_model\"\nquantize = \"dynamic\"\n\n[[package.metadata.models.bag.inputs]]\nname = \"ids\"\ndtype = \"int64\"\nshape = [1, 12]\nrange = [0, 1000]\n";
    let project = Project::new(metadata).file("bag.py", EMBEDDING_MODEL);
    let bundle = project.build().unwrap();
    assert!(bundle.models[0].operators.contains(&"quantized::embedding_byte".to_string()), "{:?}", bundle.models[0].operators);
    let bytes = std::fs::read(project.path().join("out/ptm/bag.ptl")).unwrap();
    let records = zip_records(&bytes);
    assert!(records.len() > 5, "parsed the archive: {}", records.len());
    let storages: Vec<&(String, usize, Vec<u8>)> = records.iter().filter(|(name, _, _)| name.starts_with("model/constants/")).collect();
    let embedding = storages.iter().filter(|(_, _, data)| data.len() == 1000 * 32).count();
    assert_eq!(embedding, 1, "the 8-bit embedding weight is stored exactly once");
    for (i, a) in storages.iter().enumerate() {
        for b in &storages[i + 1..] {
            assert!(a.2 != b.2 || a.2.len() < 64, "{} and {} hold the same bytes", a.0, b.0);
        }
    }
    for (name, start, _) in &records {
        assert_eq!(start % 64, 0, "{name} is not 64-byte aligned");
        assert!(!name.ends_with(".debug_pkl"), "{name}");
    }
    assert!(records.iter().all(|(name, _, _)| name.starts_with("model/")));
}
