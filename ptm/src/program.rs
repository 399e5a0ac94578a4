//! A loaded .pte: ExecuTorch's program and its `forward` method behind a handle.

use crate::tensor::{Input, Output};
use crate::threads::apply_default_threads;
use crate::{ffi, Error, ErrorKind, Options};
use std::ffi::CString;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

const EMPTY: ffi::EtOutput = ffi::EtOutput { data: ptr::null_mut(), shape: ptr::null_mut(), rank: 0, numel: 0, dtype: -1 };

/// A model loaded in ExecuTorch's native runtime.
///
/// A `Program` is `Send` and `Sync`. ExecuTorch's method owns the memory its operators
/// work in, so one handle runs one call at a time (others wait); load a handle per
/// thread to run a model in parallel.
pub struct Program {
    raw: Mutex<NonNull<ffi::EtModule>>,
    name: String,
}

// SAFETY: the shim's module is used only under the mutex; nothing of it is thread-local.
unsafe impl Send for Program {}
unsafe impl Sync for Program {}

impl Program {
    /// Loads a .pte from memory (embedded bytes, say). ExecuTorch reads a program in
    /// place and needs it 16-byte aligned, so the bytes are copied into an aligned buffer
    /// the program keeps.
    pub fn from_bytes(bytes: &[u8], options: &Options) -> Result<Program, Error> {
        let what = match &options.name {
            Some(name) => format!("the embedded bytes of model `{name}`"),
            None => format!("{} bytes of a .pte", bytes.len()),
        };
        if let Some(problem) = not_a_program(bytes) {
            return Err(ErrorKind::NotProgram { what, problem }.into());
        }
        // SAFETY: the shim copies `len` bytes from `data` during the call (borrow = 0).
        Program::load(what, options, |out| unsafe { ffi::ptm_et_load_bytes(bytes.as_ptr(), bytes.len(), 0, out) })
    }

    /// Loads a .pte file (an app asset, say), memory-mapped.
    pub fn from_file(path: impl AsRef<Path>, options: &Options) -> Result<Program, Error> {
        let path = path.as_ref();
        let what = match &options.name {
            Some(name) => format!("{} (model `{name}`)", path.display()),
            None => path.display().to_string(),
        };
        let mut head = [0u8; 8];
        let read = std::fs::File::open(path).and_then(|mut file| std::io::Read::read(&mut file, &mut head));
        let read = read.map_err(|e| Error::from(ErrorKind::Load { what: what.clone(), message: e.to_string() }))?;
        if let Some(problem) = not_a_program(&head[..read]) {
            return Err(ErrorKind::NotProgram { what, problem }.into());
        }
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::from(ErrorKind::Load { what: what.clone(), message: "the path contains a NUL byte".into() }))?;
        // SAFETY: a NUL-terminated path, read during the call.
        Program::load(what, options, |out| unsafe { ffi::ptm_et_load_file(c_path.as_ptr(), out) })
    }

    fn load(what: String, options: &Options, call: impl FnOnce(*mut *mut ffi::EtModule) -> *mut std::ffi::c_char) -> Result<Program, Error> {
        // ExecuTorch's threadpool can be sized only before the first program loads.
        apply_default_threads()?;
        let mut raw = ptr::null_mut();
        if let Some(message) = ffi::take_et_message(call(&mut raw)) {
            return Err(ErrorKind::Load { what, message }.into());
        }
        let raw = NonNull::new(raw).ok_or_else(|| Error::from(ErrorKind::Load { what, message: "ExecuTorch returned no program".into() }))?;
        Ok(Program { raw: Mutex::new(raw), name: options.name.clone().unwrap_or_else(|| "unnamed".into()) })
    }

    /// The name used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `forward`, which must return exactly `N` tensors.
    pub fn forward<const N: usize>(&self, inputs: &[Input<'_>]) -> Result<[Output; N], Error> {
        let raw_inputs: Vec<ffi::Input> = inputs.iter().map(Input::raw).collect();
        let mut raws = [EMPTY; N];
        let mut count = 0;
        let message = {
            let module = self.raw.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // SAFETY: the inputs borrow live slices for this call; the output buffer has N
            // slots; the module is used by this thread alone (the lock).
            unsafe { ffi::ptm_et_run(module.as_ptr(), raw_inputs.as_ptr(), raw_inputs.len(), raws.as_mut_ptr(), N, &mut count) }
        };
        if let Some(message) = ffi::take_et_message(message) {
            return Err(ErrorKind::Run { model: self.name.clone(), method: "forward".into(), message }.into());
        }
        if count != N {
            // Fewer than N were stored and are freed; more than N, none was stored.
            raws[..count.min(N)].iter().copied().map(Output::from_executorch).for_each(drop);
            return Err(ErrorKind::OutputCount { model: self.name.clone(), expected: N, found: count }.into());
        }
        Ok(raws.map(Output::from_executorch))
    }
}

/// Why `bytes` (the whole file, or at least its first 8 bytes) cannot be an ExecuTorch
/// program: its FlatBuffer file identifier is `ET` and two digits at offset 4.
fn not_a_program(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 8 {
        return Some(format!("its {} bytes are too few for an ExecuTorch program", bytes.len()));
    }
    let id = &bytes[4..8];
    if id[..2] != *b"ET" || !id[2..].iter().all(u8::is_ascii_digit) {
        if bytes.starts_with(b"PK") {
            return Some("it is a zip archive (a .ptl or TorchScript file), not an ExecuTorch program: declare the model with format = \"pte\"".into());
        }
        return Some("it lacks an ExecuTorch program's file identifier (`ET` and a version at byte 4)".into());
    }
    None
}

impl Drop for Program {
    fn drop(&mut self) {
        let raw = *self.raw.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: allocated by the shim, freed once.
        unsafe { ffi::ptm_et_module_free(raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("name", &self.name).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_executorch_file_identifier_is_a_program() {
        assert_eq!(not_a_program(b"\x1c\0\0\0ET12\0\0"), None);
        assert!(not_a_program(b"PK\x03\x04abcdefgh").unwrap().contains("format = \"pte\""));
        assert!(not_a_program(b"\0\0\0\0XY12").unwrap().contains("file identifier"));
        assert!(not_a_program(b"ET").unwrap().contains("too few"));
    }
}
