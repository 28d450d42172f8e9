//! The `quadrant` binary: parse the command line, start logging, run the
//! command, and turn its outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

// Built with mimalloc's `no_thp`: it does not ask for transparent huge pages,
// which on these machines made the peak RSS about 10% higher (memory is then
// touched in 2 MiB steps) for no gain in time (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc gives a page back to the system 10 ms after it empties (it
/// "purges" it), and the kernel zeroes it again when it is next touched. A
/// run frees and takes buffers of the same sizes all along (each batch of
/// usage, each expression's column) and ends when its work does, so it
/// keeps its pages: at 250,000 accounts a run took 10-17% less time for
/// 2-7% more peak memory (docs/performance.md). `MIMALLOC_PURGE_DELAY`, when
/// set, still decides.
#[allow(unsafe_code)]
fn keep_freed_pages() {
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    /// `mi_option_purge_delay` in the `mi_option_t` of mimalloc 3.3, which
    /// libmimalloc-sys 0.1.49 builds.
    const PURGE_DELAY: std::ffi::c_int = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an option of the allocator this binary is linked
        // with; mimalloc reads the option when it next purges.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    }
}

fn main() -> ExitCode {
    keep_freed_pages();
    quadrant::redact::init();
    let cli = match quadrant::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // clap quotes the arguments it could not take: masked as well.
        Err(e) => return usage(&e),
    };
    // A panic's message may quote a URL or an error body: masked as well.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("quadrant panicked: {}", quadrant::redact::text(&info.to_string()));
    }));
    quadrant::logging::init(&cli);
    let json_logs = cli.log_format == quadrant::cli::LogFormat::Json;
    let result = quadrant::commands::run(cli.command);
    if let Some(pipes) = quadrant::integrations::pipes::get() {
        pipes.close(
            result
                .as_ref()
                .err()
                .map(|e| quadrant::redact::text(&e.to_string()).into_owned())
                .as_deref(),
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if json_logs {
                tracing::error!(exit_code = error.exit_code(), "{error}");
            } else {
                eprintln!("error: {}", quadrant::redact::text(&error.to_string()));
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// A usage error, `--help` or `--version`, as clap renders it, masked.
fn usage(e: &clap::Error) -> ExitCode {
    use std::io::{IsTerminal, Write};
    let styled = if e.use_stderr() {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let text = if styled {
        e.render().ansi().to_string()
    } else {
        e.render().to_string()
    };
    let text = quadrant::redact::text(&text);
    let _ = if e.use_stderr() {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        std::io::stdout().write_all(text.as_bytes())
    };
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}
