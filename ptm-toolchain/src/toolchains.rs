//! The torch releases ptm converts with, and what each can make: the table in
//! `toolchains/toolchains.json`, measured by `tools/toolchains` (docs/compatibility.md
//! has its latest run).
//!
//! A torch release pairs with one ExecuTorch release for `.pte` files, and some torch
//! wheels cannot make `.ptl` files at all (their `optimize_for_mobile` fails). Inside
//! the table a conversion needs no flag; outside it, [`check`] names the torch found,
//! what it cannot make and why, and the release that can. `PTM_ALLOW_UNTESTED_TORCH=1`
//! is the explicit way past.

use crate::env;
use crate::error::{Error, Tool};
use crate::python::{Interpreter, Torch};
use crate::vars::{PTM_ALLOW_UNTESTED_TORCH, PTM_PYTHON_PTE, PTM_PYTHON_PTL};
use ptm_report::Format;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The table's text, as the crate ships it.
pub const TABLE_JSON: &str = include_str!("../toolchains/toolchains.json");

/// Every validated toolchain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// What the file says of itself.
    pub about: String,
    /// The series of the toolchain ptm's own checkout installs (`tools/setup`).
    pub default: String,
    /// One per torch series, oldest first.
    pub toolchains: Vec<Toolchain>,
    /// Newer torch series that no ExecuTorch release pairs with yet, and why.
    #[serde(default)]
    pub unpaired: BTreeMap<String, String>,
}

/// One torch release and what converts beside it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toolchain {
    /// `major.minor`: every patch release of it is accepted.
    pub series: String,
    /// The release measured.
    pub torch: String,
    /// The ExecuTorch release that exports `.pte` files with it, if any.
    pub executorch: Option<String>,
    /// The torchao that ExecuTorch release pins (its PT2E quantization).
    pub torchao: Option<String>,
    /// The torchvision built for this torch (tools/compat's models).
    pub torchvision: String,
    /// Formats this torch cannot make, each with the measured reason.
    #[serde(default)]
    pub cannot: BTreeMap<Format, String>,
}

impl Toolchain {
    /// Why this toolchain cannot make `format`, or `None` when it can.
    pub fn cannot_make(&self, format: Format) -> Option<String> {
        if let Some(why) = self.cannot.get(&format) {
            return Some(why.clone());
        }
        match (format, &self.executorch) {
            (Format::Pte, None) => Some("no ExecuTorch release pairs with it".into()),
            _ => None,
        }
    }

    /// `torch 2.14.0 + executorch 1.5.1`, or the torch alone.
    pub fn describe(&self) -> String {
        match &self.executorch {
            Some(executorch) => format!("torch {} + executorch {executorch}", self.torch),
            None => format!("torch {}", self.torch),
        }
    }

    /// What makes `format` files: the pair for a `.pte`, the torch alone for a `.ptl`.
    pub fn describe_for(&self, format: Format) -> String {
        match format {
            Format::Pte => self.describe(),
            Format::Ptl => format!("torch {}", self.torch),
        }
    }
}

impl Table {
    /// The table ptm was built with.
    pub fn get() -> &'static Table {
        static TABLE: OnceLock<Table> = OnceLock::new();
        TABLE.get_or_init(|| serde_json::from_str(TABLE_JSON).expect("toolchains.json parses (a unit test reads it)"))
    }

    /// The toolchain of `torch_version`'s series (`2.14.1+cu130` is 2.14's).
    pub fn find(&self, torch_version: &str) -> Option<&Toolchain> {
        let series = series(torch_version);
        self.toolchains.iter().find(|t| t.series == series)
    }

    /// The newest toolchain that makes `format`.
    pub fn newest_for(&self, format: Format) -> Option<&Toolchain> {
        self.toolchains.iter().rev().find(|t| t.cannot_make(format).is_none())
    }

    /// The toolchain `tools/setup` installs.
    pub fn default_toolchain(&self) -> &Toolchain {
        self.toolchains.iter().find(|t| t.series == self.default).expect("the default names a toolchain (a unit test checks)")
    }
}

/// `2.14` of `2.14.1+cu130`.
pub fn series(version: &str) -> String {
    let release = version.split('+').next().unwrap_or(version);
    release.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The release without its build tag: `1.5.1` of `1.5.1+cpu`.
fn release(version: &str) -> &str {
    version.split('+').next().unwrap_or(version)
}

/// The variable that picks an interpreter for `format`'s models alone.
pub fn python_variable(format: Format) -> &'static str {
    match format {
        Format::Ptl => PTM_PYTHON_PTL,
        Format::Pte => PTM_PYTHON_PTE,
    }
}

/// Refuses to convert `formats` with `python`'s torch (and ExecuTorch) unless the table
/// says the pair makes them, or `PTM_ALLOW_UNTESTED_TORCH=1`.
pub fn check(python: &Interpreter, torch: &Torch, formats: &[Format]) -> Result<(), Error> {
    if env::flag(PTM_ALLOW_UNTESTED_TORCH) {
        return Ok(());
    }
    check_against(Table::get(), python, torch, formats)
}

fn check_against(table: &Table, python: &Interpreter, torch: &Torch, formats: &[Format]) -> Result<(), Error> {
    let mut problems = Vec::new();
    let mut remedies = Vec::new();
    let found = table.find(&torch.version);
    for &format in formats {
        let problem = match found {
            None => Some(outside_the_table(table, &torch.version, format)),
            Some(toolchain) => match toolchain.cannot_make(format) {
                Some(why) => Some(format!("torch {} cannot make .{format} files: {why}; {}", torch.version, makers(table, format))),
                None => wrong_executorch(toolchain, torch, format),
            },
        };
        let Some(problem) = problem else { continue };
        problems.push(problem);
        let newest = table.newest_for(format);
        if let (Some(toolchain), Some(wanted)) = (found, &toolchain_executorch(found, format)) {
            if toolchain.cannot_make(format).is_none() {
                remedies.push(format!("{} -m pip install executorch=={wanted}", python.path.display()));
            }
        }
        if let Some(newest) = newest {
            remedies.push(format!(
                "convert the .{format} models in an environment with {}: set {} (or PTM_PYTHON) to its python",
                newest.describe_for(format),
                python_variable(format)
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    remedies.push(format!("set {PTM_ALLOW_UNTESTED_TORCH}=1 to convert with torch {} anyway", torch.version));
    Err(Error::Unusable { tool: Tool::Python, problem: format!("{} (chosen by {}): {}", python.path.display(), python.origin, problems.join("; ")), remedies })
}

fn toolchain_executorch(found: Option<&Toolchain>, format: Format) -> Option<String> {
    (format == Format::Pte).then(|| found.and_then(|t| t.executorch.clone())).flatten()
}

/// `.ptl files need torch 2.11.0 or 2.12.1`.
fn makers(table: &Table, format: Format) -> String {
    let makers: Vec<String> = table.toolchains.iter().filter(|t| t.cannot_make(format).is_none()).map(|t| t.describe_for(format)).collect();
    format!(".{format} files need {}", makers.join(" or "))
}

/// The problem of a torch the table has no row for.
fn outside_the_table(table: &Table, version: &str, format: Format) -> String {
    let series = series(version);
    let newest = table.newest_for(format).map(|t| t.describe_for(format)).unwrap_or_else(|| "none".into());
    match table.unpaired.get(&series) {
        Some(why) if format == Format::Pte => format!("torch {version}: {why}; the newest validated pair is {newest}"),
        _ => format!("torch {version} is not validated for .{format} files: {}", makers(table, format)),
    }
}

/// The problem of a `.pte` conversion whose ExecuTorch is missing or another release
/// than the one paired with its torch.
fn wrong_executorch(toolchain: &Toolchain, torch: &Torch, format: Format) -> Option<String> {
    let wanted = toolchain.executorch.as_deref().filter(|_| format == Format::Pte)?;
    match torch.executorch.as_deref() {
        None => Some(format!("torch {} has no executorch beside it: .pte files need executorch {wanted}", torch.version)),
        Some(found) if release(found) != wanted => {
            Some(format!("torch {} with executorch {found}: the validated pair is {}", torch.version, toolchain.describe()))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn python() -> Interpreter {
        Interpreter { path: PathBuf::from("/venv/bin/python"), origin: "PTM_PYTHON_PTE".into(), from_path: false }
    }

    fn torch(version: &str, executorch: Option<&str>) -> Torch {
        Torch {
            version: version.into(),
            dir: PathBuf::from("/t"),
            cxx11_abi: true,
            version_file: PathBuf::new(),
            executorch: executorch.map(String::from),
            site_packages: PathBuf::new(),
        }
    }

    fn refusal(torch: &Torch, formats: &[Format]) -> String {
        check_against(Table::get(), &python(), torch, formats).expect_err("refused").to_string()
    }

    #[test]
    fn the_table_parses_and_its_default_is_a_row_that_makes_both_formats() {
        let table = Table::get();
        let default = table.default_toolchain();
        assert!(default.cannot_make(Format::Ptl).is_none() && default.cannot_make(Format::Pte).is_none(), "{default:?}");
        let mut series: Vec<&str> = table.toolchains.iter().map(|t| t.series.as_str()).collect();
        let listed = series.clone();
        series.sort_by_key(|s| s.split('.').map(|p| p.parse::<u32>().unwrap()).collect::<Vec<_>>());
        assert_eq!(series, listed, "oldest first");
        for t in &table.toolchains {
            assert_eq!(super::series(&t.torch), t.series, "{t:?}");
        }
    }

    #[test]
    fn each_validated_pair_passes_for_what_it_makes() {
        for t in &Table::get().toolchains {
            let formats: Vec<Format> = [Format::Ptl, Format::Pte].into_iter().filter(|f| t.cannot_make(*f).is_none()).collect();
            let found = torch(&format!("{}+cu130", t.torch), t.executorch.as_deref().map(|e| format!("{e}+cpu")).as_deref());
            check_against(Table::get(), &python(), &found, &formats).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn a_torch_without_an_executorch_release_names_the_newest_pair() {
        let text = refusal(&torch("2.15.0", None), &[Format::Pte]);
        let newest = Table::get().newest_for(Format::Pte).unwrap().describe();
        assert!(text.contains("torch 2.15.0: no ExecuTorch release pairs with it yet; the newest validated pair is"), "{text}");
        assert!(text.contains(&newest) && text.contains("PTM_PYTHON_PTE") && text.contains("PTM_ALLOW_UNTESTED_TORCH=1"), "{text}");
    }

    #[test]
    fn a_torch_that_cannot_make_ptl_says_why_and_which_can() {
        let table = Table::get();
        let no_ptl =
            table.toolchains.iter().find(|t| t.cannot_make(Format::Ptl).is_some() && t.cannot_make(Format::Pte).is_none()).expect("a .pte-only toolchain");
        let text = refusal(&torch(&no_ptl.torch, no_ptl.executorch.as_deref()), &[Format::Ptl, Format::Pte]);
        assert!(text.contains(&format!("torch {} cannot make .ptl files: {}", no_ptl.torch, no_ptl.cannot[&Format::Ptl])), "{text}");
        let newest = table.newest_for(Format::Ptl).unwrap();
        assert!(text.contains(&format!(".ptl files need torch {}", table.toolchains[0].torch)), "{text}");
        assert!(text.contains(&format!("an environment with torch {}: set PTM_PYTHON_PTL", newest.torch)), "{text}");
        // The .pte half of the same environment is fine, so it is not mentioned.
        assert!(!text.contains(".pte files"), "{text}");
    }

    #[test]
    fn a_pte_conversion_needs_the_paired_executorch() {
        let t = Table::get().newest_for(Format::Pte).unwrap();
        let text = refusal(&torch(&t.torch, None), &[Format::Pte]);
        assert!(text.contains("has no executorch beside it") && text.contains("pip install executorch=="), "{text}");
        let text = refusal(&torch(&t.torch, Some("0.9.0")), &[Format::Pte]);
        assert!(text.contains("with executorch 0.9.0: the validated pair is") && text.contains(&t.describe()), "{text}");
        // A .ptl conversion does not care.
        if t.cannot_make(Format::Ptl).is_none() {
            assert!(check_against(Table::get(), &python(), &torch(&t.torch, None), &[Format::Ptl]).is_ok());
        }
    }

    #[test]
    fn an_old_torch_lists_the_validated_ones() {
        let text = refusal(&torch("2.4.1", None), &[Format::Ptl]);
        assert!(text.contains("torch 2.4.1 is not validated for .ptl files: .ptl files need torch 2.11.0"), "{text}");
    }

    #[test]
    fn series_ignores_patch_and_build_tag() {
        assert_eq!(series("2.14.1+cu130"), "2.14");
        assert_eq!(series("2.11.0"), "2.11");
    }
}
