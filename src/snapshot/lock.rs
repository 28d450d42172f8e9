//! The cycle lock: a create-only object that one run (or one repair) holds
//! while it changes a cycle, so two writers never interleave. A lock left by
//! a run that died is taken over: at once on the same host when its process
//! has ended, after a lease from elsewhere.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::layout;
use crate::cycle::Cycle;
use crate::error::{ConflictError, Error, Result};
use crate::storage::Store;

/// A lock older than this is taken to belong to a run that died.
const LEASE_SECONDS: i64 = 5 * 60;

#[derive(Serialize, Deserialize)]
struct Lock {
    run_id: String,
    host: String,
    pid: u32,
    started_at: String,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Is the run that holds this lock gone? Same host: its process has ended.
/// Elsewhere: the lock is older than the lease.
fn is_stale(lock: &Lock) -> bool {
    let age = DateTime::parse_from_rfc3339(&lock.started_at)
        .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds())
        .unwrap_or(i64::MAX);
    if age > LEASE_SECONDS {
        return true;
    }
    let proc = std::path::Path::new("/proc");
    lock.host == host_name() && proc.exists() && !proc.join(lock.pid.to_string()).exists()
}

/// A held lock; dropping it releases the lock.
pub struct Held<'a> {
    store: &'a Store,
    path: object_store::path::Path,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.delete(&self.path) {
            tracing::warn!(error = %e, "could not release the cycle lock");
        }
    }
}

/// Who holds a lock that could not be taken.
pub struct Holder(Option<Lock>);

/// The run id a repair holds the lock under: repairs are brief, so a run
/// that finds one waits for it rather than giving up.
pub fn repair_id() -> String {
    format!("repair-{}", std::process::id())
}

impl Holder {
    /// Is the lock held by a repair (of a reader, or of a run that exits 4)?
    pub fn is_repair(&self) -> bool {
        self.0.as_ref().is_some_and(|h| h.run_id.starts_with("repair-"))
    }

    pub fn conflict(&self, cycle: &Cycle) -> Error {
        match &self.0 {
            Some(h) => ConflictError::BeingCommitted {
                cycle: cycle.to_string(),
                run_id: h.run_id.clone(),
                host: h.host.clone(),
                pid: h.pid,
                since: h.started_at.clone(),
                lease_minutes: LEASE_SECONDS / 60,
            }
            .into(),
            None => ConflictError::LockHeld {
                cycle: cycle.to_string(),
            }
            .into(),
        }
    }
}

/// Is the cycle's lock held by a run that died? (It is taken over, and so
/// removed, by the next repair.)
pub fn is_dead(store: &Store, cycle: &Cycle) -> Result<bool> {
    let path = store.path(&layout::lock_file(cycle));
    Ok(store
        .get(&path)?
        .and_then(|b| serde_json::from_slice::<Lock>(&b).ok())
        .is_some_and(|lock| is_stale(&lock)))
}

/// Takes the cycle's lock, or says who holds it.
pub fn take<'a>(store: &'a Store, cycle: &Cycle, run_id: &str) -> Result<Result<Held<'a>, Holder>> {
    let path = store.path(&layout::lock_file(cycle));
    let lock = Lock {
        run_id: run_id.to_string(),
        host: host_name(),
        pid: std::process::id(),
        started_at: Utc::now().to_rfc3339(),
    };
    let body = Bytes::from(serde_json::to_vec_pretty(&lock).expect("serializable"));
    let mut holder = None;
    for attempt in 0..2 {
        if store.put(&path, body.clone(), true)? {
            return Ok(Ok(Held { store, path }));
        }
        holder = store.get(&path)?.and_then(|b| serde_json::from_slice::<Lock>(&b).ok());
        match &holder {
            Some(h) if attempt == 0 && is_stale(h) => {
                tracing::warn!(%cycle, stale_run = %h.run_id, "taking over the lock of a run that died");
                store.delete(&path)?;
            }
            // Released between our put and our read: try again.
            None if attempt == 0 => {}
            _ => break,
        }
    }
    Ok(Err(Holder(holder)))
}
