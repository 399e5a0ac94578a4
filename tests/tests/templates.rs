//! The templates, copied as a user would, build with cargo and run their models; and an
//! app that depends on the runtime under another name.

use ptm_tests::Fixture;
use std::sync::Mutex;

/// Both mobile-lib tests build `libmy_mobile_lib.so` into the shared fixture target
/// directory, one with the `jni` feature and one without: one at a time, so that each
/// checks and loads its own build.
static MOBILE_LIB: Mutex<()> = Mutex::new(());

#[test]
fn the_new_app_template_builds_and_runs_its_model() {
    let app = Fixture::template("new-app", "my-app");
    let build = app.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let binary = ptm_tests::repo().join("target/fixtures/debug").join(format!("my-app-{}", std::process::id()));
    let out = std::process::Command::new(&binary).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("classifier: class ") && stdout.contains("shape [1, 4]"), "{stdout}");
    let scores = stdout.split("scores [").nth(1).and_then(|s| s.split(']').next()).unwrap();
    assert_eq!(scores.split(", ").filter(|v| v.parse::<f32>().is_ok_and(f32::is_finite)).count(), 4, "{stdout}");
}

#[test]
fn the_mobile_library_template_builds_as_a_cdylib_and_its_c_entry_point_runs() {
    let _one_at_a_time = MOBILE_LIB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let lib = Fixture::template("mobile-lib", "my-mobile-lib");
    let build = lib.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let so = ptm_tests::repo().join("target/fixtures/debug/libmy_mobile_lib.so");
    assert!(so.is_file(), "no cdylib at {}", so.display());
    let bytes = std::fs::read(&so).unwrap();
    let has = |symbol: &[u8]| bytes.windows(symbol.len()).any(|w| w == symbol);
    assert!(has(b"my_app_classify"), "the C entry point is exported");
    assert!(!has(b"Java_com_example_myapp_Models_classify"), "off Android, the JNI entry point needs the `jni` feature");
    // The crate's own test calls the C entry point Swift uses.
    let test = std::process::Command::new(env!("CARGO"))
        .args(["test", "--lib"])
        .current_dir(lib.path())
        .env("CARGO_TARGET_DIR", ptm_tests::repo().join("target/fixtures"))
        .env("PTM_CACHE_DIR", &lib.cache)
        .env("PTM_TOOLCHAIN_DIR", ptm_tests::toolchain_dir())
        .env("PTM_PYTHON", ptm_tests::venv_python())
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{text}{}", String::from_utf8_lossy(&test.stderr));
    assert!(text.contains("the_c_entry_point_scores_and_refuses_bad_arguments ... ok"), "{text}");
}

/// The template's Models.kt, compiled by a real Kotlin compiler and called from a
/// desktop JVM against the cdylib, with PyTorch's JNI library played by a stand-in
/// (tests/jvm/) that says whether Models.kt loaded it before the app's library.
#[test]
fn the_kotlin_binding_compiles_and_answers_from_a_jvm() {
    let has = |tool: &str, flag: &str| std::process::Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [("kotlinc", "-version"), ("java", "-version"), ("cc", "--version")]
        .into_iter()
        .filter(|(tool, flag)| !has(tool, flag))
        .map(|(tool, _)| tool)
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("PTM_SKIP_KOTLIN").is_some(),
            "the Kotlin check needs {} on PATH (tools/test-tools installs a current kotlinc; tools/test puts it on PATH), or PTM_SKIP_KOTLIN=1 to skip it",
            missing.join(", ")
        );
        eprintln!("skipped the Kotlin check, as PTM_SKIP_KOTLIN asks: {} missing", missing.join(", "));
        return;
    }
    let _one_at_a_time = MOBILE_LIB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let lib = Fixture::template("mobile-lib", "my-mobile-kt");
    // Off Android the JNI entry point needs the template's `jni` feature.
    let build = lib.build_with_args(&["--features", "jni"], &[]);
    assert!(build.success, "{}", build.stderr);
    let work = tempfile::tempdir().unwrap();
    let jvm = ptm_tests::repo().join("tests/jvm");
    let standin = work.path().join("libpytorch_jni_lite.so");
    let cc = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&standin)
        .arg(jvm.join("pytorch_jni_lite_standin.c"))
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let jar = work.path().join("check.jar");
    let kotlinc = std::process::Command::new("kotlinc")
        .arg(lib.path().join("android/Models.kt"))
        .arg(jvm.join("ModelsCheck.kt"))
        .arg("-include-runtime")
        .arg("-d")
        .arg(&jar)
        .output()
        .unwrap();
    assert!(kotlinc.status.success() && jar.is_file(), "{}", String::from_utf8_lossy(&kotlinc.stderr));

    let run = |library_path: String| {
        let out = std::process::Command::new("java")
            .arg(format!("-Djava.library.path={library_path}"))
            .arg("-cp")
            .arg(&jar)
            .arg("com.example.myapp.ModelsCheckKt")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let rust = ptm_tests::repo().join("target/fixtures/debug");
    let (ok, stdout, stderr) = run(format!("{}:{}", work.path().display(), rust.display()));
    assert!(ok, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"pytorch_jni_lite stand-in loaded before the app's library"), "{stdout}");
    let scores: Vec<f32> = lines.iter().find_map(|l| l.strip_prefix("scores ")).unwrap().split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(scores.len(), 4);
    assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
    assert!(stdout.contains("RuntimeException: features must hold 16 floats, not 3"), "{stdout}");

    // Without it, Models.kt stops at PyTorch's library, before touching the app's.
    let (ok, stdout, stderr) = run(rust.display().to_string());
    assert!(!ok && stderr.contains("UnsatisfiedLinkError") && stderr.contains("pytorch_jni_lite"), "{stdout}{stderr}");
}

#[test]
fn the_runtime_works_under_another_dependency_name() {
    let app = Fixture::new("renamed");
    let build = app.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let out = std::process::Command::new(build.executable.expect("the fixture's binary")).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("scores [1, 3] ["), "{stdout}");
}

/// Whether cargo ran the `ptm` runtime's own build script (which compiles the shim).
fn ran_runtime_build_script(stderr: &str) -> bool {
    // `.../build/ptm-<hash>/build-script-build`; other paths on the line (LD_LIBRARY_PATH)
    // may name `.../build/ptm-<hash>/out`.
    let runs_it = |line: &str| {
        line.match_indices("/build/ptm-").any(|(at, found)| {
            let rest = &line[at + found.len()..];
            let hash = rest.chars().take_while(char::is_ascii_hexdigit).count();
            hash > 0 && rest[hash..].starts_with("/build-script-build")
        })
    };
    stderr.lines().any(|l| l.contains("Running `") && runs_it(l))
}

#[test]
fn moving_the_conversion_cache_does_not_rebuild_the_runtime() {
    let app = Fixture::new("renamed");
    let first = app.build(&[]);
    assert!(first.success, "{}", first.stderr);
    let elsewhere = tempfile::tempdir().unwrap();
    let second = app.build(&[("PTM_CACHE_DIR", elsewhere.path())]);
    assert!(second.success, "{}", second.stderr);
    assert!(second.ran_build_script(), "the app's own build script looks in the new cache");
    assert!(!ran_runtime_build_script(&second.stderr), "the runtime's build script ran again:\n{}", second.stderr);
}

#[test]
fn models_verified_with_another_torch_release_than_the_runtime_links_fail_the_build() {
    // The project's torch, presented as an unpacked libtorch of another release: the
    // runtime compiles and links it, and publishes the version its build-version names.
    let venv_torch = ptm_tests::venv_python().parent().unwrap().parent().unwrap().join("lib/python3.11/site-packages/torch");
    assert!(venv_torch.join("include").is_dir(), "{}", venv_torch.display());
    let libtorch = tempfile::tempdir().unwrap();
    for part in ["include", "lib"] {
        std::os::unix::fs::symlink(venv_torch.join(part), libtorch.path().join(part)).unwrap();
    }
    std::fs::write(libtorch.path().join("build-version"), "2.9.1+cpu\n").unwrap();
    let app = Fixture::new("renamed");
    // A target directory of its own: LIBTORCH reruns the runtime's build script, which a
    // concurrent test in the shared one expects to stay fresh.
    let target = ptm_tests::repo().join("target/fixtures-libtorch");
    let build = app.build(&[("LIBTORCH", libtorch.path()), ("CARGO_TARGET_DIR", &target)]);
    assert!(!build.success, "{}", build.stderr);
    assert!(
        build.stderr.contains("model `tiny` was converted and verified with torch 2.11.0")
            && build.stderr.contains("but the ptm runtime links torch 2.9.1+cpu (LIBTORCH="),
        "{}",
        build.stderr
    );
    assert!(build.stderr.contains("set PTM_PYTHON for the whole build"), "{}", build.stderr);
}
