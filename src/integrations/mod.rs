//! What quadrant tells the orchestrators around it: OpenLineage run events
//! ([`lineage`]) and Dagster Pipes messages ([`pipes`]).

pub mod lineage;
pub mod pipes;
