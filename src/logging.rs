//! Logs on stderr through tracing: text for people, one JSON object per
//! line for orchestrators; under Dagster, also through Pipes. stdout
//! carries results only.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use crate::cli::{Cli, LogFormat};

pub fn init(cli: &Cli) {
    // On a terminal the progress display shows the stages, so the info
    // logs stay quiet unless -v asks for them.
    let terminal = std::io::stderr().is_terminal()
        && cli.log_format == LogFormat::Text
        && !cli.quiet
        && cli.verbose == 0
        && std::env::var_os("RUST_LOG").is_none();
    if terminal {
        crate::progress::enable();
    }
    let level = match (cli.quiet || terminal, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // Our own logs at the chosen level; the libraries' only when asked for.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("warn,quadrant={level}")));
    let stderr = tracing_subscriber::fmt::layer().with_writer(crate::redact::Writer(std::io::stderr));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(crate::integrations::pipes::PipesLayer);
    match cli.log_format {
        LogFormat::Json => registry
            .with(stderr.json().flatten_event(true).with_current_span(false))
            .init(),
        LogFormat::Text => registry
            .with(
                stderr
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal())
                    .compact(),
            )
            .init(),
    }
    if std::env::var_os("POLARS_VERBOSE").is_some_and(|v| v != "0") {
        tracing::warn!(
            "POLARS_VERBOSE is set: polars writes its own messages straight to stderr, where quadrant cannot mask credentials a store's error may quote"
        );
    }
}
