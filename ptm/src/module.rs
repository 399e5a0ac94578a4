//! A loaded .ptl: the Lite Interpreter's `mobile::Module` behind a handle.

use crate::backend::{self, Backend, Loaded, Overflow};
use crate::identity::{self, Identity};
use crate::tensor::{Input, Output};
use crate::threads::apply_default_threads;
use crate::{ffi, Error, ErrorKind, Options};
use std::ffi::{c_char, CStr};
use std::path::Path;
use std::ptr::{self, NonNull};

/// A model loaded in the Lite Interpreter.
///
/// A `Module` is `Send` and `Sync`: every call gets its own interpreter state, so one
/// handle serves many threads at once when the model only reads its weights. A model
/// that may change its own state while it runs (an attribute it assigns or writes in
/// place, such as a counter or a running statistic; a list or dict it changes; XNNPACK's
/// prepacked operators, what `optimize_for_mobile` makes of float Linear and Conv
/// layers) runs one call at a time per handle ([`Module::serializes_runs`]); load a
/// handle per thread to run such a model in parallel. Outputs never share memory with
/// the caller's inputs or the model's state: such an output is handed over as a copy.
pub struct Module {
    loaded: Loaded<Lite>,
}

/// The Lite Interpreter's side of a [`Module`].
struct Lite(NonNull<ffi::Module>);

// SAFETY: see [`Module`]'s documentation; `concurrent_forwards_agree` in ptm-tests runs
// one handle from several threads.
unsafe impl Send for Lite {}
unsafe impl Sync for Lite {}

impl Module {
    /// Loads a .ptl from memory (embedded bytes, say). The bytes are read while loading
    /// and not kept.
    pub fn from_bytes(bytes: &[u8], options: &Options) -> Result<Module, Error> {
        Module::load_checked(backend::describe_bytes(options, bytes.len(), ".ptl"), bytes, options)
    }

    /// Loads `bytes` once [`crate::archive`] found them whole.
    fn load_checked(what: String, bytes: &[u8], options: &Options) -> Result<Module, Error> {
        if let Some(problem) = crate::archive::problem(bytes) {
            return Err(ErrorKind::NotLite { what, problem }.into());
        }
        // SAFETY: the shim reads `len` bytes from `data` during the call only.
        Module::load(what, options, |engine, out| unsafe { ffi::ptm_module_load_bytes(bytes.as_ptr(), bytes.len(), engine, out) })
    }

    /// Loads a .ptl file (an app asset, say).
    pub fn from_file(path: impl AsRef<Path>, options: &Options) -> Result<Module, Error> {
        let path = path.as_ref();
        let what = backend::describe_path(path, options);
        let bytes = backend::read_whole(path, &what, |len| vec![0u8; len], |bytes| bytes.as_mut_slice())?;
        Module::load_checked(what, &bytes, options)
    }

    fn load(what: String, options: &Options, call: impl FnOnce(*const c_char, *mut *mut ffi::Module) -> *mut c_char) -> Result<Module, Error> {
        apply_default_threads()?;
        let engine = options.engine.map_or(ptr::null(), |e| e.c_name().as_ptr());
        let mut raw = ptr::null_mut();
        let message = call(engine, &mut raw);
        let raw = backend::loaded(message, raw, ffi::ptm_string_free).map_err(|message| {
            if message.contains("bytecode.pkl") {
                let problem = "it is a full TorchScript file (torch.jit.save), not a Lite Interpreter archive: declare it as the `source` of a model in [package.metadata.models] and let ptm-build convert it".into();
                return Error::from(ErrorKind::NotLite { what: what.clone(), problem });
            }
            Error::from(ErrorKind::Load { what: what.clone(), message })
        })?;
        let lite = Lite(raw);
        // SAFETY: a NUL-terminated string the module owns; copied before anything frees it.
        let identity = Identity::parse(&unsafe { CStr::from_ptr(ffi::ptm_module_identity(raw.as_ptr())) }.to_string_lossy());
        identity::check(&what, backend::model_name(options), options.key.as_deref(), identity.as_ref(), ".ptl")?;
        Ok(Module { loaded: Loaded::new(lite, options, identity) })
    }

    /// What the .ptl says of itself, when ptm-build wrote it.
    pub fn identity(&self) -> Option<&Identity> {
        self.loaded.identity.as_ref()
    }

    /// The name used in error messages.
    pub fn name(&self) -> &str {
        &self.loaded.name
    }

    /// Whether each run copies its inputs first. Inputs are lent to libtorch read-only;
    /// a model with any operator that writes in place (`add_`, `relu_`, an `out=`
    /// variant) could write one, so its inputs are copied, whatever the op writes.
    pub fn copies_inputs(&self) -> bool {
        // SAFETY: a live module.
        unsafe { ffi::ptm_module_copies_inputs(self.loaded.backend.0.as_ptr()) != 0 }
    }

    /// Whether calls on this handle take turns, because the model may change its own
    /// state while it runs (see the type's documentation).
    pub fn serializes_runs(&self) -> bool {
        // SAFETY: a live module.
        unsafe { ffi::ptm_module_serializes_runs(self.loaded.backend.0.as_ptr()) != 0 }
    }

    /// Runs `forward`, which must return exactly `N` tensors.
    #[inline]
    pub fn forward<const N: usize>(&self, inputs: &[Input<'_>]) -> Result<[Output; N], Error> {
        self.loaded.forward(inputs)
    }

    /// Runs the method called `method` once, with any number of results.
    pub fn run(&self, method: &str, inputs: &[Input<'_>]) -> Result<Vec<Output>, Error> {
        self.loaded.run(Some(method), inputs)
    }

    /// Runs the samples of `reference` (the `<name>.reference` data the build wrote
    /// beside the model) and compares each output with the source model's, as the build
    /// did: the figures, or [`ErrorKind::SelfCheck`](crate::ErrorKind::SelfCheck) naming
    /// each output past its tolerance.
    pub fn self_check(&self, reference: &[u8]) -> Result<crate::SelfCheck, Error> {
        self.loaded.self_check(reference)
    }
}

impl Backend for Lite {
    type Overflow = Pending;
    const FREE_OUTPUT: ffi::FreeOutput = ffi::ptm_output_free;

    #[inline]
    fn call(&self, method: Option<&CStr>, inputs: &[ffi::Input], outputs: &mut [ffi::Output]) -> Result<(usize, Option<Pending>), String> {
        let mut count = 0;
        let mut pending = ptr::null_mut();
        // SAFETY: the inputs borrow live slices (their lifetime covers this call); the
        // output buffer has `outputs.len()` slots.
        let message = unsafe {
            ffi::ptm_module_run(
                self.0.as_ptr(),
                method.map_or(ptr::null(), CStr::as_ptr),
                inputs.as_ptr(),
                inputs.len(),
                outputs.as_mut_ptr(),
                outputs.len(),
                &mut count,
                &mut pending,
            )
        };
        let pending = NonNull::new(pending).map(Pending);
        match ffi::take_message(message, ffi::ptm_string_free) {
            Some(message) => Err(message),
            None => Ok((count, pending)),
        }
    }
}

/// Outputs the shim holds because they did not fit the buffer of a call; freed on drop
/// unless taken.
struct Pending(NonNull<ffi::Pending>);

impl Overflow for Pending {
    fn take(self, count: usize) -> Vec<ffi::Output> {
        let mut raws = vec![ffi::Output::EMPTY; count];
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        // SAFETY: the shim reported `count` pending outputs; `raws` has room for them;
        // `take` frees the set, which is not used again (forgotten above).
        unsafe { ffi::ptm_pending_take(raw, raws.as_mut_ptr()) };
        raws
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // SAFETY: allocated by the shim, freed once.
        unsafe { ffi::ptm_pending_free(self.0.as_ptr()) }
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        // SAFETY: allocated by the shim, freed once.
        unsafe { ffi::ptm_module_free(self.0.as_ptr()) }
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.loaded.name).finish()
    }
}
