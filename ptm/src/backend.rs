//! What a loaded model does the same way in either runtime: naming itself in errors,
//! marshalling the inputs, running, checking how many outputs came back and handing
//! them over. A runtime is a [`Backend`]: how it runs once and how it frees what it
//! returns; [`Module`](crate::Module) and [`Program`](crate::Program) are each a
//! [`Loaded`] over one.

use crate::identity::Identity;
use crate::tensor::{Input, Output};
use crate::{ffi, Error, ErrorKind, Options};
use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

/// One runtime's side of a loaded model.
pub(crate) trait Backend {
    /// The runtime's hold on outputs that did not fit the room a call gave.
    type Overflow: Overflow;
    /// How the runtime frees an output it handed over.
    const FREE_OUTPUT: ffi::FreeOutput;

    /// Runs `method` (`None`: forward) once on `inputs`, storing the outputs in `outputs`
    /// when they fit; returns how many the model returned and, when they did not fit,
    /// the runtime's hold on them (or `None` when it stored nothing and kept nothing).
    /// On an error, nothing is stored.
    fn call(&self, method: Option<&CStr>, inputs: &[ffi::Input], outputs: &mut [ffi::Output]) -> Result<(usize, Option<Self::Overflow>), String>;
}

/// Outputs a runtime holds because they did not fit: freed on drop unless taken.
pub(crate) trait Overflow {
    /// The `count` outputs, handed over.
    fn take(self, count: usize) -> Vec<ffi::Output>;
}

/// A runtime that keeps nothing when the outputs do not fit.
impl Overflow for std::convert::Infallible {
    fn take(self, _: usize) -> Vec<ffi::Output> {
        match self {}
    }
}

/// A model loaded in a runtime, as both handle types hold one.
pub(crate) struct Loaded<B> {
    pub(crate) backend: B,
    pub(crate) name: String,
    pub(crate) identity: Option<Identity>,
}

impl<B: Backend> Loaded<B> {
    pub(crate) fn new(backend: B, options: &Options, identity: Option<Identity>) -> Loaded<B> {
        Loaded { backend, name: model_name(options).to_string(), identity }
    }

    /// Runs the reference samples and compares the outputs (crate::self_check).
    pub(crate) fn self_check(&self, reference: &[u8]) -> Result<crate::SelfCheck, Error> {
        let key = self.identity.as_ref().map(|i| i.key.as_str());
        crate::self_check::check(&self.name, key, reference, |inputs| self.run(None, inputs))
    }

    /// Runs `forward`, which must return exactly `N` tensors.
    #[inline]
    pub(crate) fn forward<const N: usize>(&self, inputs: &[Input<'_>]) -> Result<[Output; N], Error> {
        let mut raws = [ffi::Output::EMPTY; N];
        let (count, overflow) = self.call(None, inputs, &mut raws)?;
        if count != N {
            // Whatever was handed over is released before the error: the outputs stored
            // (fewer than N), or the runtime's hold on them (more).
            match overflow {
                Some(overflow) => drop(overflow),
                None if count <= N => raws[..count].iter().map(|&raw| Output::new(raw, B::FREE_OUTPUT)).for_each(drop),
                None => {}
            }
            return Err(ErrorKind::OutputCount { model: self.name.clone(), expected: N, found: count }.into());
        }
        Ok(raws.map(|raw| Output::new(raw, B::FREE_OUTPUT)))
    }

    /// Runs the method called `method` (`None`: forward) once, with any number of
    /// results.
    pub(crate) fn run(&self, method: Option<&str>, inputs: &[Input<'_>]) -> Result<Vec<Output>, Error> {
        let c_method =
            method.map(CString::new).transpose().map_err(|_| self.run_error(method.unwrap_or_default(), "the method name contains a NUL byte".into()))?;
        let method = method.unwrap_or("forward");
        let mut raws = vec![ffi::Output::EMPTY; 4];
        let (count, overflow) = self.call(c_method.as_deref(), inputs, &mut raws)?;
        match overflow {
            Some(overflow) => raws = overflow.take(count),
            None if count <= raws.len() => raws.truncate(count),
            None => {
                return Err(self.run_error(method, format!("it returned {count} outputs and the runtime kept none of them")));
            }
        }
        Ok(raws.into_iter().map(|raw| Output::new(raw, B::FREE_OUTPUT)).collect())
    }

    /// Marshals `inputs` (on the stack for up to eight) and runs once.
    #[inline]
    fn call(&self, method: Option<&CStr>, inputs: &[Input<'_>], outputs: &mut [ffi::Output]) -> Result<(usize, Option<B::Overflow>), Error> {
        const ON_STACK: usize = 8;
        let mut stack = [ffi::Input { data: std::ptr::null(), shape: std::ptr::null(), rank: 0, dtype: 0 }; ON_STACK];
        let heap: Vec<ffi::Input>;
        let raw_inputs: &[ffi::Input] = if inputs.len() <= ON_STACK {
            for (raw, input) in stack.iter_mut().zip(inputs) {
                *raw = input.raw();
            }
            &stack[..inputs.len()]
        } else {
            heap = inputs.iter().map(Input::raw).collect();
            &heap
        };
        self.backend.call(method, raw_inputs, outputs).map_err(|message| {
            let method = method.map_or_else(|| "forward".to_string(), |m| m.to_string_lossy().into_owned());
            self.run_error(&method, message)
        })
    }

    fn run_error(&self, method: &str, message: String) -> Error {
        ErrorKind::Run { model: self.name.clone(), method: method.into(), message }.into()
    }
}

/// The name errors give the model `options` load.
pub(crate) fn model_name(options: &Options) -> &str {
    options.name.as_deref().unwrap_or("unnamed")
}

/// How errors name a model loaded from `len` bytes of a `format` file.
pub(crate) fn describe_bytes(options: &Options, len: usize, format: &str) -> String {
    match &options.name {
        Some(name) => format!("the embedded bytes of model `{name}`"),
        None => format!("{len} bytes of a {format}"),
    }
}

/// How errors name a model loaded from `path`.
pub(crate) fn describe_path(path: &Path, options: &Options) -> String {
    match &options.name {
        Some(name) => format!("{} (model `{name}`)", path.display()),
        None => path.display().to_string(),
    }
}

/// Reads `path` whole into `buffer` (made for its length), refusing what is not a
/// regular file, so the bytes are checked before a runtime reads any of them.
pub(crate) fn read_whole<T>(path: &Path, what: &str, buffer: impl FnOnce(usize) -> T, bytes: impl FnOnce(&mut T) -> &mut [u8]) -> Result<T, Error> {
    let load_error = |message| Error::from(ErrorKind::Load { what: what.into(), message });
    let (file, len) = crate::file::open_regular(path).map_err(load_error)?;
    let mut read = buffer(len);
    crate::file::read_exact_len(file, bytes(&mut read)).map_err(load_error)?;
    Ok(read)
}

/// What a runtime's load call returned: its handle, or its message (freed with `free`).
pub(crate) fn loaded<T>(message: *mut c_char, raw: *mut T, free: ffi::FreeMessage) -> Result<NonNull<T>, String> {
    if let Some(message) = ffi::take_message(message, free) {
        return Err(message);
    }
    NonNull::new(raw).ok_or_else(|| "the runtime returned no model and no error".to_string())
}
