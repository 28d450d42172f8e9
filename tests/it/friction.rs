//! What a new user meets on the way: each message names the thing, says
//! what is wrong and what to do.

use crate::*;

/// A missing input says it does not exist (and, for a relative path, where
/// it was looked for: the built-in pipeline's fixtures are relative to the
/// current directory); a folder of CSVs says so; a CSV beside the Parquet
/// is named in a warning and left out.
#[test]
fn inputs_that_are_missing_or_not_parquet_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let o = quadrant().current_dir(tmp.path()).args(["validate"]).output().unwrap();
    expect_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("`fixtures/accounts.parquet` does not exist")
            && err.contains(&format!("current directory {}", tmp.path().display()))
            && err.contains("built-in default pipeline"),
        "{err}"
    );
    let o = run(&["validate", "--usage", tmp.path().join("nowhere/").to_str().unwrap()]);
    expect_code(&o, 3);
    assert!(stderr(&o).contains("nowhere/` does not exist"), "{}", stderr(&o));

    let usage = tmp.path().join("usage");
    std::fs::create_dir_all(&usage).unwrap();
    std::fs::write(usage.join("export.csv"), "account_id,date,events\n").unwrap();
    let uri = format!("{}/", usage.display());
    let o = run(&["validate", "--usage", &uri]);
    expect_code(&o, 3);
    assert!(
        stderr(&o).contains("holds no Parquet files, only: export.csv"),
        "{}",
        stderr(&o)
    );
    std::fs::copy(
        root().join("fixtures/usage/part-00000.parquet"),
        usage.join("part-0.parquet"),
    )
    .unwrap();
    let o = run(&["validate", "--usage", &uri]);
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains("not Parquet") && stderr(&o).contains("export.csv"),
        "{}",
        stderr(&o)
    );
}

/// validate lists as used only what the pipeline reads; a passthrough typo
/// suggests the column and says where to fix it.
#[test]
fn validate_lists_used_columns_and_a_passthrough_typo_is_fixed_where_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let minimal = tmp.path().join("minimal.toml");
    std::fs::write(
        &minimal,
        r#"name = "minimal"
[inputs.accounts]
uri = "fixtures/accounts.parquet"
[inputs.usage]
uri = "fixtures/usage/"
[output]
uri = "out/"
passthrough = ["region"]
[[segmentations]]
name = "big"
default = "small"
rules = [{ name = "big", label = "big", when = "arr >= 10000" }]
"#,
    )
    .unwrap();
    let o = run(&["validate", "--pipeline", minimal.to_str().unwrap()]);
    expect_code(&o, 0);
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with("accounts"))
        .unwrap()
        .to_string();
    let used = line.split("columns used: ").nth(1).unwrap();
    assert_eq!(
        used, "account_id, arr, customer_since, snapshot_date, churned_on, region",
        "{line}"
    );

    let typo = tmp.path().join("typo.toml");
    std::fs::write(&typo, text.replace("\"industry\"", "\"industy\"")).unwrap();
    let o = run(&["validate", "--pipeline", typo.to_str().unwrap()]);
    expect_code(&o, 3);
    assert!(
        stderr(&o).contains("did you mean `industry`?") && stderr(&o).contains("[output] passthrough"),
        "{}",
        stderr(&o)
    );
}

/// explain shows the value each base-wide function had in the cycle, and
/// for an account that is not in the cycle, why: churned (when), first
/// exported later, or not in the data (with the id it nearly is).
#[test]
fn explain_shows_base_wide_values_and_why_an_account_is_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    expect_code(&run(&["run", "--cycles", "2026-Q2..2026-Q3", "--output", out_s]), 0);
    let o = run(&["explain", "--output", out_s, "--account", "A0000002"]);
    expect_code(&o, 0);
    // The 75th percentile of the cycle's ARR, computed independently.
    let rows = glob_rows(&out, "2026-Q3").unwrap();
    let mut arr: Vec<f64> = rows.column("arr").unwrap().f64().unwrap().into_no_null_iter().collect();
    arr.sort_by(f64::total_cmp);
    let at = 0.75 * (arr.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    let q = arr[lo] + (arr[hi] - arr[lo]) * (at - lo as f64);
    let shown = format!("arr >= quantile(arr, 0.75) [{}]", quadrant::terminal::number(q));
    assert!(stdout(&o).contains(&shown), "{shown}:\n{}", stdout(&o));

    for (id, why) in [
        ("A0000013", "churned on 2026-05-13"),
        ("a0000002", "did you mean `A0000002`? (ids are case-sensitive)"),
        ("Z9", "no account has this id in `fixtures/accounts.parquet`"),
    ] {
        let o = run(&["explain", "--output", out_s, "--account", id]);
        expect_code(&o, 2);
        assert!(stderr(&o).contains(why), "{id}: {}", stderr(&o));
    }
    let o = run(&[
        "explain",
        "--output",
        out_s,
        "--account",
        "A0000046",
        "--cycle",
        "2026-Q1",
    ]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("first export in `fixtures/accounts.parquet` is from 2026-06-30"),
        "{}",
        stderr(&o)
    );
}

/// The hints of cycles, report, compare and generate name what exists.
#[test]
fn hints_name_what_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-root");
    for command in ["cycles", "report"] {
        let o = run(&[command, "--output", missing.to_str().unwrap()]);
        expect_code(&o, 2);
        assert!(
            stderr(&o).contains("does not exist") && stderr(&o).contains("--output"),
            "{}",
            stderr(&o)
        );
    }
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let o = run(&["report", "--output", out_s]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("pass --output with the root that holds them"),
        "{}",
        stderr(&o)
    );
    expect_code(&run(&["run", "--cycles", "2026-Q2..2026-Q3", "--output", out_s]), 0);
    let o = run(&[
        "compare",
        "--output",
        out_s,
        "--from",
        "2026-Q2",
        "--to",
        "2026-Q3",
        "--segmentation",
        "growth_rsk",
    ]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("did you mean `growth_risk`?"), "{}", stderr(&o));
    let o = run(&["cycles", "--output", out_s, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(listed[0]["committed_at"].is_string(), "{listed}");
    let text = run(&["cycles", "--output", out_s]);
    assert!(stdout(&text).contains("committed_at"));

    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "mine").unwrap();
    let gen_args = |force: bool| {
        let mut a = vec![
            "generate",
            "--out",
            data.to_str().unwrap(),
            "--accounts",
            "20",
            "--days",
            "40",
        ];
        if force {
            a.push("--force");
        }
        run(&a)
    };
    let o = gen_args(false);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("is not empty") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert!(!data.join("accounts.parquet").exists());
    expect_code(&gen_args(true), 0);
    assert!(data.join("accounts.parquet").exists() && data.join("notes.txt").exists());
}

/// diff says which ARR it shows and orders labels as the pipeline does.
#[test]
fn diff_labels_its_arr_and_orders_labels_as_the_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    expect_code(&run(&["run", "--cycle", "2026-Q3", "--output", out_s]), 0);
    let text = std::fs::read_to_string(root().join("pipelines/default.toml")).unwrap();
    let raised = tmp.path().join("raised.toml");
    let changed = text.replace("grow_min_potential = 0.45", "grow_min_potential = 0.50");
    assert_ne!(changed, text);
    std::fs::write(&raised, changed).unwrap();
    let o = run(&["diff", "--output", out_s, "--pipeline", raised.to_str().unwrap()]);
    expect_code(&o, 0);
    let shown = stdout(&o);
    assert!(shown.contains("of ARR (each account's ARR at as_of"), "{shown}");
    let header = shown
        .lines()
        .find(|l| l.trim_start().starts_with("committed \\ new"))
        .unwrap();
    let labels: Vec<&str> = header.split_whitespace().skip(3).collect();
    // The wallet-share matrix's rules give Re-evaluate, Protect, Grow, then
    // the default Manage.
    let order = ["Re-evaluate", "Protect", "Grow", "Manage"];
    let positions: Vec<usize> = labels
        .iter()
        .map(|l| order.iter().position(|o| o == l).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{header}");
}

/// Every link of the README and docs/ that is not a web address names a
/// file of the repository (a clone has no ../shared/).
#[test]
fn the_readme_links_only_to_files_in_the_repository() {
    let mut pages = vec![root().join("README.md")];
    pages.extend(
        std::fs::read_dir(root().join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    for page in pages.iter().filter(|p| p.extension().is_some_and(|x| x == "md")) {
        let text = std::fs::read_to_string(page).unwrap();
        for link in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            let target = link.split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = page.parent().unwrap().join(target);
            assert!(
                resolved.exists()
                    && resolved
                        .canonicalize()
                        .unwrap()
                        .starts_with(root().canonicalize().unwrap()),
                "{}: `{link}` is not a file of the repository",
                page.display()
            );
        }
    }
}
