//! What the generated wrappers call. Not a stable API: only `ptm::include_models!()`
//! output should use it.

use crate::{Element, Error, ErrorKind, Input, Output, Tensor, TensorRef};

/// One declared dimension.
#[derive(Debug, Clone, Copy)]
pub enum Dim {
    /// A size fixed at build time.
    Fixed(usize),
    /// A named size chosen at run time; inputs sharing the name must agree.
    Dynamic(&'static str),
    /// As `Dynamic`, within the declared range `min..=max` (`"tokens=32:1..128"`): a
    /// `.pte` was exported and its memory planned for no other sizes.
    Ranged(&'static str, usize, usize),
    /// As `Ranged`, the multiples of the step alone (`"height=64:32..128 step 16"`).
    Stepped(&'static str, usize, usize, usize),
}

/// Sizes given to named dimensions so far in one call.
#[derive(Default)]
pub struct Bindings {
    seen: Vec<(&'static str, usize)>,
}

fn expected(spec: &[Dim]) -> String {
    let dims: Vec<String> = spec
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Dynamic(name) => (*name).to_string(),
            Dim::Ranged(name, min, max) => format!("{name} in {min}..{max}"),
            Dim::Stepped(name, min, max, step) => format!("{name} in {min}..{max} step {step}"),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Checks a dynamic input against its declaration and wraps it.
pub fn dynamic<'a, T: Element>(model: &str, input: &str, spec: &[Dim], tensor: TensorRef<'a, T>, bindings: &mut Bindings) -> Result<Input<'a>, Error> {
    let shape = tensor.shape();
    let fail =
        |problem: String| Error::from(ErrorKind::Shape { model: model.into(), input: input.into(), expected: expected(spec), given: shape.to_vec(), problem });
    if shape.len() != spec.len() {
        return Err(fail(format!("{} dimensions instead of {}", shape.len(), spec.len())));
    }
    for (axis, (dim, &size)) in spec.iter().zip(shape).enumerate() {
        match *dim {
            Dim::Fixed(want) if want != size => return Err(fail(format!("dimension {axis} must be {want}"))),
            Dim::Ranged(name, min, max) if !(min..=max).contains(&size) => {
                return Err(fail(format!("`{name}` is {size}, outside its declared range {min}..{max} (dimension {axis})")));
            }
            Dim::Stepped(name, min, max, step) if !(min..=max).contains(&size) || size % step != 0 => {
                return Err(fail(format!("`{name}` is {size}, not one of its declared sizes {min}..{max} in steps of {step} (dimension {axis})")));
            }
            Dim::Dynamic(name) | Dim::Ranged(name, ..) | Dim::Stepped(name, ..) => match bindings.seen.iter().find(|(seen, _)| *seen == name) {
                Some(&(_, earlier)) if earlier != size => {
                    return Err(fail(format!("`{name}` is {size} here but {earlier} in an earlier input")));
                }
                Some(_) => {}
                None => bindings.seen.push((name, size)),
            },
            Dim::Fixed(_) => {}
        }
    }
    Input::new(tensor.data(), shape).map_err(fail)
}

/// Wraps a fixed-shape input; its length was checked by the compiler.
pub fn fixed<'a, T: Element, const N: usize>(model: &str, input: &str, data: &'a [T; N], shape: &'a [usize]) -> Result<Input<'a>, Error> {
    Input::new(data.as_slice(), shape)
        .map_err(|problem| Error::from(ErrorKind::Shape { model: model.into(), input: input.into(), expected: format!("{shape:?}"), given: vec![N], problem }))
}

/// Types one output as the report says it is.
pub fn output<T: Element>(model: &str, name: &str, output: Output) -> Result<Tensor<T>, Error> {
    output.typed::<T>().map_err(|other| match other.dtype() {
        Some(found) if found == T::DTYPE => ErrorKind::OutputValue {
            model: model.into(),
            output: name.into(),
            problem: format!("holds bytes other than 0 and 1, which a Rust {found} cannot: return it as uint8 from the model (`.to(torch.uint8)`)"),
        }
        .into(),
        found => ErrorKind::OutputType { model: model.into(), output: name.into(), expected: T::DTYPE, found }.into(),
    })
}

pub use ptm_macros::include_models;

/// Expands to nothing when the Lite Interpreter backend is built, else to an error
/// naming the model and the feature. The generated wrapper of every `.ptl` model calls it.
#[cfg(feature = "lite")]
#[doc(hidden)]
#[macro_export]
macro_rules! __ptm_lite_model {
    ($name:literal) => {};
}

#[cfg(not(feature = "lite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __ptm_lite_model {
    ($name:literal) => {
        ::core::compile_error!(::core::concat!(
            "model `",
            $name,
            "` is a .ptl (format = \"ptl\", the default): enable the `lite` feature of ptm (on by default; `features = [\"lite\"]` beside default-features = false), or declare it with format = \"pte\""
        ));
    };
}

/// As [`__ptm_lite_model`], for `.pte` models and the `executorch` feature.
#[cfg(feature = "executorch")]
#[doc(hidden)]
#[macro_export]
macro_rules! __ptm_executorch_model {
    ($name:literal) => {};
}

#[cfg(not(feature = "executorch"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __ptm_executorch_model {
    ($name:literal) => {
        ::core::compile_error!(::core::concat!(
            "model `",
            $name,
            "` is a .pte (format = \"pte\"): enable the `executorch` feature of ptm: ptm = { ..., features = [\"executorch\"] }, with default-features = false when no model is a .ptl"
        ));
    };
}

/// The self-check on the reference data beside a model file (`assets/review.ptl` ->
/// `assets/review.reference`, as `cargo ptm assets` ships the two), naming that file
/// when it is missing or unusable.
pub fn self_check_beside(
    model: &str,
    path: &std::path::Path,
    extension: &str,
    check: impl FnOnce(&[u8]) -> Result<crate::SelfCheck, Error>,
) -> Result<crate::SelfCheck, Error> {
    let beside = path.with_extension(extension);
    let what = format!("{} (the self-check reference data of model `{model}`)", beside.display());
    let bytes = std::fs::read(&beside).map_err(|e| {
        let file = beside.file_name().map_or_else(|| beside.display().to_string(), |n| n.to_string_lossy().into_owned());
        Error::from(ErrorKind::Reference {
            what: what.clone(),
            problem: format!("it cannot be read ({e}): ship `{file}` beside the model file, as `cargo ptm assets` does, or pass the data to `self_check_with`"),
        })
    })?;
    check(&bytes).map_err(|error| match error.kind() {
        ErrorKind::Reference { problem, .. } => ErrorKind::Reference { what, problem: problem.clone() }.into(),
        _ => error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Dim] = &[Dim::Dynamic("batch"), Dim::Fixed(4)];

    #[test]
    fn a_dynamic_input_names_itself_the_declaration_and_the_shape() {
        let data = [0f32; 12];
        let mut bindings = Bindings::default();
        assert!(dynamic("m", "x", SPEC, TensorRef::new(&data, &[3, 4]), &mut bindings).is_ok());
        let error = dynamic("m", "x", SPEC, TensorRef::new(&data, &[4, 3]), &mut Bindings::default()).unwrap_err();
        assert_eq!(error.to_string(), "ptm: input `x` of model `m` has shape [4, 3], expected [batch, 4]: dimension 1 must be 4");
        let error = dynamic("m", "x", SPEC, TensorRef::new(&data, &[2, 4]), &mut Bindings::default()).unwrap_err();
        assert!(error.to_string().ends_with("the shape holds 8 elements but 12 were given"), "{error}");
        let error = dynamic("m", "x", SPEC, TensorRef::new(&data, &[12]), &mut Bindings::default()).unwrap_err();
        assert!(error.to_string().ends_with("1 dimensions instead of 2"), "{error}");
    }

    #[test]
    fn inputs_sharing_a_dimension_must_agree() {
        let (a, b) = ([0f32; 12], [0f32; 8]);
        let mut bindings = Bindings::default();
        dynamic("m", "a", SPEC, TensorRef::new(&a, &[3, 4]), &mut bindings).unwrap();
        let error = dynamic("m", "b", SPEC, TensorRef::new(&b, &[2, 4]), &mut bindings).unwrap_err();
        assert!(error.to_string().ends_with("`batch` is 2 here but 3 in an earlier input"), "{error}");
    }

    #[test]
    fn a_ranged_dimension_refuses_a_size_outside_its_range() {
        const RANGED: &[Dim] = &[Dim::Ranged("batch", 1, 2), Dim::Fixed(4)];
        let data = [0f32; 12];
        assert!(dynamic("m", "x", RANGED, TensorRef::new(&data[..8], &[2, 4]), &mut Bindings::default()).is_ok());
        assert!(dynamic("m", "x", RANGED, TensorRef::new(&data[..4], &[1, 4]), &mut Bindings::default()).is_ok());
        let error = dynamic("m", "x", RANGED, TensorRef::new(&data, &[3, 4]), &mut Bindings::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ptm: input `x` of model `m` has shape [3, 4], expected [batch in 1..2, 4]: `batch` is 3, outside its declared range 1..2 (dimension 0)"
        );
        let error = dynamic("m", "x", RANGED, TensorRef::new(&data[..0], &[0, 4]), &mut Bindings::default()).unwrap_err();
        assert!(error.to_string().ends_with("`batch` is 0, outside its declared range 1..2 (dimension 0)"), "{error}");
    }

    #[test]
    fn a_stepped_dimension_takes_the_multiples_of_its_step_in_its_range() {
        const STEPPED: &[Dim] = &[Dim::Fixed(1), Dim::Stepped("height", 32, 128, 16)];
        let data = [0f32; 128];
        for height in [32, 48, 128] {
            assert!(dynamic("m", "x", STEPPED, TensorRef::new(&data[..height], &[1, height]), &mut Bindings::default()).is_ok(), "{height}");
        }
        for height in [40, 16, 144] {
            let data = vec![0f32; height];
            let error = dynamic("m", "x", STEPPED, TensorRef::new(&data, &[1, height]), &mut Bindings::default()).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("ptm: input `x` of model `m` has shape [1, {height}], expected [1, height in 32..128 step 16]: `height` is {height}, not one of its declared sizes 32..128 in steps of 16 (dimension 1)")
            );
        }
    }
}
