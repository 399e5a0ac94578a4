//! How many threads a model's operators use: one by default, `PTM_NUM_THREADS`, or
//! what the app sets, for libtorch and ExecuTorch alike.

use crate::{ffi, Error, ErrorKind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The variable that sets the default number of intra-op threads: a number, or `0` for
/// libtorch's own default (one per core). Unset, the default is 1.
pub const PTM_NUM_THREADS: &str = "PTM_NUM_THREADS";

/// Whether the app chose a thread count itself, which the default never overrides.
static CHOSEN: AtomicBool = AtomicBool::new(false);

/// Sets how many threads libtorch uses inside one operator, and ExecuTorch's XNNPACK
/// threadpool, for every model in the process. It overrides `PTM_NUM_THREADS` and the
/// default of one thread: libtorch's own default, a thread per core, made forwards 50 to
/// 1300 times slower on a busy 2-core machine (BENCHMARKS.md has the figures).
/// ExecuTorch's pool can change only while no `.pte` model is loaded: call this first.
pub fn set_num_threads(threads: usize) -> Result<(), Error> {
    CHOSEN.store(true, Ordering::SeqCst);
    apply_threads(threads)
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
    let threads = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
    // ExecuTorch first: it refuses once a program is loaded, and then nothing has changed.
    #[cfg(feature = "executorch")]
    // SAFETY: plain call.
    if let Some(message) = ffi::take_et_message(unsafe { ffi::ptm_et_set_num_threads(threads) }) {
        return Err(ErrorKind::Setting { message }.into());
    }
    #[cfg(feature = "lite")]
    // SAFETY: plain call.
    if let Some(message) = ffi::take_message(unsafe { ffi::ptm_set_num_threads(threads) }) {
        return Err(ErrorKind::Setting { message }.into());
    }
    APPLIED.store(threads as usize, Ordering::SeqCst);
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
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(_) => {
                    return Err(format!(
                        "{PTM_NUM_THREADS}={text:?} is not a number of threads: set it to a count, or 0 for libtorch's default (a thread per core)"
                    ))
                }
            },
            Err(std::env::VarError::NotUnicode(_)) => return Err(format!("{PTM_NUM_THREADS} is not valid UTF-8: set it to a count")),
        };
        apply_threads(threads).map_err(|e| e.to_string())
    });
    applied.clone().map_err(|message| ErrorKind::Setting { message }.into())
}
