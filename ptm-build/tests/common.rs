//! A throwaway crate directory with a Cargo.toml and model files, built in-process.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub const TINY_MODEL: &str = r#"
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

def build_model():
    torch.manual_seed(0)
    return Tiny()
"#;

impl Project {
    /// A crate whose Cargo.toml carries `metadata` after its [package] table.
    pub fn new(metadata: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), format!("[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n{metadata}")).unwrap();
        Project { dir }
    }

    pub fn file(self, relative: &str, text: &str) -> Project {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.path().join("Cargo.toml")
    }

    pub fn parse_for(&self, target: &str) -> Result<Vec<ptm_build::manifest::ModelDecl>, ptm_build::Error> {
        ptm_build::manifest::read(&self.manifest(), Some(target))
    }

    pub fn parse(&self) -> Result<Vec<ptm_build::manifest::ModelDecl>, ptm_build::Error> {
        ptm_build::manifest::read(&self.manifest(), None)
    }

    /// Builds with the workspace's .venv Python, or the given interpreter, into a cache
    /// of the project's own and the shared [`toolchain_dir`].
    pub fn build_with(&self, python: &Path) -> Result<ptm_build::Bundle, ptm_build::Error> {
        self.builder(python).bundle()
    }

    /// The builder [`Project::build_with`] uses, for a test that sets more on it.
    pub fn builder(&self, python: &Path) -> ptm_build::Builder {
        let mut builder = ptm_build::Builder::new();
        builder.crate_dir(self.path()).out_dir(self.path().join("out")).cache_dir(self.path().join("cache")).toolchain_dir(toolchain_dir()).python(python);
        builder
    }

    pub fn build(&self) -> Result<ptm_build::Bundle, ptm_build::Error> {
        self.build_with(&venv_python())
    }
}

/// The toolchain directory the tests share (`<target dir>/ptm-toolchain`, as the fixture
/// harness's): ExecuTorch's runner compiles and torch is probed once, while every
/// project's model cache starts empty. A test that damages what is in it uses its own.
pub fn toolchain_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("ptm-toolchain")
}

pub fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(python.is_file(), "run tools/setup first: {} is missing", python.display());
    python
}

pub fn error_text<T: std::fmt::Debug>(result: Result<T, ptm_build::Error>) -> String {
    let text = result.expect_err("the build should fail").to_string();
    assert!(!text.contains("panicked"), "{text}");
    text
}

/// A model table with one float input, for tests that vary one key.
pub fn model(extra: &str) -> String {
    format!("[package.metadata.models.tiny]\nsource = \"tiny.py:build_model\"\n{extra}\n\n[[package.metadata.models.tiny.inputs]]\nname = \"x\"\ndtype = \"float32\"\nshape = [1, 4]\n")
}

#[allow(unused_imports)]
pub use ptm_harness::{pte_only_series, toolchain_python};
