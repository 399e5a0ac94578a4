//! The model declarations of a crate: `[package.metadata.models.<name>]` in Cargo.toml.
//!
//! [`parse`] turns the TOML into [`ModelDecl`]s with every default filled in, or an
//! [`Error`](crate::Error) that names the key, what was found and what to write.

mod budget;
mod ctx;
mod decl;
mod inputs;
mod locate;
mod parse;
mod paths;
mod suggest;
mod targets;
mod values;

pub use decl::{default_tolerance, type_name, Budget, Engine, Export, Format, InputDecl, ModelDecl, Quantize, Source, Tolerance, DTYPES, RUNTIMES};
pub use locate::Location;
pub use parse::{parse, read};
pub use targets::is_arm;
