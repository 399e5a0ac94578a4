//! The runtime's C boundary under random input: archives damaged and cut short, random
//! bytes, inputs of random shapes and element types, and too many inputs. Every failure must come back as
//! a `ptm::Error`; a crash or an abort in libtorch would end this test process.

use models::Classifier;
use proptest::prelude::*;

mod models {
    #![allow(dead_code)]
    ptm::include_models!();
}

fn classifier_bytes() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(Classifier::BUILD_ARTIFACT).unwrap())
}

fn loaded() -> &'static Classifier {
    static MODEL: std::sync::OnceLock<Classifier> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| Classifier::load_from(Classifier::BUILD_ARTIFACT).unwrap())
}

/// Runs a module that loaded from damaged bytes: it may fail, never crash.
fn run_if_loaded(result: Result<ptm::Module, ptm::Error>) -> Result<(), TestCaseError> {
    match result {
        Ok(module) => {
            let x = [0.25f32; 16];
            if let Err(error) = module.forward::<1>(&[ptm::Input::new(&x, &[1, 16]).unwrap()]) {
                prop_assert!(error.to_string().starts_with("ptm: "), "{}", error);
            }
        }
        Err(error) => prop_assert!(error.to_string().starts_with("ptm: "), "{}", error),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_or_truncated_archive_loads_or_fails_with_an_error(
        keep in prop_oneof![3 => Just(1.0f64), 1 => 0.0f64..1.0],
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..16),
    ) {
        let mut bytes = classifier_bytes().to_vec();
        for (at, value) in flips {
            let index = (at * bytes.len() as f64) as usize;
            bytes[index] = value;
        }
        bytes.truncate((keep * bytes.len() as f64) as usize);
        run_if_loaded(ptm::Module::from_bytes(&bytes, &ptm::Options::new("fuzz")))?;
    }

    #[test]
    fn every_single_byte_flip_of_an_archive_is_caught_or_harmless(at in 0.0f64..1.0, mask in 1u8..=255) {
        let mut bytes = classifier_bytes().to_vec();
        let index = (at * bytes.len() as f64) as usize;
        bytes[index] ^= mask;
        run_if_loaded(ptm::Module::from_bytes(&bytes, &ptm::Options::new("fuzz")))?;
    }

    #[test]
    fn random_bytes_fail_with_an_error(bytes in prop::collection::vec(any::<u8>(), 0..4096), zip_header in any::<bool>()) {
        let mut bytes = bytes;
        if zip_header {
            bytes.splice(0..0, *b"PK\x03\x04");
            bytes.extend_from_slice(b"PK\x05\x06");
        }
        run_if_loaded(ptm::Module::from_bytes(&bytes, &ptm::Options::new("fuzz")))?;
    }

    #[test]
    fn damaged_self_check_reference_data_is_an_error_or_a_verdict(
        keep in prop_oneof![3 => Just(1.0f64), 1 => 0.0f64..1.0],
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8),
        program in any::<bool>(),
    ) {
        let mut bytes = std::fs::read(if program { models::ClassifierPte::BUILD_REFERENCE } else { Classifier::BUILD_REFERENCE }).unwrap();
        for (at, value) in flips {
            let index = (at * bytes.len() as f64) as usize;
            bytes[index] = value;
        }
        bytes.truncate((keep * bytes.len() as f64) as usize);
        // The header, the shapes and the element types are all fair game: what comes back
        // is a verdict (the data may still be whole) or an error, never a crash.
        let result = if program { models::ClassifierPte::load().unwrap().self_check_with(&bytes) } else { loaded().self_check_with(&bytes) };
        if let Err(error) = result {
            prop_assert!(error.to_string().starts_with("ptm: "), "{}", error);
        }
    }

    #[test]
    fn a_method_gets_only_as_many_inputs_as_it_takes(extra in 2usize..6) {
        // The Lite Interpreter itself does not check; extra inputs crashed the process.
        let x = [0.5f32; 16];
        let all = vec![ptm::Input::new(&x, &[1, 16]).unwrap(); extra];
        let error = loaded().module().forward::<1>(&all).unwrap_err().to_string();
        prop_assert!(error.contains("`forward` takes") && error.contains(&format!("input(s), {extra} were given")), "{}", error);
    }

    #[test]
    fn inputs_of_any_shape_and_element_type_run_or_fail_with_an_error(
        shape in prop::collection::vec(0usize..20, 0..5),
        dtype in 0u8..8,
        inputs in 1usize..3,
    ) {
        let model = loaded();
        let count: usize = shape.iter().product();
        macro_rules! run_with {
            ($t:ty, $v:expr) => {{
                let data: Vec<$t> = vec![$v; count];
                let one = ptm::Input::new(&data, &shape).unwrap();
                let all = vec![one; inputs];
                match model.module().forward::<1>(&all) {
                    // libtorch accepts more than the declared [1, 16] float (an empty batch,
                    // say): whatever it returns must be whole and readable.
                    Ok(out) => {
                        let elements: usize = out[0].shape().iter().product();
                        prop_assert_eq!(out[0].data::<f32>().map(<[f32]>::len), Some(elements));
                        if shape == [1, 16] && dtype == 0 && inputs == 1 {
                            prop_assert_eq!(out[0].shape(), &[1, 4]);
                        }
                    }
                    Err(error) => prop_assert!(error.to_string().starts_with("ptm: model `classifier` failed in `forward`"), "{}", error),
                }
            }};
        }
        match dtype {
            0 => run_with!(f32, 0.5),
            1 => run_with!(f64, 0.5),
            2 => run_with!(i64, 3),
            3 => run_with!(i32, 3),
            4 => run_with!(i16, 3),
            5 => run_with!(i8, 3),
            6 => run_with!(u8, 3),
            _ => run_with!(bool, true),
        }
    }
}

/// The byte ranges of the records' data, walking the local headers of a stored zip.
fn record_data(archive: &[u8]) -> Vec<std::ops::Range<usize>> {
    let u16_at = |at: usize| u16::from_le_bytes([archive[at], archive[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes([archive[at], archive[at + 1], archive[at + 2], archive[at + 3]]) as usize;
    let mut ranges = Vec::new();
    let mut at = 0;
    while archive[at..].starts_with(b"PK\x03\x04") {
        let start = at + 30 + u16_at(at + 26) + u16_at(at + 28);
        ranges.push(start..start + u32_at(at + 18));
        at = start + u32_at(at + 18);
    }
    ranges
}

#[test]
fn each_byte_of_an_archive_flipped_in_turn_is_caught_or_harmless() {
    let archive = classifier_bytes();
    let data = record_data(archive);
    assert!(data.len() > 5, "parsed the archive: {} records", data.len());
    for at in 0..archive.len() {
        let mut bytes = archive.to_vec();
        bytes[at] ^= 0xA5;
        match ptm::Module::from_bytes(&bytes, &ptm::Options::new("fuzz")) {
            Err(error) => assert!(error.to_string().starts_with("ptm: "), "byte {at}: {error}"),
            Ok(module) => {
                // What is not caught lies outside every record's data: padding, times, versions.
                assert!(!data.iter().any(|r| r.contains(&at)), "a flip of byte {at}, inside a record, loaded");
                let x = [0.25f32; 16];
                if let Err(error) = module.forward::<1>(&[ptm::Input::new(&x, &[1, 16]).unwrap()]) {
                    assert!(error.to_string().starts_with("ptm: "), "byte {at}: {error}");
                }
            }
        }
    }
}

/// What the damaged copies of one `.pte` did, loaded by `pte_fuzz` in child processes.
#[derive(Debug, Default)]
struct PteFuzz {
    refused: usize,
    ran: Vec<usize>,
    crashed: Vec<usize>,
    hung: Vec<usize>,
}

/// Every damage of `model`'s `.pte` through `via` (`path` or `bytes`), each child
/// restarted after the damage that ended it; a child silent for 30 s is a hang.
fn fuzz_pte(model: &str, via: &str) -> PteFuzz {
    use std::io::BufRead;
    let scratch = tempfile::tempdir().unwrap();
    let mut result = PteFuzz::default();
    let mut next = 0;
    loop {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pte_fuzz"))
            .args([model, via, &next.to_string(), &scratch.path().display().to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (lines, receiver) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut trying = None;
        let ended = loop {
            match receiver.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(line) if line == "end" => break true,
                Ok(line) => {
                    let (verdict, damage) = line.split_once(' ').unwrap();
                    let damage: usize = damage.parse().unwrap();
                    match verdict {
                        "try" => trying = Some(damage),
                        "refused" => result.refused += 1,
                        _ => result.ran.push(damage),
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    child.kill().unwrap();
                    result.hung.extend(trying);
                    break false;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    result.crashed.extend(trying);
                    break false;
                }
            }
        };
        let _ = child.wait();
        match (ended, trying) {
            (true, _) | (false, None) => return result,
            (false, Some(damage)) => next = damage + 1,
        }
    }
}

#[test]
fn every_truncation_flip_and_overwritten_run_of_a_pte_is_refused_without_a_crash() {
    for model in ["small_pte", "classifier_pte"] {
        for via in ["path", "bytes"] {
            let result = fuzz_pte(model, via);
            let size = match model {
                "small_pte" => models::SmallPte::BYTES.len(),
                _ => models::ClassifierPte::BYTES.len(),
            };
            // Damage 0 cuts the file to nothing; damage 3 * size - 1 is the last run.
            assert_eq!(result.refused + result.ran.len() + result.crashed.len() + result.hung.len(), 3 * size, "{model} via {via}: {result:?}");
            assert!(result.crashed.is_empty() && result.hung.is_empty() && result.ran.is_empty(), "{model} via {via}: {result:?}");
        }
    }
}
