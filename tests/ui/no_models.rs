// A build script ran, but Cargo.toml declares no [package.metadata.models.*].
ptm::include_models!();

fn main() {}
