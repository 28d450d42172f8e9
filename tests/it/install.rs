//! What a user installs: `--version` says what the binary is, and the
//! completion scripts and the man page generated from the clap types parse
//! in their shells and in groff.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::*;

#[test]
fn version_names_the_version_commit_engines_formats_and_polars() {
    let o = run(&["--version"]);
    expect_code(&o, 0);
    let text = stdout(&o);
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    assert!(text.starts_with(&format!("quadrant {version}\n")), "{text}");
    // The commit of this checkout, as git names it.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(head.len(), 12, "a git checkout");
    assert!(text.contains(&format!("\ncommit: {head}\n")), "{text}");
    let engines = if cfg!(feature = "spark") {
        "\nengines: polars, spark (Spark Connect)\n"
    } else {
        "\nengines: polars (built without the Spark engine: --features spark)\n"
    };
    assert!(text.contains(engines), "{text}");
    assert!(text.contains("\ntable formats: parquet, delta\n"), "{text}");
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let polars = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"polars\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    assert!(text.trim_end().ends_with(&format!("\npolars: {polars}")), "{text}");
    // -V stays one line.
    assert_eq!(stdout(&run(&["-V"])), format!("quadrant {version}\n"));
}

/// Runs `program args` with `input` on stdin; its status and stderr.
fn check(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed (scripts/test installs it): {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn completions_parse_in_bash_zsh_and_fish_and_name_every_subcommand() {
    for (shell, program, args) in [
        ("bash", "bash", vec!["-n"]),
        ("zsh", "zsh", vec!["-n"]),
        ("fish", "fish", vec!["--no-execute"]),
    ] {
        let o = run(&["completions", shell]);
        expect_code(&o, 0);
        let script = stdout(&o);
        let (ok, errors) = check(program, &args, &script);
        assert!(ok && errors.is_empty(), "{shell}: {errors}");
        for sub in [
            "run",
            "validate",
            "explain",
            "cycles",
            "compare",
            "report",
            "diff",
            "vacuum",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell} completes `{sub}`");
        }
        assert!(
            script.contains("allow-incomplete-usage"),
            "{shell} completes run's flags"
        );
    }
    expect_code(&run(&["completions", "tcsh"]), 2);
}

#[test]
fn the_man_page_parses_in_groff_without_warnings() {
    let o = run(&["man"]);
    expect_code(&o, 0);
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH quadrant"),
        "{}",
        &page[..page.len().min(200)]
    );
    let (ok, errors) = check("groff", &["-man", "-ww", "-z", "-Tutf8"], &page);
    assert!(ok && errors.is_empty(), "{errors}");
    for sub in ["run", "compare", "diff", "completions", "man"] {
        assert!(
            page.contains(&format!("quadrant\\-{sub}")) || page.contains(sub),
            "{sub}"
        );
    }
}
