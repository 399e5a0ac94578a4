//! Declarations of `shim/ptm_shim.h` (the Lite Interpreter) and of ptm-toolchain's
//! `executorch/ptm_executorch.h` (ExecuTorch). Inputs cross both the same way.

use std::ffi::{c_char, c_void};

#[cfg(feature = "lite")]
#[repr(C)]
pub struct Module {
    _private: [u8; 0],
}

#[repr(C)]
pub struct Tensor {
    _private: [u8; 0],
}

#[cfg(feature = "lite")]
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
    pub fn ptm_tensor_free(tensor: *mut Tensor);
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

/// An ExecuTorch output: `data` and `shape` were copied out by the shim and are freed
/// by `ptm_et_output_free`.
#[cfg(feature = "executorch")]
#[derive(Clone, Copy)]
#[repr(C)]
pub struct EtOutput {
    pub data: *mut c_void,
    pub shape: *mut i64,
    pub rank: usize,
    pub numel: usize,
    pub dtype: i32,
}

#[cfg(feature = "executorch")]
extern "C" {
    pub fn ptm_et_schema(out: *mut c_char) -> i32;
    pub fn ptm_et_load_bytes(data: *const u8, len: usize, borrow: i32, out: *mut *mut EtModule) -> *mut c_char;
    pub fn ptm_et_load_file(path: *const c_char, out: *mut *mut EtModule) -> *mut c_char;
    pub fn ptm_et_module_free(module: *mut EtModule);
    pub fn ptm_et_run(module: *mut EtModule, inputs: *const Input, n_inputs: usize, outputs: *mut EtOutput, capacity: usize, count: *mut usize) -> *mut c_char;
    pub fn ptm_et_output_free(output: *mut EtOutput);
    pub fn ptm_et_set_num_threads(threads: i32) -> *mut c_char;
    pub fn ptm_et_string_free(message: *mut c_char);
}

/// Takes the ExecuTorch shim's error message, if any, and frees it.
#[cfg(feature = "executorch")]
pub fn take_et_message(message: *mut c_char) -> Option<String> {
    if message.is_null() {
        return None;
    }
    // SAFETY: the shim returns NUL-terminated strings it allocated with malloc.
    let text = unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { ptm_et_string_free(message) };
    Some(text)
}

/// Takes the Lite Interpreter shim's error message, if any, and frees it.
#[cfg(feature = "lite")]
pub fn take_message(message: *mut c_char) -> Option<String> {
    if message.is_null() {
        return None;
    }
    // SAFETY: the shim returns NUL-terminated strings it allocated with malloc.
    let text = unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { ptm_string_free(message) };
    Some(text)
}
