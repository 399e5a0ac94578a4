//! Declarations of `shim/ptm_shim.h`.

use std::ffi::{c_char, c_void};

#[repr(C)]
pub struct Module {
    _private: [u8; 0],
}

#[repr(C)]
pub struct Tensor {
    _private: [u8; 0],
}

#[repr(C)]
pub struct Pending {
    _private: [u8; 0],
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Input {
    pub data: *const c_void,
    pub shape: *const i64,
    pub rank: usize,
    pub dtype: i32,
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Output {
    pub tensor: *mut Tensor,
    pub data: *const c_void,
    pub shape: *const i64,
    pub rank: usize,
    pub numel: usize,
    pub dtype: i32,
}

extern "C" {
    pub fn ptm_module_load_bytes(data: *const u8, len: usize, engine: *const c_char, out: *mut *mut Module) -> *mut c_char;
    pub fn ptm_module_free(module: *mut Module);
    pub fn ptm_module_identity(module: *const Module) -> *const c_char;
    pub fn ptm_module_copies_inputs(module: *const Module) -> i32;
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
    pub fn ptm_tensor_free(tensor: *mut Tensor);
    pub fn ptm_string_free(message: *mut c_char);
    pub fn ptm_quantized_engine() -> *const c_char;
    pub fn ptm_set_num_threads(threads: i32) -> *mut c_char;
    pub fn ptm_num_threads() -> i32;
}

/// Takes the shim's error message, if any, and frees it.
pub fn take_message(message: *mut c_char) -> Option<String> {
    if message.is_null() {
        return None;
    }
    // SAFETY: the shim returns NUL-terminated strings it allocated with malloc.
    let text = unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { ptm_string_free(message) };
    Some(text)
}
