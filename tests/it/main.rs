//! Integration tests: the real `quadrant` binary on real files.

mod bi;
mod clients;
mod commit;
mod compare;
mod corpus;
mod delta;
mod friction;
mod history;
mod http;
mod install;
mod lost;
mod nulls;
mod peers;
mod plan;
mod quality;
mod ready;
mod report;
mod run;
mod secrets;
// Built with the engine it tests (`--features spark`, as scripts/test does).
#[cfg(feature = "spark")]
mod spark;
mod stores;
mod target;
mod windows;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `quadrant` command run from the project root, with plain logs.
pub fn quadrant() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quadrant"));
    cmd.current_dir(root())
        .env_remove("RUST_LOG")
        .env_remove("QUADRANT_PAUSE_AT")
        .env_remove("QUADRANT_PAUSE_SECONDS");
    cmd
}

pub fn run(args: &[&str]) -> Output {
    quadrant().args(args).output().expect("quadrant runs")
}

/// Generates a book of `accounts` accounts into `out` (`quadrant generate`,
/// with `more` arguments), and expects it to succeed.
pub fn generate(out: &Path, accounts: &str, more: &[&str]) {
    let out = out.to_str().expect("a UTF-8 path");
    let args = ["generate", "--out", out, "--accounts", accounts];
    expect_code(&run(&[&args[..], more].concat()), 0);
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether to rewrite golden files: only with `QUADRANT_BLESS=1`, and never
/// under CI, where a run that rewrites what it compares against always passes.
pub fn bless() -> bool {
    blessing(
        std::env::var("QUADRANT_BLESS").ok().as_deref(),
        std::env::var_os("CI").is_some(),
    )
}

fn blessing(value: Option<&str>, ci: bool) -> bool {
    let asked = value == Some("1");
    assert!(
        !(asked && ci),
        "QUADRANT_BLESS=1 under CI would rewrite the golden files it checks"
    );
    asked
}

#[test]
fn only_quadrant_bless_1_blesses_and_never_under_ci() {
    assert!(blessing(Some("1"), false));
    for value in [None, Some("0"), Some(""), Some("false"), Some("yes")] {
        assert!(!blessing(value, false), "{value:?}");
        assert!(!blessing(value, true), "{value:?}");
    }
    assert!(std::panic::catch_unwind(|| blessing(Some("1"), true)).is_err());
}

/// Asserts the exit code, showing the output when it is not the one expected.
#[track_caller]
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
}

pub fn read_parquet(path: &Path) -> DataFrame {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetReader::new(file).finish().unwrap()
}

pub fn write_parquet(frame: &mut DataFrame, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(file).finish(frame).unwrap();
}

/// What a reader that globs `segments/cycle=C/*.parquet` sees.
pub fn glob_partition(out: &Path, cycle: &str) -> Vec<PathBuf> {
    let dir = out.join(format!("segments/cycle={cycle}"));
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// The `cycle` of each object of a JSON array (a backfill's `runs`, the
/// list `cycles --json` prints).
pub fn cycles_of(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["cycle"].as_str().unwrap())
        .collect()
}

pub fn glob_rows(out: &Path, cycle: &str) -> Option<DataFrame> {
    let frames: Vec<LazyFrame> = glob_partition(out, cycle)
        .iter()
        .map(|p| read_parquet(p).lazy())
        .collect();
    if frames.is_empty() {
        return None;
    }
    Some(concat(frames, UnionArgs::default()).unwrap().collect().unwrap())
}

pub fn manifest(out: &Path, cycle: &str) -> Option<serde_json::Value> {
    let path = out.join(format!("segments/cycle={cycle}/_manifest.json"));
    std::fs::read(path).ok().map(|b| serde_json::from_slice(&b).unwrap())
}

/// Every file under a folder, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A frame as CSV text with floats rounded, for golden comparisons.
pub fn csv(frame: &DataFrame) -> String {
    let mut out = frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for i in 0..frame.height() {
        let cells: Vec<String> = frame
            .columns()
            .iter()
            .map(|c| match c.get(i).unwrap() {
                AnyValue::Null => String::new(),
                AnyValue::Float64(f) => format!("{f:.6}"),
                AnyValue::String(s) => s.to_string(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// A string column's values, nulls as "".
pub fn strings(frame: &DataFrame, column: &str) -> Vec<String> {
    let c = frame.column(column).unwrap();
    (0..c.len())
        .map(|i| match c.get(i).unwrap() {
            AnyValue::Null => String::new(),
            v => v.str_value().to_string(),
        })
        .collect()
}
