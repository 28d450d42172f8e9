//! `quadrant report`, opened in a real headless Chromium (Debian's package,
//! installed by scripts/test): every chart must be laid out with a size.

use crate::*;

/// The flags this workplace's Chromium needs to start headless as root
/// without reaching for the network.
pub fn chromium(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let binary = std::env::var("QUADRANT_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    std::process::Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start `{binary}` ({e}): scripts/test installs Debian's chromium"))
}

#[test]
fn the_report_renders_every_chart_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    expect_code(&run(&["run", "--cycles", "2025-Q4..2026-Q3", "--output", out]), 0);
    let page = tmp.path().join("report.html");
    let o = run(&["report", "--output", out, "--to", page.to_str().unwrap()]);
    expect_code(&o, 0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<link"),
        "self-contained"
    );

    let dom = chromium(&["--dump-dom", &format!("file://{}", page.display())]);
    assert!(dom.status.success(), "{}", stderr(&dom));
    let dom = stdout(&dom);
    let rendered: Vec<(String, u32, u32)> = dom
        .split("data-chart=\"")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').next().unwrap().to_string();
            let size = rest
                .split("data-rendered=\"")
                .nth(1)
                .map(|r| r.split('"').next().unwrap())
                .unwrap_or("0x0");
            let (w, h) = size.split_once('x').unwrap();
            (name, w.parse().unwrap(), h.parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = rendered.iter().map(|r| r.0.as_str()).collect();
    for expected in [
        "scatter-wallet_share_matrix",
        "scatter-growth_risk",
        "scatter-size_contract",
        "heat-wallet_share_matrix",
        "heat-strategic_accounts",
        "history-touch_tier",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    for (name, w, h) in &rendered {
        assert!(*w > 100 && *h > 50, "{name} was not laid out: {w}x{h}");
    }
    assert!(
        dom.matches("class=\"point\"").count() > 3 * 150,
        "the scatters have their points"
    );
}
