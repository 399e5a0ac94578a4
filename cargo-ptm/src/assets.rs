//! `cargo ptm assets`: the `embed = false` models, written where a platform's app
//! build picks up files (an Android `assets/` folder, an Xcode resource folder).
//! Build scripts only write inside OUT_DIR; this command is the step that copies out.

use crate::args::Args;
use crate::crates;
use ptm_build::Builder;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(args: &Args) -> Result<ExitCode, String> {
    let platform = args.value("--platform").ok_or("cargo ptm assets: say --platform android or --platform ios")?;
    let default_target = match platform {
        "android" => "aarch64-linux-android",
        "ios" => "aarch64-apple-ios",
        other => return Err(format!("cargo ptm assets: unknown platform `{other}`: say android or ios")),
    };
    let out = PathBuf::from(args.value("--out").ok_or("cargo ptm assets: say --out <dir> (android: app/src/main/assets/models; ios: a folder in the app target's resources)")?);
    let target = args.value("--target").unwrap_or(default_target).to_string();
    let workspace = crates::find(args)?;
    std::fs::create_dir_all(&out).map_err(|e| format!("could not create {}: {e}", out.display()))?;
    let mut listed = Vec::new();
    for krate in &workspace.crates {
        let build_dir = workspace.target_dir.join("ptm-assets").join(&krate.name).join(&target);
        let bundle = Builder::new()
            .crate_dir(&krate.dir)
            .out_dir(&build_dir)
            .cache_dir(workspace.cache_dir())
            .target(target.clone())
            .bundle()
            .map_err(|e| e.to_string())?;
        for model in &bundle.models {
            if model.embed {
                eprintln!("ptm assets: {}/{} is embedded in the binary (embed = true); nothing to ship", krate.name, model.name);
                continue;
            }
            let from = build_dir.join("ptm").join(&model.artifact);
            let to = out.join(&model.artifact);
            if listed.iter().any(|(name, _, _): &(String, String, u64)| name == &model.artifact) {
                return Err(format!("two crates ship a model file named {}; rename one model", model.artifact));
            }
            std::fs::copy(&from, &to).map_err(|e| format!("could not copy {} to {}: {e}", from.display(), to.display()))?;
            let bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
            println!("{} ({} bytes, {target})", to.display(), bytes);
            listed.push((model.artifact.clone(), model.artifact_sha256.clone(), bytes));
        }
    }
    // What was written, so the app (or its build) can check the files it ships.
    let manifest = serde_json::json!({
        "platform": platform,
        "target": target,
        "files": listed.iter().map(|(file, sha256, bytes)| serde_json::json!({"file": file, "sha256": sha256, "bytes": bytes})).collect::<Vec<_>>(),
    });
    let path = out.join("ptm-assets.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n").map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}
