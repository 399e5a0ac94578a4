//! Names and types: identifiers from the report, dtypes to Rust element types.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// An identifier from the report, refused if ptm-build could not have written it.
pub fn ident(name: &str, what: &str) -> Result<Ident, String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{what} \"{name}\" in models.json is not a Rust identifier; rebuild so ptm-build rewrites the report"));
    }
    Ok(Ident::new(name, Span::call_site()))
}

/// The Rust element type of a dtype, or why there is none.
pub fn element(dtype: &str, model: &str, tensor: &str) -> Result<TokenStream, String> {
    Ok(match dtype {
        "float32" => quote!(f32),
        "float64" => quote!(f64),
        "int64" => quote!(i64),
        "int32" => quote!(i32),
        "int16" => quote!(i16),
        "int8" => quote!(i8),
        "uint8" => quote!(u8),
        "bool" => quote!(bool),
        other => {
            return Err(format!(
                "`{tensor}` of model `{model}` is {other}, which no Rust element type holds: have the model take or return float32 (convert inside forward)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types() {
        assert_eq!(ptm_report::type_name("digits_fp32"), "DigitsFp32");
        assert_eq!(ptm_report::type_name("a__b"), "AB");
        assert!(ident("input_ids", "input").is_ok());
        assert!(ident("9lives", "input").unwrap_err().contains("not a Rust identifier"));
        assert!(element("float16", "m", "x").unwrap_err().contains("float16, which no Rust element type holds"));
    }
}
