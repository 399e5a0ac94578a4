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
/// Called as `ptm::include_models!()`, which passes the path of the `ptm` crate first
/// (`$crate; `) so that the generated code reaches it under whatever name the caller's
/// Cargo.toml gives it. For a model declared as `[package.metadata.models.review]` it
/// expands to `pub struct Review` with `load()` (when embedded), `load_from(path)` and a
/// typed `forward`, and `pub struct ReviewOutput` with one field per output. Mistakes
/// (arguments, no build script output, no models, a report of another ptm-build
/// version) are compile errors at the call.
#[proc_macro]
pub fn include_models(input: TokenStream) -> TokenStream {
    let (krate, rest) = split_crate_path(input.into());
    let expanded = if !rest.is_empty() {
        Err("ptm::include_models!() takes no arguments: the models come from [package.metadata.models] in this crate's Cargo.toml".to_string())
    } else {
        report::load().and_then(|loaded| generate::all(&loaded, &krate))
    };
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(message) => quote::quote! { ::core::compile_error!(#message); }.into(),
    }
}

/// `<path> ; <rest>` -> (path, rest); without a `;`, the path is `::ptm`.
fn split_crate_path(input: proc_macro2::TokenStream) -> (proc_macro2::TokenStream, proc_macro2::TokenStream) {
    let tokens: Vec<proc_macro2::TokenTree> = input.into_iter().collect();
    match tokens.iter().position(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ';')) {
        Some(at) => (tokens[..at].iter().cloned().collect(), tokens[at + 1..].iter().cloned().collect()),
        None => (quote::quote!(::ptm), tokens.into_iter().collect()),
    }
}
