use super::*;

const BASE: &str = r#"
name = "t"
[inputs.accounts]
uri = "a.parquet"
[inputs.usage]
uri = "u/"
[output]
uri = "out/"
"#;

fn problems(extra: &str) -> Vec<String> {
    match compile(&format!("{BASE}{extra}"), "p.toml") {
        Ok(_) => Vec::new(),
        Err(Error::Config(problems)) => problems.iter().map(|p| p.to_string()).collect(),
        Err(other) => vec![format!("unexpected error: {other}")],
    }
}

#[test]
fn a_param_of_the_wrong_type_is_reported_once_at_its_definition() {
    let got = problems(
        "[params]\nfull = \"0.8\"\n[[segmentations]]\nname = \"s\"\ndefault = \"D\"\nrules = [{ name = \"a\", label = \"A\", when = \"arr >= full\" }, { name = \"b\", label = \"B\", when = \"arr < full\" }]\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("p.toml:"), "{got:?}");
    let line: usize = got[0].split(':').nth(1).unwrap().parse().unwrap();
    let text = format!("{BASE}[params]\n");
    assert_eq!(line, text.lines().count() + 1, "at `full = ...`: {got:?}");
    assert!(
        got[0].contains("param `full`") && got[0].contains("cannot compare"),
        "{got:?}"
    );
}

#[test]
fn a_label_compared_with_a_string_it_never_is_is_refused_with_the_nearest() {
    let got = problems(
        "[[segmentations]]\nname = \"tier\"\ndefault = \"Other\"\nrules = [{ name = \"keep\", label = \"Protect\", when = \"prev(tier) = 'Protcet'\" }]\n[[segmentations]]\nname = \"watch\"\ndefault = \"-\"\nrules = [{ name = \"w\", label = \"W\", when = \"tier IN ('Protect', 'Othr')\" }]\n",
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].contains("`Protcet` is not a label of segmentation `tier`") && got[0].contains("`Protect`"),
        "{got:?}"
    );
    assert!(
        got[1].contains("`Othr` is not a label of segmentation `tier`") && got[1].contains("`Other`"),
        "{got:?}"
    );
    // The labels it gives compare fine.
    assert!(problems("[[segmentations]]\nname = \"tier\"\ndefault = \"Other\"\nrules = [{ name = \"keep\", label = \"Protect\", when = \"prev(tier) = 'Protect' OR prev(tier) <> 'Other'\" }]\n").is_empty());
}

#[test]
fn a_minimal_pipeline_compiles() {
    let p = compile(BASE, "p.toml").unwrap();
    assert_eq!(p.name, "t");
    assert_eq!(p.cadence, Cadence::Quarter);
    assert!(p.segmentations.is_empty());
}

#[test]
fn the_default_pipeline_compiles() {
    let p = Pipeline::load(None).unwrap();
    let names: Vec<&str> = p.segmentations.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "wallet_share_matrix",
            "growth_risk",
            "size_contract",
            "touch_tier",
            "strategic_accounts",
            "re_evaluate_escalation"
        ]
    );
    for f in [
        "tenure_months",
        "wallet_estimate",
        "wallet_share",
        "whitespace",
        "growth_potential",
        "usage_recent",
        "usage_prior",
        "usage_growth",
        "seat_utilization",
        "employee_growth",
        "risk_score",
    ] {
        assert!(p.features.iter().any(|x| x.name == f), "missing feature {f}");
    }
}

#[test]
fn unknown_keys_are_all_reported_with_their_lines() {
    let got = problems("colour = 1\n[[features]]\nname = \"a\"\nexpresion = \"1\"\n");
    assert_eq!(
        got,
        [
            "p.toml:9:1: unknown key `colour` in [output]\n  help: the keys allowed here are: uri, format, passthrough",
            "p.toml:12:1: unknown key `expresion` in [features]\n  help: did you mean `expr`?",
            "p.toml:10:1: missing field `expr`",
        ]
    );
}

/// An unknown key does not hide the other problems of the file.
#[test]
fn unknown_keys_are_reported_with_every_other_problem() {
    let got = problems("colour = 1\n[[features]]\nname = \"a\"\nexpr = \"no_such_column + 1\"\nexpresion = \"1\"\n");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].contains("unknown key `colour`"), "{got:?}");
    assert!(got[1].contains("unknown key `expresion`"), "{got:?}");
    assert!(got[2].contains("no_such_column"), "{got:?}");
}

#[test]
fn every_semantic_problem_at_once() {
    let got = problems(
        r#"
[params]
cut = 0.8
[[aggregates]]
name = "ev"
column = "events"
agg = "summ"
window_days = 0
[[features]]
name = "share"
expr = "arr / walet"
[[features]]
name = "cut"
expr = "1"
[[segmentations]]
name = "m"
rules = [{ name = "big", label = "Big", when = "share >= cut AND" }]
"#,
    );
    assert_eq!(
        got,
        [
            "p.toml:15:7: unknown agg `summ`\n  help: did you mean `sum`?",
            "p.toml:16:15: window_days of `ev` must be from 1 to 3660, found 0",
            "p.toml:21:8: feature `cut` has the name of a param\n  help: every param, aggregate, feature and segmentation (and its `_rule` column) needs a name of its own",
            "p.toml:19:15: feature `share`: unknown name `walet`\n  help: did you mean `wallet`?",
            "p.toml:24:8: segmentation `m` has no `default` label\n  help: every account gets a label: add `default = \"...\"` for accounts no rule matches",
            "p.toml:25:65: rule `big` of segmentation `m`: expected a value, a name or `(`, found the end of the expression",
        ]
    );
}

#[test]
fn feature_cycles_are_named() {
    let got = problems(
        "[[features]]\nname = \"a\"\nexpr = \"b + 1\"\n[[features]]\nname = \"b\"\nexpr = \"a * 2\"\n[[features]]\nname = \"c\"\nexpr = \"c\"\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("features depend on each other in a cycle: a, b, c"),
        "{got:?}"
    );
    // A rule that reads a feature of the cycle adds no "unknown name".
    let got = problems(
        "[[features]]\nname = \"a\"\nexpr = \"b + 1\"\n[[features]]\nname = \"b\"\nexpr = \"a * 2\"\n[[segmentations]]\nname = \"s\"\ndefault = \"D\"\nrules = [{ name = \"r\", label = \"X\", when = \"a > 1\" }]\n",
    );
    assert_eq!(got.len(), 1, "one error, naming the cycle: {got:?}");
}

#[test]
fn names_cannot_carry_paths_or_clash() {
    let got = problems(
        "[[features]]\nname = \"../x\"\nexpr = \"1\"\n[[features]]\nname = \"arr\"\nexpr = \"1\"\n[[segmentations]]\nname = \"s\"\ndefault = \"D\"\nrules = [{ name = \"default\", label = \"X\", when = \"TRUE\" }, { name = \"r\", label = \"\", when = \"1\" }]\n",
    );
    assert!(got[0].contains("feature `../x` is not a valid name"), "{got:?}");
    assert!(got[1].contains("`arr` is a reserved column name"), "{got:?}");
    assert!(got[2].contains("`default` names the default label"), "{got:?}");
    assert!(got[3].contains("the label is empty"), "{got:?}");
    assert!(
        got[4].contains("`when` must be a condition, but it is a number"),
        "{got:?}"
    );
}

#[test]
fn quality_policies() {
    let got = problems(
        "[quality]\nnegative_arr = \"drop\"\nnull_account_id = \"warn\"\nnps_range = \"error\"\nmax_reject_ratio = 2\n",
    );
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter()
            .any(|g| g.contains("`max_reject_ratio` must be a number from 0 to 1"))
    );
    assert!(got.iter().any(|g| g.contains("`null_account_id` cannot be `warn`")));
    assert!(
        got.iter()
            .any(|g| g.contains("unknown data check `nps_range`") && g.contains("nps_out_of_range"))
    );
    let ok = compile(&format!("{BASE}[quality]\nnegative_arr = \"drop\"\n"), "p.toml").unwrap();
    assert_eq!(ok.quality.policy(Check::NegativeArr), Policy::Drop);
    assert_eq!(ok.quality.policy(Check::UnknownAccountUsage), Policy::Warn);
}

#[test]
fn syntax_errors_carry_the_line() {
    let got = problems("[params\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], "p.toml:9:8: unclosed table, expected `]`");
}

#[test]
fn the_hash_ignores_comments_and_layout() {
    let a = compile(BASE, "p.toml").unwrap().hash;
    let b = compile(
        &format!("# a comment\n{}", BASE.replace("uri = \"u/\"", "uri   =   \"u/\"")),
        "p.toml",
    )
    .unwrap()
    .hash;
    let c = compile(&BASE.replace("u/", "v/"), "p.toml").unwrap().hash;
    assert_eq!(a, b);
    assert_ne!(a, c);
}
