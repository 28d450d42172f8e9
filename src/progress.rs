//! Progress on a terminal: a line per stage, rewritten in place when the
//! stage ends, with its time and what it counted. Only when stderr is a
//! terminal and logs are text; under an orchestrator the info logs carry the
//! same stage timings instead.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Stages under way; two run at once while the accounts and the usage are read.
static RUNNING: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub fn started(stage: &str) {
    if enabled() {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        running.push(stage.to_string());
        show_running(&running);
    }
}

pub fn done(stage: &str, seconds: f64, detail: &str) {
    if enabled() {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|s| s != stage);
        let mut err = std::io::stderr().lock();
        let detail = crate::redact::text(detail);
        let _ = writeln!(err, "\r\x1b[2K  ok {stage:<20} {seconds:>7.2} s  {detail}");
        drop(err);
        if !running.is_empty() {
            show_running(&running);
        }
    }
}

fn show_running(running: &[String]) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K  .. {}", running.join(", "));
    let _ = err.flush();
}

/// Ends a stage: logs its time, what it counted and the peak memory so far at
/// info level, and shows it on a terminal.
pub fn stage_done(stage: &'static str, seconds: f64, detail: &str) {
    match peak_rss_mib() {
        Some(peak) => tracing::info!(
            stage,
            seconds = format!("{seconds:.3}"),
            peak_rss_mib = peak,
            %detail,
            "stage done"
        ),
        None => tracing::info!(stage, seconds = format!("{seconds:.3}"), %detail, "stage done"),
    }
    done(stage, seconds, detail);
}

/// The process's peak resident set so far, where the OS tells it (Linux).
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
