//! The ptm-tests crate's two `.pte` programs, for tools/sanitize.
#![allow(missing_docs)]

ptm::include_models!();
