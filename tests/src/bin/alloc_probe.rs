//! Makes the one allocation of an error message fail inside each shim, for
//! tests/tests/soundness.rs. This binary is linked with `--wrap=malloc` (the crate's
//! build script): `malloc` calls of statically linked code, the shims' among them, go
//! through `__wrap_malloc` below, which fails once when asked to. Prints what each shim
//! returned for a call that must fail.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};

static FAIL_NEXT: AtomicBool = AtomicBool::new(false);

extern "C" {
    fn __real_malloc(size: usize) -> *mut c_void;
    fn ptm_set_num_threads(threads: i32) -> *mut c_char;
    fn ptm_string_free(message: *mut c_char);
    fn ptm_et_set_num_threads(threads: i32) -> *mut c_char;
    fn ptm_et_string_free(message: *mut c_char);
}

/// # Safety
/// Called by C code in place of malloc.
#[no_mangle]
pub unsafe extern "C" fn __wrap_malloc(size: usize) -> *mut c_void {
    if FAIL_NEXT.swap(false, Ordering::SeqCst) {
        return std::ptr::null_mut();
    }
    // SAFETY: the C library's malloc.
    unsafe { __real_malloc(size) }
}

/// What a failing call returned with its message's allocation failing: NULL (which
/// reads as success) or the message, then freed as any message is.
fn failing(call: unsafe extern "C" fn(i32) -> *mut c_char, free: unsafe extern "C" fn(*mut c_char)) -> String {
    FAIL_NEXT.store(true, Ordering::SeqCst);
    // SAFETY: a count the shim refuses; the message, if any, is freed once.
    let message = unsafe { call(-1) };
    let consumed = !FAIL_NEXT.swap(false, Ordering::SeqCst);
    if message.is_null() {
        return format!("NULL (allocation failed: {consumed})");
    }
    // SAFETY: a NUL-terminated message from the shim.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { free(message) };
    format!("{text} (allocation failed: {consumed})")
}

fn main() {
    // Links the runtime (and with it both shims).
    let _ = ptm::num_threads();
    println!("lite: {}", failing(ptm_set_num_threads, ptm_string_free));
    println!("executorch: {}", failing(ptm_et_set_num_threads, ptm_et_string_free));
}
