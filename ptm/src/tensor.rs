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
    shape: [i64; MAX_RANK],
    rank: usize,
    dtype: DType,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> Input<'a> {
    /// Wraps `data` with `shape`, or says why they cannot form a tensor.
    pub fn new<T: Element>(data: &'a [T], shape: &[usize]) -> Result<Input<'a>, String> {
        if shape.len() > MAX_RANK {
            return Err(format!("{} dimensions, ptm supports at most {MAX_RANK}", shape.len()));
        }
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or("the element count overflows")?;
        if elements != data.len() {
            return Err(format!("the shape holds {elements} elements but {} were given", data.len()));
        }
        let mut dims = [0i64; MAX_RANK];
        for (dim, &size) in dims.iter_mut().zip(shape) {
            *dim = i64::try_from(size).map_err(|_| format!("dimension {size} is too large"))?;
        }
        Ok(Input { data: data.as_ptr().cast(), shape: dims, rank: shape.len(), dtype: T::DTYPE, _borrow: PhantomData })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions.
    pub fn shape(&self) -> &[i64] {
        &self.shape[..self.rank]
    }

    pub(crate) fn raw(&self) -> ffi::Input {
        ffi::Input { data: self.data, shape: self.shape.as_ptr(), rank: self.rank, dtype: self.dtype.code() }
    }
}

/// One tensor a model returned, of any element type.
pub struct Output {
    raw: ffi::Output,
    shape: [usize; MAX_RANK],
}

// SAFETY: this handle owns one reference to the tensor (reference counts are atomic)
// and only reads it.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    /// Takes ownership of an output the shim handed over.
    pub(crate) fn from_raw(raw: ffi::Output) -> Output {
        let mut shape = [0usize; MAX_RANK];
        if raw.rank <= MAX_RANK && !raw.shape.is_null() {
            // SAFETY: the shim reports `rank` sizes at `shape`, alive as long as the tensor.
            let sizes = unsafe { std::slice::from_raw_parts(raw.shape, raw.rank) };
            for (dim, &size) in shape.iter_mut().zip(sizes) {
                *dim = usize::try_from(size).unwrap_or(0);
            }
        }
        Output { raw, shape }
    }

    /// The element type, or `None` for one ptm cannot hold (a quantized tensor, say).
    pub fn dtype(&self) -> Option<DType> {
        DType::from_code(self.raw.dtype)
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape[..self.raw.rank.min(MAX_RANK)]
    }

    /// The elements in row-major order, if they are `T`s.
    pub fn data<T: Element>(&self) -> Option<&[T]> {
        if self.dtype() != Some(T::DTYPE) || self.raw.rank > MAX_RANK {
            return None;
        }
        if self.raw.numel == 0 {
            return Some(&[]);
        }
        // SAFETY: the shim made the tensor contiguous; it holds `numel` elements of T's
        // type and lives as long as `self`.
        Some(unsafe { std::slice::from_raw_parts(self.raw.data.cast::<T>(), self.raw.numel) })
    }

    /// This output as a tensor of `T`s, or itself back when its element type differs.
    pub fn typed<T: Element>(self) -> Result<Tensor<T>, Output> {
        if self.data::<T>().is_none() {
            return Err(self);
        }
        Ok(Tensor { output: self, _element: PhantomData })
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // SAFETY: allocated by the shim, freed once.
        unsafe { ffi::ptm_tensor_free(self.raw.tensor) }
    }
}

impl fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input").field("dtype", &self.dtype).field("shape", &self.shape()).finish()
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output").field("dtype", &self.dtype()).field("shape", &self.shape()).finish()
    }
}

/// A model's output: its elements, row-major, and its shape. Holds libtorch's memory;
/// nothing was copied.
pub struct Tensor<T: Element> {
    output: Output,
    _element: PhantomData<T>,
}

impl<T: Element> Tensor<T> {
    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        self.output.data::<T>().unwrap_or(&[])
    }

    /// The dimensions, outermost first.
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
