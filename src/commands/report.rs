//! `quadrant report`: the HTML page of all committed cycles.

use crate::cli::ReportArgs;
use crate::error::{Error, Result};

use super::Settings;

pub fn report(args: ReportArgs) -> Result<()> {
    let setup = Settings::resolve(&args.locations)?;
    let snapshots = setup.existing_snapshots()?;
    let html = crate::report::render(&snapshots)?;
    std::fs::write(&args.to, html).map_err(|e| Error::io("write", &args.to, e))?;
    crate::outln!("wrote {}", args.to);
    Ok(())
}
