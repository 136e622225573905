//! `strata` (crate strata-cli): the command-line face of strata-engine. Parses arguments, runs
//! one command, renders its result, and maps errors to the documented exit codes
//! (`strata_engine::core::exit`). Its crates (clap, indicatif, anyhow) stay out of the library.

#[macro_use]
mod render;
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Components compile in bounded children of this executable.
    strata_engine::components::compile::serve_as_child();
    if let Err(why) = cli::check_switches() {
        errln!("error: {why}");
        return ExitCode::from(strata_engine::core::exit::BAD_INPUT as u8);
    }
    let args = cli::Args::parse();
    let json = args.json;
    match cli::run(args) {
        Ok(()) => ExitCode::from(strata_engine::core::exit::OK as u8),
        Err(err) => ExitCode::from(render::error(&err, json) as u8),
    }
}
