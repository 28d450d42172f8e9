//! Snapshots: where they live ([`layout`]), what their commit record holds
//! ([`manifest`]), how they are encoded ([`encode`]), the cycle lock
//! ([`lock`]) and the one commit protocol with its repair ([`commit`]),
//! used by `run` and `compare` alike.

pub mod commit;
pub mod encode;
pub mod layout;
pub mod lock;
pub mod manifest;

pub use commit::{
    Commit, check_replaceable, commit, commit_comparison, list_committed, put_table, scan_committed, settle,
};
pub use layout::partition;
pub use manifest::{
    CompareManifest, FORMAT_VERSION, InputInfo, Inputs, LabelSummary, Manifest, OutputFile, PipelineInfo, Replaced,
    SegmentationSummary, new_run_id,
};
