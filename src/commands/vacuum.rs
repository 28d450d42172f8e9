//! `quadrant vacuum`: deletes the files of Delta output that replaced runs
//! left, once they are older than the retention.

use crate::cli::VacuumArgs;
use crate::error::Result;

use super::Settings;

pub fn vacuum(args: VacuumArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let snapshots = setup.snapshots()?;
    let Some(tables) = snapshots.vacuum(args.retain_hours, args.force, args.dry_run)? else {
        if args.json {
            crate::outln!("[]");
        } else {
            crate::outln!(
                "nothing to vacuum: {} holds no Delta tables (Parquet snapshots are replaced in place and keep no removed files)",
                snapshots.store().uri()
            );
        }
        return Ok(());
    };
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&tables).expect("serializable"));
        return Ok(());
    }
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    for t in &tables {
        crate::outln!(
            "{}: {verb} {} file(s) removed more than {} hours ago",
            t.table,
            t.files.len(),
            t.retain_hours
        );
        for f in &t.files {
            crate::outln!("  {f}");
        }
    }
    Ok(())
}
