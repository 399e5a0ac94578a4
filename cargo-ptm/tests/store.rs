//! `cargo ptm prepare`, the committed store and offline builds, on fixture crates built
//! by cargo with real torch.

use ptm_harness::{logging_python, starts, toolchain_dir, venv_python, Fixture};
use std::path::Path;
use std::process::{Command, Output};

fn cargo_ptm(fixture: &Fixture, args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-ptm"))
        .arg("ptm")
        .args(args)
        .arg("--manifest-path")
        .arg(fixture.path().join("Cargo.toml"))
        .env("PTM_PYTHON", venv_python())
        .env("PTM_CACHE_DIR", cache)
        .env("PTM_TOOLCHAIN_DIR", toolchain_dir())
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A fixture whose store `cargo ptm prepare` filled.
fn prepared() -> (Fixture, tempfile::TempDir) {
    let fixture = Fixture::new("python-dynamic");
    let cache = tempfile::tempdir().unwrap();
    let out = cargo_ptm(&fixture, &["prepare"], cache.path());
    assert!(out.status.success(), "{}", text(&out));
    // Not a terminal: progress as plain lines, the worker's steps and where it ended.
    let progress = String::from_utf8_lossy(&out.stderr);
    for line in ["ptm: tiny: quantizing (dynamic INT8, qnnpack)", "ptm: tiny: verifying in the Lite Interpreter", "ptm: tiny: converted in "] {
        assert!(progress.contains(line), "{line}: {progress}");
    }
    assert!(!progress.contains('\u{1b}'), "no terminal escapes when stderr is a pipe: {progress}");
    (fixture, cache)
}

#[test]
fn prepare_fills_the_store_and_prints_a_summary() {
    let (fixture, cache) = prepared();
    let store = fixture.path().join(".ptm");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let key = index["models"]["tiny"][0]["key"].as_str().unwrap();
    assert!(store.join("v1").join(key).join("model.ptl").is_file());
    assert_eq!(std::fs::read_to_string(store.join(".gitignore")).unwrap().lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), ["locks/", "staging/"]);
    // Again, now from the cache, as JSON.
    let out = cargo_ptm(&fixture, &["prepare", "--json"], cache.path());
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ptm: tiny: from the cache"), "{}", text(&out));
    assert_eq!(rows[0]["model"], "tiny");
    assert_eq!(rows[0]["from"], "cache");
    assert_eq!(rows[0]["quantize"], "dynamic (qnnpack)");
    assert!(rows[0]["bytes_after"].as_u64().unwrap() > 0 && rows[0]["runtime_relative_error"].as_f64().is_some(), "{rows}");
    // The quantized layer that loses the most, from torch's numeric suite.
    assert!(rows[0]["worst_layer"]["name"].is_string() && rows[0]["worst_layer"]["sqnr_db"].as_f64().unwrap() > 10.0, "{rows}");
    assert!(text(&cargo_ptm(&fixture, &["prepare"], cache.path())).contains("worst INT8 layer"));
    let quiet = cargo_ptm(&fixture, &["prepare", "--quiet"], cache.path());
    assert!(quiet.status.success() && String::from_utf8_lossy(&quiet.stdout).contains("worst INT8 layer"), "{}", text(&quiet));
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "", "--quiet shows no progress");
    let check = cargo_ptm(&fixture, &["prepare", "--check"], cache.path());
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("the store is current (1 model(s))"), "{}", text(&check));

    // What that build measured, for people and as JSON.
    let report = cargo_ptm(&fixture, &["report", "tiny"], cache.path());
    assert!(report.status.success(), "{}", text(&report));
    let page = String::from_utf8_lossy(&report.stdout);
    for line in [
        "  input       features float32 [1, 16]",
        "  output      scores float32 [1, 4]",
        "  drift       lite (8 samples):",
        "  INT8 layers (torch.ao.ns, worst first):",
        "  budget      max_bytes 10.00 MB (10000000 bytes): within (",
        "  budget      max_drift 0.5000: within (",
        "  self-check  tiny.reference (the samples verified on, the source's outputs), sha256 ",
    ] {
        assert!(page.contains(line), "{line}: {page}");
    }
    let json = cargo_ptm(&fixture, &["report", "--json"], cache.path());
    let models: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(models[0]["report"]["name"], "tiny");
    assert_eq!(models[0]["report"]["layers"][0]["kind"], "Linear");
    assert_eq!(models[0]["report"]["budget"], serde_json::json!({"max_bytes": 10_000_000, "max_drift": 0.5}));
    // Provenance: each input's sha256 as sha256sum prints it, and what converted it.
    let sha256 = |file: &str| ptm_harness::sha256_of(&fixture.path().join(file));
    let provenance = &models[0]["report"]["provenance"];
    assert_eq!(provenance["source_sha256"], sha256("models/tiny.py"));
    assert_eq!(provenance["weights_sha256"], sha256("models/tiny.pth"));
    assert!(provenance["python_version"].as_str().unwrap().starts_with("3."), "{provenance}");
    assert!(page.contains(&format!("  made from   source sha256 {}, weights sha256 {}", sha256("models/tiny.py"), sha256("models/tiny.pth"))), "{page}");
    let missing = cargo_ptm(&fixture, &["report", "nope"], cache.path());
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("no crate here declares a model named `nope`"), "{}", text(&missing));
}

#[test]
fn diff_shows_what_another_quantization_changed_and_fails_on_a_crossed_budget() {
    let (fixture, cache) = prepared();
    let before = tempfile::tempdir().unwrap();
    ptm_harness::copy_dir(&fixture.path().join(".ptm"), &before.path().join("store-before"));
    fixture.replace("quantize = \"dynamic\"\n", "quantize = \"none\"\n");
    let out = cargo_ptm(&fixture, &["prepare"], cache.path());
    assert!(out.status.success(), "{}", text(&out));

    let diff = |a: &Path, b: &Path| Command::new(env!("CARGO_BIN_EXE_cargo-ptm")).arg("ptm").arg("diff").arg(a).arg(b).output().unwrap();
    let out = diff(&before.path().join("store-before"), fixture.path());
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with("tiny (.ptl)\n"), "{page}");
    // Float weights are larger than INT8 ones (the archive's other records stay the same).
    let size = page.lines().find(|l| l.starts_with("  size        ")).unwrap_or_else(|| panic!("{page}"));
    let growth: f64 = size.rsplit_once('(').unwrap().1.trim_end_matches("%)").parse().unwrap();
    assert!(growth > 10.0 && size.contains(" kB -> "), "{size}");
    assert!(
        page.contains("  drift       ") && page.contains("  operators   ") && page.contains("; removed ") && page.contains("quantized::linear_dynamic"),
        "{page}"
    );
    assert!(page.contains("  budget      max_bytes 10.00 MB (10000000 bytes): within"), "{page}");

    // Against itself: nothing changed; and a build's models.json is a side too, the same
    // artifact as the store it was built from.
    let same = diff(fixture.path(), fixture.path());
    assert!(String::from_utf8_lossy(&same.stdout).starts_with("tiny (.ptl): the same artifact\n"), "{}", text(&same));
    let build = fixture.build(&[("PTM_CACHE_DIR", cache.path())]);
    assert!(build.success, "{}", build.stderr);
    let report = build.out_dir.unwrap().join("ptm");
    let same = diff(&fixture.path().join(".ptm"), &report.join("models.json"));
    assert!(String::from_utf8_lossy(&same.stdout).starts_with("tiny (.ptl): the same artifact\n"), "{}", text(&same));
    let changed = diff(&before.path().join("store-before"), &report);
    assert!(
        String::from_utf8_lossy(&changed.stdout).contains("  size        ") && String::from_utf8_lossy(&changed.stdout).contains("  drift       "),
        "{}",
        text(&changed)
    );

    // A budget the new build crosses fails the diff, naming the limit.
    fixture.replace("max_bytes = \"10 MB\"", "max_bytes = 100");
    let out = diff(&before.path().join("store-before"), &fixture.path().join(".ptm"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("  budget      max_bytes 100 bytes: OVER (") && text(&out).contains("crosses its budget"), "{}", text(&out));

    let nothing = diff(before.path(), &before.path().join("nothing"));
    assert_eq!(nothing.status.code(), Some(1));
    assert!(text(&nothing).contains("is neither a report (models.json, or a directory holding one) nor a committed store"), "{}", text(&nothing));
}

#[test]
fn an_offline_build_uses_the_store_and_starts_no_python() {
    let (fixture, _cache) = prepared();
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("starts.log");
    let python = logging_python(scratch.path(), &log, true);
    let empty_cache = scratch.path().join("cache");
    let build = fixture.build(&[("PTM_OFFLINE", Path::new("1")), ("PTM_PYTHON", &python), ("PTM_CACHE_DIR", &empty_cache)]);
    assert!(build.success, "{}", build.stderr);
    assert_eq!(starts(&log), 0, "an offline build started Python");
    let report = build.report();
    assert_eq!(report.models[0].name, "tiny");
    // The artifact is the store's, byte for byte.
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture.path().join(".ptm/index.json")).unwrap()).unwrap();
    let key = index["models"]["tiny"][0]["key"].as_str().unwrap();
    let stored = fixture.path().join(".ptm/v1").join(key).join("model.ptl");
    assert_eq!(std::fs::read(stored).unwrap(), std::fs::read(build.out_dir.unwrap().join("ptm/tiny.ptl")).unwrap());

    // The budgets hold offline too: a store committed over budget fails CI's build.
    fixture.replace("max_bytes = \"10 MB\"", "max_bytes = 100");
    let build = fixture.build(&[("PTM_OFFLINE", Path::new("1")), ("PTM_PYTHON", &python), ("PTM_CACHE_DIR", &empty_cache)]);
    assert!(!build.success && build.stderr.contains("`package.metadata.models.tiny.budget.max_bytes`: the figure is"), "{}", build.stderr);
    assert_eq!(starts(&log), 0, "an offline build started Python");
}

#[test]
fn a_machine_without_python_builds_from_a_current_store() {
    let (fixture, _cache) = prepared();
    let scratch = tempfile::tempdir().unwrap();
    let build = fixture.build(&[("PTM_PYTHON", &scratch.path().join("no-such-python")), ("PTM_CACHE_DIR", &scratch.path().join("cache"))]);
    assert!(build.success, "{}", build.stderr);
}

#[test]
fn changed_weights_make_the_store_stale_for_check_and_offline_builds() {
    let (fixture, cache) = prepared();
    let weights = fixture.path().join("models/tiny.pth");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();

    let check = cargo_ptm(&fixture, &["prepare", "--check"], cache.path());
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(text(&check).contains("`tiny` (x86_64-unknown-linux-gnu): stale") && text(&check).contains("run `cargo ptm prepare`"), "{}", text(&check));

    let scratch = tempfile::tempdir().unwrap();
    let build = fixture.build(&[("PTM_OFFLINE", Path::new("1")), ("PTM_CACHE_DIR", &scratch.path().join("cache"))]);
    assert!(!build.success);
    assert!(build.stderr.contains("building without Python (PTM_OFFLINE=1 is set)") && build.stderr.contains("`tiny`: stale"), "{}", build.stderr);
    assert!(build.stderr.contains("run `cargo ptm prepare` in"), "{}", build.stderr);
}

#[test]
fn a_damaged_store_entry_is_reported_not_used() {
    let (fixture, cache) = prepared();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture.path().join(".ptm/index.json")).unwrap()).unwrap();
    let ptl = fixture.path().join(".ptm/v1").join(index["models"]["tiny"][0]["key"].as_str().unwrap()).join("model.ptl");
    let bytes = std::fs::read(&ptl).unwrap();
    std::fs::write(&ptl, &bytes[..bytes.len() / 2]).unwrap();
    let check = cargo_ptm(&fixture, &["prepare", "--check"], cache.path());
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check).contains("damaged"), "{}", text(&check));
    let scratch = tempfile::tempdir().unwrap();
    let build = fixture.build(&[("PTM_OFFLINE", Path::new("1")), ("PTM_CACHE_DIR", &scratch.path().join("cache"))]);
    assert!(!build.success);
    assert!(build.stderr.contains("`tiny`: damaged"), "{}", build.stderr);
    assert!(ptl.exists(), "the store is reported, never repaired behind the user's back");

    let prepare = cargo_ptm(&fixture, &["prepare"], cache.path());
    assert!(prepare.status.success(), "prepare repairs the entry: {}", text(&prepare));
    assert_eq!(std::fs::read(&ptl).unwrap(), bytes);
    assert_eq!(cargo_ptm(&fixture, &["prepare", "--check"], cache.path()).status.code(), Some(0));
}

#[test]
fn an_offline_build_of_an_unprepared_crate_names_the_model_and_the_command() {
    let fixture = Fixture::new("python-dynamic");
    let build = fixture.build(&[("PTM_OFFLINE", Path::new("1"))]);
    assert!(!build.success);
    assert!(build.stderr.contains("`tiny`: not in the store") && build.stderr.contains("cargo ptm prepare"), "{}", build.stderr);
}

#[test]
fn the_cache_reports_its_size_and_prunes_by_age_and_size() {
    let (fixture, cache) = prepared();
    let size = cargo_ptm(&fixture, &["cache", "size"], cache.path());
    assert!(size.status.success() && text(&size).contains(": 1 entries, "), "{}", text(&size));
    let keep = cargo_ptm(&fixture, &["cache", "prune", "--older-than", "1"], cache.path());
    assert!(text(&keep).contains("removed 0 entries"), "{}", text(&keep));
    let all = cargo_ptm(&fixture, &["cache", "prune", "--max-size", "0"], cache.path());
    assert!(text(&all).contains("removed 1 entries") && text(&all).contains("0 entries left"), "{}", text(&all));
    assert_eq!(std::fs::read_dir(cache.path().join("v1")).unwrap().count(), 0);
    let bad = cargo_ptm(&fixture, &["cache", "prune"], cache.path());
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn assets_writes_the_models_that_are_not_embedded_for_the_platform() {
    let fixture = Fixture::new("python-dynamic");
    let manifest = fixture.path().join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap().replace("quantize = \"dynamic\"\n", "quantize = \"dynamic\"\nembed = false\n");
    std::fs::write(&manifest, toml).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let assets = out.path().join("app/src/main/assets/models");
    let run = cargo_ptm(&fixture, &["assets", "--platform", "android", "--out", assets.to_str().unwrap()], cache.path());
    assert!(run.status.success(), "{}", text(&run));
    let listing: serde_json::Value = serde_json::from_slice(&std::fs::read(assets.join("ptm-assets.json")).unwrap()).unwrap();
    assert_eq!(listing["target"], "aarch64-linux-android");
    assert_eq!(listing["files"][0]["file"], "tiny.ptl");
    assert_eq!(listing["files"][0]["sha256"], ptm_harness::sha256_of(&assets.join("tiny.ptl")));
    // Its self-check reference data beside it, where load_from's self_check looks.
    assert_eq!(listing["files"][1]["file"], "tiny.reference");
    assert_eq!(listing["files"][1]["sha256"], ptm_harness::sha256_of(&assets.join("tiny.reference")));

    // An embedded model is not shipped as a file.
    let embedded = Fixture::new("python-dynamic");
    let ios = out.path().join("ios");
    let run = cargo_ptm(&embedded, &["assets", "--platform", "ios", "--out", ios.to_str().unwrap()], cache.path());
    assert!(run.status.success() && text(&run).contains("is embedded in the binary"), "{}", text(&run));
    assert!(!ios.join("tiny.ptl").exists());
    let bad = cargo_ptm(&embedded, &["assets", "--platform", "windows", "--out", "x"], cache.path());
    assert_eq!(bad.status.code(), Some(2));
}

fn index_of(fixture: &Fixture) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture.path().join(".ptm/index.json")).unwrap()).unwrap()
}

#[test]
fn preparing_another_target_keeps_the_targets_already_stored() {
    let (fixture, cache) = prepared();
    let host = index_of(&fixture)["models"]["tiny"][0]["target"].as_str().unwrap().to_string();
    let arm = "aarch64-linux-android";
    let out = cargo_ptm(&fixture, &["prepare", "--target", arm], cache.path());
    assert!(out.status.success(), "{}", text(&out));
    let targets: Vec<String> = index_of(&fixture)["models"]["tiny"].as_array().unwrap().iter().map(|r| r["target"].as_str().unwrap().to_string()).collect();
    let mut expected = vec![host.clone(), arm.to_string()];
    expected.sort();
    assert_eq!(targets, expected);
    let check = cargo_ptm(&fixture, &["prepare", "--check"], cache.path());
    assert!(check.status.success(), "the host's entry survived: {}", text(&check));
    assert!(text(&check).contains("the store is current (2 model(s))"), "both recorded targets are checked: {}", text(&check));
}

#[test]
fn a_damaged_store_entry_is_a_warning_when_python_converts_instead() {
    let (fixture, _cache) = prepared();
    let key = index_of(&fixture)["models"]["tiny"][0]["key"].as_str().unwrap().to_string();
    let ptl = fixture.path().join(".ptm/v1").join(&key).join("model.ptl");
    std::fs::write(&ptl, b"not a model").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let build = fixture.build(&[("PTM_CACHE_DIR", &scratch.path().join("cache"))]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        build.stderr.contains("warning: fixture-") && build.stderr.contains("ptm: model `tiny`: the committed store's entry is damaged"),
        "{}",
        build.stderr
    );
    assert!(build.stderr.contains(&ptl.display().to_string()), "the warning names the file: {}", build.stderr);
    assert_eq!(std::fs::read(&ptl).unwrap(), b"not a model", "the store is reported, never repaired behind the user's back");
}

#[test]
fn a_corrupt_index_is_named_as_corrupt() {
    let (fixture, cache) = prepared();
    let index = fixture.path().join(".ptm/index.json");
    std::fs::write(&index, b"{\"schema\": 1, \"models\": ").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let offline = fixture.build(&[("PTM_OFFLINE", Path::new("1")), ("PTM_CACHE_DIR", &scratch.path().join("cache"))]);
    assert!(!offline.success);
    assert!(offline.stderr.contains(&format!("the store index {} is corrupt", index.display())), "{}", offline.stderr);
    assert!(!offline.stderr.contains("not in the store"), "{}", offline.stderr);

    let online = fixture.build(&[("PTM_CACHE_DIR", &scratch.path().join("cache2"))]);
    assert!(online.success, "{}", online.stderr);
    assert!(online.stderr.contains("is corrupt") && online.stderr.contains("converting instead"), "{}", online.stderr);

    let check = cargo_ptm(&fixture, &["prepare", "--check"], cache.path());
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check).contains("is corrupt"), "{}", text(&check));
    let again = cargo_ptm(&fixture, &["prepare"], cache.path());
    assert!(again.status.success() && text(&again).contains("is corrupt") && text(&again).contains("writing it again"), "{}", text(&again));
    assert_eq!(index_of(&fixture)["models"]["tiny"].as_array().unwrap().len(), 1);
}

#[test]
fn a_store_from_the_same_torch_release_with_another_build_tag_is_not_converted_again_silently() {
    let (fixture, _cache) = prepared();
    let path = fixture.path().join(".ptm/index.json");
    let mut index = index_of(&fixture);
    let ours = index["models"]["tiny"][0]["torch"].as_str().unwrap().to_string();
    let release = ours.split('+').next().unwrap().to_string();
    let other = format!("{release}+othertag");
    // What another torch build would have stored: its own version, hence its own key.
    let key = index["models"]["tiny"][0]["key"].as_str().unwrap().to_string();
    let other_key = format!("{}{}", &key[..key.len() - 1], if key.ends_with('0') { '1' } else { '0' });
    std::fs::rename(fixture.path().join(".ptm/v1").join(&key), fixture.path().join(".ptm/v1").join(&other_key)).unwrap();
    index["models"]["tiny"][0]["torch"] = serde_json::Value::String(other.clone());
    index["models"]["tiny"][0]["key"] = serde_json::Value::String(other_key);
    std::fs::write(&path, serde_json::to_string_pretty(&index).unwrap()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let build = fixture.build(&[("PTM_CACHE_DIR", &scratch.path().join("cache"))]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        build.stderr.contains(&format!("prepared with torch {other} and this build has torch {ours}")) && build.stderr.contains("PTM_OFFLINE=1"),
        "{}",
        build.stderr
    );
}

#[test]
fn prepare_on_a_terminal_draws_a_line_per_model() {
    let (fixture, cache) = prepared();
    // `script` gives the command a pseudo-terminal, as an interactive shell would.
    let command = format!(
        "PTM_PYTHON='{}' PTM_CACHE_DIR='{}' TERM=xterm '{}' ptm prepare --manifest-path '{}'",
        venv_python().display(),
        cache.path().display(),
        env!("CARGO_BIN_EXE_cargo-ptm"),
        fixture.path().join("Cargo.toml").display()
    );
    let out = Command::new("script").args(["-qec", &command, "/dev/null"]).env_remove("VIRTUAL_ENV").output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains('\u{1b}'), "drawn with terminal escapes: {screen}");
    assert!(without_escapes(&screen).contains("tiny from the cache"), "{screen}");
}

/// `text` without its ANSI escape sequences (ESC `[` parameters, then a letter).
fn without_escapes(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn a_pte_model_is_prepared_stored_and_built_offline_like_a_ptl() {
    let fixture = Fixture::new("executorch-only");
    let cache = tempfile::tempdir().unwrap();
    let out = cargo_ptm(&fixture, &["prepare", "--json"], cache.path());
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((rows[0]["format"].as_str(), rows[0]["quantize"].as_str()), (Some("pte"), Some("dynamic (xnnpack)")), "{rows}");
    assert!(rows[0]["runtime_relative_error"].as_f64().is_some(), "measured in ExecuTorch: {rows}");
    let key = index_of(&fixture)["models"]["tiny"][0]["key"].as_str().unwrap().to_string();
    let stored = fixture.path().join(".ptm/v1").join(&key);
    assert!(stored.join("model.pte").is_file() && !stored.join("model.ptl").exists());

    // Offline, with an empty cache: the committed store gives the build its program.
    let scratch = tempfile::tempdir().unwrap();
    let build = fixture.build(&[("PTM_OFFLINE", Path::new("1")), ("PTM_CACHE_DIR", &scratch.path().join("cache"))]);
    assert!(build.success, "{}", build.stderr);
    assert_eq!(build.report().models[0].artifact_sha256, ptm_harness::sha256_of(&stored.join("model.pte")));
    let run = Command::new(build.executable.unwrap()).output().unwrap();
    assert!(String::from_utf8_lossy(&run.stdout).contains("scores [1, 3]"), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(cargo_ptm(&fixture, &["prepare", "--check"], cache.path()).status.code(), Some(0));
}

#[test]
fn device_test_builds_the_models_self_checks_and_runs_them_through_a_command() {
    let fixture = Fixture::new("executorch-only");
    let cache = tempfile::tempdir().unwrap();
    // The host as the target; `env` runs the binary as it is.
    let run = cargo_ptm(&fixture, &["device-test", "--target", "x86_64-unknown-linux-gnu", "--runner", "env"], cache.path());
    let out = text(&run);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("ptm device-test: 1 model of `fixture-executorch-only") && out.contains("` on x86_64-linux"), "{out}");
    assert!(out.contains(".pte model `tiny`, ") && out.contains("`scores`: relative") && out.contains("the model passes its self-check"), "{out}");

    // The runner's exit status is the verdict: a command that fails is a failed run.
    let failed = cargo_ptm(&fixture, &["device-test", "--target", "x86_64-unknown-linux-gnu", "--runner", "false"], cache.path());
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
}
