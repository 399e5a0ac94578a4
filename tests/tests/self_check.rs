//! The generated self-check on the models this crate declares: each passes in this
//! process's runtime; reference data altered, cut short, of another model or missing is
//! an error naming what is wrong; the reference data is beside the artifact, not in it.

use ptm::ErrorKind;
use std::path::Path;

mod models {
    ptm::include_models!();
}
use models::*;

fn report() -> ptm_report::Bundle {
    let dir = Path::new(Pair::BUILD_ARTIFACT).parent().unwrap();
    ptm_report::Bundle::from_json(&std::fs::read_to_string(dir.join(ptm_report::REPORT_FILE)).unwrap()).unwrap()
}

#[test]
fn every_model_passes_its_self_check_in_both_runtimes() {
    let checks = [
        Pair::load().unwrap().self_check(),
        Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap().self_check(),
        ClassifierPte::load().unwrap().self_check(),
        SmallPte::load().unwrap().self_check(),
        Bert::load().unwrap().self_check(),
        Aliasing::load().unwrap().self_check(),
        Many::load().unwrap().self_check(),
        Hygiene::load().unwrap().self_check(),
        ClassifierFbgemm::load().unwrap().self_check(),
        Writer::load().unwrap().self_check(),
        Counter::load().unwrap().self_check(),
    ];
    for check in checks {
        let check = check.unwrap_or_else(|e| panic!("{e}"));
        assert!(check.passed() && check.samples > 0, "{check}");
        for output in &check.outputs {
            assert!(output.elements > 0, "{check}");
            // Each figure stays within the tolerance it is reported beside.
            if let Some(relative) = output.relative {
                assert!(relative <= output.allowed_relative, "{check}");
            }
        }
    }
}

#[test]
fn an_embedded_models_reference_data_is_in_the_binary_that_self_checks_it() {
    let binary = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(binary.windows(Pair::REFERENCE.len()).any(|w| w == Pair::REFERENCE));
}

#[test]
fn a_classifier_is_judged_on_enough_rows_that_one_flip_cannot_decide() {
    let check = ClassifierPte::load().unwrap().self_check().unwrap();
    let logits = &check.outputs[0];
    assert!(logits.top1.is_some() && logits.top1_rows >= 100, "{check}");
}

/// `bytes` with the first value the source model gave for its first output replaced by
/// a float far from it: the data stays well-formed and says the source computed
/// something else.
fn tampered(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let at = first_output(&bytes);
    bytes[at..at + 4].copy_from_slice(&1.0e6f32.to_le_bytes());
    bytes
}

#[test]
fn tampered_reference_data_fails_naming_the_output() {
    let pair = Pair::load().unwrap();
    let err = pair.self_check_with(&tampered(Pair::REFERENCE)).unwrap_err();
    let ErrorKind::SelfCheck { check } = err.kind() else { panic!("{err}") };
    let failed: Vec<&str> = check.outputs.iter().filter(|o| o.problem.is_some()).map(|o| o.name.as_str()).collect();
    assert_eq!(failed, ["scores"], "{err}");
    let text = err.to_string();
    assert!(text.contains("model `pair` failed its self-check: output `scores`: relative error"), "{text}");
    // The other output is still reported, and passes.
    assert!(check.outputs.iter().any(|o| o.name == "doubled" && o.problem.is_none()), "{text}");

    // A .pte the same way.
    let program = ClassifierPte::load().unwrap();
    let err = program.self_check_with(&tampered(ClassifierPte::REFERENCE)).unwrap_err();
    assert!(err.to_string().contains("output `logits`"), "{err}");
}

#[test]
fn reference_data_of_another_model_or_cut_short_is_refused_without_a_panic() {
    let pair = Pair::load().unwrap();
    let err = pair.self_check_with(ClassifierPte::REFERENCE).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Reference { .. }), "{err}");
    assert!(err.to_string().contains("recorded for the build with key"), "{err}");
    for len in [0, 7, 8, 40, Pair::REFERENCE.len() / 2, Pair::REFERENCE.len() - 1] {
        let err = pair.self_check_with(&Pair::REFERENCE[..len]).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Reference { .. }), "cut at {len}: {err}");
    }
    let err = pair.self_check_with(b"not reference data at all").unwrap_err();
    assert!(err.to_string().contains("no PTMREF01 header"), "{err}");
}

#[test]
fn an_asset_model_finds_its_reference_data_beside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let asset = dir.path().join("classifier.ptl");
    std::fs::copy(Classifier::BUILD_ARTIFACT, &asset).unwrap();
    let model = Classifier::load_from(&asset).unwrap();
    let err = model.self_check().unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&dir.path().join("classifier.reference").display().to_string()) && text.contains("cargo ptm assets"), "{text}");

    std::fs::copy(Classifier::BUILD_REFERENCE, dir.path().join("classifier.reference")).unwrap();
    assert!(model.self_check().unwrap().passed());
}

#[test]
fn the_reference_data_is_beside_the_artifact_and_covered_by_the_report() {
    use sha2::{Digest, Sha256};
    let bundle = report();
    let dir = Path::new(Pair::BUILD_ARTIFACT).parent().unwrap();
    let mut seen = 0;
    for model in &bundle.models {
        let (Some(file), Some(sha256)) = (&model.reference, &model.reference_sha256) else { panic!("model `{}` has no reference data", model.name) };
        let reference = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(&format!("{:x}", Sha256::digest(&reference)), sha256, "{file}");
        let artifact = std::fs::read(dir.join(&model.artifact)).unwrap();
        assert_eq!(format!("{:x}", Sha256::digest(&artifact)), model.artifact_sha256, "{}", model.artifact);
        // Not bundled into the program: the first recorded input is not in it.
        let input = first_input(&reference);
        assert!(input.len() >= 16 && !artifact.windows(input.len()).any(|w| w == input), "{} holds its reference data", model.artifact);
        seen += 1;
    }
    assert!(seen >= 10, "{seen} models");
}

/// Walks reference data (ptm_convert/reference.py's layout): the header's end.
fn header_end(reference: &[u8]) -> usize {
    let mut at = 8;
    at += 4 + u32_at(reference, at); // key
    at += 17; // tolerances, quantized
    let outputs = u32_at(reference, at);
    at += 4;
    for _ in 0..outputs {
        at += 4 + u32_at(reference, at) + 8; // name, required top-1
    }
    at + 4 // counted
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

/// A tensor at `at`: where its data starts and its byte length.
fn tensor_at(bytes: &[u8], at: usize) -> (usize, usize) {
    let rank = u32_at(bytes, at + 4);
    let len_at = at + 8 + 8 * rank;
    (len_at + 8, u64::from_le_bytes(bytes[len_at..len_at + 8].try_into().unwrap()) as usize)
}

/// The bytes of the first sample's first input.
fn first_input(reference: &[u8]) -> &[u8] {
    let (data, len) = tensor_at(reference, header_end(reference) + 8);
    &reference[data..data + len]
}

/// Where the first sample's first recorded output's data starts.
fn first_output(reference: &[u8]) -> usize {
    let mut at = header_end(reference);
    let samples = u32_at(reference, at);
    at += 4;
    for _ in 0..samples {
        let tensors = u32_at(reference, at);
        at += 4;
        for _ in 0..tensors {
            let (data, len) = tensor_at(reference, at);
            at = data + len;
        }
    }
    tensor_at(reference, at + 8).0
}
