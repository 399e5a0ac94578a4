//! The end-to-end tests' helpers live in `ptm-harness` (tests/harness), which links no
//! torch; this crate adds the models it declares and the runtime that runs them.

pub use ptm_harness::*;
