//! A corpus of broken pipeline files (`tests/corpus/config/*.toml`), each
//! with the exact message `quadrant validate` must give
//! (`*.expected`; `QUADRANT_BLESS=1` rewrites them after a deliberate change).

use crate::*;

#[test]
fn every_broken_pipeline_gives_its_exact_message() {
    let dir = root().join("tests/corpus/config");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 14, "the corpus is there");
    let mut failures = Vec::new();
    for case in cases {
        let rel = case.strip_prefix(root()).unwrap().to_str().unwrap().to_string();
        let o = run(&["validate", "--config-only", "--pipeline", &rel]);
        expect_code(&o, 2);
        let got = stderr(&o);
        let expected = case.with_extension("expected");
        if bless() {
            std::fs::write(&expected, &got).unwrap();
        }
        let want = std::fs::read_to_string(&expected).unwrap_or_default();
        if got != want {
            failures.push(format!("{rel}\n--- got\n{got}--- want\n{want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
