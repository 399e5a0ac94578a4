//! How to load a model: its name in messages, the key it must carry, its INT8 engine.

#[cfg(feature = "lite")]
use crate::ffi;

/// The quantized engine a model's INT8 kernels were packed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Engine {
    /// ARM's (and the default of ptm): what phones run.
    Qnnpack,
    /// x86-only kernels.
    Fbgemm,
    /// x86, fbgemm's successor.
    X86,
    /// oneDNN.
    Onednn,
}

impl Engine {
    /// The name torch gives it.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().unwrap_or_default()
    }

    /// The engine in force in this process, if any is selected.
    #[cfg(feature = "lite")]
    pub fn current() -> Option<Engine> {
        // SAFETY: returns a static NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(ffi::ptm_quantized_engine()) };
        [Engine::Qnnpack, Engine::Fbgemm, Engine::X86, Engine::Onednn].into_iter().find(|e| e.c_name() == name)
    }

    pub(crate) fn c_name(self) -> &'static std::ffi::CStr {
        match self {
            Engine::Qnnpack => c"qnnpack",
            Engine::Fbgemm => c"fbgemm",
            Engine::X86 => c"x86",
            Engine::Onednn => c"onednn",
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub(crate) name: Option<String>,
    pub(crate) engine: Option<Engine>,
    pub(crate) key: Option<String>,
}

impl Options {
    /// Options for the model called `name` in messages.
    pub fn new(name: impl Into<String>) -> Options {
        Options { name: Some(name.into()), engine: None, key: None }
    }

    /// Refuses a file whose identity record does not name the declaration `key`, or that
    /// has none (the generated wrappers pass the key of the model they were generated
    /// for). Every `.ptl` and `.pte` that ptm-build writes carries one.
    pub fn identified_by(mut self, key: impl Into<String>) -> Options {
        self.key = Some(key.into());
        self
    }

    /// Selects `engine` while loading and running: packed INT8 weights are made for the
    /// engine in force when the model loads. Lite Interpreter models only: a .pte's
    /// INT8 runs in XNNPACK whatever this says.
    pub fn engine(mut self, engine: Engine) -> Options {
        self.engine = Some(engine);
        self
    }
}
