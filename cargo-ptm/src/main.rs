//! `cargo ptm`: the committed model store, the reports of the last build and the
//! conversion cache, from the command line. `cargo ptm --help` lists the commands.

mod assets;
mod cache_cmd;
mod cli;
mod crates;
mod device_test;
mod diff;
mod prepare;
mod progress;
mod report;
mod table;

use cli::{CacheCommand, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    let result = match &cli.command {
        Command::Prepare { crates, target, check, json, quiet } => {
            let mode = progress::Mode::choose(*quiet, *json);
            crates::find(crates).and_then(|w| prepare::run(&w, target, *check, *json, mode))
        }
        Command::Report { model, crates, target, json } => crates::find(crates).and_then(|w| report::run(&w, model.as_deref(), target.as_deref(), *json)),
        Command::Assets { platform, out, target, crates } => crates::find(crates).and_then(|w| assets::run(&w, platform, out, target.as_deref())),
        Command::Diff { a, b, target } => diff::run(a, b, target.as_deref()),
        Command::DeviceTest { target, runner, cpu, sysroot, crates } => {
            let runner = device_test::Runner::parse(runner, cpu.clone(), sysroot.clone());
            crates::find(crates).and_then(|w| device_test::run(&w, target, &runner))
        }
        Command::Cache(CacheCommand::Size { crates }) => crates::find(crates).and_then(|w| cache_cmd::size(&w)),
        Command::Cache(CacheCommand::Prune { older_than, max_size, crates }) => crates::find(crates).and_then(|w| cache_cmd::prune(&w, *older_than, *max_size)),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            // A command that ran and failed; clap has already exited 2 for usage errors.
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
