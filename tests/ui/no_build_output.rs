// A crate without a build script calling ptm_build::bundle() has no OUT_DIR.
ptm::include_models!();

fn main() {}
