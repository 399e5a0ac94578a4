//! Reading the variables named in [`crate::vars`], and telling cargo what a build
//! script's result depends on, so cargo reruns the script when it changes.
//!
//! Outside a build script (`cargo ptm`, tests) the `cargo:` lines would be noise on
//! stdout, so they are printed only inside one.

use crate::error::Error;
use crate::vars::{OUT_DIR, TARGET, WATCHED};
use std::ffi::OsString;

/// Tells cargo about every variable in [`WATCHED`].
pub fn watch_all() {
    watch(WATCHED);
}

/// Tells cargo to rerun the build script when any of `names` changes.
pub fn watch(names: &[&str]) {
    for name in names {
        rerun_if_env_changed(name);
    }
}

/// Reads `name` (one of [`WATCHED`], which [`watch_all`] declares to cargo); empty is unset.
pub fn var(name: &str) -> Option<OsString> {
    debug_assert!(WATCHED.contains(&name), "{name} is read but not watched");
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// `name` for one target, as the cc crate reads `CC`: `<name>_<target>`, then the same
/// with `-` as `_`, then `<name>`; with the variable that gave it. Each is watched, so
/// one `cargo ndk` call can give every ABI its own directory.
pub fn var_for_target(name: &str, target: &str) -> Option<(OsString, String)> {
    debug_assert!(WATCHED.contains(&name), "{name} is read but not watched");
    let names = [format!("{name}_{target}"), format!("{name}_{}", target.replace('-', "_")), name.to_string()];
    for candidate in &names[..2] {
        rerun_if_env_changed(candidate);
    }
    first_set(&names, |candidate| std::env::var_os(candidate))
}

/// The first of `names` that `get` finds set to something non-empty.
fn first_set(names: &[String], get: impl Fn(&str) -> Option<OsString>) -> Option<(OsString, String)> {
    names.iter().find_map(|name| get(name).filter(|value| !value.is_empty()).map(|value| (value, name.clone())))
}

/// True when a variable is set to something other than `0`, `false` or empty.
pub fn flag(name: &str) -> bool {
    var(name).is_some_and(|value| value != "0" && value != "false")
}

/// A duration in seconds from `name`: `None` when unset, an error naming the variable
/// when it is not a positive number.
pub fn seconds(name: &str) -> Result<Option<std::time::Duration>, Error> {
    let Some(value) = var(name) else { return Ok(None) };
    parse_seconds(&value.to_string_lossy()).map(Some).ok_or_else(|| Error::Variable {
        variable: name.into(),
        found: value.to_string_lossy().into_owned(),
        expected: "a number of seconds above zero, such as 300".into(),
    })
}

fn parse_seconds(text: &str) -> Option<std::time::Duration> {
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds > 0.0).then(|| std::time::Duration::try_from_secs_f64(seconds).ok()).flatten()
}

/// Cargo sets OUT_DIR and TARGET only for build scripts; elsewhere (the CLI, tests)
/// `cargo:` lines would be noise on stdout.
pub fn in_build_script() -> bool {
    std::env::var_os(OUT_DIR).is_some() && std::env::var_os(TARGET).is_some()
}

/// Tells cargo to rerun the build script when a variable outside [`WATCHED`] changes:
/// for those read only on some paths (PATH, when it chose the interpreter).
pub fn rerun_if_env_changed(name: &str) {
    if in_build_script() {
        println!("cargo:rerun-if-env-changed={name}");
    }
}

/// Tells cargo to rerun the build script when `path` changes.
pub fn rerun_if_changed(path: &std::path::Path) {
    if in_build_script() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Shows `message` as a cargo warning (one line per line of the message).
pub fn warning(message: &str) {
    if in_build_script() {
        for line in message.lines() {
            println!("cargo:warning=ptm: {line}");
        }
    } else {
        eprintln!("warning: ptm: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_specific_variable_comes_before_the_general_one() {
        let names = ["X_aarch64-linux-android".to_string(), "X_aarch64_linux_android".to_string(), "X".to_string()];
        let set = |pairs: &'static [(&'static str, &'static str)]| move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v));
        let found = first_set(&names, set(&[("X", "/all"), ("X_aarch64_linux_android", "/arm64")]));
        assert_eq!(found, Some((OsString::from("/arm64"), "X_aarch64_linux_android".to_string())));
        let found = first_set(&names, set(&[("X", "/all"), ("X_aarch64-linux-android", "/dash"), ("X_aarch64_linux_android", "/arm64")]));
        assert_eq!(found.unwrap().1, "X_aarch64-linux-android");
        assert_eq!(first_set(&names, set(&[("X", "/all"), ("X_aarch64_linux_android", "")])).unwrap().0, "/all", "empty is unset");
        assert_eq!(first_set(&names, set(&[])), None);
    }

    #[test]
    fn seconds_are_positive_numbers() {
        assert_eq!(parse_seconds("300"), Some(std::time::Duration::from_secs(300)));
        assert_eq!(parse_seconds(" 0.5 "), Some(std::time::Duration::from_millis(500)));
        for bad in ["0", "-1", "5m", "inf", "NaN", "", "1e400"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }
}
