//! `cargo ptm`: the committed model store and the conversion cache, from the command line.
//!
//! ```text
//! cargo ptm prepare [--manifest-path <Cargo.toml>] [--target <triple>]... [--json]
//! cargo ptm prepare --check [--manifest-path <Cargo.toml>] [--target <triple>]...
//! cargo ptm assets --platform android|ios --out <dir> [--target <triple>] [--manifest-path <Cargo.toml>]
//! cargo ptm cache size [--manifest-path <Cargo.toml>]
//! cargo ptm cache prune [--older-than <days>] [--max-size <MB>] [--manifest-path <Cargo.toml>]
//! ```

mod args;
mod assets;
mod cache_cmd;
mod crates;
mod prepare;
mod table;

use std::process::ExitCode;

const USAGE: &str = "usage:
  cargo ptm prepare [--manifest-path <Cargo.toml>] [--target <triple>]... [--json]
      convert every declared model of the crate or workspace (cache first) and write
      artifact + report to .ptm/ beside each Cargo.toml, for committing
  cargo ptm prepare --check [--manifest-path <Cargo.toml>] [--target <triple>]...
      exit 1 naming the models whose store entry is missing, stale or damaged (no Python needed)
  cargo ptm assets --platform android|ios --out <dir> [--target <triple>] [--manifest-path <Cargo.toml>]
      write the embed = false models (converted for the platform's target) to <dir>
  cargo ptm cache size [--manifest-path <Cargo.toml>]
  cargo ptm cache prune [--older-than <days>] [--max-size <MB>] [--manifest-path <Cargo.toml>]";

fn main() -> ExitCode {
    // `cargo ptm x` runs `cargo-ptm ptm x`; `cargo-ptm x` works too.
    let mut words: Vec<String> = std::env::args().skip(1).collect();
    if words.first().is_some_and(|w| w == "ptm") {
        words.remove(0);
    }
    let result = match words.first().map(String::as_str) {
        Some("prepare") => args::Args::parse(&words[1..], &["--check", "--json"], &["--manifest-path", "--target"]).and_then(|a| prepare::run(&a)),
        Some("assets") => args::Args::parse(&words[1..], &[], &["--platform", "--out", "--target", "--manifest-path"]).and_then(|a| assets::run(&a)),
        Some("cache") => match words.get(1).map(String::as_str) {
            Some("size") => args::Args::parse(&words[2..], &[], &["--manifest-path"]).and_then(|a| cache_cmd::size(&a)),
            Some("prune") => args::Args::parse(&words[2..], &[], &["--manifest-path", "--older-than", "--max-size"]).and_then(|a| cache_cmd::prune(&a)),
            _ => Err(format!("cargo ptm cache: say `size` or `prune`\n{USAGE}")),
        },
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(format!("cargo ptm: unknown command `{other}`\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}
