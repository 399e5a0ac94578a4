//! Declarations of `shim/ptm_shim.h` (the Lite Interpreter), of ptm-toolchain's
//! `executorch/ptm_executorch.h` (ExecuTorch) and of the `include/ptm_tensor.h` both
//! share: inputs and outputs cross either runtime's boundary as the same types.

use std::ffi::{c_char, c_void, CStr};

#[cfg(feature = "lite")]
#[repr(C)]
pub struct Module {
    _private: [u8; 0],
}

#[cfg(feature = "lite")]
#[repr(C)]
pub struct Pending {
    _private: [u8; 0],
}

/// `ptm_input`: borrowed, read in place for one call.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Input {
    pub data: *const c_void,
    pub shape: *const i64,
    pub rank: usize,
    pub dtype: i32,
}

/// `ptm_output`: owned until the output-free function of the runtime that made it.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Output {
    pub owner: *mut c_void,
    pub data: *const c_void,
    pub shape: *const i64,
    pub rank: usize,
    pub numel: usize,
    pub dtype: i32,
}

impl Output {
    /// A slot for the shim to fill.
    pub const EMPTY: Output = Output { owner: std::ptr::null_mut(), data: std::ptr::null(), shape: std::ptr::null(), rank: 0, numel: 0, dtype: -1 };
}

/// How a runtime frees an output it handed over.
pub type FreeOutput = unsafe extern "C" fn(output: *mut Output);
/// How a runtime frees an error message it returned.
pub type FreeMessage = unsafe extern "C" fn(message: *mut c_char);

/// Takes a shim's error message, if any, and frees it with that shim's `free`.
pub fn take_message(message: *mut c_char, free: FreeMessage) -> Option<String> {
    if message.is_null() {
        return None;
    }
    // SAFETY: the shims return NUL-terminated strings they allocated, freed by `free`.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { free(message) };
    Some(text)
}

#[cfg(feature = "lite")]
extern "C" {
    pub fn ptm_module_load_bytes(data: *const u8, len: usize, engine: *const c_char, out: *mut *mut Module) -> *mut c_char;
    pub fn ptm_module_free(module: *mut Module);
    pub fn ptm_module_identity(module: *const Module) -> *const c_char;
    pub fn ptm_module_copies_inputs(module: *const Module) -> i32;
    pub fn ptm_module_serializes_runs(module: *const Module) -> i32;
    pub fn ptm_module_run(
        module: *const Module,
        method: *const c_char,
        inputs: *const Input,
        n_inputs: usize,
        outputs: *mut Output,
        capacity: usize,
        count: *mut usize,
        pending: *mut *mut Pending,
    ) -> *mut c_char;
    pub fn ptm_pending_take(pending: *mut Pending, outputs: *mut Output);
    pub fn ptm_pending_free(pending: *mut Pending);
    pub fn ptm_output_free(output: *mut Output);
    pub fn ptm_string_free(message: *mut c_char);
    pub fn ptm_quantized_engine() -> *const c_char;
    pub fn ptm_set_num_threads(threads: i32) -> *mut c_char;
    pub fn ptm_num_threads() -> i32;
}

#[cfg(feature = "executorch")]
#[repr(C)]
pub struct EtModule {
    _private: [u8; 0],
}

#[cfg(feature = "executorch")]
extern "C" {
    pub fn ptm_et_schema(out: *mut c_char) -> i32;
    pub fn ptm_et_load_bytes(data: *const u8, len: usize, borrow: i32, out: *mut *mut EtModule) -> *mut c_char;
    pub fn ptm_et_load_file(path: *const c_char, out: *mut *mut EtModule) -> *mut c_char;
    pub fn ptm_et_module_free(module: *mut EtModule);
    pub fn ptm_et_run(module: *mut EtModule, inputs: *const Input, n_inputs: usize, outputs: *mut Output, capacity: usize, count: *mut usize) -> *mut c_char;
    pub fn ptm_et_output_free(output: *mut Output);
    pub fn ptm_et_set_num_threads(threads: i32) -> *mut c_char;
    pub fn ptm_et_string_free(message: *mut c_char);
}
