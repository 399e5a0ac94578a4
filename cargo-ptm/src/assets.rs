//! `cargo ptm assets`: the `embed = false` models, each with its self-check reference
//! data beside it (`review.ptl`, `review.reference`), written where a platform's app
//! build picks up files (an Android `assets/` folder, an Xcode resource folder).
//! Build scripts only write inside OUT_DIR; this command is the step that copies out.

use crate::crates::Workspace;
use std::path::Path;
use std::process::ExitCode;

pub fn run(workspace: &Workspace, platform: &str, out: &Path, target: Option<&str>) -> Result<ExitCode, String> {
    let default_target = if platform == "ios" { "aarch64-apple-ios" } else { "aarch64-linux-android" };
    let target = target.unwrap_or(default_target).to_string();
    std::fs::create_dir_all(out).map_err(|e| format!("could not create {}: {e}", out.display()))?;
    let mut listed = Vec::new();
    for krate in &workspace.crates {
        let build_dir = workspace.target_dir.join("ptm-assets").join(&krate.name).join(&target);
        let bundle = workspace.bundle(krate, &build_dir, &target)?;
        for model in &bundle.models {
            if model.embed {
                eprintln!("ptm assets: {}/{} is embedded in the binary (embed = true); nothing to ship", krate.name, model.name);
                continue;
            }
            let files = std::iter::once((&model.artifact, &model.artifact_sha256)).chain(model.reference.as_ref().zip(model.reference_sha256.as_ref()));
            for (file, sha256) in files {
                let from = build_dir.join("ptm").join(file);
                let to = out.join(file);
                if listed.iter().any(|(name, _, _): &(String, String, u64)| name == file) {
                    return Err(format!("two crates ship a model file named {file}; rename one model"));
                }
                std::fs::copy(&from, &to).map_err(|e| format!("could not copy {} to {}: {e}", from.display(), to.display()))?;
                let bytes = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
                println!("{} ({} bytes, {target})", to.display(), bytes);
                listed.push((file.clone(), sha256.clone(), bytes));
            }
        }
    }
    // What was written, so the app (or its build) can check the files it ships.
    let manifest = serde_json::json!({
        "platform": platform,
        "target": target,
        "files": listed.iter().map(|(file, sha256, bytes)| serde_json::json!({"file": file, "sha256": sha256, "bytes": bytes})).collect::<Vec<_>>(),
    });
    let path = out.join("ptm-assets.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n")
        .map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}
