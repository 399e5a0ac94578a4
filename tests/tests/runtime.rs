//! The runtime and the generated wrappers on models this crate declares in its
//! Cargo.toml, converted by its build script like an app's.

use models::{Classifier, Pair};
use ptm::TensorRef;
use std::sync::Arc;

/// The wrappers of the models this crate declares in its Cargo.toml. The lint proves
/// that every generated public item is documented.
#[deny(missing_docs)]
pub mod models {
    ptm::include_models!();
}

fn features(seed: u32) -> [f32; 16] {
    std::array::from_fn(|i| ((i as u32 * 7 + seed * 13) % 17) as f32 / 8.0 - 1.0)
}

#[test]
fn a_dynamic_batch_runs_and_outputs_carry_their_shapes() {
    let pair = Pair::load().unwrap();
    for batch in [1usize, 3, 5] {
        let x: Vec<f32> = (0..batch * 4).map(|i| i as f32 * 0.25).collect();
        let ids: Vec<i64> = (0..batch * 5).map(|i| (i % 10) as i64).collect();
        let out = pair.forward(TensorRef::new(&x, &[batch, 4]), TensorRef::new(&ids, &[batch, 5])).unwrap();
        assert_eq!(out.scores.shape(), [batch, 2]);
        assert_eq!(out.doubled.shape(), [batch, 4]);
        // The second output is x * 2, computed by the model, checked element by element.
        let expected: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
        assert_eq!(out.doubled.data(), expected.as_slice());
    }
}

#[test]
fn rows_of_a_batch_are_independent() {
    let pair = Pair::load().unwrap();
    let x: Vec<f32> = (0..12).map(|i| (i as f32).sin()).collect();
    let ids: Vec<i64> = (0..15).map(|i| (i * 3 % 10) as i64).collect();
    let batch = pair.forward(TensorRef::new(&x, &[3, 4]), TensorRef::new(&ids, &[3, 5])).unwrap();
    for row in 0..3 {
        let one = pair.forward(TensorRef::new(&x[row * 4..row * 4 + 4], &[1, 4]), TensorRef::new(&ids[row * 5..row * 5 + 5], &[1, 5])).unwrap();
        for (a, b) in one.scores.data().iter().zip(&batch.scores.data()[row * 2..row * 2 + 2]) {
            assert!((a - b).abs() < 1e-5, "row {row}: {a} alone, {b} in the batch");
        }
    }
}

#[test]
fn shape_mistakes_are_errors_naming_the_input() {
    let pair = Pair::load().unwrap();
    let x = [0f32; 12];
    let ids = [0i64; 10];
    let error = pair.forward(TensorRef::new(&x, &[3, 4]), TensorRef::new(&ids, &[2, 5])).unwrap_err();
    assert_eq!(error.to_string(), "ptm: input `ids` of model `pair` has shape [2, 5], expected [batch, 5]: `batch` is 2 here but 3 in an earlier input");
    let error = pair.forward(TensorRef::new(&x, &[4, 3]), TensorRef::new(&ids, &[2, 5])).unwrap_err();
    assert!(matches!(error.kind(), ptm::ErrorKind::Shape { input, .. } if input == "x"), "{error}");
}

#[test]
fn a_value_the_model_rejects_is_torchs_error_not_a_crash() {
    let pair = Pair::load().unwrap();
    let x = [0f32; 4];
    let ids = [0, 1, 2, 3, 99i64];
    let error = pair.forward(TensorRef::new(&x, &[1, 4]), TensorRef::new(&ids, &[1, 5])).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("ptm: model `pair` failed in `forward`: ") && text.contains("index out of range"), "{text}");
    // The handle stays usable after an error.
    let ids = [0i64; 5];
    assert!(pair.forward(TensorRef::new(&x, &[1, 4]), TensorRef::new(&ids, &[1, 5])).is_ok());
}

#[test]
fn bytes_and_file_load_the_same_model() {
    let bytes = std::fs::read(Classifier::BUILD_ARTIFACT).unwrap();
    let from_file = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap();
    let from_bytes = ptm::Module::from_bytes(&bytes, &ptm::Options::new("classifier").engine(ptm::Engine::Qnnpack)).unwrap();
    let input = features(1);
    let a = from_file.forward(&input).unwrap();
    let [b] = from_bytes.forward::<1>(&[ptm::Input::new(&input, &[1, 16]).unwrap()]).unwrap();
    assert_eq!(a.logits.shape(), [1, 4]);
    assert_eq!(a.logits.data(), b.data::<f32>().unwrap());
}

#[test]
fn broken_files_are_load_errors_with_torchs_message() {
    let error = Classifier::load_from("/nonexistent/classifier.ptl").unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("ptm: could not load /nonexistent/classifier.ptl (model `classifier`): "), "{text}");
    let mut bytes = std::fs::read(Classifier::BUILD_ARTIFACT).unwrap();
    bytes.truncate(bytes.len() / 2);
    let error = ptm::Module::from_bytes(&bytes, &ptm::Options::new("half")).unwrap_err();
    assert!(matches!(error.kind(), ptm::ErrorKind::NotLite { what, problem } if what.contains("model `half`") && problem.contains("truncated")), "{error}");
    let error = ptm::Module::from_bytes(b"not a zip archive", &ptm::Options::default()).unwrap_err();
    assert!(error.to_string().starts_with("ptm: could not load 17 bytes of a .ptl: its 17 bytes are not a .ptl"), "{error}");
}

#[test]
fn the_int8_model_runs_with_the_engine_it_was_converted_for() {
    let classifier = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap();
    // Loading selected the engine the weights were packed for (this host's default is x86).
    assert_eq!(ptm::Engine::current(), Some(ptm::Engine::Qnnpack));
    let out = classifier.forward(&features(3)).unwrap();
    assert!(out.logits.data().iter().all(|v| v.is_finite()));
    assert_eq!(Classifier::INFO.quantize, "dynamic");
    assert_eq!(Classifier::INFO.engine, "qnnpack");
    assert!(Classifier::INFO.operators.iter().any(|op| op.starts_with("quantized::linear_dynamic")), "{:?}", Classifier::INFO.operators);
}

#[test]
fn concurrent_forwards_agree() {
    let classifier = Arc::new(Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap());
    let pair = Arc::new(Pair::load().unwrap());
    let expected: Vec<Vec<f32>> = (0..8).map(|seed| classifier.forward(&features(seed)).unwrap().logits.to_vec()).collect();
    let expected = Arc::new(expected);
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let (classifier, pair, expected) = (classifier.clone(), pair.clone(), expected.clone());
            std::thread::spawn(move || {
                for round in 0..200 {
                    let seed = (thread + round) % 8;
                    let got = classifier.forward(&features(seed as u32)).unwrap();
                    assert_eq!(got.logits.data(), expected[seed].as_slice(), "thread {thread} round {round}");
                    let x = [round as f32; 8];
                    let out = pair.forward(TensorRef::new(&x, &[2, 4]), TensorRef::new(&[1i64; 10], &[2, 5])).unwrap();
                    assert_eq!(out.doubled.data(), [round as f32 * 2.0; 8].as_slice());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn rustc_tracks_the_report_so_a_rebuilt_model_recompiles_the_crate() {
    // The macro include_bytes!es models.json: rustc's dep-info for this test crate
    // must list it, or cargo would keep stale wrappers after a model changes.
    let report = std::path::Path::new(env!("OUT_DIR")).join("ptm/models.json");
    let deps = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("debug/deps");
    let listed = std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("runtime-")) && path.extension().is_some_and(|e| e == "d"))
        .any(|path| std::fs::read_to_string(path).is_ok_and(|text| text.contains(&report.display().to_string())));
    assert!(listed, "no dep-info in {} lists {}", deps.display(), report.display());
}

#[test]
fn the_selective_build_list_is_the_union_of_every_models_operators() {
    let dir = std::path::Path::new(env!("OUT_DIR")).join("ptm");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("models.json")).unwrap()).unwrap();
    let mut expected: Vec<String> =
        report["models"].as_array().unwrap().iter().flat_map(|m| m["operators"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string())).collect();
    expected.sort();
    expected.dedup();
    let listed: Vec<String> =
        std::fs::read_to_string(dir.join("selected_operators.yaml")).unwrap().lines().filter_map(|l| l.strip_prefix("- ").map(str::to_string)).collect();
    assert_eq!(listed, expected);
    assert!(listed.iter().any(|op| op.starts_with("quantized::linear_dynamic")) && listed.iter().any(|op| op.starts_with("aten::embedding")), "{listed:?}");
}

fn many_input(x: &[f32]) -> [ptm::Input<'_>; 1] {
    [ptm::Input::new(x, &[1, 262144]).unwrap()]
}

fn calls(outputs: &[ptm::Output]) -> f32 {
    outputs[5].data::<f32>().unwrap()[0]
}

#[test]
fn run_executes_a_model_with_many_outputs_once() {
    let many = models::Many::load().unwrap();
    let x = vec![0.5f32; 262144];
    let first = many.module().run("forward", &many_input(&x)).unwrap();
    let second = many.module().run("forward", &many_input(&x)).unwrap();
    assert_eq!(first.len(), 6);
    assert_eq!(first[4].data::<f32>().unwrap()[0], 5.5);
    assert_eq!(calls(&second) - calls(&first), 1.0, "one run, one execution of the model");
    let boxed: Box<[f32; 262144]> = x.clone().into_boxed_slice().try_into().unwrap();
    let typed = many.forward(&boxed).unwrap();
    assert_eq!(typed.calls.data()[0] - calls(&second), 1.0);
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

#[test]
fn asking_for_the_wrong_number_of_outputs_releases_what_the_model_returned() {
    let many = models::Many::load().unwrap();
    let x = vec![0.5f32; 262144];
    let input = many_input(&x);
    // Warm up the allocator and the interpreter before measuring.
    for _ in 0..5 {
        drop(many.module().forward::<6>(&input).unwrap());
    }
    let before = resident_bytes();
    for _ in 0..50 {
        // Fewer slots than outputs, and more: 6 MB of outputs each time.
        let fewer = many.module().forward::<1>(&input).unwrap_err();
        let more = many.module().forward::<7>(&input).unwrap_err();
        for error in [fewer, more] {
            assert!(matches!(error.kind(), ptm::ErrorKind::OutputCount { found: 6, .. }), "{error}");
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    // Leaking would keep 100 x 6 MB.
    assert!(grown < 100 << 20, "resident memory grew by {} MB over 100 mismatched calls", grown >> 20);
}

#[test]
fn inputs_named_like_the_generated_locals_work() {
    let model = models::Hygiene::load().unwrap();
    let (bindings, output0, options) = ([1.0f32; 4], [2.0f32; 6], [3.0f32; 8]);
    let out = model.forward(TensorRef::new(&bindings, &[2, 2]), TensorRef::new(&output0, &[2, 3]), &options).unwrap();
    assert_eq!(out.total.data(), [2.0 + 6.0 + 12.0; 2]);
}

#[test]
fn models_of_two_quantized_engines_load_and_run_concurrently() {
    use models::ClassifierFbgemm;
    let x = features(3);
    let qnnpack = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap().forward(&x).unwrap().logits.to_vec();
    let fbgemm = ClassifierFbgemm::load().unwrap().forward(&x).unwrap().logits.to_vec();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (x, qnnpack, fbgemm) = (&x, &qnnpack, &fbgemm);
            scope.spawn(move || {
                for round in 0..25 {
                    // Each load packs weights for its engine while the other threads
                    // switch the process's engine back and forth.
                    if (thread + round) % 2 == 0 {
                        let model = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap();
                        assert_eq!(&model.forward(x).unwrap().logits.to_vec(), qnnpack, "thread {thread} round {round}");
                    } else {
                        let model = ClassifierFbgemm::load().unwrap();
                        assert_eq!(&model.forward(x).unwrap().logits.to_vec(), fbgemm, "thread {thread} round {round}");
                    }
                }
            });
        }
    });
}

#[test]
fn a_model_that_writes_its_input_in_place_runs_on_a_copy() {
    let writer = models::Writer::load().unwrap();
    assert!(writer.module().copies_inputs());
    assert!(!Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap().module().copies_inputs(), "no in-place operator, no copy");
    let x = [1.0f32, 2.0, 3.0, 4.0];
    for _ in 0..3 {
        let out = writer.forward(&x).unwrap();
        assert_eq!(out.doubled.data(), [4.0, 6.0, 8.0, 10.0]);
    }
    assert_eq!(x, [1.0, 2.0, 3.0, 4.0], "the caller's input is unchanged");
}

#[test]
fn a_ptl_knows_which_model_it_is_and_another_is_refused_naming_both() {
    let classifier = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap();
    let identity = classifier.module().identity().expect("ptm-build writes an identity record");
    assert_eq!(identity.model, "classifier");
    assert_eq!(identity.inputs, "features float32 [1, 16]");
    assert_eq!(identity.outputs, "logits float32 [1, 4]");
    assert_eq!(identity.key, Classifier::KEY);

    let error = Classifier::load_from(Pair::BUILD_ARTIFACT).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error.kind(), ptm::ErrorKind::WrongModel { .. }), "{text}");
    assert!(text.contains("holds model `pair`") && text.contains("inputs x float32 [batch, 4]; ids int64 [batch, 5]"), "{text}");
    assert!(text.contains("not model `classifier`"), "{text}");
}

#[test]
fn files_that_are_not_lite_archives_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.pt");
    let script = format!("import torch\ntorch.jit.save(torch.jit.script(torch.nn.Linear(16, 4)), r'{}')", full.display());
    assert!(std::process::Command::new(ptm_tests::venv_python()).args(["-c", &script]).status().unwrap().success());
    let text = Classifier::load_from(&full).unwrap_err().to_string();
    assert!(text.contains("full TorchScript file (torch.jit.save), not a Lite Interpreter archive") && text.contains("ptm-build"), "{text}");

    let bytes = std::fs::read(Classifier::BUILD_ARTIFACT).unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("empty.ptl", &[], "it is empty (0 bytes)"),
        ("three.ptl", b"abc", "its 3 bytes are not a .ptl"),
        ("half.ptl", &bytes[..bytes.len() / 2], "the archive is truncated"),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let from_file = Classifier::load_from(&path).unwrap_err();
        assert!(matches!(from_file.kind(), ptm::ErrorKind::NotLite { .. }) && from_file.to_string().contains(expected), "{name}: {from_file}");
        let from_bytes = ptm::Module::from_bytes(content, &ptm::Options::new("classifier")).unwrap_err();
        assert!(from_bytes.to_string().contains(expected), "{name}: {from_bytes}");
    }
}

#[test]
fn one_handle_of_an_xnnpack_model_serves_many_threads() {
    // `pair`'s Linear became XNNPACK's prepacked op, which sets up one shared operator
    // object on every call: calls from several threads at once raced inside libtorch.
    let pair = Arc::new(Pair::load().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let pair = pair.clone();
            std::thread::spawn(move || {
                for round in 0..3000 {
                    let x = [(thread * 10 + round % 7) as f32; 8];
                    let out = pair.forward(TensorRef::new(&x, &[2, 4]), TensorRef::new(&[1i64; 10], &[2, 5])).unwrap();
                    assert_eq!(out.doubled.data(), [x[0] * 2.0; 8].as_slice(), "thread {thread} round {round}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// transformers' model as its library builds it, called through the typed wrapper at
/// several token counts, against the same model run eagerly by keyword in Python.
#[test]
fn a_hugging_face_model_runs_as_built_and_matches_eager_pytorch() {
    let bert = models::Bert::load().unwrap();
    let mut script = String::from("import json, sys, torch\nsys.path.insert(0, 'models')\nfrom hf import build_bert\nmodel = build_bert().eval()\nout = []\n");
    let mut rust = Vec::new();
    for tokens in [1usize, 7, 12, 40] {
        let ids: Vec<i64> = (0..tokens).map(|i| (i * 37 % 100) as i64).collect();
        let types: Vec<i64> = (0..tokens).map(|i| (i >= tokens / 2) as i64).collect();
        let logits = bert.forward(TensorRef::new(&ids, &[1, tokens]), TensorRef::new(&types, &[1, tokens])).unwrap().logits;
        assert_eq!(logits.shape(), [1, 3]);
        rust.push(logits.data().to_vec());
        script += &format!(
            "with torch.no_grad():\n    out.append(model(input_ids=torch.tensor([{ids:?}]), token_type_ids=torch.tensor([{types:?}])).logits[0].tolist())\n"
        );
    }
    script += "print(json.dumps(out))\n";
    let output = std::process::Command::new(ptm_tests::venv_python()).args(["-c", &script]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let eager: Vec<Vec<f32>> = serde_json::from_slice(&output.stdout).unwrap();
    for (tokens, (r, e)) in [1, 7, 12, 40].iter().zip(rust.iter().zip(&eager)) {
        let diff = r.iter().zip(e).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "{tokens} tokens: Rust {r:?}, eager {e:?}");
    }
}

/// An app written before drift was measured per output reads the whole stage's figures.
#[test]
#[allow(deprecated)]
fn the_whole_stage_figures_of_earlier_releases_still_read_as_the_worst_output() {
    let drift = Classifier::INFO.drift("lite").unwrap();
    let output = drift.output("logits").unwrap();
    assert_eq!(drift.max_abs, output.max_abs);
    assert_eq!(Some(drift.relative), output.relative);
    assert_eq!(drift.top1, output.top1);
}

/// This binary never calls a self-check, so none of the reference data is in it: the
/// generated `REFERENCE` constants cost nothing unless `self_check` is called
/// (tests/tests/self_check.rs shows the converse).
#[test]
fn reference_data_is_not_in_a_binary_that_does_not_self_check() {
    let binary = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let dir = std::path::Path::new(Pair::BUILD_ARTIFACT).parent().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "reference") {
            let reference = std::fs::read(&path).unwrap();
            let tail = &reference[reference.len() - 256.min(reference.len())..];
            assert!(!binary.windows(tail.len()).any(|w| w == tail), "{} is in the binary", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} reference files under {}", dir.display());
}
