//! Tensors crossing the boundary: borrowed inputs in, owned outputs back.

use crate::{ffi, DType, Element};
use std::fmt;
use std::marker::PhantomData;

/// The most dimensions an input or output may have.
pub const MAX_RANK: usize = 12;

/// A row-major input with a shape known only at run time, for inputs with a dynamic
/// dimension. libtorch reads `data` in place; nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a, T: Element> {
    data: &'a [T],
    shape: &'a [usize],
}

impl<'a, T: Element> TensorRef<'a, T> {
    /// `data` in row-major order, `shape` outermost first. Whether the two agree, and
    /// agree with the model, is checked when the model runs.
    pub fn new(data: &'a [T], shape: &'a [usize]) -> TensorRef<'a, T> {
        TensorRef { data, shape }
    }

    /// The elements.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// The dimensions.
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }
}

/// A type-erased input, ready for libtorch: borrowed data and its shape.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    data: *const std::ffi::c_void,
    shape: Dims<'a>,
    dtype: DType,
    _borrow: PhantomData<&'a [u8]>,
}

/// Where libtorch reads an input's sizes. On 64-bit targets a `usize` is an `i64` bit
/// for bit, so the caller's shape is passed as it is; elsewhere it is converted.
#[derive(Clone, Copy)]
enum Dims<'a> {
    #[cfg_attr(not(target_pointer_width = "64"), allow(dead_code))]
    Borrowed(&'a [usize]),
    #[cfg_attr(target_pointer_width = "64", allow(dead_code))]
    Converted([i64; MAX_RANK], usize),
}

impl<'a> Input<'a> {
    /// Wraps `data` with `shape`, or says why they cannot form a tensor.
    #[inline]
    pub fn new<T: Element>(data: &'a [T], shape: &'a [usize]) -> Result<Input<'a>, String> {
        if shape.len() > MAX_RANK {
            return Err(format!("{} dimensions, ptm supports at most {MAX_RANK}", shape.len()));
        }
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or("the element count overflows")?;
        if elements != data.len() {
            return Err(format!("the shape holds {elements} elements but {} were given", data.len()));
        }
        // A size beyond i64::MAX (possible only beside a zero) reaches libtorch as a
        // negative size, which it refuses with an error.
        let shape = if cfg!(target_pointer_width = "64") {
            Dims::Borrowed(shape)
        } else {
            let mut dims = [0i64; MAX_RANK];
            for (dim, &size) in dims.iter_mut().zip(shape) {
                *dim = size as i64;
            }
            Dims::Converted(dims, shape.len())
        };
        Ok(Input { data: data.as_ptr().cast(), shape, dtype: T::DTYPE, _borrow: PhantomData })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    #[inline]
    fn sizes(&self) -> (*const i64, usize) {
        match &self.shape {
            Dims::Borrowed(shape) => (shape.as_ptr().cast(), shape.len()),
            Dims::Converted(dims, rank) => (dims.as_ptr(), *rank),
        }
    }

    #[inline]
    pub(crate) fn raw(&self) -> ffi::Input {
        let (shape, rank) = self.sizes();
        ffi::Input { data: self.data, shape, rank, dtype: self.dtype.code() }
    }
}

/// One tensor a model returned, of any element type.
pub struct Output {
    raw: ffi::Output,
    /// How the runtime that made it frees it.
    free: ffi::FreeOutput,
    #[cfg(not(target_pointer_width = "64"))]
    shape: [usize; MAX_RANK],
}

// SAFETY: this handle owns what it holds (one reference to a libtorch tensor, whose
// counts are atomic, or a block ExecuTorch's shim copied out) and only reads it.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    /// Takes ownership of an output a shim handed over, which `free` releases.
    #[inline]
    pub(crate) fn new(raw: ffi::Output, free: ffi::FreeOutput) -> Output {
        #[cfg(not(target_pointer_width = "64"))]
        {
            let mut shape = [0usize; MAX_RANK];
            if raw.rank <= MAX_RANK && !raw.shape.is_null() {
                // SAFETY: the shim reports `rank` sizes at `shape`, alive as long as the output.
                let sizes = unsafe { std::slice::from_raw_parts(raw.shape, raw.rank) };
                for (dim, &size) in shape.iter_mut().zip(sizes) {
                    *dim = usize::try_from(size).unwrap_or(0);
                }
            }
            Output { raw, free, shape }
        }
        #[cfg(target_pointer_width = "64")]
        Output { raw, free }
    }

    /// The element type, or `None` for one ptm cannot hold (a quantized tensor, say).
    #[inline]
    pub fn dtype(&self) -> Option<DType> {
        DType::from_code(self.raw.dtype)
    }

    /// The dimensions, outermost first.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        #[cfg(target_pointer_width = "64")]
        {
            if self.raw.shape.is_null() || self.raw.rank == 0 {
                return &[];
            }
            // SAFETY: `rank` sizes live at `shape` as long as the tensor; libtorch sizes are
            // never negative, and an i64 is a usize bit for bit on 64-bit targets.
            unsafe { std::slice::from_raw_parts(self.raw.shape.cast::<usize>(), self.raw.rank) }
        }
        #[cfg(not(target_pointer_width = "64"))]
        &self.shape[..self.raw.rank.min(MAX_RANK)]
    }

    /// The elements in row-major order, if they are `T`s (and, for `bool`, every byte
    /// is 0 or 1, as a Rust `bool` must be).
    #[inline]
    pub fn data<T: Element>(&self) -> Option<&[T]> {
        if self.dtype() != Some(T::DTYPE) || self.raw.rank > MAX_RANK {
            return None;
        }
        if T::DTYPE == DType::Bool && !self.bytes().iter().all(|&b| b <= 1) {
            return None;
        }
        // SAFETY: checked above: the elements are T's, valid for T.
        Some(unsafe { self.elements::<T>() })
    }

    /// The elements' bytes.
    fn bytes(&self) -> &[u8] {
        if self.raw.numel == 0 || self.raw.data.is_null() {
            return &[];
        }
        let size = self.dtype().map_or(0, DType::size);
        // SAFETY: the shim made the tensor contiguous; it holds `numel` elements of its
        // type's size and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.raw.data.cast::<u8>(), self.raw.numel * size) }
    }

    /// The elements as `T`s.
    ///
    /// # Safety
    /// The output's element type is T's and every element is a valid T.
    #[inline]
    unsafe fn elements<T: Element>(&self) -> &[T] {
        if self.raw.numel == 0 || self.raw.data.is_null() {
            return &[];
        }
        // SAFETY: the shim made the tensor contiguous; it holds `numel` elements of T's
        // type, valid as the caller promises, and lives as long as `self`. Its memory is
        // nobody else's (the shims copy what another holder could write).
        unsafe { std::slice::from_raw_parts(self.raw.data.cast::<T>(), self.raw.numel) }
    }

    /// This output as a tensor of `T`s, or itself back when its element type differs
    /// (or, for `bool`, a byte is neither 0 nor 1).
    pub fn typed<T: Element>(self) -> Result<Tensor<T>, Output> {
        if self.data::<T>().is_none() {
            return Err(self);
        }
        Ok(Tensor { output: self, _element: PhantomData })
    }
}

impl Drop for Output {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: handed over by the runtime whose free function this is, freed once.
        unsafe { (self.free)(&mut self.raw) }
    }
}

impl fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shape, rank) = self.sizes();
        // SAFETY: `rank` sizes at `shape`, borrowed for the input's lifetime.
        let shape = unsafe { std::slice::from_raw_parts(shape, rank) };
        f.debug_struct("Input").field("dtype", &self.dtype).field("shape", &shape).finish()
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output").field("dtype", &self.dtype()).field("shape", &self.shape()).finish()
    }
}

/// A model's output: its elements, row-major, and its shape. From the Lite Interpreter
/// it holds libtorch's memory (nothing was copied); from ExecuTorch, one copy out of
/// the method's memory, which the next run reuses.
pub struct Tensor<T: Element> {
    output: Output,
    _element: PhantomData<T>,
}

impl<T: Element> Tensor<T> {
    /// The elements in row-major order.
    #[inline]
    pub fn data(&self) -> &[T] {
        // SAFETY: checked when this tensor was made (Output::typed), and the memory is
        // this output's alone, so it has not changed since.
        unsafe { self.output.elements::<T>() }
    }

    /// The dimensions, outermost first.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        self.output.shape()
    }

    /// A copy of the elements.
    pub fn to_vec(&self) -> Vec<T> {
        self.data().to_vec()
    }
}

impl<T: Element> std::ops::Deref for Tensor<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.data()
    }
}

impl<T: Element + fmt::Debug> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor").field("shape", &self.shape()).field("data", &self.data()).finish()
    }
}

#[cfg(all(test, feature = "executorch"))]
mod tests {
    use super::*;

    /// An output as the ExecuTorch shim hands one over: its sizes, then its elements
    /// 16 bytes on, in one block from malloc.
    fn output(bytes: &[u8], dtype: DType) -> Output {
        // SAFETY: a fresh allocation of the size written; freed by the output's drop.
        unsafe {
            let block = libc::malloc(16 + bytes.len().max(1)).cast::<u8>();
            *block.cast::<i64>() = bytes.len() as i64;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), block.add(16), bytes.len());
            let raw = ffi::Output { owner: block.cast(), data: block.add(16).cast(), shape: block.cast(), rank: 1, numel: bytes.len(), dtype: dtype.code() };
            Output::new(raw, ffi::ptm_et_output_free)
        }
    }

    #[test]
    fn bools_are_read_only_when_every_byte_is_0_or_1() {
        assert_eq!(output(&[0, 1, 1], DType::Bool).data::<bool>(), Some(&[false, true, true][..]));
        assert_eq!(output(&[0, 2, 1], DType::Bool).data::<bool>(), None);
        assert!(output(&[0, 2, 1], DType::Bool).typed::<bool>().is_err());
        let error = crate::__private::output::<bool>("m", "flags", output(&[255], DType::Bool)).unwrap_err();
        assert!(matches!(error.kind(), crate::ErrorKind::OutputValue { problem, .. } if problem.contains("other than 0 and 1")), "{error}");
        assert_eq!(output(&[0, 2, 1], DType::Uint8).data::<u8>(), Some(&[0, 2, 1][..]));
    }
}
