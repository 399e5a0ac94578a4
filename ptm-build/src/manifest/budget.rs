//! A model's `budget` table: the figures past which its build fails. Not part of the
//! cache key: a new budget judges the same artifact again, without converting it.

use super::ctx::Ctx;
use super::values::describe;
use crate::error::Error;
use ptm_report::{Budget, Format};
use std::collections::BTreeMap;
use toml::{Table, Value};

const BUDGET_KEYS: &[&str] = &["max_bytes", "max_memory", "min_top1", "max_drift"];
/// Units a size may be written in, as bytes per unit (decimal and binary, as people write them).
const UNITS: &[(&str, u64)] =
    &[("B", 1), ("kB", 1_000), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)];

impl Ctx<'_> {
    /// The model's budget: its own `budget` table, then each applying target table's
    /// `budget`, key by key.
    /// Returns it with the table each limit came from.
    pub(super) fn budget(
        &self,
        table: &Table,
        prefix: &str,
        overrides: &[(String, &Table)],
        format: Format,
    ) -> Result<(Budget, BTreeMap<&'static str, String>), Error> {
        let mut budget = Budget::default();
        let mut tables = BTreeMap::new();
        self.budget_table(table, prefix, &mut budget, &mut tables)?;
        for (override_prefix, values) in overrides {
            self.budget_table(values, override_prefix, &mut budget, &mut tables)?;
        }
        if let (Some(_), Format::Ptl) = (budget.max_memory, format) {
            let key = format!("{}.max_memory", tables.get("max_memory").cloned().unwrap_or_else(|| format!("{prefix}.budget")));
            return Err(self.error(
                &key,
                "a memory budget for a .ptl".into(),
                "max_memory for a .pte only: it is the memory ExecuTorch's plan reserves, which a .ptl does not record (the Lite Interpreter allocates as it runs)",
                "remove max_memory, or ship the model as format = \"pte\"",
            ));
        }
        Ok((budget, tables))
    }

    fn budget_table(&self, table: &Table, prefix: &str, budget: &mut Budget, tables: &mut BTreeMap<&'static str, String>) -> Result<(), Error> {
        let Some(value) = table.get("budget") else { return Ok(()) };
        let key = format!("{prefix}.budget");
        let t = self.table(value, &key, "a table: budget = { max_bytes = \"6 MB\", min_top1 = 0.95 }")?;
        self.check_keys(t, &key, BUDGET_KEYS)?;
        for limit in BUDGET_KEYS {
            if t.contains_key(*limit) {
                tables.insert(limit, key.clone());
            }
        }
        if let Some(bytes) = self.size(t, &key, "max_bytes")? {
            budget.max_bytes = Some(bytes);
        }
        if let Some(bytes) = self.size(t, &key, "max_memory")? {
            budget.max_memory = Some(bytes);
        }
        if let Some(top1) = self.number(t, &key, "min_top1")? {
            if top1 > 1.0 {
                return Err(self.error(&format!("{key}.min_top1"), top1.to_string(), "a share between 0 and 1", "write min_top1 = 0.95"));
            }
            budget.min_top1 = Some(top1);
        }
        if let Some(drift) = self.number(t, &key, "max_drift")? {
            budget.max_drift = Some(drift);
        }
        Ok(())
    }

    /// A size in bytes: an integer, or a string of a number and a unit (`"6 MB"`, `"512 KiB"`).
    fn size(&self, table: &Table, prefix: &str, key: &str) -> Result<Option<u64>, Error> {
        let full = format!("{prefix}.{key}");
        let expected = "a size in bytes: an integer, or a string such as \"6 MB\" or \"512 KiB\" (B, kB, MB, GB, KiB, MiB, GiB)";
        match table.get(key) {
            None => Ok(None),
            Some(Value::Integer(n)) if *n > 0 => Ok(Some(*n as u64)),
            Some(Value::String(text)) => {
                parse_size(text).map(Some).ok_or_else(|| self.error(&full, format!("\"{text}\""), expected, format!("write {key} = \"6 MB\"")))
            }
            Some(other) => Err(self.error(&full, describe(other), expected, format!("write {key} = \"6 MB\""))),
        }
    }
}

/// `"6 MB"` -> 6_000_000; `"1.5 MiB"` -> 1_572_864; None for anything else, zero included.
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (text[..split].trim(), text[split..].trim());
    let number: f64 = number.parse().ok().filter(|n: &f64| n.is_finite() && *n > 0.0)?;
    let per_unit = if unit.is_empty() { 1 } else { UNITS.iter().find(|(name, _)| *name == unit)?.1 };
    let bytes = (number * per_unit as f64).round();
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_read_with_their_units() {
        assert_eq!(parse_size("6 MB"), Some(6_000_000));
        assert_eq!(parse_size("6MB"), Some(6_000_000));
        assert_eq!(parse_size("1.5 MiB"), Some(1_572_864));
        assert_eq!(parse_size("512 KiB"), Some(524_288));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12 kB"), Some(12_000));
        for bad in ["", "MB", "6 mb", "6 MBs", "-1 MB", "0 MB", "1e3 MB", "six MB", "1.2.3 MB", "99999999999999999999 GiB"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
