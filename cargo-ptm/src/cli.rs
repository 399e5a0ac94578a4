//! The command line, as cargo's own subcommands spell it: `cargo ptm <command>`, with
//! `--manifest-path`, `-p/--package`, `--workspace` and `--target`. clap prints help and
//! versions (exit 0) and usage errors (exit 2); a command that fails exits 1.

use clap::{ArgGroup, Args, Parser, Subcommand};
use std::path::PathBuf;

/// `cargo ptm`: the models a crate declares in `[package.metadata.models]`, outside a build.
#[derive(Parser, Debug)]
#[command(name = "cargo-ptm", bin_name = "cargo ptm", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What `cargo ptm` does.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert every declared model (cache first) and write artifact and report to
    /// `.ptm/` beside each Cargo.toml, for committing.
    Prepare {
        #[command(flatten)]
        crates: CrateSelection,
        /// Target triples to prepare for (repeatable); default: the host, or with
        /// --check the targets the store records.
        #[arg(long, value_name = "TRIPLE")]
        target: Vec<String>,
        /// Only tell whether the store is current (exit 1 naming what is not); needs no Python.
        #[arg(long)]
        check: bool,
        /// Print the summary as JSON on stdout (progress on stderr as plain lines).
        #[arg(long)]
        json: bool,
        /// Show no progress, only warnings, errors and the summary.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print a model's report from the last build: inputs, outputs, sizes, drift per
    /// stage and output, per-layer INT8 figures, operators, warnings.
    Report {
        /// The model's name (every model when omitted).
        model: Option<String>,
        #[command(flatten)]
        crates: CrateSelection,
        /// The target triple whose build to read (default: the host's).
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write the `embed = false` models, converted for a platform, where its app build
    /// picks up files.
    Assets {
        /// `android` or `ios`.
        #[arg(long, value_parser = ["android", "ios"])]
        platform: String,
        /// Where to write them (android: app/src/main/assets/models).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The target triple (default: aarch64-linux-android or aarch64-apple-ios).
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
        #[command(flatten)]
        crates: CrateSelection,
    },
    /// Compare two builds of the same models (a torch bump, another quantization): per
    /// model, size, planned memory, drift, top-1, operators and toolchain; exit 1 when a
    /// model of the second crosses its budget.
    Diff {
        /// The first build: a models.json (or the directory holding it), or a committed
        /// store (`.ptm/`, or the crate directory holding it).
        a: PathBuf,
        /// The second build, the same way.
        b: PathBuf,
        /// The target triple whose store records to compare (default: the host's, or a
        /// store's only one).
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
    },
    /// Cross-build a small binary of the crate's models and their self-checks for a
    /// target and run it there: each model's outputs against the source model's, as
    /// the build recorded them; exit 1 when an output is past its tolerance.
    DeviceTest {
        /// The target triple to build for (e.g. aarch64-unknown-linux-gnu, aarch64-linux-android).
        #[arg(long, value_name = "TRIPLE")]
        target: String,
        /// `qemu` (user-mode emulation of the target's architecture), `adb` (the attached
        /// Android device), or a command run with the binary's path as its last argument.
        #[arg(long, value_name = "RUNNER", default_value = "qemu")]
        runner: String,
        /// qemu's CPU model (default for aarch64: cortex-a72).
        #[arg(long, value_name = "MODEL")]
        cpu: Option<String>,
        /// qemu's sysroot for the target's C library (default: Debian's `/usr/<arch>-linux-<env>`).
        #[arg(long, value_name = "DIR")]
        sysroot: Option<PathBuf>,
        #[command(flatten)]
        crates: CrateSelection,
    },
    /// The conversion cache: its size, or pruning it.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `cargo ptm cache ...`.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Entries and bytes of the cache.
    Size {
        #[command(flatten)]
        crates: CrateSelection,
    },
    /// Remove entries, oldest first.
    #[command(group(ArgGroup::new("rule").required(true).multiple(true).args(["older_than", "max_size"])))]
    Prune {
        /// Remove entries published more than this many days ago.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<f64>,
        /// Then remove the oldest until the cache holds at most this many MB.
        #[arg(long, value_name = "MB")]
        max_size: Option<f64>,
        #[command(flatten)]
        crates: CrateSelection,
    },
}

/// Which crates, as cargo selects packages.
#[derive(Args, Debug, Clone, Default)]
pub struct CrateSelection {
    /// Path to Cargo.toml (a crate's, or a workspace's for every member).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Only these packages (repeatable).
    #[arg(short, long, value_name = "SPEC")]
    pub package: Vec<String>,
    /// Every member of the workspace (the default at a workspace root is its default members).
    #[arg(long)]
    pub workspace: bool,
}

/// The arguments after `cargo-ptm`: `cargo ptm x` runs `cargo-ptm ptm x`.
pub fn parse() -> Cli {
    let mut words: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if words.get(1).is_some_and(|w| w == "ptm") {
        words.remove(1);
    }
    Cli::parse_from(words)
}
