//! Element types a model's tensors can hold, and their Rust counterparts.

use std::fmt;

/// A tensor element type, numbered as the C++ shim numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `torch.float32`
    Float32,
    /// `torch.float64`
    Float64,
    /// `torch.int64`
    Int64,
    /// `torch.int32`
    Int32,
    /// `torch.int16`
    Int16,
    /// `torch.int8`
    Int8,
    /// `torch.uint8`
    Uint8,
    /// `torch.bool`
    Bool,
    /// `torch.float16`: no Rust type holds it; models take and return float32 instead.
    Float16,
}

impl DType {
    #[inline]
    pub(crate) fn code(self) -> i32 {
        self as i32
    }

    #[inline]
    pub(crate) fn from_code(code: i32) -> Option<DType> {
        use DType::*;
        [Float32, Float64, Int64, Int32, Int16, Int8, Uint8, Bool, Float16].get(usize::try_from(code).ok()?).copied()
    }

    /// The size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Float64 | DType::Int64 => 8,
            DType::Float32 | DType::Int32 => 4,
            DType::Int16 | DType::Float16 => 2,
            DType::Int8 | DType::Uint8 | DType::Bool => 1,
        }
    }

    /// The name used in Cargo.toml and models.json (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Int64 => "int64",
            DType::Int32 => "int32",
            DType::Int16 => "int16",
            DType::Int8 => "int8",
            DType::Uint8 => "uint8",
            DType::Bool => "bool",
            DType::Float16 => "float16",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type whose values libtorch can read in place.
///
/// # Safety
/// `DTYPE` must have the size, alignment and bit validity of `Self`.
pub unsafe trait Element: Copy + Send + Sync + 'static {
    /// The matching tensor element type.
    const DTYPE: DType;
}

macro_rules! element {
    ($($rust:ty => $dtype:ident),*) => {$(
        // SAFETY: the same layout as the torch scalar type.
        unsafe impl Element for $rust { const DTYPE: DType = DType::$dtype; }
    )*};
}

element!(f32 => Float32, f64 => Float64, i64 => Int64, i32 => Int32, i16 => Int16, i8 => Int8, u8 => Uint8, bool => Bool);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_none() {
        for code in 0..9 {
            assert_eq!(DType::from_code(code).unwrap().code(), code);
        }
        assert_eq!(DType::from_code(9), None);
        assert_eq!(DType::from_code(-1), None);
        assert_eq!(DType::Int64.to_string(), "int64");
    }
}
