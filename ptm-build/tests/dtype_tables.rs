//! The element type codes crossing every boundary, read from each source that numbers
//! them: the runtime's `ptm::DType`, the Lite Interpreter's shim, ExecuTorch's shim and
//! the worker. One table in five places, so they are checked against each other here.

use std::path::Path;

fn source(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The name ptm gives a C++ scalar type (c10's and ExecuTorch's share the names).
fn ptm_name(scalar_type: &str) -> &'static str {
    match scalar_type {
        "Float" => "float32",
        "Double" => "float64",
        "Long" => "int64",
        "Int" => "int32",
        "Short" => "int16",
        "Char" => "int8",
        "Byte" => "uint8",
        "Bool" => "bool",
        "Half" => "float16",
        other => panic!("a scalar type ptm has no name for: {other}"),
    }
}

/// `case N: ... ScalarType::Name` lines: code to type.
fn codes_to_types(text: &str) -> Vec<(i32, &'static str)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let code = line.strip_prefix("case ")?.split(':').next()?.trim().parse::<i32>().ok()?;
            let name = line.split("ScalarType::").nth(1)?.split(|c: char| !c.is_alphanumeric()).next()?;
            Some((code, ptm_name(name)))
        })
        .collect()
}

/// `case ...ScalarType::Name: return N;` lines: type to code.
fn types_to_codes(text: &str) -> Vec<(i32, &'static str)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let name = line.strip_prefix("case ")?.split("ScalarType::").nth(1)?.split(':').next()?;
            let code = line.split("return ").nth(1)?.trim_end_matches(';').trim().parse::<i32>().ok()?;
            Some((code, ptm_name(name)))
        })
        .collect()
}

/// The runtime's table: `DType::from_code`'s order and `DType::name`.
fn rust_table() -> Vec<(i32, &'static str)> {
    let text = source("ptm/src/dtype.rs");
    let order = text.split("[Float32, Float64").nth(1).map(|rest| format!("[Float32, Float64{}", rest.split(']').next().unwrap())).unwrap();
    let variants: Vec<&str> = order.trim_matches(|c| c == '[' || c == ']').split(',').map(str::trim).collect();
    variants
        .iter()
        .enumerate()
        .map(|(code, variant)| {
            let arm = format!("DType::{variant} => \"");
            let name = text.split(&arm).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_else(|| panic!("no name for {variant}"));
            let name: &'static str = Box::leak(name.to_string().into_boxed_str());
            (code as i32, name)
        })
        .collect()
}

fn worker_table() -> Vec<(i32, &'static str)> {
    let text = source("ptm-build/python/ptm_convert/common.py");
    let list = text.split("DTYPE_CODES = [").nth(1).unwrap().split(']').next().unwrap();
    list.split(',').enumerate().map(|(code, name)| (code as i32, &*Box::leak(name.trim().trim_matches('"').to_string().into_boxed_str()))).collect()
}

#[test]
fn every_boundary_numbers_element_types_the_same_way() {
    let rust = rust_table();
    assert_eq!(rust.len(), 9, "{rust:?}");
    let lite = source("ptm/shim/ptm_shim.cpp");
    let executorch = source("ptm-toolchain/executorch/ptm_executorch.cpp");
    for (what, mut table) in [
        ("the Lite Interpreter shim's codes to types", codes_to_types(&lite)),
        ("the Lite Interpreter shim's types to codes", types_to_codes(&lite)),
        ("ExecuTorch's shim's codes to types", codes_to_types(&executorch)),
        ("ExecuTorch's shim's types to codes", types_to_codes(&executorch)),
        ("the worker's DTYPE_CODES", worker_table()),
    ] {
        table.sort();
        assert_eq!(table, rust, "{what} differ from ptm::DType");
    }
}
