//! Where the `ptm` runtime finds the libtorch it compiles its shim against and links.
//!
//! The runtime's build script asks this module, so that it runs the models with the
//! torch that converted them: the same discovery as the conversion (`PTM_PYTHON`,
//! `VIRTUAL_ENV`, `.venv`, `python3`). `LIBTORCH` names an unpacked libtorch instead;
//! `PTM_LIBTORCH_LITE_DIR` names a mobile libtorch-lite for Android and iOS targets.

use crate::error::{Error, Tool};
use crate::vars::{
    DEP_PTM_EXECUTORCH_RPATH, DEP_PTM_RPATH, DEP_PTM_TORCH_ORIGIN, DEP_PTM_TORCH_VERSION, LIBTORCH, PTM_CACHE_DIR, PTM_LIBTORCH_LITE_DIR, PTM_TOOLCHAIN_DIR,
};
use crate::{cache_dir, env, python};
use ptm_report::Format;
use std::path::{Path, PathBuf};

/// A libtorch to compile and link against.
#[derive(Debug, Clone)]
pub struct Libtorch {
    /// Header directories, most specific first.
    pub include_dirs: Vec<PathBuf>,
    /// Directory holding the libraries.
    pub lib_dir: PathBuf,
    /// Shared libraries to link, in order; empty where the platform's own build links
    /// libtorch (Xcode, through the LibTorch-Lite pod).
    pub dylibs: Vec<String>,
    /// `_GLIBCXX_USE_CXX11_ABI` the libraries were built with, when known.
    pub cxx11_abi: Option<bool>,
    /// Whether binaries should find the libraries through an rpath (host builds);
    /// device builds ship them inside the app instead.
    pub rpath: bool,
    /// Files whose change means a different libtorch.
    pub watch: Vec<PathBuf>,
    /// Which rule chose it, for messages.
    pub origin: String,
    /// The torch release it comes from, when known (`2.11.0+cu130`): a Python
    /// environment's `torch.__version__`, or an unpacked libtorch's `build-version`.
    pub version: Option<String>,
}

/// True for the targets that run a mobile libtorch-lite.
pub fn is_mobile(target: &str) -> bool {
    target.contains("android") || target.contains("apple-ios")
}

/// Finds the libtorch for `target`; `out_dir` is the runtime's OUT_DIR, whose
/// ancestors hold the workspace's `.venv` and target directory.
pub fn locate(target: &str, out_dir: &Path) -> Result<Libtorch, Error> {
    if let Some((dir, variable)) = env::var_for_target(PTM_LIBTORCH_LITE_DIR, target) {
        return lite(target, Path::new(&dir), &variable);
    }
    if is_mobile(target) {
        return Err(Error::Environment {
            variable: PTM_LIBTORCH_LITE_DIR.into(),
            fix: format!(
                "{target} runs PyTorch's mobile libtorch-lite, not the host's: unpack it and set {PTM_LIBTORCH_LITE_DIR}_{} (or {PTM_LIBTORCH_LITE_DIR} for every target) to a directory with include/ and lib/ (docs/device.md has the steps for the pytorch_android_lite AAR and the LibTorch-Lite pod)",
                target.replace('-', "_")
            ),
        });
    }
    if let Some(dir) = env::var(LIBTORCH) {
        let dir = PathBuf::from(dir);
        let version = std::fs::read_to_string(dir.join("build-version")).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        return full(&dir, None, vec![dir.join("lib"), dir.join("build-version")], format!("LIBTORCH={}", dir.display()), version);
    }
    // The probe the conversion recorded, where it keeps it.
    let cache = cache_dir::locate(env::var(PTM_CACHE_DIR).map(PathBuf::from), out_dir);
    let toolchain = cache_dir::toolchain(env::var(PTM_TOOLCHAIN_DIR).map(PathBuf::from), &cache);
    let (python, torch) =
        python::find(out_dir, Some(Format::Ptl)).and_then(|python| Ok((python.clone(), python::torch(&python, &toolchain)?))).map_err(for_linking)?;
    let watch = vec![torch.dir.join("version.py"), torch.dir.join("lib")];
    let origin = format!("torch {} of {} (chosen by {})", torch.version, python.path.display(), python.origin);
    full(&torch.dir, Some(torch.cxx11_abi), watch, origin, Some(torch.version))
}

/// A desktop libtorch: the torch package of a Python environment or an unpacked
/// libtorch archive, both laid out as `include/` and `lib/`.
fn full(dir: &Path, cxx11_abi: Option<bool>, watch: Vec<PathBuf>, origin: String, version: Option<String>) -> Result<Libtorch, Error> {
    let include = dir.join("include");
    let lib_dir = dir.join("lib");
    require(&include.join("torch/csrc/jit/mobile/import.h"), &origin)?;
    require(&lib_dir, &origin)?;
    Ok(Libtorch {
        include_dirs: vec![include.clone(), include.join("torch/csrc/api/include")],
        lib_dir,
        dylibs: vec!["torch_cpu".into(), "c10".into()],
        cxx11_abi,
        rpath: true,
        watch,
        origin,
        version,
    })
}

/// A mobile libtorch-lite: the AAR's `headers/` and `jni/<abi>/` or the pod's
/// `install/include` and `install/lib`, linked or copied to `include/` and `lib/`.
fn lite(target: &str, dir: &Path, variable: &str) -> Result<Libtorch, Error> {
    let origin = format!("{variable}={}", dir.display());
    let include = dir.join("include");
    let lib_dir = dir.join("lib");
    require(&include.join("torch/csrc/jit/mobile/import.h"), &origin)?;
    require(&lib_dir, &origin)?;
    let dylibs = if target.contains("apple") {
        // The pod's static archives are linked by Xcode, which the pod configures with
        // -force_load (operators register from static initializers nothing references).
        // The Rust staticlib leaves the shim's references to them for that link.
        Vec::new()
    } else {
        // The AAR's libpytorch_jni_lite.so carries the whole Lite Interpreter and needs libfbjni.so beside it.
        vec!["pytorch_jni_lite".into()]
    };
    Ok(Libtorch { include_dirs: vec![include], lib_dir: lib_dir.clone(), dylibs, cxx11_abi: None, rpath: false, watch: vec![lib_dir], origin, version: None })
}

/// The C++ runtime the Android libtorch-lite was built with, which the shim links too
/// (the `cc` crate's default on Android).
const ANDROID_CXX_RUNTIME: &str = "c++_shared";

/// A directory of repaired copies of the libraries an Android build links from
/// `torch.lib_dir`, to search before it, or None when none needs repair. The AARs'
/// libraries count their local symbols wrong, which the NDK's lld refuses ([`crate::elf`]);
/// a copy serves the link only, and the app ships the AAR's own libraries.
pub fn link_copies(torch: &Libtorch, into: &Path) -> Result<Option<PathBuf>, Error> {
    let mut repaired = false;
    for name in torch.dylibs.iter().map(String::as_str).chain([ANDROID_CXX_RUNTIME]) {
        let file = format!("lib{name}.so");
        let source = torch.lib_dir.join(&file);
        let mut bytes = match std::fs::read(&source) {
            Ok(bytes) => bytes,
            // The linker names what is missing; only what exists can need repair.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", source, e)),
        };
        let copy = into.join(&file);
        match crate::elf::count_dynamic_locals(&mut bytes) {
            Ok(crate::elf::Locals::Recounted { .. }) => {
                std::fs::create_dir_all(into).map_err(|e| Error::io("create", into, e))?;
                let partial = into.join(format!(".{file}.partial"));
                std::fs::write(&partial, &bytes).map_err(|e| Error::io("write", &partial, e))?;
                std::fs::rename(&partial, &copy).map_err(|e| Error::io("rename", &copy, e))?;
                repaired = true;
            }
            // A library that needs no repair, or that this repair cannot describe, is
            // linked as it is: the linker's own message is the better one.
            Ok(crate::elf::Locals::Counted) | Err(_) => {
                let _ = std::fs::remove_file(&copy);
            }
        }
    }
    Ok(repaired.then(|| into.to_path_buf()))
}

/// Metadata key the runtime's build script publishes (`links = "ptm"`), read by the
/// build scripts of crates that depend on it as `DEP_PTM_RPATH`.
pub const RPATH_METADATA: &str = "rpath";
/// Metadata keys for the torch the runtime links, read as `DEP_PTM_TORCH_VERSION` and
/// `DEP_PTM_TORCH_ORIGIN` by [`check_linked_torch`].
pub const TORCH_VERSION_METADATA: &str = "torch_version";
/// See [`TORCH_VERSION_METADATA`].
pub const TORCH_ORIGIN_METADATA: &str = "torch_origin";

/// Refuses models converted (and verified) by another torch release than the one the
/// app's `ptm` runtime links. `converted` holds each model's torch version; the linked
/// one comes from the runtime's build script through cargo (`links = "ptm"`), so the
/// check runs only in an app that depends on `ptm` and whose libtorch's version is known.
/// Releases are compared, not build tags: `2.11.0+cpu` runs what `2.11.0+cu130` converted.
pub fn check_linked_torch(converted: &[(String, String)]) -> Result<(), Error> {
    let Some(linked) = std::env::var(DEP_PTM_TORCH_VERSION).ok().filter(|v| !v.is_empty()) else { return Ok(()) };
    let origin = std::env::var(DEP_PTM_TORCH_ORIGIN).unwrap_or_default();
    same_torch(converted, &linked, &origin)
}

fn release(version: &str) -> &str {
    version.split('+').next().unwrap_or(version)
}

fn same_torch(converted: &[(String, String)], linked: &str, origin: &str) -> Result<(), Error> {
    let others: Vec<&(String, String)> = converted.iter().filter(|(_, torch)| release(torch) != release(linked)).collect();
    let Some((model, torch)) = others.first() else { return Ok(()) };
    let names: Vec<String> = others.iter().map(|(m, _)| format!("`{m}`")).collect();
    Err(Error::Unusable { tool: Tool::Libtorch,
        problem: format!(
            "model {} {} converted and verified with torch {torch}, but the ptm runtime links torch {linked} ({origin}): the app would run the models in another libtorch than the one that verified them",
            names.join(", "),
            if others.len() == 1 { "was" } else { "were" }
        ),
        remedies: vec![
            format!("let both build scripts find the same Python: set PTM_PYTHON for the whole build (the runtime looks for a .venv above the target directory, the conversion above the crate, so a CARGO_TARGET_DIR outside the workspace can split them), then rebuild (`cargo clean -p ptm` if the runtime keeps its choice)"),
            format!("or set {LIBTORCH} to an unpacked libtorch {} for the runtime", release(torch)),
            format!("or convert `{model}` again with torch {} (a store prepared with it: `cargo ptm prepare`)", release(linked)),
        ],
    })
}

/// Gives the app's binaries and tests an rpath to the runtime's host libtorch and
/// ExecuTorch.
///
/// A library's build script cannot add linker arguments to the binaries of the crates
/// that use it, so the app's own build script (the one that calls `bundle()`) does,
/// with the directory the runtime published. Nothing happens when the app does not
/// depend on `ptm` or builds for a device.
pub fn forward_rpath() {
    if !env::in_build_script() {
        return;
    }
    for variable in [DEP_PTM_RPATH, DEP_PTM_EXECUTORCH_RPATH] {
        if let Some(dir) = std::env::var_os(variable).filter(|d| !d.is_empty()) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", Path::new(&dir).display());
        }
    }
}

fn require(path: &Path, origin: &str) -> Result<(), Error> {
    if path.exists() {
        return Ok(());
    }
    let mut remedies = vec!["reinstall torch in that environment (tools/setup in the ptm checkout)".to_string()];
    remedies.extend(link_remedies());
    Err(Error::Unusable { tool: Tool::Libtorch, problem: format!("the libtorch of {origin} has no {}", path.display()), remedies })
}

/// A missing Python, as the runtime meets it: the conversion's remedies include building
/// from a committed store (`PTM_OFFLINE=1`), which gives a build its models but not a
/// libtorch to link, so the runtime lists the ways to give it one.
fn for_linking(error: Error) -> Error {
    match error {
        Error::Unusable { problem, .. } => {
            Error::Unusable { tool: Tool::Libtorch, problem: format!("the ptm runtime found no libtorch to link: {problem}"), remedies: link_remedies() }
        }
        other => other,
    }
}

fn link_remedies() -> Vec<String> {
    vec![
        format!("set {LIBTORCH} to an unpacked desktop libtorch: a directory with include/torch/csrc/jit/mobile/import.h and lib/ holding libtorch_cpu and libc10"),
        "or point PTM_PYTHON at a Python whose torch package has them (its include/ and lib/), activate such a virtual environment, or create the workspace's .venv with the ptm checkout's tools/setup".into(),
        format!("for Android and iOS, set {PTM_LIBTORCH_LITE_DIR} to a mobile libtorch-lite with include/ and lib/ (docs/device.md)"),
        "only documenting or checking? enable ptm's `doc-only` feature (or set DOCS_RS=1): nothing is compiled or linked".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_python_is_explained_for_linking_not_for_converting() {
        let converting = Error::Unusable {
            tool: Tool::Python,
            problem: "no Python found".into(),
            remedies: vec!["build from a committed model store instead (PTM_OFFLINE=1)".into()],
        };
        let text = for_linking(converting).to_string();
        assert!(!text.contains("PTM_OFFLINE"), "a store gives no libtorch: {text}");
        assert!(text.contains("found no libtorch to link: no Python found"), "{text}");
        assert!(text.contains("LIBTORCH") && text.contains("include/torch/csrc/jit/mobile/import.h") && text.contains("libtorch_cpu"), "{text}");
        assert!(text.contains("PTM_LIBTORCH_LITE_DIR") && text.contains("PTM_PYTHON") && text.contains("`doc-only` feature"), "{text}");
    }

    #[test]
    fn models_from_another_torch_release_than_the_linked_one_are_refused() {
        let converted = vec![("review".to_string(), "2.11.0+cu130".to_string()), ("digits".to_string(), "2.11.0+cu130".to_string())];
        assert!(same_torch(&converted, "2.11.0+cpu", "LIBTORCH=/x").is_ok(), "the same release with another build tag");
        let text = same_torch(&converted, "2.9.1", "LIBTORCH=/x").unwrap_err().to_string();
        assert!(
            text.contains("model `review`, `digits` were converted and verified with torch 2.11.0+cu130, but the ptm runtime links torch 2.9.1 (LIBTORCH=/x)"),
            "{text}"
        );
        assert!(text.contains("PTM_PYTHON") && text.contains("LIBTORCH") && text.contains("2.11.0") && text.contains("cargo ptm prepare"), "{text}");
    }

    #[test]
    fn cargo_hands_each_published_key_to_the_variable_of_that_name() {
        let variable = |key: &str| format!("DEP_PTM_{}", key.to_uppercase());
        assert_eq!(variable(RPATH_METADATA), DEP_PTM_RPATH);
        assert_eq!(variable(TORCH_VERSION_METADATA), DEP_PTM_TORCH_VERSION);
        assert_eq!(variable(TORCH_ORIGIN_METADATA), DEP_PTM_TORCH_ORIGIN);
        assert_eq!(variable(crate::executorch::RPATH_METADATA), DEP_PTM_EXECUTORCH_RPATH);
        assert_eq!(variable(crate::executorch::VERSION_METADATA), crate::vars::DEP_PTM_EXECUTORCH_VERSION);
    }

    #[test]
    fn phones_need_the_lite_library_and_desktops_do_not() {
        assert!(is_mobile("aarch64-linux-android") && is_mobile("armv7-linux-androideabi") && is_mobile("aarch64-apple-ios"));
        assert!(is_mobile("aarch64-apple-ios-sim") && !is_mobile("aarch64-unknown-linux-gnu") && !is_mobile("x86_64-apple-darwin"));
    }

    #[test]
    fn a_desktop_libtorch_needs_the_mobile_headers_and_gets_an_rpath() {
        let dir = std::env::temp_dir().join(format!("ptm-libtorch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        let text = full(&dir, None, vec![], "LIBTORCH=x".into(), None).unwrap_err().to_string();
        assert!(text.contains("the libtorch of LIBTORCH=x has no") && text.contains("import.h"), "{text}");
        std::fs::create_dir_all(dir.join("include/torch/csrc/jit/mobile")).unwrap();
        std::fs::write(dir.join("include/torch/csrc/jit/mobile/import.h"), "").unwrap();
        let found = full(&dir, Some(true), vec![], "LIBTORCH=x".into(), None).unwrap();
        assert_eq!(found.dylibs, ["torch_cpu", "c10"]);
        assert!(found.rpath && found.include_dirs[1].ends_with("torch/csrc/api/include"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lite_directory_without_headers_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("ptm-lite-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        let text = lite("aarch64-linux-android", &dir, PTM_LIBTORCH_LITE_DIR).unwrap_err().to_string();
        assert!(text.contains("has no") && text.contains("include/torch/csrc/jit/mobile/import.h"), "{text}");
        std::fs::create_dir_all(dir.join("include/torch/csrc/jit/mobile")).unwrap();
        std::fs::write(dir.join("include/torch/csrc/jit/mobile/import.h"), "").unwrap();
        let found = lite("aarch64-linux-android", &dir, PTM_LIBTORCH_LITE_DIR).unwrap();
        assert_eq!(found.dylibs, ["pytorch_jni_lite"]);
        assert!(!found.rpath);
        let ios = lite("aarch64-apple-ios", &dir, PTM_LIBTORCH_LITE_DIR).unwrap();
        assert!(ios.dylibs.is_empty(), "Xcode links the pod's archives: {:?}", ios.dylibs);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
