//! Every path under the output root, in one place.
//!
//! ```text
//! segments/cycle=C/part-0.parquet                  the snapshot: its appearance is the commit
//! segments/cycle=C/_manifest.json                  the commit record, derived from the data file
//! rejects/cycle=C/dataset=D/part-0.parquet        rows dropped by data checks
//! _quadrant/staging/cycle=C/run=R/dataset=D.parquet a run's rejects before its commit
//! compare/from=C1/to=C2/<table>/part-0.parquet     compare's tables
//! compare/from=C1/to=C2/_manifest.json
//! _quadrant/locks/cycle=C.json                     held while a run commits or repairs
//! ```
//!
//! With `[output] format = "delta"`, each table is a Delta Lake table
//! (its log in `_delta_log/`) and each run's files have its run id in their
//! names; the table's log says which are committed:
//!
//! ```text
//! segments/cycle=C/part-<run>.parquet              partitioned by cycle
//! segments/cycle=C/_manifest.json                  the commit record, derived from the log
//! rejects/<dataset>/cycle=C/part-<run>.parquet     one table per dataset
//! compare/<table>/from=C1/to=C2/part-<run>.parquet one table per compare table
//! compare/from=C1/to=C2/_manifest.json
//! ```

use crate::config::Dataset;
use crate::cycle::Cycle;

/// The commit record's file name, beside the data it describes.
pub const MANIFEST: &str = "_manifest.json";

/// The one data file of a committed table. Its name is fixed so that a
/// replace is one atomic overwrite: a reader that globs the folder sees the
/// old rows or the new rows, never both.
pub const DATA_FILE: &str = "part-0.parquet";

/// The snapshot table, the rejects and compare's tables, below the root.
pub const SEGMENTS: &str = "segments";
pub const REJECTS: &str = "rejects";
pub const COMPARE: &str = "compare";

/// compare's tables.
pub const COMPARE_TABLES: [&str; 4] = ["transitions", "retention", "bridge", "moves"];

/// A cycle's Hive partition folder inside a table: `cycle=C`.
pub fn cycle_partition(cycle: &Cycle) -> String {
    format!("cycle={cycle}")
}

/// A comparison's Hive partition folders inside a table: `from=C1/to=C2`.
pub fn pair_partition(from: &str, to: &str) -> String {
    format!("from={from}/to={to}")
}

pub fn partition(cycle: &Cycle) -> String {
    format!("{SEGMENTS}/{}", cycle_partition(cycle))
}

/// A run's file in a Delta table's partition: the run id makes it unique,
/// so a run never overwrites a file that another version of the table reads.
pub fn run_file(partition: &str, run_id: &str) -> String {
    format!("{partition}/part-{run_id}.parquet")
}

/// The Delta table of a dataset's rejects.
pub fn rejects_table(dataset: Dataset) -> String {
    format!("{REJECTS}/{dataset}")
}

/// The Delta table of one of compare's tables.
pub fn compare_delta_table(table: &str) -> String {
    format!("{COMPARE}/{table}")
}

pub fn data_file(cycle: &Cycle) -> String {
    format!("{}/{DATA_FILE}", partition(cycle))
}

pub fn manifest_file(cycle: &Cycle) -> String {
    format!("{}/{MANIFEST}", partition(cycle))
}

pub fn rejects_dir(cycle: &Cycle) -> String {
    format!("{REJECTS}/{}", cycle_partition(cycle))
}

/// A dataset's rejects, at a fixed name like the snapshot's, so that a glob
/// sees one run's rejects of a dataset, never two.
pub fn rejects_file(cycle: &Cycle, dataset: Dataset) -> String {
    format!("{}/dataset={dataset}/{DATA_FILE}", rejects_dir(cycle))
}

/// Where a run puts its rejects before it commits; they are copied to
/// [`rejects_file`] once its snapshot is committed.
pub fn staging_dir(cycle: &Cycle) -> String {
    format!("_quadrant/staging/cycle={cycle}")
}

pub fn staged_rejects(cycle: &Cycle, run_id: &str, dataset: Dataset) -> String {
    format!("{}/run={run_id}/dataset={dataset}.parquet", staging_dir(cycle))
}

pub fn lock_file(cycle: &Cycle) -> String {
    format!("_quadrant/locks/cycle={cycle}.json")
}

pub fn compare_dir(from: &str, to: &str) -> String {
    format!("{COMPARE}/{}", pair_partition(from, to))
}

pub fn compare_table(from: &str, to: &str, table: &str) -> String {
    format!("{}/{table}/{DATA_FILE}", compare_dir(from, to))
}

/// The cycle of a path below `segments/`, if it is one (`segments/cycle=C/...`).
pub fn cycle_of(rel: &str) -> Option<Cycle> {
    rel.strip_prefix("segments/cycle=")?.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_their_cycle() {
        let cycle: Cycle = "2026-Q3".parse().unwrap();
        assert_eq!(data_file(&cycle), "segments/cycle=2026-Q3/part-0.parquet");
        assert_eq!(cycle_of(&data_file(&cycle)), Some(cycle));
        assert_eq!(cycle_of(&manifest_file(&cycle)), Some(cycle));
        assert_eq!(cycle_of("segments/cycle=../x/part-0.parquet"), None);
        assert_eq!(cycle_of("rejects/cycle=2026-Q3/x"), None);
    }
}
