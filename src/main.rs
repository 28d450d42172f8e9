use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = quadrant::cli::Cli::parse();
    quadrant::logging::init(&cli);
    match quadrant::app::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(exit_code = error.exit_code(), "{error}");
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
