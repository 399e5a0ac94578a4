//! Reading typed values out of a declaration's tables, each mistake an error that
//! names the key, what was found, what was expected and the fix.

use super::ctx::Ctx;
use super::suggest::closest;
use crate::error::Error;
use toml::{Table, Value};

/// What an error says it found for a key ptm does not know.
pub(super) const UNKNOWN_KEY: &str = "an unknown key";

impl Ctx<'_> {
    pub(super) fn error(&self, key: &str, found: String, expected: impl Into<String>, fix: impl Into<String>) -> Error {
        Error::Manifest {
            manifest: self.manifest.to_path_buf(),
            key: key.to_string(),
            found: found.into(),
            expected: expected.into().into(),
            fix: fix.into().into(),
            location: None,
        }
    }

    pub(super) fn missing(&self, key: &str, expected: &str, fix: &str) -> Error {
        self.error(key, "nothing".into(), expected, fix)
    }

    pub(super) fn table<'v>(&self, value: &'v Value, key: &str, expected: &str) -> Result<&'v Table, Error> {
        value.as_table().ok_or_else(|| self.error(key, describe(value), expected, format!("make `{key}` a table")))
    }

    pub(super) fn check_keys(&self, table: &Table, prefix: &str, allowed: &[&str]) -> Result<(), Error> {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                let fix = match closest(key, allowed) {
                    Some(near) => format!("did you mean `{near}`? rename `{key}` to `{near}`"),
                    None => format!("remove `{key}`"),
                };
                return Err(self.error(&format!("{prefix}.{key}"), UNKNOWN_KEY.into(), format!("one of: {}", allowed.join(", ")), fix));
            }
        }
        Ok(())
    }

    pub(super) fn string<'v>(&self, table: &'v Table, prefix: &str, key: &str) -> Result<Option<&'v str>, Error> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(&format!("{prefix}.{key}"), describe(other), "a string", format!("write {key} = \"...\""))),
        }
    }

    pub(super) fn choice<T: Copy>(&self, table: &Table, prefix: &str, key: &str, options: &[(&str, T)], default: T) -> Result<T, Error> {
        let Some(found) = self.string(table, prefix, key)? else { return Ok(default) };
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == found) {
            return Ok(*value);
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let fix = match closest(found, &names) {
            Some(near) => format!("write {key} = \"{near}\""),
            None => format!("write one of: {}", names.iter().map(|n| format!("{key} = \"{n}\"")).collect::<Vec<_>>().join(", ")),
        };
        Err(self.error(&format!("{prefix}.{key}"), format!("\"{found}\""), format!("one of: {}", names.join(", ")), fix))
    }

    pub(super) fn boolean(&self, table: &Table, prefix: &str, key: &str, default: bool) -> Result<bool, Error> {
        match table.get(key) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(self.error(&format!("{prefix}.{key}"), describe(other), "true or false", format!("write {key} = {default}"))),
        }
    }

    pub(super) fn number(&self, table: &Table, prefix: &str, key: &str) -> Result<Option<f64>, Error> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::Float(x)) if x.is_finite() && *x >= 0.0 => Ok(Some(*x)),
            Some(Value::Integer(i)) if *i >= 0 => Ok(Some(*i as f64)),
            Some(other) => Err(self.error(&format!("{prefix}.{key}"), describe(other), "a number >= 0", format!("write {key} = 0.1"))),
        }
    }

    pub(super) fn strings(&self, table: &Table, prefix: &str, key: &str) -> Result<Vec<String>, Error> {
        let Some(value) = table.get(key) else { return Ok(Vec::new()) };
        let bad = || self.error(&format!("{prefix}.{key}"), describe(value), "an array of strings", format!("write {key} = [\"...\"]"));
        let array = value.as_array().ok_or_else(bad)?;
        array.iter().map(|item| item.as_str().map(str::to_string).ok_or_else(bad)).collect()
    }
}

pub(super) fn describe(value: &Value) -> String {
    let kind = match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    };
    let text = value.to_string();
    if text.len() > 60 {
        kind.to_string()
    } else {
        format!("{text} ({kind})")
    }
}
