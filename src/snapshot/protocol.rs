//! The steps every table format's commit shares, written once; each format
//! implements only what differs behind [`CycleFormat`]: how it inspects a
//! cycle (what is committed, read from its commit point, and what a dead
//! run left) and what its repair changes.
//!
//! A commit is: take the cycle's lock ([`begin`]: the pause points the
//! kill tests stop at, the repair of what a dead run left, the refusal of a
//! committed cycle without `--replace`); stage the run's files and make the
//! format's commit point (the format's own code); then [`publish`] what is
//! derived from the commit (the catalog copy, the rejects) as a repair does
//! for a run that died there. Every reader goes through [`committed_run`], which
//! repairs when no live run holds the cycle.

use super::commit::{already_committed, lock_for_commit, pause_point, repair_if_free};
use super::lock;
use super::manifest::Manifest;
use crate::cycle::Cycle;
use crate::error::{Result, SnapshotError};
use crate::storage::Store;

/// What a format finds in a cycle's folders.
pub trait Inspected {
    /// The committed run, read from the commit point.
    fn committed(&self) -> Option<&Manifest>;
    fn into_committed(self) -> Option<Manifest>;
    /// Whether a dead run left something to finish or remove.
    fn needs_repair(&self) -> bool;
    /// A cycle the format cannot read as committed (a Delta version that
    /// names a missing file): taken out of the state, for the caller to
    /// refuse, or to replace with `--replace`.
    fn broken(&mut self) -> Option<SnapshotError> {
        None
    }
}

/// A table format's view of one output root: inspect a cycle, repair it.
pub trait CycleFormat {
    type State: Inspected;
    fn inspect(&self, cycle: &Cycle) -> Result<Self::State>;
    /// Finishes or rolls back what a dead run left. The lock is held.
    fn repair(&mut self, cycle: &Cycle, state: &Self::State) -> Result<()>;
}

/// The committed run of a cycle, if any, after repairing what a dead run
/// left when no live run holds the cycle (that one finishes its own work).
/// What is committed is read from the commit point, so a reader that may
/// not write (a BI service account) gets the right answer; its repair is
/// then left to the next run, with a warning. `open` opens the format anew
/// for the repair, under the lock.
pub fn committed_run<F: CycleFormat>(
    store: &Store,
    cycle: &Cycle,
    open: impl Fn() -> Result<F>,
) -> Result<Option<Manifest>> {
    let mut state = open()?.inspect(cycle)?;
    if let Some(broken) = state.broken() {
        return Err(broken.into());
    }
    if !state.needs_repair() {
        return Ok(state.into_committed());
    }
    repair_if_free(store, cycle, state.into_committed(), || {
        let mut format = open()?;
        let state = format.inspect(cycle)?;
        format.repair(cycle, &state)?;
        Ok(state.into_committed())
    })
}

/// The opening of every commit: the cycle's lock, what a dead run left
/// repaired, and a committed (or broken) cycle refused unless `replace`.
/// The format is opened (`open`) only under the lock, so that it sees
/// every commit made before. Returns the lock, the format and the cycle's
/// state before this run.
pub fn begin<'a, F: CycleFormat>(
    store: &'a Store,
    open: impl FnOnce() -> Result<F>,
    cycle: &Cycle,
    run_id: &str,
    replace: bool,
) -> Result<(lock::Held<'a>, F, F::State)> {
    pause_point("before-lock");
    let held = lock_for_commit(store, cycle, run_id)?;
    pause_point("after-lock");
    let mut format = open()?;
    let mut state = format.inspect(cycle)?;
    // A broken cycle is committed anew only when asked to replace it.
    if let (Some(broken), false) = (state.broken(), replace) {
        return Err(broken.into());
    }
    format.repair(cycle, &state)?;
    if let (Some(m), false) = (state.committed(), replace) {
        return Err(already_committed(store, cycle, m));
    }
    Ok((held, format, state))
}

/// After the commit point: what a repair does after a run that died there
/// (the catalog copy, the rejects published, the replaced run's files).
pub fn publish<F: CycleFormat>(mut format: F, cycle: &Cycle) -> Result<()> {
    let state = format.inspect(cycle)?;
    format.repair(cycle, &state)
}
