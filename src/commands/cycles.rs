//! `quadrant cycles`: the committed snapshots under the output root.

use crate::cli::CyclesArgs;
use crate::error::Result;
use crate::terminal;

use super::Settings;

pub fn cycles(args: CyclesArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let snapshots = setup.existing_snapshots()?;
    let store = snapshots.store();
    let manifests = snapshots.list_committed()?;
    if args.json {
        let list: Vec<serde_json::Value> = manifests
            .iter()
            .map(|m| {
                serde_json::json!({
                    "cycle": m.cycle, "as_of": m.as_of, "run_id": m.run_id,
                    "committed_at": m.finished_at, "rows": m.rows,
                    "pipeline": m.pipeline.name, "pipeline_hash": m.pipeline.hash,
                    "replaced_run": m.replaced.as_ref().map(|r| r.run_id.clone()),
                })
            })
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&list).expect("serializable"));
        return Ok(());
    }
    if manifests.is_empty() {
        crate::outln!("no committed snapshots under {}", store.uri());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = manifests
        .iter()
        .map(|m| {
            vec![
                m.cycle.clone(),
                m.as_of.clone(),
                m.run_id.clone(),
                m.finished_at.clone(),
                m.rows.to_string(),
                m.pipeline.name.clone(),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        terminal::render(
            &["cycle", "as_of", "run_id", "committed_at", "rows", "pipeline"],
            &rows,
            &[false, false, false, false, true, false]
        )
    );
    Ok(())
}
