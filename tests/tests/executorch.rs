//! The ExecuTorch backend on a `.pte` this crate declares, run in the same process as
//! the `.ptl` models: the same typed wrapper, the other runtime.

use ptm::{ErrorKind, Input};
use std::sync::Arc;

/// The wrappers of this crate's models; the lint proves every generated item of a
/// `.pte` model is documented too.
#[deny(missing_docs)]
pub mod models {
    ptm::include_models!();
}
use models::{Classifier, ClassifierPte};

fn features(seed: u32) -> [f32; 16] {
    std::array::from_fn(|i| ((i as u32 * 7 + seed * 13) % 17) as f32 / 8.0 - 1.0)
}

#[test]
fn the_pte_runs_through_the_same_wrapper_and_agrees_with_the_ptl() {
    let pte = ClassifierPte::load().unwrap();
    let ptl = Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap();
    assert_eq!((ClassifierPte::INFO.quantize, ClassifierPte::INFO.engine), ("dynamic", "xnnpack"));
    assert!(ClassifierPte::BUILD_ARTIFACT.ends_with("classifier_pte.pte"));
    for seed in 0..16 {
        let input = features(seed);
        let (a, b) = (pte.forward(&input).unwrap().logits, ptl.forward(&input).unwrap().logits);
        assert_eq!(a.shape(), [1, 4]);
        // Two INT8 schemes of one float model (XNNPACK's per-channel, qnnpack's per-tensor).
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 0.1 * scale, "seed {seed}: {:?} vs {:?}", a.data(), b.data());
    }
}

#[test]
fn embedded_bytes_and_the_file_give_the_same_outputs() {
    let embedded = ClassifierPte::load().unwrap();
    let mapped = ClassifierPte::load_from(ClassifierPte::BUILD_ARTIFACT).unwrap();
    let input = features(3);
    assert_eq!(embedded.forward(&input).unwrap().logits.to_vec(), mapped.forward(&input).unwrap().logits.to_vec());
    // The bytes as a caller holds them: any alignment (ExecuTorch needs 16; the program copies).
    let mut shifted = vec![0u8; ClassifierPte::BYTES.len() + 1];
    shifted[1..].copy_from_slice(ClassifierPte::BYTES);
    let program = ptm::Program::from_bytes(&shifted[1..], &ptm::Options::new("shifted")).unwrap();
    let [logits] = program.forward::<1>(&[Input::new(&input, &[1, 16]).unwrap()]).unwrap();
    assert_eq!(logits.data::<f32>().unwrap(), embedded.forward(&input).unwrap().logits.data());
}

#[test]
fn files_that_are_not_programs_are_named_as_such() {
    let error = ClassifierPte::load_from(Classifier::BUILD_ARTIFACT).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::NotProgram { problem, .. } if problem.contains("format = \"pte\"")), "{error}");
    let error = ClassifierPte::load_from("/nonexistent/classifier.pte").unwrap_err();
    assert!(error.to_string().starts_with("ptm: could not load /nonexistent/classifier.pte (model `classifier_pte`): "), "{error}");
    // A whole header and a truncated body: ExecuTorch's own verification refuses it.
    let half = &ClassifierPte::BYTES[..ClassifierPte::BYTES.len() / 2];
    let error = ptm::Program::from_bytes(half, &ptm::Options::new("half")).unwrap_err();
    // ExecuTorch's code and the explanation it logged.
    assert!(
        matches!(error.kind(), ErrorKind::Load { message, .. } if message.contains("ExecuTorch error") && message.contains("File size is too small")),
        "{error}"
    );
}

#[test]
fn a_wrong_output_count_or_shape_is_an_error_not_a_crash() {
    let pte = ClassifierPte::load().unwrap();
    let input = features(1);
    let inputs = [Input::new(&input, &[1, 16]).unwrap()];
    for error in [pte.module().forward::<2>(&inputs).unwrap_err(), pte.module().forward::<0>(&inputs).unwrap_err()] {
        assert!(matches!(error.kind(), ErrorKind::OutputCount { found: 1, .. }), "{error}");
    }
    let wrong = [0f32; 32];
    let error = pte.module().forward::<1>(&[Input::new(&wrong, &[2, 16]).unwrap()]).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Run { message, .. } if message.contains("forward failed")), "{error}");
    assert_eq!(pte.forward(&input).unwrap().logits.shape(), [1, 4], "the program still runs");
}

#[test]
fn one_program_serves_many_threads() {
    let pte = Arc::new(ClassifierPte::load().unwrap());
    let expected: Vec<Vec<f32>> = (0..8).map(|seed| pte.forward(&features(seed)).unwrap().logits.to_vec()).collect();
    let expected = Arc::new(expected);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pte, expected) = (Arc::clone(&pte), Arc::clone(&expected));
            std::thread::spawn(move || {
                for round in 0..50 {
                    let seed = round % 8;
                    assert_eq!(pte.forward(&features(seed as u32)).unwrap().logits.to_vec(), expected[seed]);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// An app whose models are all `.pte`, built as a user would (a fixture crate, cargo),
/// with ptm's ExecuTorch backend alone.
mod executorch_only_app {
    use ptm_tests::Fixture;

    #[test]
    fn links_no_libtorch_and_runs_its_model() {
        let fixture = Fixture::new("executorch-only");
        let build = fixture.build(&[]);
        assert!(build.success, "{}", build.stderr);
        let executable = build.executable.expect("the fixture's binary");
        let run = std::process::Command::new(&executable).output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
        assert!(stdout.contains("scores [1, 3]"), "{stdout}");
        assert!(stdout.contains("libtorch: none (the lite feature is off)"), "{stdout}");
        // Every shared library the binary loads, transitively, as the loader resolves them.
        let ldd = std::process::Command::new("ldd").arg(&executable).output().unwrap();
        let libraries = String::from_utf8_lossy(&ldd.stdout);
        assert!(libraries.contains("libexecutorch.so"), "{libraries}");
        for absent in ["libtorch", "libc10", "libtorch_cpu"] {
            assert!(!libraries.contains(absent), "{absent} is linked: {libraries}");
        }
        // Without libtorch beside it the backend is not deep-bound: the app runs with a
        // sanitizer's runtime preloaded (which refuses deep binding).
        let lib_dir =
            std::path::Path::new(libraries.lines().find(|l| l.contains("libexecutorch.so")).unwrap().split(" => ").nth(1).unwrap().split(' ').next().unwrap())
                .parent()
                .unwrap()
                .to_path_buf();
        let sanitized = std::process::Command::new(&executable)
            .env("LD_PRELOAD", ptm_tests::asan_runtime())
            .env("LD_LIBRARY_PATH", &lib_dir)
            .env("ASAN_OPTIONS", "detect_leaks=0")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&sanitized.stdout);
        assert!(sanitized.status.success(), "{stdout}{}", String::from_utf8_lossy(&sanitized.stderr));
        assert!(stdout.contains("scores [1, 3]"), "{stdout}");
    }

    #[test]
    fn a_ptl_model_without_the_lite_feature_is_a_compile_error_naming_it() {
        let fixture = Fixture::new("executorch-only");
        fixture.replace("format = \"pte\"\n", "");
        let build = fixture.build(&[]);
        assert!(!build.success);
        assert!(build.diagnostics.contains("model `tiny` is a .ptl"), "{}", build.diagnostics);
        assert!(build.diagnostics.contains("enable the `lite` feature of ptm"), "{}", build.diagnostics);
    }

    #[test]
    fn a_pte_model_without_the_executorch_feature_is_a_compile_error_naming_it() {
        // The runtime with its defaults: the Lite Interpreter alone.
        let fixture = Fixture::new("renamed");
        fixture.replace("outputs = [\"scores\"]", "format = \"pte\"\noutputs = [\"scores\"]");
        let build = fixture.build(&[]);
        assert!(!build.success);
        assert!(build.diagnostics.contains("model `tiny` is a .pte"), "{}", build.diagnostics);
        assert!(build.diagnostics.contains("enable the `executorch` feature of ptm"), "{}", build.diagnostics);
    }
}
