//! A model's self-check: the samples the build verified it on, run again in this
//! process's runtime (on the device, say) and compared with the source model's outputs
//! as the build recorded them, each output held to the tolerance the build held it to.
//!
//! The reference data is what ptm-build wrote beside the artifact (`<name>.reference`;
//! its layout is described in ptm-build's `ptm_convert/reference.py`). Reading it is
//! bounded by its length: a damaged or foreign file is an error, never a panic or a
//! huge allocation.

use crate::tensor::MAX_RANK;
use crate::{DType, Error, ErrorKind, Input, Output};
use std::fmt;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"PTMREF01";

/// What a self-check measured: per output, the figures the build's verification
/// reports, over the reference samples, in this runtime.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SelfCheck {
    /// The model's name.
    pub model: String,
    /// Samples every figure counts.
    pub samples: usize,
    /// Further samples that count for top-1 agreement alone.
    pub top1_samples: usize,
    /// One entry per output, in the model's order.
    pub outputs: Vec<OutputCheck>,
    /// The median time of one forward call over the samples.
    pub forward: Duration,
}

/// One output's figures in a [`SelfCheck`], and the tolerance they are held to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OutputCheck {
    /// The output's name.
    pub name: String,
    /// The largest absolute difference from the source model's values.
    pub max_abs: f64,
    /// The largest magnitude among the source model's values.
    pub source_max_abs: f64,
    /// `max_abs / source_max_abs`, for a float output.
    pub relative: Option<f64>,
    /// The relative error allowed (the declaration's `tolerance.relative`).
    pub allowed_relative: f64,
    /// The share of rows whose arg-max agrees, for a classifier-shaped output.
    pub top1: Option<f64>,
    /// The rows `top1` was measured on.
    pub top1_rows: usize,
    /// The top-1 agreement required (or, for an integer output of an INT8 model, the
    /// share of equal elements): `tolerance.top1`, or what the build's runtime reached on
    /// these samples when lower (they are fewer than the build verified).
    pub allowed_top1: f64,
    /// Elements that differ, for an integer or bool output.
    pub mismatched: Option<u64>,
    /// Elements compared.
    pub elements: u64,
    /// Why the output fails the check; `None` when it passes.
    pub problem: Option<String>,
}

impl SelfCheck {
    /// Whether every output is within its tolerance.
    pub fn passed(&self) -> bool {
        self.outputs.iter().all(|o| o.problem.is_none())
    }

    /// The largest relative error of any float output.
    pub fn worst_relative(&self) -> Option<f64> {
        self.outputs.iter().filter_map(|o| o.relative).reduce(f64::max)
    }

    /// The lowest top-1 agreement of any classifier-shaped output.
    pub fn worst_top1(&self) -> Option<f64> {
        self.outputs.iter().filter_map(|o| o.top1).reduce(f64::min)
    }
}

impl fmt::Display for OutputCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: ", self.name)?;
        match (self.mismatched, self.relative) {
            (Some(mismatched), _) => write!(f, "{mismatched} of {} elements differ", self.elements)?,
            (None, relative) => write!(
                f,
                "relative {:.3e} (allowed {:.3e}), max abs {:.3e}, source values up to {:.3e}",
                relative.unwrap_or(0.0),
                self.allowed_relative,
                self.max_abs,
                self.source_max_abs
            )?,
        }
        if let Some(top1) = self.top1 {
            write!(f, ", top-1 {top1:.3} over {} rows (required {:.3})", self.top1_rows, self.allowed_top1)?;
        }
        match &self.problem {
            Some(problem) => write!(f, ": FAILS, {problem}"),
            None => write!(f, ": ok"),
        }
    }
}

impl fmt::Display for SelfCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let top1 = if self.top1_samples > 0 { format!(" (+{} for top-1)", self.top1_samples) } else { String::new() };
        write!(f, "model `{}`, {} samples{top1}, forward {:.3} ms (median)", self.model, self.samples, self.forward.as_secs_f64() * 1e3)?;
        for output in &self.outputs {
            write!(f, "\n  {output}")?;
        }
        Ok(())
    }
}

/// Runs the reference samples through `run` and compares each output with the
/// recorded one. `key` is the key the loaded file names, when it names one: reference
/// data of another build is refused.
pub(crate) fn check(
    model: &str,
    key: Option<&str>,
    reference: &[u8],
    mut run: impl FnMut(&[Input<'_>]) -> Result<Vec<Output>, Error>,
) -> Result<SelfCheck, Error> {
    let what = format!("the self-check reference data of model `{model}`");
    let reference = Reference::parse(reference).map_err(|problem| ErrorKind::Reference { what: what.clone(), problem })?;
    if let Some(key) = key.filter(|k| *k != reference.key) {
        return Err(ErrorKind::Reference {
            what,
            problem: format!(
                "it was recorded for the build with key {}..., and the loaded model is the build with key {}...: ship the reference data the same build wrote beside the model",
                short(&reference.key),
                short(key)
            ),
        }
        .into());
    }
    let mut totals: Vec<Total> = reference.outputs.iter().map(|(name, _)| Total::new(name)).collect();
    let mut times = Vec::with_capacity(reference.samples.len());
    for (index, (sample, expected)) in reference.samples.iter().zip(&reference.expected).enumerate() {
        let inputs = sample.iter().map(Values::input).collect::<Result<Vec<_>, _>>().map_err(|problem| ErrorKind::Reference { what: what.clone(), problem })?;
        let started = Instant::now();
        let produced = run(&inputs)?;
        times.push(started.elapsed());
        if produced.len() != expected.len() || produced.len() != totals.len() {
            return Err(ErrorKind::OutputCount { model: model.into(), expected: expected.len(), found: produced.len() }.into());
        }
        for ((total, want), got) in totals.iter_mut().zip(expected).zip(&produced) {
            total.add(want, got, index < reference.counted);
        }
    }
    times.sort();
    let outputs: Vec<OutputCheck> = totals.into_iter().zip(&reference.outputs).map(|(t, (_, top1))| t.finish(&reference, *top1)).collect();
    let check = SelfCheck {
        model: model.into(),
        samples: reference.counted.min(reference.samples.len()),
        top1_samples: reference.samples.len().saturating_sub(reference.counted),
        outputs,
        forward: times.get(times.len() / 2).copied().unwrap_or_default(),
    };
    if check.passed() {
        Ok(check)
    } else {
        Err(ErrorKind::SelfCheck { check }.into())
    }
}

fn short(key: &str) -> String {
    key.chars().take(12).collect()
}

/// The reference data, read.
#[derive(Debug)]
struct Reference {
    key: String,
    relative: f64,
    quantized: bool,
    /// Each output's name and the top-1 agreement required of it.
    outputs: Vec<(String, f64)>,
    counted: usize,
    samples: Vec<Vec<Values>>,
    expected: Vec<Vec<Values>>,
}

impl Reference {
    fn parse(bytes: &[u8]) -> Result<Reference, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
            return Err("it is not ptm reference data (no PTMREF01 header): pass the `<name>.reference` file the build wrote".into());
        }
        let key = r.text()?;
        let (relative, _declared_top1, quantized) = (r.f64()?, r.f64()?, r.u8()? != 0);
        if !(relative.is_finite() && relative >= 0.0) {
            return Err(format!("its relative tolerance is {relative}"));
        }
        let mut outputs = Vec::new();
        for _ in 0..r.count(12)? {
            let name = r.text()?;
            let top1 = r.f64()?;
            if !(0.0..=1.0).contains(&top1) {
                return Err(format!("the top-1 agreement it requires of output `{name}` is {top1}"));
            }
            outputs.push((name, top1));
        }
        let counted = r.u32()? as usize;
        let samples = r.samples()?;
        let expected = r.samples()?;
        if r.at != bytes.len() {
            return Err(format!("it has {} bytes after its last tensor", bytes.len() - r.at));
        }
        if samples.len() != expected.len() || samples.is_empty() {
            return Err(format!("it holds {} samples and {} sets of outputs", samples.len(), expected.len()));
        }
        if counted == 0 || counted > samples.len() {
            return Err(format!("it counts {counted} of its {} samples for every figure", samples.len()));
        }
        if let Some(bad) = expected.iter().find(|e| e.len() != outputs.len()) {
            return Err(format!("it names {} outputs and records {} for a sample", outputs.len(), bad.len()));
        }
        Ok(Reference { key, relative, quantized, outputs, counted, samples, expected })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or_else(|| format!("it is cut short at byte {}", self.at))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A count of items each at least `least` bytes long: no more than the bytes left
    /// can hold, so a damaged count fails here instead of looping or allocating.
    fn count(&mut self, least: usize) -> Result<usize, String> {
        let count = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if count > left / least {
            return Err(format!("it counts {count} items where {left} bytes are left"));
        }
        Ok(count)
    }

    fn text(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a name in it is not UTF-8".to_string())
    }

    /// A samples section: u32 count; per sample u32 tensors; per tensor i32 dtype, u32
    /// rank, i64 dims, u64 byte length, bytes.
    fn samples(&mut self) -> Result<Vec<Vec<Values>>, String> {
        let mut samples = Vec::new();
        for _ in 0..self.count(4)? {
            let mut tensors = Vec::new();
            // A tensor is at least its element type, rank and byte length.
            for _ in 0..self.count(16)? {
                tensors.push(self.tensor()?);
            }
            samples.push(tensors);
        }
        Ok(samples)
    }

    fn tensor(&mut self) -> Result<Values, String> {
        let code = self.i32()?;
        let dtype = DType::from_code(code).ok_or_else(|| format!("a tensor in it has an element type ptm does not know (code {code})"))?;
        let rank = self.u32()? as usize;
        if rank > MAX_RANK {
            return Err(format!("a tensor in it has {rank} dimensions, ptm supports at most {MAX_RANK}"));
        }
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(usize::try_from(self.i64()?).map_err(|_| "a tensor in it has a negative or oversized dimension".to_string())?);
        }
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or("a tensor in it has more elements than memory can hold")?;
        let length = self.u64()?;
        if elements.checked_mul(dtype.size()).map(|n| n as u64) != Some(length) {
            return Err(format!("a {dtype} tensor of shape {shape:?} in it records {length} bytes"));
        }
        let data = Data::read(dtype, self.take(length as usize)?)?;
        Ok(Values { shape, data })
    }
}

/// One tensor of the reference data, in an aligned buffer of its element type.
#[derive(Debug)]
struct Values {
    shape: Vec<usize>,
    data: Data,
}

#[derive(Debug)]
enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
    /// float16 as bits: no Rust type holds it, so it is compared, never fed.
    F16(Vec<u16>),
}

impl Data {
    fn read(dtype: DType, bytes: &[u8]) -> Result<Data, String> {
        fn each<const N: usize, T>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
            bytes.chunks_exact(N).map(|c| from(c.try_into().unwrap_or([0; N]))).collect()
        }
        Ok(match dtype {
            DType::Float32 => Data::F32(each(bytes, f32::from_le_bytes)),
            DType::Float64 => Data::F64(each(bytes, f64::from_le_bytes)),
            DType::Int64 => Data::I64(each(bytes, i64::from_le_bytes)),
            DType::Int32 => Data::I32(each(bytes, i32::from_le_bytes)),
            DType::Int16 => Data::I16(each(bytes, i16::from_le_bytes)),
            DType::Int8 => Data::I8(each(bytes, i8::from_le_bytes)),
            DType::Uint8 => Data::U8(bytes.to_vec()),
            DType::Float16 => Data::F16(each(bytes, u16::from_le_bytes)),
            DType::Bool => {
                if bytes.iter().any(|&b| b > 1) {
                    return Err("a bool tensor in it holds a value other than 0 and 1".into());
                }
                Data::Bool(bytes.iter().map(|&b| b == 1).collect())
            }
        })
    }

    fn is_exact(&self) -> bool {
        !matches!(self, Data::F32(_) | Data::F64(_) | Data::F16(_))
    }

    /// An integer or bool tensor's values, exactly; `None` for a float one.
    fn to_i64(&self) -> Option<Vec<i64>> {
        Some(match self {
            Data::I64(v) => v.clone(),
            Data::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Data::F32(_) | Data::F64(_) | Data::F16(_) => return None,
        })
    }

    fn to_f64(&self) -> Vec<f64> {
        match self {
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            Data::F16(v) => v.iter().map(|&x| half_to_f64(x)).collect(),
        }
    }
}

impl Values {
    fn input(&self) -> Result<Input<'_>, String> {
        let shape = &self.shape;
        match &self.data {
            Data::F32(v) => Input::new(v, shape),
            Data::F64(v) => Input::new(v, shape),
            Data::I64(v) => Input::new(v, shape),
            Data::I32(v) => Input::new(v, shape),
            Data::I16(v) => Input::new(v, shape),
            Data::I8(v) => Input::new(v, shape),
            Data::U8(v) => Input::new(v, shape),
            Data::Bool(v) => Input::new(v, shape),
            Data::F16(_) => Err("a float16 input cannot be fed from Rust; models take float32 instead".into()),
        }
    }
}

/// IEEE 754 half precision to f64.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// An integer or bool output's values, exactly; `None` for any other.
fn output_integers(output: &Output) -> Option<Vec<i64>> {
    match output.dtype()? {
        DType::Int64 => output.data::<i64>().map(<[i64]>::to_vec),
        DType::Int32 => output.data::<i32>().map(|v| v.iter().map(|&x| i64::from(x)).collect()),
        DType::Int16 => output.data::<i16>().map(|v| v.iter().map(|&x| i64::from(x)).collect()),
        DType::Int8 => output.data::<i8>().map(|v| v.iter().map(|&x| i64::from(x)).collect()),
        DType::Uint8 => output.data::<u8>().map(|v| v.iter().map(|&x| i64::from(x)).collect()),
        DType::Bool => output.data::<bool>().map(|v| v.iter().map(|&x| i64::from(x)).collect()),
        _ => None,
    }
}

/// An output's values as f64, or why they cannot be compared.
fn output_values(output: &Output) -> Result<Vec<f64>, String> {
    let widen = |v: &[f64]| v.to_vec();
    match output.dtype() {
        Some(DType::Float32) => output.data::<f32>().map(|v| v.iter().map(|&x| f64::from(x)).collect()),
        Some(DType::Float64) => output.data::<f64>().map(widen),
        Some(DType::Int64) => output.data::<i64>().map(|v| v.iter().map(|&x| x as f64).collect()),
        Some(DType::Int32) => output.data::<i32>().map(|v| v.iter().map(|&x| f64::from(x)).collect()),
        Some(DType::Int16) => output.data::<i16>().map(|v| v.iter().map(|&x| f64::from(x)).collect()),
        Some(DType::Int8) => output.data::<i8>().map(|v| v.iter().map(|&x| f64::from(x)).collect()),
        Some(DType::Uint8) => output.data::<u8>().map(|v| v.iter().map(|&x| f64::from(x)).collect()),
        Some(DType::Bool) => output.data::<bool>().map(|v| v.iter().map(|&x| f64::from(u8::from(x))).collect()),
        _ => None,
    }
    .ok_or_else(|| {
        format!("the runtime returned it as {}, which ptm cannot compare", output.dtype().map_or_else(|| "an unknown type".into(), |d| d.to_string()))
    })
}

/// One output's running figures over the samples (ptm_convert/compare.py's, in Rust).
struct Total {
    name: String,
    max_abs: f64,
    source_max_abs: f64,
    agree: usize,
    rows: usize,
    mismatched: u64,
    elements: u64,
    exact: bool,
    problem: Option<String>,
}

impl Total {
    fn new(name: &str) -> Total {
        Total { name: name.into(), max_abs: 0.0, source_max_abs: 0.0, agree: 0, rows: 0, mismatched: 0, elements: 0, exact: false, problem: None }
    }

    fn add(&mut self, want: &Values, got: &Output, counted: bool) {
        if self.problem.is_some() {
            return;
        }
        if want.shape != got.shape() {
            self.problem = Some(format!("the runtime returned shape {:?}, the source model {:?}", got.shape(), want.shape));
            return;
        }
        let values = match output_values(got) {
            Ok(values) => values,
            Err(problem) => {
                self.problem = Some(problem);
                return;
            }
        };
        let reference = want.data.to_f64();
        let classifier = !want.data.is_exact() && (1..=2).contains(&want.shape.len()) && want.shape.last().is_some_and(|&n| n > 1);
        if counted {
            for (&r, &o) in reference.iter().zip(&values) {
                let diff = (r - o).abs();
                self.max_abs = self.max_abs.max(if diff.is_nan() { f64::INFINITY } else { diff });
                if r.is_finite() {
                    self.source_max_abs = self.source_max_abs.max(r.abs());
                }
            }
            self.elements += reference.len() as u64;
            if let Some(exact) = want.data.to_i64() {
                self.exact = true;
                // Compared as integers: an f64 holds int64 values beyond 2^53 inexactly.
                self.mismatched += match output_integers(got) {
                    Some(got) => exact.iter().zip(&got).filter(|(r, o)| r != o).count() as u64,
                    None => reference.len() as u64,
                };
            }
        }
        if classifier {
            let width = want.shape.last().copied().unwrap_or(1);
            for (r, o) in reference.chunks(width).zip(values.chunks(width)) {
                self.rows += 1;
                self.agree += usize::from(argmax(r) == argmax(o));
            }
        }
    }

    fn finish(self, reference: &Reference, required_top1: f64) -> OutputCheck {
        let (relative, mismatched) = if self.exact {
            (None, Some(self.mismatched))
        } else if self.source_max_abs > 0.0 {
            (Some(self.max_abs / self.source_max_abs), None)
        } else {
            (Some(if self.max_abs == 0.0 { 0.0 } else { f64::INFINITY }), None)
        };
        let top1 = (self.rows > 0).then(|| self.agree as f64 / self.rows as f64);
        let problem = self.problem.or_else(|| match (mismatched, relative, top1) {
            (Some(0), ..) => None,
            (Some(n), ..) if !reference.quantized => {
                Some(format!("{n} of {} elements differ; integer and bool outputs of a float model must match exactly", self.elements))
            }
            (Some(n), ..) => {
                let share = 1.0 - n as f64 / self.elements.max(1) as f64;
                (share < required_top1).then(|| format!("{n} of {} elements differ (agreement {share:.3}, required {required_top1:.3})", self.elements))
            }
            (None, Some(r), _) if r > reference.relative => Some(format!(
                "relative error {r:.4} (allowed {:.4}), max abs {:.4}, source values up to {:.4}",
                reference.relative, self.max_abs, self.source_max_abs
            )),
            (None, _, Some(t)) if t < required_top1 => Some(format!("top-1 agreement {t:.3} over {} rows (required {required_top1:.3})", self.rows)),
            _ => None,
        });
        OutputCheck {
            name: self.name,
            max_abs: self.max_abs,
            source_max_abs: self.source_max_abs,
            relative,
            allowed_relative: reference.relative,
            top1,
            top1_rows: self.rows,
            allowed_top1: required_top1,
            mismatched,
            elements: self.elements,
            problem,
        }
    }
}

/// The first index of the largest value, a NaN counting as the largest (torch's rule).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        let current = row[best];
        if current.is_nan() {
            break;
        }
        if v.is_nan() || v > current {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample's tensors: element type, shape, little-endian bytes.
    type Sample = Vec<(DType, Vec<i64>, Vec<u8>)>;

    /// Reference data as ptm_convert/reference.py writes it.
    fn encoded(key: &str, outputs: &[&str], counted: u32, samples: &[Sample], expected: &[Sample]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u32).to_le_bytes());
            out.extend(s.as_bytes());
        };
        text(&mut out, key);
        out.extend(0.25f64.to_le_bytes());
        out.extend(0.9f64.to_le_bytes());
        out.push(1);
        out.extend((outputs.len() as u32).to_le_bytes());
        for name in outputs {
            text(&mut out, name);
            out.extend(0.875f64.to_le_bytes());
        }
        out.extend(counted.to_le_bytes());
        for section in [samples, expected] {
            out.extend((section.len() as u32).to_le_bytes());
            for sample in section {
                out.extend((sample.len() as u32).to_le_bytes());
                for (dtype, shape, bytes) in sample {
                    out.extend(dtype.code().to_le_bytes());
                    out.extend((shape.len() as u32).to_le_bytes());
                    for d in shape {
                        out.extend(d.to_le_bytes());
                    }
                    out.extend((bytes.len() as u64).to_le_bytes());
                    out.extend(bytes);
                }
            }
        }
        out
    }

    fn floats(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn sample() -> Vec<u8> {
        let input = vec![(DType::Float32, vec![1, 3], floats(&[1.0, 2.0, 3.0]))];
        let output = vec![(DType::Float32, vec![1, 3], floats(&[0.5, 2.0, 1.0]))];
        encoded("k1", &["logits"], 1, &[input], &[output])
    }

    #[test]
    fn reference_data_reads_back() {
        let r = Reference::parse(&sample()).unwrap();
        assert_eq!((r.key.as_str(), r.outputs.as_slice(), r.counted, r.samples.len()), ("k1", &[("logits".to_string(), 0.875)][..], 1, 1));
        assert!(matches!(&r.expected[0][0].data, Data::F32(v) if v == &[0.5, 2.0, 1.0]));
        assert!(r.quantized && r.relative == 0.25);
    }

    #[test]
    fn every_truncation_and_a_trailing_byte_are_errors_not_panics() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(Reference::parse(&bytes[..len]).is_err(), "a file cut at {len} bytes was read");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Reference::parse(&longer).unwrap_err().contains("after its last tensor"));
    }

    #[test]
    fn a_tensor_whose_length_disagrees_with_its_shape_is_refused_before_allocating() {
        let input = vec![(DType::Float32, vec![1 << 40, 1 << 20], floats(&[1.0]))];
        let bytes = encoded("k", &["y"], 1, std::slice::from_ref(&input), std::slice::from_ref(&input));
        assert!(Reference::parse(&bytes).is_err());
        let bools = vec![(DType::Bool, vec![2], vec![1, 7])];
        assert!(Reference::parse(&encoded("k", &["y"], 1, std::slice::from_ref(&bools), std::slice::from_ref(&bools))).unwrap_err().contains("bool"));
    }

    #[test]
    fn a_count_larger_than_the_file_can_hold_is_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(0u32.to_le_bytes()); // key ""
        bytes.extend([0u8; 17]);
        bytes.extend(0u32.to_le_bytes()); // no outputs
        bytes.extend(0u32.to_le_bytes()); // counted
        bytes.extend(u32::MAX.to_le_bytes()); // samples: four billion, each of no tensors
        bytes.extend([0u8; 8]);
        assert!(Reference::parse(&bytes).unwrap_err().contains("counts 4294967295 items"));
    }

    #[test]
    fn figures_that_would_let_any_output_pass_are_refused() {
        let input = vec![(DType::Float32, vec![1, 3], floats(&[1.0, 2.0, 3.0]))];
        let none_counted = encoded("k", &["y"], 0, std::slice::from_ref(&input), std::slice::from_ref(&input));
        assert!(Reference::parse(&none_counted).unwrap_err().contains("counts 0 of its 1 samples"));
        let too_many = encoded("k", &["y"], 2, std::slice::from_ref(&input), std::slice::from_ref(&input));
        assert!(Reference::parse(&too_many).is_err());
        // The relative tolerance stands after the magic and the key ("k").
        let mut nan = sample();
        let at = MAGIC.len() + 4 + 2;
        nan[at..at + 8].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(Reference::parse(&nan).unwrap_err().contains("relative tolerance is NaN"));
    }

    #[test]
    fn half_precision_values_widen_exactly() {
        assert_eq!(half_to_f64(0x3c00), 1.0);
        assert_eq!(half_to_f64(0xc000), -2.0);
        assert_eq!(half_to_f64(0x0001), 2f64.powi(-24));
        assert!(half_to_f64(0x7e00).is_nan());
        assert_eq!(half_to_f64(0x7c00), f64::INFINITY);
    }

    #[test]
    fn argmax_takes_the_first_largest_and_a_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[1.0, f64::NAN, 5.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
