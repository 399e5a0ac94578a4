//! The `.pte` cases of the ptm-tests crate (tests/tests/executorch.rs, soundness.rs,
//! threads.rs, fuzz.rs) in a process that links ExecuTorch alone, for tools/sanitize.
//! What needs a `.ptl` beside (agreement with the Lite Interpreter) stays there.

use ptm::{ErrorKind, Input, Program};
use ptm_sanitize_pte::{ClassifierPte, SmallPte};
use std::sync::Arc;

fn features(seed: u32) -> [f32; 16] {
    std::array::from_fn(|i| ((i as u32 * 7 + seed * 13) % 17) as f32 / 8.0 - 1.0)
}

#[test]
fn embedded_bytes_the_file_and_a_mapping_give_the_same_outputs() {
    let embedded = ClassifierPte::load().unwrap();
    let read = ClassifierPte::load_from(ClassifierPte::BUILD_ARTIFACT).unwrap();
    // SAFETY: the build's artifact is not changed while the program lives.
    let mapped = unsafe { Program::from_file_mapped(ClassifierPte::BUILD_ARTIFACT, &ptm::Options::new("mapped")) }.unwrap();
    for seed in 0..8 {
        let input = features(seed);
        let expected = embedded.forward(&input).unwrap().logits.to_vec();
        assert_eq!(expected.len(), 4);
        assert_eq!(read.forward(&input).unwrap().logits.to_vec(), expected);
        let [logits] = mapped.forward::<1>(&[Input::new(&input, &[1, 16]).unwrap()]).unwrap();
        assert_eq!(logits.data::<f32>().unwrap(), expected);
    }
    // Bytes at an odd address: the program copies them to the alignment ExecuTorch needs.
    let mut shifted = vec![0u8; ClassifierPte::BYTES.len() + 1];
    shifted[1..].copy_from_slice(ClassifierPte::BYTES);
    let program = Program::from_bytes(&shifted[1..], &ptm::Options::new("shifted")).unwrap();
    drop(shifted);
    let input = features(3);
    let [logits] = program.forward::<1>(&[Input::new(&input, &[1, 16]).unwrap()]).unwrap();
    assert_eq!(logits.data::<f32>().unwrap(), embedded.forward(&input).unwrap().logits.data());
}

#[test]
fn files_that_are_not_programs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("model.ptl");
    std::fs::write(&zip, b"PK\x03\x04 not a program at all").unwrap();
    let error = ClassifierPte::load_from(&zip).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::NotProgram { .. }), "{error}");
    assert!(ClassifierPte::load_from("/nonexistent/classifier.pte").is_err());
    for cut in [0, 8, 64, ClassifierPte::BYTES.len() / 2] {
        assert!(Program::from_bytes(&ClassifierPte::BYTES[..cut], &ptm::Options::new("cut")).is_err(), "cut at {cut}");
    }
}

#[test]
fn a_wrong_output_count_shape_or_size_is_an_error_not_a_crash() {
    let pte = ClassifierPte::load().unwrap();
    let input = features(1);
    let inputs = [Input::new(&input, &[1, 16]).unwrap()];
    for error in [pte.module().forward::<2>(&inputs).unwrap_err(), pte.module().forward::<0>(&inputs).unwrap_err()] {
        assert!(matches!(error.kind(), ErrorKind::OutputCount { found: 1, .. }), "{error}");
    }
    let wrong = [0f32; 32];
    assert!(pte.module().forward::<1>(&[Input::new(&wrong, &[2, 16]).unwrap()]).is_err());
    let ints = [0i64; 16];
    assert!(pte.module().forward::<1>(&[Input::new(&ints, &[1, 16]).unwrap()]).is_err());
    let empty: [f32; 0] = [];
    let error = pte.module().forward::<1>(&[Input::new(&empty, &[1usize << 31, 0]).unwrap()]).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Run { message, .. } if message.contains("ExecuTorch takes sizes up to 2147483647")), "{error}");
    // Fewer inputs than the method takes is not refused: the method runs on its input
    // buffer as the last call left it (docs/runtime.md, "Sanitizers"). Run for the
    // sanitizer's sake, not asserted.
    let _ = pte.module().forward::<1>(&[]);
    let _ = pte.module().forward::<1>(&[inputs[0], inputs[0]]);
    assert_eq!(pte.forward(&input).unwrap().logits.shape(), [1, 4], "the program still runs");
}

#[test]
fn another_models_pte_and_a_bare_pte_are_refused_by_a_wrapper() {
    let error = ClassifierPte::load_from(SmallPte::BUILD_ARTIFACT).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::WrongModel { .. }), "{error}");
    let small = SmallPte::load().unwrap();
    let identity = small.module().identity().expect("ptm-build's identity record");
    assert_eq!(identity.model, "small_pte");
    let at = SmallPte::BYTES.len() - 16;
    let record = u32::from_le_bytes(SmallPte::BYTES[at..at + 4].try_into().unwrap()) as usize;
    let bare = &SmallPte::BYTES[..at - record];
    assert!(Program::from_bytes(bare, &ptm::Options::new("bare")).is_ok());
    assert!(Program::from_bytes(bare, &ptm::Options::new("small_pte").identified_by(SmallPte::KEY)).is_err());
}

#[test]
fn a_file_changed_after_loading_does_not_reach_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.pte");
    std::fs::write(&path, SmallPte::BYTES).unwrap();
    let program = SmallPte::load_from(&path).unwrap();
    let expected = program.forward(&[0.25; 8]).unwrap().scores.to_vec();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    assert_eq!(program.forward(&[0.25; 8]).unwrap().scores.to_vec(), expected);
}

#[test]
fn a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.pte");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let error = SmallPte::load_from(&fifo).unwrap_err();
    assert!(error.to_string().contains("not a regular file (a FIFO)"), "{error}");
}

#[test]
fn one_program_serves_many_threads_and_programs_load_and_free_in_parallel() {
    let pte = Arc::new(ClassifierPte::load().unwrap());
    let expected: Arc<Vec<Vec<f32>>> = Arc::new((0..8).map(|seed| pte.forward(&features(seed)).unwrap().logits.to_vec()).collect());
    let shared: Vec<_> = (0..4)
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
    let own: Vec<_> = (0..4)
        .map(|_| {
            let expected = Arc::clone(&expected);
            std::thread::spawn(move || {
                for round in 0..20 {
                    let program = ClassifierPte::load().unwrap();
                    let seed = round % 8;
                    assert_eq!(program.forward(&features(seed as u32)).unwrap().logits.to_vec(), expected[seed]);
                }
            })
        })
        .collect();
    for thread in shared.into_iter().chain(own) {
        thread.join().unwrap();
    }
}

fn probe(arg: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pte_probe")).arg(arg).env_remove("PTM_NUM_THREADS").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn executorchs_pool_is_sized_before_the_first_program_and_not_after() {
    assert_eq!(probe("--pool"), "threads 2 refused true");
}

#[test]
fn loading_programs_while_another_thread_resizes_the_pool_is_safe() {
    assert!(probe("--race").starts_with("raced "));
}

/// Every truncation, byte flip and overwritten 16-byte run of both programs, loaded
/// from a file and from bytes, by tests/src/bin/pte_fuzz.rs in one process each: under
/// a sanitizer, any report ends the child, so the whole sweep must reach its end.
#[test]
fn every_damage_of_both_programs_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    for (model, size) in [("small_pte", SmallPte::BYTES.len()), ("classifier_pte", ClassifierPte::BYTES.len())] {
        for via in ["path", "bytes"] {
            let out =
                std::process::Command::new(env!("CARGO_BIN_EXE_pte_fuzz")).args([model, via, "0", &scratch.path().display().to_string()]).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let tail: Vec<&str> = stdout.lines().rev().take(3).collect();
            assert!(out.status.success() && stdout.ends_with("end\n"), "{model} via {via}: {tail:?}\n{}", String::from_utf8_lossy(&out.stderr));
            let refused = stdout.lines().filter(|l| l.starts_with("refused ")).count();
            assert_eq!(refused, 3 * size, "{model} via {via}: every damage refused");
        }
    }
}
