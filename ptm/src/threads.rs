//! How many threads a model's operators use: one by default, `PTM_NUM_THREADS`, or
//! what the app sets, for libtorch and ExecuTorch alike.

use crate::{ffi, Error, ErrorKind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The variable that sets the default number of intra-op threads: a number, or `0` for
/// the runtime's own default (one per core). Unset, the default is 1.
pub const PTM_NUM_THREADS: &str = "PTM_NUM_THREADS";

/// The most threads [`set_num_threads`] and `PTM_NUM_THREADS` accept. More is a typo
/// (16384 for 16), and libtorch and ExecuTorch crash the process creating them.
pub const MAX_THREADS: usize = 256;

/// Whether the app chose a thread count itself, which the default never overrides.
static CHOSEN: AtomicBool = AtomicBool::new(false);

/// Sets how many threads libtorch uses inside one operator, and ExecuTorch's XNNPACK
/// threadpool, for every model in the process; `0` means the runtimes' own default (a
/// thread per core), as `PTM_NUM_THREADS=0` does. It overrides `PTM_NUM_THREADS` and
/// the default of one thread: libtorch's own default made forwards 50 to 1300 times
/// slower on a busy 2-core machine (BENCHMARKS.md has the figures). Every thread takes
/// the new count at its next call. ExecuTorch's pool can change only while no `.pte`
/// model is loaded: call this first. A refused call changes nothing.
pub fn set_num_threads(threads: usize) -> Result<(), Error> {
    apply_threads(threads)?;
    CHOSEN.store(true, Ordering::SeqCst);
    Ok(())
}

/// The thread count now: libtorch's intra-op count with the `lite` backend, else the
/// size last given to ExecuTorch's pool.
pub fn num_threads() -> usize {
    #[cfg(feature = "lite")]
    {
        // SAFETY: plain call.
        usize::try_from(unsafe { ffi::ptm_num_threads() }).unwrap_or(1)
    }
    #[cfg(not(feature = "lite"))]
    APPLIED.load(Ordering::SeqCst)
}

/// The count last applied (ExecuTorch has no getter).
static APPLIED: AtomicUsize = AtomicUsize::new(1);

fn apply_threads(threads: usize) -> Result<(), Error> {
    if threads > MAX_THREADS {
        let message = format!(
            "{threads} threads is more than ptm allows ({MAX_THREADS}, ptm::MAX_THREADS): give a count up to the machine's cores, or 0 for one per core"
        );
        return Err(ErrorKind::Setting { message }.into());
    }
    // ExecuTorch's pool has no default of its own to return to: one per core.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pool = if threads == 0 { cores } else { threads } as i32;
    // ExecuTorch first: it refuses once a program is loaded, and then nothing has changed.
    #[cfg(feature = "executorch")]
    // SAFETY: plain call.
    if let Some(message) = ffi::take_message(unsafe { ffi::ptm_et_set_num_threads(pool) }, ffi::ptm_et_string_free) {
        return Err(ErrorKind::Setting { message }.into());
    }
    #[cfg(feature = "lite")]
    // SAFETY: plain call; 0 asks for libtorch's default.
    if let Some(message) = ffi::take_message(unsafe { ffi::ptm_set_num_threads(threads as i32) }, ffi::ptm_string_free) {
        return Err(ErrorKind::Setting { message }.into());
    }
    APPLIED.store(pool as usize, Ordering::SeqCst);
    Ok(())
}

/// Before the first model loads: `PTM_NUM_THREADS`, else one thread, unless the app
/// called [`set_num_threads`].
pub(crate) fn apply_default_threads() -> Result<(), Error> {
    static DEFAULT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let applied = DEFAULT.get_or_init(|| {
        if CHOSEN.load(Ordering::SeqCst) {
            return Ok(());
        }
        let threads = match std::env::var(PTM_NUM_THREADS) {
            Err(std::env::VarError::NotPresent) => 1,
            Ok(text) => match text.trim().parse::<usize>() {
                Ok(n) => n,
                Err(_) => {
                    return Err(format!(
                        "{PTM_NUM_THREADS}={text:?} is not a number of threads: set it to a count, or 0 for the runtime's default (a thread per core)"
                    ))
                }
            },
            Err(std::env::VarError::NotUnicode(_)) => return Err(format!("{PTM_NUM_THREADS} is not valid UTF-8: set it to a count")),
        };
        apply_threads(threads).map_err(|e| format!("{PTM_NUM_THREADS}: {}", e.to_string().trim_start_matches("ptm: ")))
    });
    applied.clone().map_err(|message| ErrorKind::Setting { message }.into())
}
