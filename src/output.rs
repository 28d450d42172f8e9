//! Results on stdout. When the reader goes away (`quadrant cycles | head`),
//! the program ends quietly instead of panicking on the closed pipe.

use std::io::Write;

pub fn emit(text: std::fmt::Arguments) {
    let text = text.to_string();
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(crate::redact::text(&text).as_bytes())
        .and_then(|()| out.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for results.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::emit(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::emit(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for results.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(format_args!($($arg)*)) };
}
