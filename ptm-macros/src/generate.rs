//! The wrapper code for each model of the report.

use crate::report::Loaded;
use crate::rust_types::{element, ident};
use proc_macro2::{Ident, Span, TokenStream};
use ptm_report::{Dim, Engine, Format, ModelReport, Quantize, TensorSpec};
use quote::quote;
use std::collections::BTreeMap;

/// Every model's wrapper; `krate` is the path of the `ptm` crate as the caller names it
/// (`$crate` from `ptm::include_models!`, so a renamed dependency works).
pub fn all(loaded: &Loaded, krate: &TokenStream) -> Result<TokenStream, String> {
    let report = path_text(&loaded.file)?;
    // Makes rustc rebuild the crate whenever the build script rewrites the report.
    let mut tokens = quote! { const _: &[u8] = ::core::include_bytes!(#report); };
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    for model in &loaded.bundle.models {
        let type_name = ptm_report::type_name(&model.name);
        for name in [type_name.clone(), format!("{type_name}Output")] {
            if let Some(other) = taken.insert(name.clone(), &model.name) {
                return Err(format!("models `{other}` and `{}` would both generate a type `{name}`: rename one in Cargo.toml", model.name));
            }
        }
        tokens.extend(model_tokens(model, &type_name, loaded, krate)?);
    }
    Ok(tokens)
}

fn path_text(path: &std::path::Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{} is not valid UTF-8, which include_bytes! needs; build in a directory with a UTF-8 path", path.display()))
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Dynamic { name, .. } => name.clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

fn dynamic_note(shape: &[Dim]) -> String {
    let notes: Vec<String> = shape
        .iter()
        .filter_map(|d| match d {
            Dim::Dynamic { name, example, .. } => Some(match d.range() {
                Some((min, max)) if d.step() > 1 => {
                    format!("`{name}` is chosen at run time, from {min} to {max} in steps of {} (the build used {example})", d.step())
                }
                Some((min, max)) => format!("`{name}` is chosen at run time, from {min} to {max} (the build used {example})"),
                None => format!("`{name}` is chosen at run time (the build used {example})"),
            }),
            Dim::Fixed(_) => None,
        })
        .collect();
    if notes.is_empty() {
        String::new()
    } else {
        format!("; {}", notes.join(", "))
    }
}

fn engine_tokens(model: &ModelReport, krate: &TokenStream) -> Result<TokenStream, String> {
    let options = local("options");
    if model.quantize == Quantize::None {
        return Ok(quote!(#options));
    }
    let engine = match model.engine {
        Engine::Qnnpack => quote!(Qnnpack),
        Engine::Fbgemm => quote!(Fbgemm),
        // ExecuTorch picks its kernels from the program itself.
        Engine::Xnnpack => return Ok(quote!(#options)),
    };
    Ok(quote!(#options.engine(#krate::Engine::#engine)))
}

struct Argument {
    param: TokenStream,
    wrap: TokenStream,
    doc: String,
}

/// Locals of the generated code: hygienic (`Span::mixed_site`), so an input named like
/// one of them cannot collide with it.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn argument(model: &ModelReport, spec: &TensorSpec, krate: &TokenStream) -> Result<Argument, String> {
    let bindings = local("bindings");
    let name = ident(&spec.name, "input")?;
    let elem = element(&spec.dtype, &model.name, &spec.name)?;
    let label = &spec.name;
    let model_name = &model.name;
    let fixed: Option<Vec<usize>> = spec
        .shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => usize::try_from(*n).ok(),
            Dim::Dynamic { .. } => None,
        })
        .collect();
    let doc = format!("- `{label}`: {} {}{}", spec.dtype, shape_text(&spec.shape), dynamic_note(&spec.shape));
    Ok(match fixed {
        Some(dims) => {
            let len = dims
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .ok_or_else(|| format!("input `{label}` of model `{model_name}` has more elements than memory can hold"))?;
            Argument {
                param: quote!(#name: &[#elem; #len]),
                wrap: quote!(#krate::__private::fixed(#model_name, #label, #name, &[#(#dims),*])?),
                doc: format!("{doc}, {len} elements in row-major order"),
            }
        }
        None => {
            let dims = spec.shape.iter().map(|d| match d {
                Dim::Fixed(n) => {
                    let n = *n as usize;
                    quote!(#krate::__private::Dim::Fixed(#n))
                }
                Dim::Dynamic { name, .. } => match d.range() {
                    Some((min, max)) => {
                        let (min, max) = (usize::try_from(min).unwrap_or(usize::MAX), usize::try_from(max).unwrap_or(usize::MAX));
                        match usize::try_from(d.step()).unwrap_or(usize::MAX) {
                            1 => quote!(#krate::__private::Dim::Ranged(#name, #min, #max)),
                            step => quote!(#krate::__private::Dim::Stepped(#name, #min, #max, #step)),
                        }
                    }
                    None => quote!(#krate::__private::Dim::Dynamic(#name)),
                },
            });
            Argument {
                param: quote!(#name: #krate::TensorRef<'_, #elem>),
                wrap: quote!(#krate::__private::dynamic(#model_name, #label, &[#(#dims),*], #name, &mut #bindings)?),
                doc: format!("{doc}, row-major with its shape"),
            }
        }
    })
}

fn info_tokens(model: &ModelReport, krate: &TokenStream) -> TokenStream {
    let ModelReport { name, source, embed, artifact_sha256, bytecode_version, torch, .. } = model;
    let (export, quantize, engine) = (model.export.as_str(), model.quantize.as_str(), model.engine.as_str());
    let sizes = model.sizes.iter().map(|s| {
        let (stage, bytes) = (s.stage.as_str(), s.bytes);
        quote!((#stage, #bytes))
    });
    fn option<T: quote::ToTokens>(value: Option<T>) -> TokenStream {
        match value {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        }
    }
    let drift = model.drift.iter().map(|d| {
        let (stage, samples) = (d.stage.as_str(), d.samples);
        let outputs = d.outputs.iter().map(|o| {
            let (name, max_abs) = (&o.name, o.max_abs);
            let (relative, top1, mismatched) = (option(o.relative), option(o.top1), option(o.mismatched));
            quote!(#krate::OutputDrift { name: #name, max_abs: #max_abs, relative: #relative, top1: #top1, mismatched: #mismatched })
        });
        // The figures of the whole stage, as Drift had them before drift was per output.
        let worst_abs = d.outputs.iter().map(|o| o.max_abs).fold(0.0f64, f64::max);
        let worst_relative = d.outputs.iter().filter_map(|o| o.relative).fold(0.0f64, f64::max);
        let worst_top1 = option(d.outputs.iter().filter_map(|o| o.top1).reduce(f64::min));
        quote!(#krate::Drift {
            stage: #stage, samples: #samples, outputs: &[#(#outputs),*], max_abs: #worst_abs, relative: #worst_relative, top1: #worst_top1
        })
    });
    let operators = &model.operators;
    quote! {
        #krate::ModelInfo {
            name: #name, source: #source, export: #export, quantize: #quantize, engine: #engine, embed: #embed,
            sha256: #artifact_sha256, sizes: &[#(#sizes),*], drift: &[#(#drift),*], operators: &[#(#operators),*],
            bytecode_version: #bytecode_version, torch: #torch,
        }
    }
}

fn summary(model: &ModelReport) -> String {
    let quantization = match model.quantize {
        Quantize::None => "float32 (not quantized)".to_string(),
        q => format!("{q} INT8 for {}", model.engine),
    };
    let size = model.sizes.last().map_or_else(String::new, |s| format!(", .{} {}", model.format, mb(s.bytes)));
    let source_size = model.sizes.first().filter(|_| model.sizes.len() > 1).map_or_else(String::new, |s| format!(" ({} at `{}`)", mb(s.bytes), s.stage));
    let lite = model.runtime_drift().map_or_else(String::new, |d| {
        let outputs: Vec<String> = d
            .outputs
            .iter()
            .map(|o| match (o.relative, o.mismatched) {
                (_, Some(mismatched)) => format!("`{}` {mismatched} of {} elements differ", o.name, o.elements),
                (relative, None) => {
                    let top1 = o.top1.map_or_else(String::new, |t| format!(", top-1 agreement {:.1}%", t * 100.0));
                    format!("`{}` at most {:.3e} ({:.2e} relative{top1})", o.name, o.max_abs, relative.unwrap_or(0.0))
                }
            })
            .collect();
        format!("\n\nIn {} its outputs differ from the source model's over {} samples: {}.", model.format.runtime_name(), d.samples, outputs.join("; "))
    });
    let layer = model
        .layers
        .first()
        .map_or_else(String::new, |l| format!("\n\nThe quantized layer that loses the most is `{}` ({}): SQNR {:.1} dB.", l.name, l.kind, l.sqnr_db));
    // An accepted risk is part of what the caller must know about the wrapper.
    let risk = model.trace_risk.as_ref().map_or_else(String::new, |risk| {
        let findings: Vec<&str> = risk.lines().skip(1).collect();
        format!("\n\n**Trace risk accepted** (`accept_trace_risk = true`): the trace may not hold for every valid input.\n{}", findings.join("\n"))
    });
    let bytecode = match (model.format, &model.executorch, &model.program_schema) {
        (Format::Ptl, ..) => format!(", bytecode v{}", model.bytecode_version),
        (Format::Pte, Some(release), Some(schema)) => format!(", exported by ExecuTorch {release} (program schema {schema})"),
        (Format::Pte, Some(release), None) => format!(", exported by ExecuTorch {release}"),
        (Format::Pte, None, _) => String::new(),
    };
    format!(
        "Model `{}`, from `{}` ({} export), {quantization}{size}{source_size}{bytecode}, converted by torch {}.{lite}{layer}{risk}",
        model.name, model.source, model.export, model.torch
    )
}

fn model_tokens(model: &ModelReport, type_name: &str, loaded: &Loaded, krate: &TokenStream) -> Result<TokenStream, String> {
    let ty = Ident::new(type_name, Span::call_site());
    let output_ty = Ident::new(&format!("{type_name}Output"), Span::call_site());
    let name = &model.name;
    let key = &model.cache_key;
    let artifact = path_text(&loaded.dir.join(&model.artifact))?;
    let configure = engine_tokens(model, krate)?;
    let arguments = model.inputs.iter().map(|spec| argument(model, spec, krate)).collect::<Result<Vec<_>, _>>()?;
    let params = arguments.iter().map(|a| &a.param);
    let wraps = arguments.iter().map(|a| &a.wrap);
    let needs_bindings = model.inputs.iter().any(|spec| spec.shape.iter().any(|d| matches!(d, Dim::Dynamic { .. })));
    let bindings_local = local("bindings");
    let bindings = needs_bindings.then(|| quote!(let mut #bindings_local = #krate::__private::Bindings::default();));
    let forward_doc = format!(
        "Runs the model once.\n\nInputs:\n{}\n\nErrors when libtorch raises{}.",
        arguments.iter().map(|a| a.doc.as_str()).collect::<Vec<_>>().join("\n"),
        if needs_bindings { " or a dynamic input's shape does not fit" } else { "" }
    );

    let mut fields = Vec::new();
    let mut field_docs = Vec::new();
    let mut takes = Vec::new();
    let mut slots = Vec::new();
    for (index, spec) in model.outputs.iter().enumerate() {
        let field = ident(&spec.name, "output")?;
        let elem = element(&spec.dtype, name, &spec.name)?;
        let label = &spec.name;
        let slot = local(&format!("output{index}"));
        fields.push(quote!(#field: #krate::Tensor<#elem>));
        field_docs.push(format!("`{label}`: {} {}{}.", spec.dtype, shape_text(&spec.shape), dynamic_note(&spec.shape)));
        takes.push(quote!(#field: #krate::__private::output::<#elem>(#name, #label, #slot)?));
        slots.push(slot);
    }
    let count = model.outputs.len();
    let output_doc = format!("What [`{type_name}::forward`] returns: one tensor per output of model `{name}`.");
    let type_doc = summary(model);
    let info = info_tokens(model, krate);

    let options = local("options");
    let file = format!(".{}", model.format);
    let runtime = model.format.runtime_name();
    // The runtime type of the format, and a check that the app enabled its backend.
    let (module_ty, backend) = match model.format {
        Format::Ptl => (quote!(#krate::Module), quote!(#krate::__ptm_lite_model!(#name);)),
        Format::Pte => (quote!(#krate::Program), quote!(#krate::__ptm_executorch_model!(#name);)),
    };
    let bytes_doc = format!("The {file}, embedded in this binary by `include_bytes!`.");
    let load_doc = format!("Loads the embedded {file} into {runtime}.");
    let embedded = model.embed.then(|| {
        quote! {
            #[doc = #bytes_doc]
            pub const BYTES: &'static [u8] = ::core::include_bytes!(#artifact);

            #[doc = #load_doc]
            pub fn load() -> ::core::result::Result<Self, #krate::Error> {
                let #options = #krate::Options::new(#name).identified_by(#key);
                let #options = #configure;
                ::core::result::Result::Ok(Self { module: #module_ty::from_bytes(Self::BYTES, &#options)?, loaded_from: ::core::option::Option::None })
            }
        }
    });
    let not_embedded_note =
        if model.embed { "" } else { " This model is not embedded (`embed = false`): ship the file as an asset and load it with `load_from`." };
    let artifact_doc = format!("Where the build wrote the {file}. Valid on the build machine (host runs and tests); on a device pass the path the platform gives to `load_from`.{not_embedded_note}");
    let load_from_doc = format!("Loads the {file} at `path` (an app asset, say) into {runtime}.");
    let key_doc = format!(
        "The key of the model's declaration; the {file}'s identity record names the same, and `load`/`load_from` refuse a file that names another, or none."
    );

    let self_check = self_check_tokens(model, loaded, krate)?;

    Ok(quote! {
        #backend


        #[doc = #type_doc]
        #[derive(Debug)]
        pub struct #ty {
            module: #module_ty,
            /// The file `load_from` read, where the self-check looks for its reference data.
            #[allow(dead_code)] // read by self_check, which a build without reference data lacks
            loaded_from: ::core::option::Option<::std::path::PathBuf>,
        }

        #[doc = #output_doc]
        #[derive(Debug)]
        pub struct #output_ty {
            #(
                #[doc = #field_docs]
                pub #fields,
            )*
        }

        impl #ty {
            /// The model's name as declared in Cargo.toml.
            pub const NAME: &'static str = #name;

            #[doc = #key_doc]
            pub const KEY: &'static str = #key;

            /// What the build knew about the model: sizes per stage, drift, operators.
            #[allow(deprecated)] // Drift's whole-stage figures, kept for apps that read them
            pub const INFO: #krate::ModelInfo = #info;

            #[doc = #artifact_doc]
            pub const BUILD_ARTIFACT: &'static str = #artifact;

            #embedded

            #[doc = #load_from_doc]
            pub fn load_from(path: impl ::core::convert::AsRef<::std::path::Path>) -> ::core::result::Result<Self, #krate::Error> {
                let #options = #krate::Options::new(#name).identified_by(#key);
                let #options = #configure;
                let path = path.as_ref();
                ::core::result::Result::Ok(Self { module: #module_ty::from_file(path, &#options)?, loaded_from: ::core::option::Option::Some(path.to_path_buf()) })
            }

            #[doc = #forward_doc]
            pub fn forward(&self, #(#params),*) -> ::core::result::Result<#output_ty, #krate::Error> {
                #bindings
                let [#(#slots),*] = self.module.forward::<#count>(&[#(#wraps),*])?;
                ::core::result::Result::Ok(#output_ty { #(#takes),* })
            }

            #self_check

            /// The loaded model in its runtime (a `Module` for a .ptl, a `Program` for a .pte).
            pub fn module(&self) -> &#module_ty {
                &self.module
            }
        }
    })
}

/// `self_check`, `self_check_with` and where the reference data is, for a model whose
/// build recorded it: embedded beside an embedded model, beside the file otherwise.
fn self_check_tokens(model: &ModelReport, loaded: &Loaded, krate: &TokenStream) -> Result<TokenStream, String> {
    let Some(file) = &model.reference else { return Ok(TokenStream::new()) };
    let path = path_text(&loaded.dir.join(file))?;
    let name = &model.name;
    let extension = ptm_report::REFERENCE_EXTENSION;
    // Hygienic, like every local of the generated code.
    let (path_local, reference_local, bytes_local) = (local("path"), local("reference"), local("bytes"));
    let beside = quote!(#krate::__private::self_check_beside(#name, #path_local, #extension, |#bytes_local| self.module.self_check(#bytes_local)));
    let (embedded, from_bytes) = if model.embed {
        let doc = format!(
            "The self-check's reference data, embedded by `include_bytes!`: in the binary only when `self_check` is called. Written by the build as `{file}`."
        );
        (quote! { #[doc = #doc] pub const REFERENCE: &'static [u8] = ::core::include_bytes!(#path); }, quote!(self.module.self_check(Self::REFERENCE)))
    } else {
        let missing = format!("model `{name}` was not loaded from a file, so its reference data has no place to be found: use self_check_with");
        (TokenStream::new(), quote!(::core::result::Result::Err(#krate::Error::from(#krate::ErrorKind::Setting { message: #missing.into() }))))
    };
    let where_doc = if model.embed {
        "the data embedded with the model when it was loaded with `load`, else the `.reference` file beside the file `load_from` read"
    } else {
        "the `.reference` file beside the file `load_from` read (`cargo ptm assets` ships the two together)"
    };
    let check_doc = format!(
        "Runs the samples the build verified this model on, in this process's runtime, and compares each output with the source model's, held to the tolerance the build held it to. Uses {where_doc}.\n\nReturns the figures; fails with `ErrorKind::SelfCheck` naming each output past its tolerance."
    );
    let build_doc = format!("Where the build wrote the self-check's reference data (`{file}`). Valid on the build machine.");
    Ok(quote! {
        #embedded

        #[doc = #build_doc]
        pub const BUILD_REFERENCE: &'static str = #path;

        #[doc = #check_doc]
        pub fn self_check(&self) -> ::core::result::Result<#krate::SelfCheck, #krate::Error> {
            match &self.loaded_from {
                ::core::option::Option::Some(#path_local) => #beside,
                ::core::option::Option::None => #from_bytes,
            }
        }

        /// The self-check on reference data the caller read (an app asset, say).
        pub fn self_check_with(&self, #reference_local: &[u8]) -> ::core::result::Result<#krate::SelfCheck, #krate::Error> {
            self.module.self_check(#reference_local)
        }
    })
}

/// The generated code for the reports under `tests/reports/`, pretty-printed, against
/// the snapshots under `tests/snapshots/`: what an app's build would expand to, checked
/// without torch. `PTM_BLESS=1` rewrites the snapshots after an intended change.
#[cfg(test)]
mod snapshots {
    use super::*;
    use std::path::{Path, PathBuf};

    fn expand(report: &Path) -> String {
        let text = std::fs::read_to_string(report).unwrap();
        let bundle = ptm_report::Bundle::from_json(&text).unwrap();
        let dir = PathBuf::from("/build/out/ptm");
        let loaded = Loaded { bundle, file: dir.join(ptm_report::REPORT_FILE), dir };
        let tokens = all(&loaded, &quote!(::ptm)).unwrap();
        prettyplease::unparse(&syn::parse2(tokens).unwrap())
    }

    #[test]
    fn the_generated_code_matches_the_snapshots() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut compared = 0;
        for entry in std::fs::read_dir(root.join("reports")).unwrap() {
            let report = entry.unwrap().path();
            let snapshot = root.join("snapshots").join(report.file_stem().unwrap()).with_extension("rs");
            let code =
                format!("// @generated by ptm-macros' snapshot test from tests/reports/{}\n{}", report.file_name().unwrap().to_string_lossy(), expand(&report));
            if std::env::var_os("PTM_BLESS").is_some() {
                std::fs::write(&snapshot, &code).unwrap();
            }
            let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
            assert!(
                code == expected,
                "{} differs from the generated code; if the change is intended, run PTM_BLESS=1 cargo test -p ptm-macros",
                snapshot.display()
            );
            compared += 1;
        }
        assert!(compared > 0, "no reports under {}", root.display());
    }
}
