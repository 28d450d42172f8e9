use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = quadrant::cli::Cli::parse();
    quadrant::logging::init(&cli);
    let json_logs = cli.log_format == quadrant::cli::LogFormat::Json;
    let result = quadrant::commands::run(cli.command);
    if let Some(pipes) = quadrant::pipes::get() {
        pipes.close(result.as_ref().err().map(|e| e.to_string()).as_deref());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if json_logs {
                tracing::error!(exit_code = error.exit_code(), "{error}");
            } else {
                eprintln!("error: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
