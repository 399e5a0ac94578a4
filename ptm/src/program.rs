//! A loaded .pte: ExecuTorch's program and its `forward` method behind a handle.

use crate::backend::{self, Backend, Loaded};
use crate::identity::{self, Identity};
use crate::tensor::{Input, Output};
use crate::threads::apply_default_threads;
use crate::{ffi, Error, ErrorKind, Options};
use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

/// The ExecuTorch this build links, when the build could tell (its Python package's
/// version; empty for a directory without one).
const LINKED_EXECUTORCH: &str = env!("PTM_EXECUTORCH_VERSION");

/// A model loaded in ExecuTorch's native runtime.
///
/// A `Program` is `Send` and `Sync`. ExecuTorch's method owns the memory its operators
/// work in, so one handle runs one call at a time (others wait); load a handle per
/// thread to run a model in parallel.
///
/// # What loading checks
/// ExecuTorch verifies a program's structure, not its delegate payloads or operator
/// arguments: a damaged program can crash the process or run with other outputs. Each
/// `.pte` that ptm-build writes ends in an identity record with a CRC-32 of the whole
/// file, and every load checks it before ExecuTorch reads a byte: a damaged file is an
/// error. A `.pte` without that record (not written by ptm-build) is loaded with
/// ExecuTorch's checks alone; with [`Options::identified_by`] (as the generated wrappers
/// load) it is refused.
pub struct Program {
    loaded: Loaded<Executorch>,
    /// The program's bytes when this handle read them from a file: ExecuTorch reads them
    /// in place. Declared after `loaded`, so dropped after the module.
    _bytes: Option<Aligned>,
}

/// ExecuTorch's side of a [`Program`]: its module, used by one call at a time.
struct Executorch(Mutex<NonNull<ffi::EtModule>>);

// SAFETY: the shim's module is used only under the mutex; nothing of it is thread-local.
unsafe impl Send for Executorch {}
unsafe impl Sync for Executorch {}

impl Program {
    /// Loads a .pte from memory (embedded bytes, say). ExecuTorch reads a program in
    /// place and needs it 16-byte aligned, so the bytes are copied into an aligned buffer
    /// the program keeps.
    pub fn from_bytes(bytes: &[u8], options: &Options) -> Result<Program, Error> {
        let what = backend::describe_bytes(options, bytes.len(), ".pte");
        let (program, identity) = checked(&what, bytes, options)?;
        // SAFETY: the shim copies `len` bytes from `data` during the call (borrow = 0).
        Program::load(what, options, identity, None, |out| unsafe { ffi::ptm_et_load_bytes(program.as_ptr(), program.len(), 0, out) })
    }

    /// Loads a .pte file (an app asset, say): read whole into memory the program keeps,
    /// so that a file changed or truncated later cannot reach it.
    pub fn from_file(path: impl AsRef<Path>, options: &Options) -> Result<Program, Error> {
        let path = path.as_ref();
        let what = backend::describe_path(path, options);
        let bytes = backend::read_whole(path, &what, Aligned::zeroed, Aligned::as_mut_slice)?;
        let (program, identity) = checked(&what, bytes.as_slice(), options)?;
        let (data, len) = (program.as_ptr(), program.len());
        // SAFETY: `data` is 16-byte aligned (Aligned) and lives in `bytes`, which the
        // program keeps and drops after the module (borrow = 1).
        Program::load(what, options, identity, Some(bytes), |out| unsafe { ffi::ptm_et_load_bytes(data, len, 1, out) })
    }

    /// Loads a .pte file memory-mapped: its pages are read as ExecuTorch needs them and
    /// shared with the page cache, instead of copied into the process. Checked like
    /// [`Program::from_file`] (the whole file is read once for its CRC).
    ///
    /// # Safety
    /// The file must not be changed, truncated or replaced in place while the program
    /// lives: ExecuTorch reads the mapped pages directly, and a truncated mapping raises
    /// SIGBUS in the process. Replacing the file by renaming another over it is safe.
    pub unsafe fn from_file_mapped(path: impl AsRef<Path>, options: &Options) -> Result<Program, Error> {
        let path = path.as_ref();
        let what = backend::describe_path(path, options);
        let bytes = backend::read_whole(path, &what, |len| vec![0u8; len], |bytes| bytes.as_mut_slice())?;
        let identity = checked(&what, &bytes, options)?.1;
        drop(bytes);
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::from(ErrorKind::Load { what: what.clone(), message: "the path contains a NUL byte".into() }))?;
        // SAFETY: a NUL-terminated path, read during the call; the caller keeps the file
        // as it is while the program lives. ExecuTorch reads the program's own length
        // (its header), never the identity record after it.
        Program::load(what, options, identity, None, |out| unsafe { ffi::ptm_et_load_file(c_path.as_ptr(), out) })
    }

    fn load(
        what: String,
        options: &Options,
        identity: Option<Identity>,
        bytes: Option<Aligned>,
        call: impl FnOnce(*mut *mut ffi::EtModule) -> *mut std::ffi::c_char,
    ) -> Result<Program, Error> {
        // ExecuTorch's threadpool can be sized only before the first program loads.
        apply_default_threads()?;
        let mut raw = ptr::null_mut();
        let message = call(&mut raw);
        let raw = backend::loaded(message, raw, ffi::ptm_et_string_free).map_err(|message| Error::from(ErrorKind::Load { what, message }))?;
        Ok(Program { loaded: Loaded::new(Executorch(Mutex::new(raw)), options, identity), _bytes: bytes })
    }

    /// The name used in error messages.
    pub fn name(&self) -> &str {
        &self.loaded.name
    }

    /// What the .pte says of itself, when ptm-build wrote it.
    pub fn identity(&self) -> Option<&Identity> {
        self.loaded.identity.as_ref()
    }

    /// Runs `forward`, which must return exactly `N` tensors.
    #[inline]
    pub fn forward<const N: usize>(&self, inputs: &[Input<'_>]) -> Result<[Output; N], Error> {
        self.loaded.forward(inputs)
    }

    /// Runs `forward` once, with any number of results.
    pub fn run(&self, inputs: &[Input<'_>]) -> Result<Vec<Output>, Error> {
        self.loaded.run(None, inputs)
    }

    /// Runs the samples of `reference` (the `<name>.reference` data the build wrote
    /// beside the program) and compares each output with the source model's, as the
    /// build did: the figures, or [`ErrorKind::SelfCheck`](crate::ErrorKind::SelfCheck)
    /// naming each output past its tolerance.
    pub fn self_check(&self, reference: &[u8]) -> Result<crate::SelfCheck, Error> {
        self.loaded.self_check(reference)
    }
}

impl Backend for Executorch {
    /// The shim stores no output when they do not all fit, and keeps none.
    type Overflow = std::convert::Infallible;
    const FREE_OUTPUT: ffi::FreeOutput = ffi::ptm_et_output_free;

    fn call(&self, method: Option<&CStr>, inputs: &[ffi::Input], outputs: &mut [ffi::Output]) -> Result<(usize, Option<Self::Overflow>), String> {
        if let Some(method) = method {
            return Err(format!("ptm runs a program's forward only, not `{}`", method.to_string_lossy()));
        }
        let mut count = 0;
        let message = {
            let module = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // SAFETY: the inputs borrow live slices for this call; the output buffer has
            // `outputs.len()` slots; the module is used by this thread alone (the lock).
            unsafe { ffi::ptm_et_run(module.as_ptr(), inputs.as_ptr(), inputs.len(), outputs.as_mut_ptr(), outputs.len(), &mut count) }
        };
        match ffi::take_message(message, ffi::ptm_et_string_free) {
            Some(message) => Err(message),
            None => Ok((count, None)),
        }
    }
}

/// The identity record's last bytes.
const TRAILER_MAGIC: &[u8; 8] = b"PTMPTE01";

/// What stands after a .pte's program when ptm-build wrote it: the identity text, its
/// length (u32 LE), a CRC-32 of everything before the CRC (u32 LE), then TRAILER_MAGIC.
/// Returns the program alone and the identity, or why the file is damaged.
fn split_identity(bytes: &[u8]) -> Result<(&[u8], Option<Identity>), String> {
    let Some(body_end) = bytes.len().checked_sub(TRAILER_MAGIC.len() + 4) else { return Ok((bytes, None)) };
    if !bytes.ends_with(TRAILER_MAGIC) {
        return Ok((bytes, None));
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let expected = word(body_end);
    if crc32fast::hash(&bytes[..body_end]) != expected {
        return Err("its contents do not match the checksum ptm-build wrote into it: the file is damaged (rebuild it, or copy it again)".into());
    }
    let text_end = body_end.checked_sub(4).ok_or("its identity record is cut short")?;
    let text_len = usize::try_from(word(text_end)).map_err(|_| "its identity record is malformed")?;
    let program_end = text_end.checked_sub(text_len).ok_or("its identity record is longer than the file")?;
    let text = std::str::from_utf8(&bytes[program_end..text_end]).map_err(|_| "its identity record is not UTF-8")?;
    let identity = Identity::parse(text).ok_or("its identity record is malformed")?;
    Ok((&bytes[..program_end], Some(identity)))
}

/// The program in `bytes` once it is whole, is the model `options` names and fits the
/// linked ExecuTorch.
fn checked<'a>(what: &str, bytes: &'a [u8], options: &Options) -> Result<(&'a [u8], Option<Identity>), Error> {
    let not_program = |problem| Error::from(ErrorKind::NotProgram { what: what.into(), problem });
    not_a_program(bytes).map_or(Ok(()), |problem| Err(not_program(problem)))?;
    let (program, identity) = split_identity(bytes).map_err(not_program)?;
    identity::check(what, backend::model_name(options), options.key.as_deref(), identity.as_ref(), ".pte")?;
    if let Some(problem) = incompatible(program, identity.as_ref(), LINKED_EXECUTORCH, &linked_schema()) {
        return Err(ErrorKind::Incompatible { what: what.into(), problem }.into());
    }
    Ok((program, identity))
}

/// The schema identifier the linked runtime reads ("ET12"), or "" when it cannot tell.
fn linked_schema() -> String {
    let mut id = [0 as std::ffi::c_char; 5];
    // SAFETY: room for four characters and the NUL the shim writes.
    if unsafe { ffi::ptm_et_schema(id.as_mut_ptr()) } == 0 {
        return String::new();
    }
    // SAFETY: NUL-terminated by the shim.
    unsafe { std::ffi::CStr::from_ptr(id.as_ptr()) }.to_string_lossy().into_owned()
}

/// Why a program cannot run on the linked runtime: another schema, or made by a newer
/// ExecuTorch than the one linked (where both are known).
fn incompatible(program: &[u8], identity: Option<&Identity>, linked: &str, schema: &str) -> Option<String> {
    let made_by = identity.and_then(|i| i.executorch.as_deref());
    let made = made_by.map_or_else(String::new, |v| format!(" (exported by ExecuTorch {v})"));
    let program_schema = String::from_utf8_lossy(&program[4..8]);
    if !schema.is_empty() && program_schema != schema {
        return Some(format!(
            "the program is schema {program_schema}{made}, the linked ExecuTorch{} reads {schema}: rebuild the model with the ExecuTorch the app links, or link the one that exported it",
            if linked.is_empty() { String::new() } else { format!(" {linked}") }
        ));
    }
    let (made_by, linked_release) = (release(made_by?)?, release(linked)?);
    (made_by > linked_release).then(|| {
        format!(
            "it was exported by ExecuTorch {}, newer than the linked ExecuTorch {linked}: link ExecuTorch {} or newer (PTM_EXECUTORCH_DIR, or the converting environment's executorch), or rebuild the model with {linked}",
            identity.and_then(|i| i.executorch.as_deref()).unwrap_or_default(),
            identity.and_then(|i| i.executorch.as_deref()).unwrap_or_default()
        )
    })
}

/// `1.5.1+cpu` as (1, 5, 1).
fn release(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split(['+', '-']).next()?.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0), parts.next().flatten().unwrap_or(0)))
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

/// Bytes at a 16-byte aligned address, as ExecuTorch reads a program in place.
struct Aligned {
    blocks: Vec<Block>,
    len: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Block([u8; 16]);

impl Aligned {
    fn zeroed(len: usize) -> Aligned {
        Aligned { blocks: vec![Block([0; 16]); len.div_ceil(16)], len }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the blocks hold at least `len` initialized bytes, contiguous (repr(C)
        // arrays of u8 with no padding between blocks of size 16).
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for Executorch {
    fn drop(&mut self) {
        let raw = *self.0.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: allocated by the shim, freed once, before the bytes it reads (the
        // program's field declared after this one).
        unsafe { ffi::ptm_et_module_free(raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("name", &self.loaded.name).finish()
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

    fn with_identity(program: &[u8], text: &str) -> Vec<u8> {
        let mut bytes = program.to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(TRAILER_MAGIC);
        bytes
    }

    const TEXT: &str = "ptm-identity 1\nmodel m\nkey abc\nptm-build 0.1.0\ninputs x float32 [1]\noutputs y float32 [1]\nexecutorch 1.5.1+cpu\n";

    #[test]
    fn the_identity_record_is_split_off_and_every_damaged_byte_is_caught() {
        let program = b"\x1c\0\0\0ET12 program bytes";
        let bytes = with_identity(program, TEXT);
        let (alone, identity) = split_identity(&bytes).unwrap();
        assert_eq!(alone, program);
        assert_eq!(identity.unwrap().executorch.as_deref(), Some("1.5.1+cpu"));
        assert_eq!(split_identity(program).unwrap(), (&program[..], None), "no record: the program as it is");
        // Every byte flipped, but the magic (which then reads as no record): an error.
        for at in 0..bytes.len() - TRAILER_MAGIC.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(split_identity(&damaged).is_err(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn a_program_newer_than_the_runtime_or_of_another_schema_is_refused() {
        let identity = Identity::parse(TEXT).unwrap();
        let program = b"\x1c\0\0\0ET12";
        assert_eq!(incompatible(program, Some(&identity), "1.5.1+cpu", "ET12"), None);
        assert_eq!(incompatible(program, Some(&identity), "1.6.0", "ET12"), None);
        assert_eq!(incompatible(program, Some(&identity), "", "ET12"), None, "an unknown runtime release is not refused");
        let error = incompatible(program, Some(&identity), "1.4.0", "ET12").unwrap();
        assert!(error.contains("exported by ExecuTorch 1.5.1+cpu, newer than the linked ExecuTorch 1.4.0"), "{error}");
        let error = incompatible(b"\x1c\0\0\0ET13", Some(&identity), "1.5.1", "ET12").unwrap();
        assert!(error.contains("schema ET13 (exported by ExecuTorch 1.5.1+cpu), the linked ExecuTorch 1.5.1 reads ET12"), "{error}");
        assert_eq!(release("1.5.1+cpu"), Some((1, 5, 1)));
        assert_eq!(release("1.10"), Some((1, 10, 0)));
        assert_eq!(release("dev"), None);
    }
}
