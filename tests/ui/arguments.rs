// The models come from Cargo.toml; the macro takes no arguments.
ptm::include_models!("models/review.py");

fn main() {}
