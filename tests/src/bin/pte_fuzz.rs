//! Loads damaged copies of this crate's `.pte` programs through the generated wrappers,
//! for tests/tests/fuzz.rs, which runs it in a process of its own so that a crash or a
//! hang is counted instead of ending the test.
//!
//! ```text
//! pte_fuzz <model> <path|bytes> <first damage> <scratch dir>
//! ```
//!
//! Damages are numbered: for each offset of the file in turn, the file cut there, the
//! byte there flipped, and the 16 bytes from there changed. Before each it prints `try N`;
//! after, `refused N` or `ran N` (a damaged file that loaded and ran); `end` when done.

use std::io::Write;

#[allow(dead_code)]
mod models {
    ptm::include_models!();
}

fn damaged(original: &[u8], damage: usize) -> Vec<u8> {
    let (at, kind) = (damage / 3, damage % 3);
    let mut bytes = original.to_vec();
    match kind {
        0 => bytes.truncate(at),
        1 => bytes[at] ^= 0xff,
        _ => {
            // Each byte changed, whatever it held.
            for (i, byte) in bytes.iter_mut().skip(at).take(16).enumerate() {
                *byte ^= 0x80 | (at + i) as u8;
            }
        }
    }
    bytes
}

/// Loads `bytes` as the named model the way `via` says (the generated `load_from`, or
/// from memory with the options the generated `load` passes) and runs it; true when it ran.
fn loads_and_runs(model: &str, via: &str, bytes: &[u8], scratch: &std::path::Path) -> bool {
    let (key, width) = match model {
        "classifier_pte" => (models::ClassifierPte::KEY, 16),
        _ => (models::SmallPte::KEY, 8),
    };
    let loaded = if via == "path" {
        let file = scratch.join("damaged.pte");
        std::fs::write(&file, bytes).unwrap();
        ptm::Program::from_file(&file, &ptm::Options::new(model).identified_by(key))
    } else {
        ptm::Program::from_bytes(bytes, &ptm::Options::new(model).identified_by(key))
    };
    let x = vec![0.5f32; width];
    loaded.and_then(|program| program.forward::<1>(&[ptm::Input::new(&x, &[1, width]).unwrap()])).is_ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (model, via, first, scratch) = (&args[1], &args[2], args[3].parse::<usize>().unwrap(), std::path::Path::new(&args[4]));
    let original = match model.as_str() {
        "classifier_pte" => models::ClassifierPte::BYTES,
        _ => models::SmallPte::BYTES,
    };
    let mut out = std::io::stdout().lock();
    for damage in first..original.len() * 3 {
        writeln!(out, "try {damage}").unwrap();
        out.flush().unwrap();
        let bytes = damaged(original, damage);
        let verdict = if loads_and_runs(model, via, &bytes, scratch) { "ran" } else { "refused" };
        writeln!(out, "{verdict} {damage}").unwrap();
    }
    writeln!(out, "end").unwrap();
}
