//! What safe code must not reach: outputs that borrow the caller's inputs or the model's
//! state, runs that race inside a model that writes its own state, sizes ExecuTorch
//! cannot hold, another model's `.pte`, files that change or never end.

use ptm::{ErrorKind, Input};
use std::sync::Arc;

/// The wrappers of the models this crate declares.
#[allow(dead_code)]
mod models {
    ptm::include_models!();
}
use models::{Aliasing, ClassifierPte, Counter, SmallPte};

#[test]
fn outputs_that_were_the_input_or_views_of_it_outlive_it_unchanged() {
    let aliasing = Aliasing::load().unwrap();
    let mut x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let out = aliasing.forward(&x).unwrap();
    // The caller changes, then frees, what it lent for the call.
    x = [-9.0; 6];
    assert_eq!(x[0], -9.0);
    let mut input = vec![7.0f32; 6];
    let again = aliasing.forward(input.as_slice().try_into().unwrap()).unwrap();
    input.iter_mut().for_each(|v| *v = 0.0);
    drop(input);
    assert_eq!(out.same.data(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(out.same.shape(), [2, 3]);
    assert_eq!(out.flat.data(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(out.flat.shape(), [6]);
    assert_eq!(out.row.data(), [1.0, 2.0, 3.0]);
    assert_eq!(again.same.data(), [7.0; 6]);
    assert_eq!(again.row.data(), [7.0; 3]);
}

#[test]
fn a_model_that_writes_its_own_state_counts_every_call_from_eight_threads() {
    let counter = Arc::new(Counter::load().unwrap());
    assert!(counter.module().serializes_runs(), "a model that assigns an attribute runs one call at a time");
    let x = [0.01f32; 64];
    let first = counter.forward(&x).unwrap();
    let start = first.count.data()[0];
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                for _ in 0..40 {
                    counter.forward(&x).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let last = counter.forward(&x).unwrap();
    assert_eq!(last.count.data()[0], start + 8.0 * 40.0 + 1.0, "every call counted once");
    // The first call's output was the model's own attribute: handed over as a copy, it
    // kept the value it had.
    assert_eq!(first.count.data()[0], start);
}

#[test]
fn models_that_only_read_their_weights_still_run_in_parallel() {
    let aliasing = Aliasing::load().unwrap();
    assert!(!aliasing.module().serializes_runs());
}

#[test]
fn a_dimension_beyond_executorchs_sizes_is_an_error_not_an_abort() {
    let program = ClassifierPte::load().unwrap();
    let empty: [f32; 0] = [];
    let shape = [1usize << 31, 0];
    let error = program.module().forward::<1>(&[Input::new(&empty, &shape).unwrap()]).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Run { message, .. } if message.contains("ExecuTorch takes sizes up to 2147483647")), "{error}");
    assert_eq!(program.forward(&[0.5; 16]).unwrap().logits.shape(), [1, 4], "the program still runs");
}

#[test]
fn another_models_pte_is_refused_naming_both() {
    let error = ClassifierPte::load_from(SmallPte::BUILD_ARTIFACT).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error.kind(), ErrorKind::WrongModel { .. }), "{text}");
    assert!(text.contains("holds model `small_pte`") && text.contains("not model `classifier_pte`"), "{text}");
    let error = ptm::Program::from_bytes(SmallPte::BYTES, &ptm::Options::new("classifier_pte").identified_by(ClassifierPte::KEY)).unwrap_err();
    assert!(error.to_string().contains("holds model `small_pte`"), "{error}");
    // What the .pte says of itself: the model, its key and the ExecuTorch that exported it.
    let small = SmallPte::load().unwrap();
    let identity = small.module().identity().expect("ptm-build's identity record");
    assert_eq!((identity.model.as_str(), identity.key.as_str()), ("small_pte", SmallPte::KEY));
    assert!(identity.executorch.as_deref().is_some_and(|v| v.starts_with("1.")), "{identity:?}");
    // A .pte without a record: loaded when nothing asks which model it is, refused by a wrapper.
    let bare = &SmallPte::BYTES[..SmallPte::BYTES.len() - 16 - identity_len(SmallPte::BYTES)];
    assert!(ptm::Program::from_bytes(bare, &ptm::Options::new("bare")).is_ok());
    let error = ptm::Program::from_bytes(bare, &ptm::Options::new("small_pte").identified_by(SmallPte::KEY)).unwrap_err();
    assert!(error.to_string().contains("a .pte without ptm's identity record"), "{error}");
}

fn identity_len(bytes: &[u8]) -> usize {
    let at = bytes.len() - 16;
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

#[test]
fn a_file_changed_after_loading_does_not_reach_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.pte");
    std::fs::write(&path, SmallPte::BYTES).unwrap();
    let program = SmallPte::load_from(&path).unwrap();
    let expected = program.forward(&[0.25; 8]).unwrap().scores.to_vec();
    // Truncated in place: a mapped program would die of SIGBUS at its next call.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    assert_eq!(program.forward(&[0.25; 8]).unwrap().scores.to_vec(), expected);
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_instead_of_blocking_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.pte");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let error = SmallPte::load_from(&fifo).unwrap_err();
    assert!(error.to_string().contains("not a regular file (a FIFO)"), "{error}");
    let error = Aliasing::load_from(&fifo).unwrap_err();
    assert!(error.to_string().contains("not a regular file (a FIFO)"), "{error}");
}

#[test]
fn a_message_that_cannot_be_allocated_is_still_an_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alloc_probe")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // Each shim's one malloc failed, and it still reported a failure (NULL reads as success).
    assert!(stdout.contains("lite: out of memory while reporting an error (allocation failed: true)"), "{stdout}");
    assert!(stdout.contains("executorch: out of memory while reporting an error (allocation failed: true)"), "{stdout}");
}

#[test]
fn a_pte_called_with_fewer_inputs_than_it_takes_is_an_error_not_the_last_calls_inputs() {
    let program = ClassifierPte::load().unwrap();
    program.forward(&[0.5; 16]).unwrap();
    let error = program.module().forward::<1>(&[]).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Run { message, .. } if message.contains("forward takes 1 input(s), 0 were given")), "{error}");
    let x = [0.5f32; 16];
    let two = [Input::new(&x, &[1, 16]).unwrap(), Input::new(&x, &[1, 16]).unwrap()];
    assert!(program.module().forward::<1>(&two).is_err());
}
