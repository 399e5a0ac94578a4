//! Runtime crate.
