//! What every part of the manifest reader shares: the context of one parse (which
//! manifest, which target, the warnings so far) and the rules for names. At the bottom
//! of the manifest module: it imports none of its siblings.

use std::path::Path;

/// One parse of one manifest, for one target.
pub(super) struct Ctx<'a> {
    pub(super) manifest: &'a Path,
    pub(super) crate_dir: &'a Path,
    /// The directory of the workspace's root Cargo.toml (the crate's own when it has none).
    pub(super) workspace: &'a Path,
    pub(super) target: Option<&'a str>,
    /// Findings that do not stop the build, for the model being parsed.
    pub(super) warnings: std::cell::RefCell<Vec<String>>,
}

/// The keys of an input table.
pub(super) const INPUT_KEYS: &[&str] = &["name", "dtype", "shape", "range"];

/// Rust's keywords: a model name must not be one, since it names generated items.
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
    "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn",
    "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') && !KEYWORDS.contains(&name)
}

pub(super) fn is_python_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    match out.chars().next() {
        Some(c) if c.is_ascii_lowercase() && !KEYWORDS.contains(&out.as_str()) => out,
        _ => format!("model_{out}"),
    }
}
