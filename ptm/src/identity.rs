//! What an artifact written by ptm-build says of itself: the `.ptl`'s `extra/ptm_identity`
//! record, the record appended to a `.pte`. The generated wrappers refuse another model's
//! file by it.

use crate::{Error, ErrorKind};

/// What a `.ptl` or `.pte` written by ptm-build says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The model's declared name.
    pub model: String,
    /// The key of its declaration (models.json's `cache_key`).
    pub key: String,
    /// The ptm-build version that wrote it.
    pub ptm_build: String,
    /// Its inputs: `name dtype [dims]`, separated by `; `.
    pub inputs: String,
    /// Its outputs, likewise.
    pub outputs: String,
    /// The ExecuTorch release that exported it (a `.pte`; `None` for a `.ptl`).
    pub executorch: Option<String>,
}

impl Identity {
    /// Reads a record's text; `None` when it is not one.
    pub(crate) fn parse(text: &str) -> Option<Identity> {
        let field = |name: &str| text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ').map(str::to_string));
        text.starts_with("ptm-identity ").then_some(())?;
        Some(Identity {
            model: field("model")?,
            key: field("key")?,
            ptm_build: field("ptm-build")?,
            inputs: field("inputs")?,
            outputs: field("outputs")?,
            executorch: field("executorch"),
        })
    }

    /// The model, a short key and the signature, for messages.
    pub(crate) fn describe(&self) -> String {
        // The record comes from the file: cut by characters, never inside one.
        let key: String = self.key.chars().take(12).collect();
        format!("model `{}` (key {key}..., inputs {}, outputs {}, written by ptm-build {})", self.model, self.inputs, self.outputs, self.ptm_build)
    }
}

/// Refuses a file whose identity does not name `key` (when the options name one).
pub(crate) fn check(what: &str, model: &str, key: Option<&str>, found: Option<&Identity>, format: &str) -> Result<(), Error> {
    let Some(key) = key else { return Ok(()) };
    if found.is_some_and(|found| found.key == key) {
        return Ok(());
    }
    let found = found.map_or_else(|| format!("a {format} without ptm's identity record (not written by ptm-build)"), Identity::describe);
    Err(ErrorKind::WrongModel { what: what.into(), expected: model.into(), expected_key: key.into(), found }.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_record_is_parsed_and_described_without_trusting_it() {
        let text = "ptm-identity 1\nmodel review\nkey ééééééééééééééé\nptm-build 0.1.0\ninputs input_ids int64 [1, 128]\noutputs logits float32 [1, 2]\n";
        let identity = Identity::parse(text).unwrap();
        assert_eq!(identity.model, "review");
        assert_eq!(identity.executorch, None);
        assert!(identity.describe().starts_with("model `review` (key éééééééééééé..., inputs input_ids int64 [1, 128]"), "{}", identity.describe());
        assert_eq!(Identity::parse("model review\n"), None, "not an identity record");
        assert_eq!(Identity::parse("ptm-identity 1\nmodel review\n"), None, "fields missing");
        let pte = Identity::parse(&format!("{text}executorch 1.5.1+cpu\n")).unwrap();
        assert_eq!(pte.executorch.as_deref(), Some("1.5.1+cpu"));
    }

    #[test]
    fn another_models_file_is_refused_naming_both() {
        let found =
            Identity::parse("ptm-identity 1\nmodel digits\nkey 0123456789abcdef\nptm-build 0.1.0\ninputs x float32 [1]\noutputs y float32 [1]\n").unwrap();
        assert!(check("f.pte", "review", Some("0123456789abcdef"), Some(&found), ".pte").is_ok());
        assert!(check("f.pte", "review", None, None, ".pte").is_ok(), "no key, no check");
        let error = check("f.pte", "review", Some("fedcba9876543210"), Some(&found), ".pte").unwrap_err().to_string();
        assert!(error.contains("model `digits` (key 0123456789ab...") && error.contains("not model `review` (key fedcba987654...)"), "{error}");
        let error = check("f.pte", "review", Some("fedcba9876543210"), None, ".pte").unwrap_err().to_string();
        assert!(error.contains("a .pte without ptm's identity record"), "{error}");
    }
}
