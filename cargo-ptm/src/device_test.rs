//! `cargo ptm device-test`: every model of a crate, converted for a target, with its
//! self-check reference data, in a small generated binary cross-built for that target
//! and run there (under qemu, on an Android device through adb, or through any
//! command). The binary prints each model's self-check and exits 1 when an output is
//! past its tolerance.
//!
//! The binary is a crate of its own under `<target dir>/ptm-device-test/<crate>/`: it
//! depends on `ptm` as the app does (the same path or version) with the backends its
//! models need, and embeds each artifact and reference data with `include_bytes!`, so a
//! device needs the binary and the runtime's shared libraries, nothing else.

use crate::crates::{Crate, Runtime, Workspace};
use ptm_report::{Engine, Format, ModelReport, Quantize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// How the binary reaches the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// qemu's user-mode emulator for the target's architecture.
    Qemu { cpu: Option<String>, sysroot: Option<PathBuf> },
    /// An Android device attached to adb.
    Adb,
    /// A command that takes the binary's path as its last argument.
    Command(String),
}

impl Runner {
    /// `qemu`, `adb`, or any other text as a command.
    pub fn parse(text: &str, cpu: Option<String>, sysroot: Option<PathBuf>) -> Runner {
        match text {
            "qemu" => Runner::Qemu { cpu, sysroot },
            "adb" => Runner::Adb,
            command => Runner::Command(command.to_string()),
        }
    }
}

/// Where the adb runner puts the binary and the libraries on the device.
const DEVICE_DIR: &str = "/data/local/tmp/ptm-device-test";

pub fn run(workspace: &Workspace, target: &str, runner: &Runner) -> Result<ExitCode, String> {
    if workspace.crates.is_empty() {
        return Err("no selected crate declares models in [package.metadata.models]".into());
    }
    // Before converting or building anything: whether the runner can run it at all.
    match runner {
        Runner::Qemu { cpu, sysroot } => drop(qemu(target, cpu.as_deref(), sysroot.as_deref())?),
        Runner::Adb => adb_device(target)?,
        Runner::Command(_) => {}
    }
    let mut failed = false;
    for krate in &workspace.crates {
        let binary = build(workspace, krate, target)?;
        eprintln!("ptm device-test: running {} ({})", binary.display(), describe(runner, target));
        let status = execute(runner, target, &binary)?;
        if !status {
            failed = true;
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn describe(runner: &Runner, target: &str) -> String {
    match runner {
        Runner::Qemu { cpu, .. } => format!("qemu for {target}{}", cpu.as_ref().map_or_else(String::new, |c| format!(", CPU model {c}"))),
        Runner::Adb => format!("on the adb device, {DEVICE_DIR}"),
        Runner::Command(command) => format!("through `{command}`"),
    }
}

/// Converts the crate's models for `target` (the cache first), writes the test crate
/// and builds it; returns the binary.
fn build(workspace: &Workspace, krate: &Crate, target: &str) -> Result<PathBuf, String> {
    let declared =
        krate.runtime.as_ref().ok_or_else(|| format!("crate `{}` does not depend on ptm, which runs its models: add it to [dependencies]", krate.name))?;
    // Refused before converting anything.
    runtime_dependency(declared, &[])?;
    let root = workspace.target_dir.join("ptm-device-test").join(&krate.name);
    let models_dir = root.join("models").join(target);
    let bundle = workspace.bundle(krate, &models_dir, target)?;
    if bundle.models.is_empty() {
        return Err(format!("crate `{}` declares no models", krate.name));
    }
    let dir = models_dir.join("ptm");
    let dependency = runtime_dependency(declared, &bundle.models)?;
    let crate_dir = root.join("crate");
    std::fs::create_dir_all(crate_dir.join("src")).map_err(|e| format!("could not create {}: {e}", crate_dir.display()))?;
    write(&crate_dir.join("Cargo.toml"), &manifest(&krate.name, &dependency))?;
    write(&crate_dir.join("src/main.rs"), &main_rs(&krate.name, &dir, &bundle.models)?)?;
    write(&crate_dir.join("build.rs"), BUILD_RS)?;
    // The app's lock, where there is one, so the runtime's dependencies resolve to the
    // versions the app builds with (and without the network when they are cached).
    let lock = crate_dir.join("Cargo.lock");
    if !lock.exists() {
        if let Some(app_lock) = krate.dir.ancestors().map(|d| d.join("Cargo.lock")).find(|p| p.is_file()) {
            let _ = std::fs::copy(app_lock, &lock);
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // From the app's directory, so the app's .cargo/config.toml (its linker, its
    // rustflags for the target) applies as it does to the app's own build.
    let output = Command::new(cargo)
        .current_dir(&krate.dir)
        .args(["build", "--release", "--message-format=json-render-diagnostics", "--target", target])
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(root.join("target"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo could not build the device test of `{}` for {target} (its crate is {}); the runtime links for {target} as the app does: set the linker and the runtime's libraries as for the app's own build (docs/releasing.md)",
            krate.name,
            crate_dir.display()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo built the device test of `{}` but named no executable", krate.name))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("could not write {}: {e}", path.display()))
}

/// The `ptm` dependency as the app declares it, as TOML, with the backends the models
/// need.
fn runtime_dependency(declared: &Runtime, models: &[ModelReport]) -> Result<String, String> {
    let mut features = Vec::new();
    if models.iter().any(|m| m.format == Format::Ptl) {
        features.push("\"lite\"");
    }
    if models.iter().any(|m| m.format == Format::Pte) {
        features.push("\"executorch\"");
    }
    let source = match declared {
        Runtime::Path(path) => format!("path = {}", toml_string(&path.display().to_string())),
        Runtime::Version(req) => format!("version = {}", toml_string(req)),
        Runtime::Unsupported(source) => {
            return Err(format!(
                "the app takes ptm from {source}; device-test builds against a path or crates.io dependency: point ptm at a checkout (path = ...) for the test"
            ))
        }
    };
    Ok(format!("ptm = {{ {source}, default-features = false, features = [{}] }}", features.join(", ")))
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The test crate's build script: the rpath to the runtime's libraries that the `ptm`
/// crate reports (its `links` metadata), as `ptm_build::bundle()` gives an app, so the
/// binary finds them where the build found them (qemu, a host run).
const BUILD_RS: &str = r#"// Written by cargo ptm device-test.
fn main() {
    for variable in ["DEP_PTM_RPATH", "DEP_PTM_EXECUTORCH_RPATH"] {
        if let Some(dir) = std::env::var_os(variable).filter(|d| !d.is_empty()) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", std::path::Path::new(&dir).display());
        }
    }
}
"#;

fn manifest(name: &str, dependency: &str) -> String {
    format!(
        "# Written by cargo ptm device-test: the models of `{name}` and their self-checks.\n[package]\nname = \"ptm-device-test\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{dependency}\n\n# A workspace of its own, whatever directory it is in.\n[workspace]\n"
    )
}

/// The binary: one function per model that loads the embedded artifact and runs its
/// self-check, and a main that prints each and exits 1 on any failure.
fn main_rs(name: &str, dir: &Path, models: &[ModelReport]) -> Result<String, String> {
    let mut code =
        format!("//! Written by cargo ptm device-test: every model of `{name}`, self-checked in this machine's runtime.\n\nuse std::process::ExitCode;\n\n");
    let mut table = String::new();
    for (index, model) in models.iter().enumerate() {
        let reference = model.reference.as_ref().ok_or_else(|| {
            format!(
                "model `{}` has no self-check reference data: its report comes from a ptm-build that did not record it; build again with this one",
                model.name
            )
        })?;
        let runtime = match model.format {
            Format::Ptl => "Module",
            Format::Pte => "Program",
        };
        let engine = match (model.format, model.quantize, model.engine) {
            (Format::Ptl, Quantize::None, _) | (Format::Pte, ..) => String::new(),
            (Format::Ptl, _, Engine::Fbgemm) => ".engine(ptm::Engine::Fbgemm)".into(),
            (Format::Ptl, ..) => ".engine(ptm::Engine::Qnnpack)".into(),
        };
        let artifact = path_literal(&dir.join(&model.artifact))?;
        let reference = path_literal(&dir.join(reference))?;
        let _ = write!(
            code,
            "fn check_{index}() -> Result<ptm::SelfCheck, ptm::Error> {{\n    let options = ptm::Options::new({:?}).identified_by({:?}){engine};\n    ptm::{runtime}::from_bytes(include_bytes!({artifact}), &options)?.self_check(include_bytes!({reference}))\n}}\n\n",
            model.name, model.cache_key
        );
        let _ = writeln!(table, "        ({:?}, \".{}\", check_{index}),", model.name, model.format);
    }
    let _ = write!(
        code,
        r#"fn main() -> ExitCode {{
    type Check = fn() -> Result<ptm::SelfCheck, ptm::Error>;
    let models: &[(&str, &str, Check)] = &[
{table}    ];
    let plural = if models.len() == 1 {{ "" }} else {{ "s" }};
    println!("ptm device-test: {{}} model{{plural}} of `{name}` on {{}}-{{}}", models.len(), std::env::consts::ARCH, std::env::consts::OS);
    let mut failed = Vec::new();
    for (model, format, check) in models {{
        match check() {{
            Ok(check) => println!("{{format}} {{check}}"),
            Err(error) => {{
                match error.kind() {{
                    ptm::ErrorKind::SelfCheck {{ check }} => println!("{{format}} {{check}}"),
                    _ => println!("{{format}} model `{{model}}`: {{error}}"),
                }}
                failed.push(*model);
            }}
        }}
    }}
    if failed.is_empty() {{
        match models.len() {{
            1 => println!("the model passes its self-check"),
            n => println!("all {{n}} models pass their self-checks"),
        }}
        ExitCode::SUCCESS
    }} else {{
        println!("FAILED: {{}}", failed.join(", "));
        ExitCode::from(1)
    }}
}}
"#
    );
    Ok(code)
}

fn path_literal(path: &Path) -> Result<String, String> {
    path.to_str().map(|p| format!("{p:?}")).ok_or_else(|| format!("{} is not valid UTF-8, which include_bytes! needs", path.display()))
}

/// Runs the binary through the runner; whether it passed.
fn execute(runner: &Runner, target: &str, binary: &Path) -> Result<bool, String> {
    let status = match runner {
        Runner::Qemu { cpu, sysroot } => {
            let mut command = qemu(target, cpu.as_deref(), sysroot.as_deref())?;
            command.arg(binary).status()
        }
        Runner::Adb => return adb(target, binary),
        Runner::Command(text) => Command::new("sh").arg("-c").arg(format!("{text} \"$@\"")).arg("sh").arg(binary).status(),
    };
    let status = status.map_err(|e| format!("could not start the runner: {e}"))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("the device test ended with {status} before it could report (a crash on the target, or the runner failed)")),
    }
}

/// qemu's user-mode emulator for the target's architecture, with its sysroot (Debian's
/// cross libraries by default) and CPU model.
fn qemu(target: &str, cpu: Option<&str>, sysroot: Option<&Path>) -> Result<Command, String> {
    let arch = target.split('-').next().unwrap_or_default();
    let qemu_arch = match arch {
        "aarch64" => "aarch64",
        a if a.starts_with("armv7") || a == "arm" => "arm",
        "x86_64" => "x86_64",
        "i686" | "i586" => "i386",
        a if a.starts_with("riscv64") => "riscv64",
        other => return Err(format!("--runner qemu does not know target architecture `{other}`; pass --runner \"<command>\" instead")),
    };
    let names = [format!("qemu-{qemu_arch}-static"), format!("qemu-{qemu_arch}")];
    let program = names
        .iter()
        .find(|n| on_path(n))
        .ok_or_else(|| format!("--runner qemu needs {} or {} on PATH (Debian: apt-get install qemu-user-static)", names[0], names[1]))?;
    let mut command = Command::new(program);
    // XNNPACK picks its kernels by what the CPU reports; qemu's default model ("max")
    // reports features whose emulation gave wrong INT8 results (docs/device.md).
    let cpu = cpu.or((qemu_arch == "aarch64").then_some("cortex-a72"));
    if let Some(cpu) = cpu {
        command.args(["-cpu", cpu]);
    }
    let default_sysroot = debian_sysroot(target);
    if let Some(root) = sysroot.map(Path::to_path_buf).or(default_sysroot) {
        command.arg("-L").arg(root);
    }
    Ok(command)
}

/// Where Debian's cross packages put the target's C library (`/usr/aarch64-linux-gnu`).
fn debian_sysroot(target: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = target.split('-').collect();
    let (arch, env) = (parts.first()?, parts.last()?);
    let arch = if arch.starts_with("armv7") {
        "arm"
    } else if arch.starts_with("riscv64") {
        "riscv64"
    } else {
        arch
    };
    Some(PathBuf::from(format!("/usr/{arch}-linux-{env}"))).filter(|p| p.is_dir())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Whether an Android device answers adb, for an Android target.
fn adb_device(target: &str) -> Result<(), String> {
    if !target.contains("android") {
        return Err(format!("--runner adb runs Android builds; {target} is not an Android target (try --target aarch64-linux-android)"));
    }
    if !on_path("adb") {
        return Err("--runner adb needs adb on PATH (Android's platform-tools; Debian: apt-get install adb)".into());
    }
    let devices = Command::new("adb").arg("devices").output().map_err(|e| format!("could not run adb devices: {e}"))?;
    let listed = String::from_utf8_lossy(&devices.stdout);
    let ready: Vec<&str> = listed.lines().skip(1).filter(|l| l.trim_end().ends_with("\tdevice")).collect();
    if ready.is_empty() {
        let others: Vec<&str> = listed.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
        let seen = if others.is_empty() { "none".to_string() } else { others.join("; ") };
        return Err(format!(
            "no Android device answers adb (adb devices lists {seen}): attach one with USB debugging on, or start an emulator; set ANDROID_SERIAL to choose among several; or run under --runner qemu"
        ));
    }
    Ok(())
}

/// Pushes the binary and the runtime's shared libraries to the device and runs it there.
fn adb(target: &str, binary: &Path) -> Result<bool, String> {
    adb_device(target)?;
    let adb = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("adb").args(args).status().map_err(|e| format!("could not run adb: {e}"))?;
        status.success().then_some(()).ok_or_else(|| format!("adb {} failed ({status})", args.join(" ")))
    };
    adb(&["shell", "mkdir", "-p", DEVICE_DIR])?;
    let mut pushed = vec![binary.to_path_buf()];
    pushed.extend(runtime_libraries(target));
    for file in &pushed {
        adb(&["push", &file.display().to_string(), DEVICE_DIR])?;
    }
    let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let status = Command::new("adb")
        .args(["shell", &format!("cd {DEVICE_DIR} && LD_LIBRARY_PATH={DEVICE_DIR} ./{name}")])
        .status()
        .map_err(|e| format!("could not run adb shell: {e}"))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("the device test ended with {status} on the device before it could report")),
    }
}

/// The shared libraries the runtime links for an Android target: those of the
/// libtorch-lite and ExecuTorch directories the build was pointed at.
fn runtime_libraries(target: &str) -> Vec<PathBuf> {
    use ptm_toolchain::vars::{PTM_EXECUTORCH_DIR, PTM_LIBTORCH_LITE_DIR};
    let mut found = Vec::new();
    for variable in [PTM_LIBTORCH_LITE_DIR, PTM_EXECUTORCH_DIR] {
        // The variables the runtime's build script read for this target, in its order.
        let Some((dir, _)) = ptm_toolchain::env::var_for_target(variable, target) else { continue };
        let Ok(listing) = std::fs::read_dir(Path::new(&dir).join("lib")) else { continue };
        found.extend(listing.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "so")));
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runners_parse_and_a_command_keeps_its_words() {
        assert_eq!(Runner::parse("qemu", Some("cortex-a53".into()), None), Runner::Qemu { cpu: Some("cortex-a53".into()), sysroot: None });
        assert_eq!(Runner::parse("adb", None, None), Runner::Adb);
        assert_eq!(Runner::parse("ssh phone", None, None), Runner::Command("ssh phone".into()));
    }

    #[test]
    fn qemu_refuses_an_architecture_it_does_not_know() {
        let err = qemu("wasm32-unknown-unknown", None, None).unwrap_err();
        assert!(err.contains("`wasm32`") && err.contains("--runner \"<command>\""), "{err}");
    }

    #[test]
    fn adb_refuses_a_target_that_is_not_android() {
        let err = adb_device("aarch64-unknown-linux-gnu").unwrap_err();
        assert!(err.contains("not an Android target"), "{err}");
    }

    #[test]
    fn the_runtime_is_taken_as_the_app_takes_it_or_refused() {
        let path = runtime_dependency(&Runtime::Path("/src/ptm".into()), &[]).unwrap();
        assert_eq!(path, r#"ptm = { path = "/src/ptm", default-features = false, features = [] }"#);
        assert!(runtime_dependency(&Runtime::Version("^0.1".into()), &[]).unwrap().contains(r#"version = "^0.1""#));
        let git = runtime_dependency(&Runtime::Unsupported("git+https://example.org/ptm".into()), &[]).unwrap_err();
        assert!(git.contains("git+https://example.org/ptm") && git.contains("path = ..."), "{git}");
    }

    #[test]
    fn strings_are_quoted_for_toml() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }
}
