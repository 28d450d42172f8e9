//! A snapshot records the plan it was computed with; `explain` and `report`
//! read that plan, not the pipeline text compiled again with today's
//! checker, so a stricter or renamed checker cannot make old snapshots
//! unexplainable.

use crate::*;

/// Rewrites the committed snapshot of a cycle as if its pipeline text no
/// longer passed today's checker (a builtin renamed since), keeping or
/// dropping its recorded plan.
fn age_the_snapshot(out: &Path, cycle: &str, keep_plan: bool) {
    let data = out.join(format!("segments/cycle={cycle}/part-0.parquet"));
    let mut reader = ParquetReader::new(std::fs::File::open(&data).unwrap());
    let footer = reader.get_metadata().unwrap().key_value_metadata().clone().unwrap();
    let mut frame = reader.finish().unwrap();
    let text = footer.iter().find(|kv| kv.key == "quadrant.manifest").unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(text.value.as_deref().unwrap()).unwrap();
    let source = manifest["pipeline"]["source"].as_str().unwrap();
    assert!(source.contains("days_between(") || source.contains("days_from("));
    manifest["pipeline"]["source"] = source.replace("days_between(", "days_from(").into();
    if !keep_plan {
        manifest.as_object_mut().unwrap().remove("plan");
    }
    let kv = KeyValueMetadata::from_static(vec![("quadrant.manifest".into(), manifest.to_string())]);
    let file = std::fs::File::create(&data).unwrap();
    ParquetWriter::new(file)
        .with_key_value_metadata(Some(kv))
        .finish(&mut frame)
        .unwrap();
    std::fs::remove_file(out.join(format!("segments/cycle={cycle}/_manifest.json"))).unwrap();
}

#[test]
fn an_old_snapshot_is_explained_with_its_recorded_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    expect_code(&run(&["run", "--cycle", "2026-Q3", "--output", out]), 0);
    let before = run(&["explain", "--output", out, "--account", "A0000002", "--json"]);
    expect_code(&before, 0);
    age_the_snapshot(tmp.path(), "2026-Q3", true);

    let after = run(&["explain", "--output", out, "--account", "A0000002", "--json"]);
    expect_code(&after, 0);
    assert_eq!(stdout(&after), stdout(&before), "the same explanation");
    let page = tmp.path().join("report.html");
    expect_code(&run(&["report", "--output", out, "--to", page.to_str().unwrap()]), 0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("2026-Q3"), "the report shows the aged cycle");
    for segmentation in ["wallet_share_matrix", "growth_risk"] {
        assert!(html.contains(segmentation), "the report shows {segmentation}");
    }

    // Without the recorded plan (as in a format-1 snapshot) the text is
    // compiled again, and today's checker refuses it: what the plan prevents.
    age_the_snapshot(tmp.path(), "2026-Q3", false);
    let refused = run(&["explain", "--output", out, "--account", "A0000002"]);
    expect_code(&refused, 2);
    assert!(stderr(&refused).contains("days_from"), "{}", stderr(&refused));
}
