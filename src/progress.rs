//! Progress on a terminal: a line per stage, rewritten in place when the
//! stage ends, with its time and what it counted. Only when stderr is a
//! terminal and logs are text; under an orchestrator the info logs carry the
//! same stage timings instead.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub fn started(stage: &str) {
    if enabled() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K  .. {stage}");
        let _ = err.flush();
    }
}

pub fn done(stage: &str, seconds: f64, detail: &str) {
    if enabled() {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "\r\x1b[2K  ok {stage:<20} {seconds:>7.2} s  {detail}");
    }
}
