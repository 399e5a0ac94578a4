// models.json written by another ptm-build than the ptm this crate uses.
ptm::include_models!();

fn main() {}
