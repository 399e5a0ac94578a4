//! `include_models!()`: typed Rust wrappers for the models ptm-build converted.
//!
//! Use it through the `ptm` crate (`ptm::include_models!()`), which pins this crate
//! to its own version. The documentation of the generated items is on `ptm`.

mod generate;
mod report;
mod rust_types;

use proc_macro::TokenStream;

/// Generates one wrapper type per model in `$OUT_DIR/ptm/models.json`.
///
/// For a model declared as `[package.metadata.models.review]` it expands to
/// `pub struct Review` with `load()` (when embedded), `load_from(path)` and a typed
/// `forward`, and `pub struct ReviewOutput` with one field per output. Takes no
/// arguments. Mistakes (no build script output, no models, a report of another
/// ptm-build version) are compile errors at the call.
#[proc_macro]
pub fn include_models(input: TokenStream) -> TokenStream {
    let expanded = if !input.is_empty() {
        Err("ptm::include_models!() takes no arguments: the models come from [package.metadata.models] in this crate's Cargo.toml".to_string())
    } else {
        report::load().and_then(|loaded| generate::all(&loaded))
    };
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(message) => quote::quote! { ::core::compile_error!(#message); }.into(),
    }
}
