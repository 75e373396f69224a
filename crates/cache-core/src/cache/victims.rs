//! What an eviction scan keeps between calls, and why it runs.

use crate::shard::Candidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Making room for a write: demote hot entries before evicting warm ones.
    Pressure,
    /// Freeing memory on request: evict, warm first, and compress nothing.
    Reclaim,
}

/// Eviction candidates of one scope (a namespace, or all), oldest last.
#[derive(Default)]
pub(super) struct Victims {
    pub(super) lists: [Vec<Candidate>; 2],
    /// Candidates left per tier and shard.
    pub(super) remaining: [Vec<usize>; 2],
    /// Whether the scan stopped short of the end of that shard's list.
    pub(super) truncated: [Vec<bool>; 2],
    pub(super) valid: bool,
}
