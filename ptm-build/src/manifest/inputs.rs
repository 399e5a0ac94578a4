//! `[[...inputs]]`: names, element types, shapes with their dynamic dimensions, and
//! value ranges, each checked against what the build can allocate and represent.

use super::ctx::{is_identifier, snake_case, Ctx, INPUT_KEYS};
use super::decl::{InputDecl, DTYPES};
use super::suggest::closest;
use super::values::describe;
use crate::error::Error;
use ptm_report::Dim;
use toml::{Table, Value};

impl Ctx<'_> {
    pub(super) fn inputs(&self, table: &Table, prefix: &str) -> Result<Vec<InputDecl>, Error> {
        let key = format!("{prefix}.inputs");
        let example = format!("add, per forward() argument:\n            [[{prefix}.inputs]]\n            name = \"x\"\n            dtype = \"float32\"\n            shape = [1, 3, 224, 224]");
        let Some(value) = table.get("inputs") else {
            return Err(self.missing(
                &key,
                "one [[...inputs]] table per forward() argument: the build makes example inputs from them to export, check and type the model",
                &example,
            ));
        };
        let Some(array) = value.as_array().filter(|a| !a.is_empty()) else {
            return Err(self.error(&key, describe(value), "a non-empty array of tables ([[...inputs]])", &example));
        };
        let mut inputs: Vec<InputDecl> = Vec::new();
        for (index, item) in array.iter().enumerate() {
            let prefix = format!("{key}[{index}]");
            let input = self.table(item, &prefix, "a table with name, dtype and shape")?;
            self.check_keys(input, &prefix, INPUT_KEYS)?;
            let name =
                self.string(input, &prefix, "name")?.ok_or_else(|| self.missing(&format!("{prefix}.name"), "the argument's name", "add name = \"x\""))?;
            if !is_identifier(name) {
                return Err(self.error(
                    &format!("{prefix}.name"),
                    format!("\"{name}\""),
                    "a snake_case Rust identifier",
                    format!("write name = \"{}\"", snake_case(name)),
                ));
            }
            if inputs.iter().any(|other| other.name == name) {
                return Err(self.error(
                    &format!("{prefix}.name"),
                    format!("\"{name}\" a second time"),
                    "a different name for every input",
                    "rename one of the inputs",
                ));
            }
            let dtype_key = format!("{prefix}.dtype");
            let dtype = self.string(input, &prefix, "dtype")?.ok_or_else(|| self.missing(&dtype_key, "an element type", "add dtype = \"float32\""))?;
            if !DTYPES.contains(&dtype) {
                let fix = closest(dtype, DTYPES).map_or_else(|| "write dtype = \"float32\"".to_string(), |near| format!("write dtype = \"{near}\""));
                return Err(self.error(&dtype_key, format!("\"{dtype}\""), format!("one of: {}", DTYPES.join(", ")), fix));
            }
            let shape = self.shape(input, &prefix, dtype)?;
            let range = self.range(input, &prefix, dtype)?;
            inputs.push(InputDecl { name: name.to_string(), dtype: dtype.to_string(), shape, range });
        }
        self.share_ranges(&key, &mut inputs)?;
        self.check_example_bytes(&key, &inputs)?;
        Ok(inputs)
    }

    /// The build holds `EXAMPLE_SAMPLES` samples of every input at once, so the bound is on
    /// all of them together, not on one input: a large input fails here, naming every
    /// input's size, rather than in torch's allocator.
    fn check_example_bytes(&self, key: &str, inputs: &[InputDecl]) -> Result<(), Error> {
        // Each input fits in u64 (shape() checked); their sum times the samples may not.
        let bytes: Vec<u128> = inputs.iter().map(|i| u128::from(input_bytes(&i.dtype, &i.shape).unwrap_or(u64::MAX))).collect();
        let total = bytes.iter().sum::<u128>() * u128::from(EXAMPLE_SAMPLES);
        if total <= u128::from(MAX_EXAMPLE_BYTES) {
            return Ok(());
        }
        let largest = (0..inputs.len()).max_by_key(|&index| bytes[index]).unwrap_or(0);
        let listed = inputs.iter().zip(&bytes).map(|(input, bytes)| format!("`{}` {} {}", input.name, input.dtype, size(*bytes))).collect::<Vec<_>>();
        Err(self.error(
            &format!("{key}[{largest}].shape"),
            format!("inputs of {} per sample at the example sizes ({}), {} for the {EXAMPLE_SAMPLES} samples the build holds", size(bytes.iter().sum::<u128>()), listed.join(", "), size(total)),
            format!(
                "example inputs of at most {} in all: the build generates {EXAMPLE_SAMPLES} samples of every input to export, quantize and verify the model, and holds them at once",
                size(MAX_EXAMPLE_BYTES)
            ),
            SHRINK,
        ))
    }

    pub(super) fn shape(&self, input: &Table, prefix: &str, dtype: &str) -> Result<Vec<Dim>, Error> {
        let key = format!("{prefix}.shape");
        let expected = "an array of sizes: a positive integer, or \"<name>=<example size>\" for a size known only at run time, optionally with the sizes it may take: \"<name>=<example size>:<min>..<max>\", or only the multiples of a step among them: \"<name>=<example size>:<min>..<max> step <n>\"";
        let value = input.get("shape").ok_or_else(|| self.missing(&key, expected, "add shape = [1, 3, 224, 224]"))?;
        let array = value.as_array().ok_or_else(|| self.error(&key, describe(value), expected, "write shape = [1, 128]"))?;
        let shape = array
            .iter()
            .map(|dim| match dim {
                Value::Integer(n) if *n > 0 => Ok(Dim::Fixed(*n as u64)),
                Value::String(s) => self.dynamic_dim(&key, s, expected),
                other => Err(self.error(&key, describe(other), expected, "use positive integers, e.g. shape = [1, 128]")),
            })
            .collect::<Result<Vec<Dim>, Error>>()?;
        if input_bytes(dtype, &shape).is_none() {
            return Err(self.error(
                &key,
                format!("{} (more than 2^64 bytes of {dtype} at the example sizes)", describe(value)),
                format!("example inputs of at most {} in all", size(MAX_EXAMPLE_BYTES)),
                SHRINK,
            ));
        }
        Ok(shape)
    }

    /// `"<name>=<example>"` or `"<name>=<example>:<min>..<max>"`, the bounds inclusive,
    /// optionally followed by ` step <n>`.
    fn dynamic_dim(&self, key: &str, text: &str, expected: &str) -> Result<Dim, Error> {
        let found = format!("\"{text}\"");
        let shown_name = text.split('=').next().map(str::trim).filter(|n| is_identifier(n)).unwrap_or("tokens");
        let (name, rest) = text.split_once('=').map(|(n, r)| (n.trim(), r.trim())).unwrap_or((text.trim(), ""));
        let (example, range) = match rest.split_once(':') {
            Some((example, range)) => (example.trim(), Some(range.trim())),
            None => (rest, None),
        };
        let example = match example.parse::<u64>() {
            Ok(example) if example > 0 && is_identifier(name) => example,
            _ => return Err(self.error(key, found, expected, format!("write \"{shown_name}=<size used at build time>\", e.g. \"{shown_name}=128\""))),
        };
        let Some(range) = range else { return Ok(Dim::dynamic(name, example)) };
        let (range, step) = match range.split_once("step") {
            Some((range, step)) => (range.trim(), Some(step.trim())),
            None => (range, None),
        };
        let step = match step.map(str::parse::<u64>) {
            None => None,
            Some(Ok(step)) if step >= 1 => Some(step),
            Some(_) => {
                return Err(self.error(
                    key,
                    found,
                    "a step of at least 1 after the range: \"<name>=<example>:<min>..<max> step <n>\"",
                    format!("write \"{name}={example}:{example}..{} step {example}\"", example * 4),
                ))
            }
        };
        let bounds = range.split_once("..").and_then(|(min, max)| Some((min.trim().parse::<u64>().ok()?, max.trim().parse::<u64>().ok()?)));
        let Some((min, max)) = bounds else {
            return Err(self.error(
                key,
                found,
                "a range written <min>..<max> after the example size, both bounds included: \"<name>=<example>:<min>..<max>\"",
                format!("write \"{name}={example}:1..{}\"", example.max(2) * 4),
            ));
        };
        if min == 0 {
            return Err(self.error(
                key,
                found,
                "a smallest size of at least 1: a dimension of size 0 holds no elements, and torch.export treats sizes 0 and 1 as special cases, so it cannot keep a dimension dynamic from 0",
                format!("write \"{name}={example}:1..{max}\""),
            ));
        }
        if !(min <= example && example <= max) {
            return Err(self.error(
                key,
                found,
                format!(
                    "<min> <= <example> <= <max>: the build runs the model at the example size, so the range must hold it ({example} is not in {min}..{max})"
                ),
                format!("write \"{name}={example}:{}..{}\"", min.min(example), max.max(example)),
            ));
        }
        if let Some(step) = step.filter(|&step| [min, example, max].iter().any(|size| size % step != 0)) {
            let round_up = |size: u64| size.div_ceil(step) * step;
            let (low, high) = (round_up(min), (max / step).max(1) * step);
            return Err(self.error(
                key,
                found,
                format!("<min>, <example> and <max> multiples of the step: the sizes allowed are {min}..{max} in steps of {step}, from the smallest"),
                format!("write \"{name}={}:{low}..{} step {step}\"", round_up(example).clamp(low, high.max(low)), high.max(low)),
            ));
        }
        Ok(Dim::Dynamic { name: name.to_string(), example, min: Some(min), max: Some(max), step })
    }

    /// A dimension name used in several inputs is one size, so it has one range: given in
    /// one input (the others then take it) or repeated identically. Every occurrence ends
    /// up carrying the range, and each occurrence's example must lie in it.
    fn share_ranges(&self, key: &str, inputs: &mut [InputDecl]) -> Result<(), Error> {
        let mut declared: Vec<(String, (u64, u64, u64), String)> = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            for dim in &input.shape {
                let (Dim::Dynamic { name, .. }, Some((low, high))) = (dim, dim.range()) else { continue };
                let range = (low, high, dim.step());
                match declared.iter().find(|(seen, ..)| seen == name) {
                    Some((_, first, at)) if *first != range => {
                        let show = |(low, high, step): (u64, u64, u64)| if step > 1 { format!("{low}..{high} step {step}") } else { format!("{low}..{high}") };
                        return Err(self.error(
                            &format!("{key}[{index}].shape"),
                            format!("`{name}` with the range {} here and {} in `{}`", show(range), show(*first), at),
                            "one range per dimension name: the name is one size shared by every input that uses it",
                            format!(
                                "write the same range in both inputs, or give it once (\"{name}={}:{}..{}\") and the other inputs \"{name}=<example>\" alone",
                                dim.example(),
                                first.0,
                                first.1
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => declared.push((name.clone(), range, input.name.clone())),
                }
            }
        }
        for (index, input) in inputs.iter_mut().enumerate() {
            for dim in &mut input.shape {
                let Dim::Dynamic { name, example, min, max, step } = dim else { continue };
                let Some((_, (low, high, every), at)) = declared.iter().find(|(seen, ..)| seen == name) else { continue };
                if !(low..=high).contains(&&*example) || *example % every != 0 {
                    return Err(self.error(
                        &format!("{key}[{index}].shape"),
                        format!(
                            "\"{name}={example}\", outside the range {low}..{high}{} declared for `{name}` in `{at}`",
                            if *every > 1 { format!(" step {every}") } else { String::new() }
                        ),
                        if *every > 1 {
                            "an example size inside the dimension's range, a multiple of its step"
                        } else {
                            "an example size inside the dimension's range"
                        },
                        format!("write \"{name}={}\"", ((*example).clamp(*low, *high) / every * every).max(*low)),
                    ));
                }
                (*min, *max) = (Some(*low), Some(*high));
                *step = (*every > 1).then_some(*every);
            }
        }
        Ok(())
    }

    pub(super) fn range(&self, input: &Table, prefix: &str, dtype: &str) -> Result<Option<[f64; 2]>, Error> {
        let key = format!("{prefix}.range");
        let Some(value) = input.get("range") else { return Ok(None) };
        let numbers: Option<Vec<f64>> = value.as_array().map(|a| a.iter().filter_map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64))).collect());
        let [low, high] = match numbers.as_deref() {
            Some([low, high]) if low < high && value.as_array().map(Vec::len) == Some(2) => [*low, *high],
            _ => {
                return Err(self.error(
                    &key,
                    describe(value),
                    "[low, high] with low < high: generated values lie in [low, high)",
                    "write range = [0, 30522] (token ids below the vocabulary size)",
                ))
            }
        };
        if dtype == "bool" {
            return Err(self.error(&key, describe(value), "no range: a bool input takes false and true", "remove `range`"));
        }
        if let Some((min, max)) = integer_limits(dtype) {
            // Generated values are the integers in [ceil(low), ceil(high)).
            let (first, end) = (low.ceil(), high.ceil());
            if first >= end {
                return Err(self.error(
                    &key,
                    describe(value),
                    format!("a range holding at least one integer, for {dtype}: values are drawn from [low, high)"),
                    format!("write range = [{}, {}]", low.floor(), low.floor() + 1.0),
                ));
            }
            if first < min || end - 1.0 > max {
                return Err(self.error(
                    &key,
                    describe(value),
                    format!("values {dtype} can hold, from {min} to {max}"),
                    format!("write range = [{}, {}]", first.max(min), (end - 1.0).min(max) + 1.0),
                ));
            }
        }
        Ok(Some([low, high]))
    }
}

/// The most the example inputs of one model may take together, all samples counted: a
/// model whose inputs are larger than a phone can spare is declared at the wrong size,
/// and the build's own copies (outputs, stages) come on top.
const MAX_EXAMPLE_BYTES: u64 = 2 << 30;

/// How many samples of every input the build generates: `EXAMPLE_SAMPLES` in
/// python/ptm_convert/inputs.py.
const EXAMPLE_SAMPLES: u64 = 8;

const SHRINK: &str =
    "declare the sizes the model really takes; a size known only at run time is written \"<name>=<example size>\" with a small example, e.g. \"tokens=128\"";

/// The bytes of one sample of an input at its example sizes; None past u64.
fn input_bytes(dtype: &str, shape: &[Dim]) -> Option<u64> {
    shape.iter().try_fold(dtype_bytes(dtype), |total, dim| total.checked_mul(dim.example()))
}

/// `bytes` for a person: `16 bytes`, `3.0 MiB`, `2.5 GiB`.
fn size(bytes: impl Into<u128>) -> String {
    let bytes = bytes.into();
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..0x10_0000 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        0x10_0000..0x4000_0000 => format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20)),
        _ => format!("{:.1} GiB", bytes as f64 / f64::from(1 << 30)),
    }
}

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "float64" | "int64" => 8,
        "float32" | "int32" => 4,
        "float16" | "int16" => 2,
        _ => 1,
    }
}

/// The smallest and largest value of an integer element type.
fn integer_limits(dtype: &str) -> Option<(f64, f64)> {
    match dtype {
        "int64" => Some((i64::MIN as f64, i64::MAX as f64)),
        "int32" => Some((i32::MIN as f64, i32::MAX as f64)),
        "int16" => Some((i16::MIN as f64, i16::MAX as f64)),
        "int8" => Some((i8::MIN as f64, i8::MAX as f64)),
        "uint8" => Some((0.0, 255.0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_count_is_the_workers() {
        assert!(include_str!("../../python/ptm_convert/inputs.py").contains(&format!("\nEXAMPLE_SAMPLES = {EXAMPLE_SAMPLES}\n")));
    }

    #[test]
    fn sizes_read_as_a_person_writes_them() {
        assert_eq!(size(16u64), "16 bytes");
        assert_eq!(size(3u64 << 20), "3.0 MiB");
        assert_eq!(size(5u64 << 29), "2.5 GiB");
    }
}
