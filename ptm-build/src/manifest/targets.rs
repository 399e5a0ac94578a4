//! Which `target.<name>` tables apply to a build, and which names can apply to any:
//! a target triple rustc knows, or the architecture that begins one (`aarch64` in
//! `aarch64-linux-android`), since that is how a table is matched to cargo's `TARGET`.

use super::suggest::closest;

/// The triples rustc knows, one a line; `#` lines are comments.
const TRIPLES: &str = include_str!("targets.txt");

/// Names other tools give a target, and the name a table needs for it: Android ABIs,
/// Apple's and Windows' architecture names, and rustc's `target_arch` values that no
/// triple begins with.
const ALIASES: &[(&str, &str)] = &[
    ("arm64-v8a", "aarch64-linux-android"),
    ("armeabi-v7a", "armv7-linux-androideabi"),
    ("arm64", "aarch64"),
    ("amd64", "x86_64"),
    ("x64", "x86_64"),
    ("x86", "i686"),
];

/// The architecture of a target triple: `aarch64-linux-android` -> `aarch64`.
pub(super) fn arch(target: &str) -> &str {
    target.split('-').next().unwrap_or(target)
}

/// ARM CPUs (every phone, Apple silicon) have qnnpack's kernels and not fbgemm's.
pub fn is_arm(target: &str) -> bool {
    let arch = arch(target);
    arch.starts_with("aarch64") || arch.starts_with("arm") || arch.starts_with("thumb")
}

/// How specifically the table `spec` names `target`: 2 for the full triple, 1 for its
/// architecture, 0 when it does not apply.
pub(super) fn rank(spec: &str, target: &str) -> u8 {
    if spec == target {
        2
    } else if spec == arch(target) {
        1
    } else {
        0
    }
}

fn triples() -> impl Iterator<Item = &'static str> {
    TRIPLES.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Whether a table named `spec` can apply to a build for a target rustc knows.
pub(super) fn is_known(spec: &str) -> bool {
    triples().any(|triple| rank(spec, triple) > 0)
}

/// The valid name a table named `spec` most likely meant.
pub(super) fn suggestion(spec: &str) -> Option<&'static str> {
    if let Some((_, name)) = ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(spec)) {
        return Some(name);
    }
    let mut names: Vec<&'static str> = triples().map(arch).collect();
    names.sort_unstable();
    names.dedup();
    names.extend(triples());
    closest(&spec.to_ascii_lowercase(), &names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_and_triples_are_known_and_near_misses_are_suggested() {
        for spec in ["x86_64", "aarch64", "armv7", "i686", "riscv64gc", "aarch64-linux-android", "x86_64-apple-ios", "aarch64-apple-ios-sim"] {
            assert!(is_known(spec), "{spec}");
        }
        for spec in ["x86-64", "x86", "arm64-v8a", "aarch64-linux-andriod", ""] {
            assert!(!is_known(spec), "{spec}");
        }
        assert_eq!(suggestion("x86-64"), Some("x86_64"));
        assert_eq!(suggestion("X86"), Some("i686"));
        assert_eq!(suggestion("arm64-v8a"), Some("aarch64-linux-android"));
        assert_eq!(suggestion("aarch64-linux-andriod"), Some("aarch64-linux-android"));
        assert_eq!(suggestion("quantize"), None);
    }
}
