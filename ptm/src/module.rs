//! A loaded .ptl: the Lite Interpreter's `mobile::Module` behind a handle.

use crate::identity::{self, Identity};
use crate::tensor::{Input, Output};
use crate::threads::apply_default_threads;
use crate::{ffi, Error, ErrorKind, Options};
use std::ffi::{c_char, CString};
use std::path::Path;
use std::ptr::{self, NonNull};

const EMPTY: ffi::Output = ffi::Output { tensor: ptr::null_mut(), data: ptr::null(), shape: ptr::null(), rank: 0, numel: 0, dtype: -1 };

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
    raw: NonNull<ffi::Module>,
    name: String,
    identity: Option<Identity>,
}

// SAFETY: see the type's documentation; `concurrent_forwards_agree` in ptm-tests runs
// one handle from several threads.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Module {
    /// Loads a .ptl from memory (embedded bytes, say). The bytes are read while loading
    /// and not kept.
    pub fn from_bytes(bytes: &[u8], options: &Options) -> Result<Module, Error> {
        let what = match &options.name {
            Some(name) => format!("the embedded bytes of model `{name}`"),
            None => format!("{} bytes of a .ptl", bytes.len()),
        };
        Module::load_checked(what, bytes, options)
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
        let what = match &options.name {
            Some(name) => format!("{} (model `{name}`)", path.display()),
            None => path.display().to_string(),
        };
        // Read whole, so that it is checked before libtorch reads a byte of it.
        let load_error = |message| Error::from(ErrorKind::Load { what: what.clone(), message });
        let (file, len) = crate::file::open_regular(path).map_err(load_error)?;
        let mut bytes = vec![0u8; len];
        crate::file::read_exact_len(file, &mut bytes).map_err(load_error)?;
        Module::load_checked(what, &bytes, options)
    }

    fn load(what: String, options: &Options, call: impl FnOnce(*const c_char, *mut *mut ffi::Module) -> *mut c_char) -> Result<Module, Error> {
        apply_default_threads()?;
        let engine = options.engine.map_or(ptr::null(), |e| e.c_name().as_ptr());
        let mut raw = ptr::null_mut();
        if let Some(message) = ffi::take_message(call(engine, &mut raw)) {
            if message.contains("bytecode.pkl") {
                let problem = "it is a full TorchScript file (torch.jit.save), not a Lite Interpreter archive: declare it as the `source` of a model in [package.metadata.models] and let ptm-build convert it".into();
                return Err(ErrorKind::NotLite { what, problem }.into());
            }
            return Err(ErrorKind::Load { what, message }.into());
        }
        let raw = NonNull::new(raw).ok_or_else(|| Error::from(ErrorKind::Load { what: what.clone(), message: "libtorch returned no module".into() }))?;
        // SAFETY: a NUL-terminated string the module owns; copied before anything frees it.
        let identity = Identity::parse(&unsafe { std::ffi::CStr::from_ptr(ffi::ptm_module_identity(raw.as_ptr())) }.to_string_lossy());
        let module = Module { raw, name: options.name.clone().unwrap_or_else(|| "unnamed".into()), identity };
        identity::check(&what, &module.name, options.key.as_deref(), module.identity.as_ref(), ".ptl")?;
        Ok(module)
    }

    /// What the .ptl says of itself, when ptm-build wrote it.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The name used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether each run copies its inputs first. Inputs are lent to libtorch read-only;
    /// a model with any operator that writes in place (`add_`, `relu_`, an `out=`
    /// variant) could write one, so its inputs are copied, whatever the op writes.
    pub fn copies_inputs(&self) -> bool {
        // SAFETY: a live module.
        unsafe { ffi::ptm_module_copies_inputs(self.raw.as_ptr()) != 0 }
    }

    /// Whether calls on this handle take turns, because the model may change its own
    /// state while it runs (see the type's documentation).
    pub fn serializes_runs(&self) -> bool {
        // SAFETY: a live module.
        unsafe { ffi::ptm_module_serializes_runs(self.raw.as_ptr()) != 0 }
    }

    /// Runs `forward`, which must return exactly `N` tensors.
    pub fn forward<const N: usize>(&self, inputs: &[Input<'_>]) -> Result<[Output; N], Error> {
        let mut raws = [const { EMPTY }; N];
        let (count, pending) = self.call(None, inputs, &mut raws)?;
        if count != N {
            // Whatever was handed over is released before the error: the outputs in
            // `raws` (fewer than N), or the pending set (more).
            match pending {
                Some(pending) => drop(pending),
                None => raws[..count].iter().copied().map(Output::from_raw).for_each(drop),
            }
            return Err(ErrorKind::OutputCount { model: self.name.clone(), expected: N, found: count }.into());
        }
        Ok(raws.map(Output::from_raw))
    }

    /// Runs the method called `method` once, with any number of results.
    pub fn run(&self, method: &str, inputs: &[Input<'_>]) -> Result<Vec<Output>, Error> {
        let c_method = CString::new(method).map_err(|_| self.run_error(method, "the method name contains a NUL byte".into()))?;
        let mut raws = vec![EMPTY; 4];
        let (count, pending) = self.call(Some(&c_method), inputs, &mut raws)?;
        match pending {
            Some(pending) => raws = pending.take(count),
            None => raws.truncate(count),
        }
        Ok(raws.into_iter().map(Output::from_raw).collect())
    }

    /// Runs a method once, storing its outputs when they fit; returns how many there
    /// were, and the shim's hold on them when they did not fit.
    #[inline]
    fn call(&self, method: Option<&CString>, inputs: &[Input<'_>], outputs: &mut [ffi::Output]) -> Result<(usize, Option<Pending>), Error> {
        let mut raw_inputs = [const { ffi::Input { data: ptr::null(), shape: ptr::null(), rank: 0, dtype: 0 } }; 8];
        let heap;
        let raw_inputs: &[ffi::Input] = if inputs.len() <= raw_inputs.len() {
            for (raw, input) in raw_inputs.iter_mut().zip(inputs) {
                *raw = input.raw();
            }
            &raw_inputs[..inputs.len()]
        } else {
            heap = inputs.iter().map(Input::raw).collect::<Vec<_>>();
            &heap
        };
        let mut count = 0;
        let mut pending = ptr::null_mut();
        // SAFETY: the inputs borrow live slices (their lifetime covers this call); the
        // output buffer has `outputs.len()` slots.
        let message = unsafe {
            ffi::ptm_module_run(
                self.raw.as_ptr(),
                method.map_or(ptr::null(), |m| m.as_ptr()),
                raw_inputs.as_ptr(),
                raw_inputs.len(),
                outputs.as_mut_ptr(),
                outputs.len(),
                &mut count,
                &mut pending,
            )
        };
        let pending = NonNull::new(pending).map(Pending);
        let method_name = || method.map_or("forward".to_string(), |m| m.to_string_lossy().into_owned());
        if let Some(message) = ffi::take_message(message) {
            return Err(self.run_error(&method_name(), message));
        }
        Ok((count, pending))
    }

    fn run_error(&self, method: &str, message: String) -> Error {
        ErrorKind::Run { model: self.name.clone(), method: method.into(), message }.into()
    }
}

/// Outputs the shim holds because they did not fit the buffer of a call; freed on drop
/// unless taken.
struct Pending(NonNull<ffi::Pending>);

impl Pending {
    /// The `count` outputs, handed over.
    fn take(self, count: usize) -> Vec<ffi::Output> {
        let mut raws = vec![EMPTY; count];
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

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: allocated by the shim, freed once.
        unsafe { ffi::ptm_module_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.name).finish()
    }
}
