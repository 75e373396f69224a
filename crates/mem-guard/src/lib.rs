//! Memory watch for candlecache: sampling, trend, health, reclaim and allocation
//! profiling.
//!
//! # Overview
//! A [`MemGuard`] takes a [`Sample`] of the process (resident and virtual memory) and the
//! system from a [`SampleSource`] every `sample_interval_ms` (10 s) on a thread of its own
//! ([`MemGuard::start`]), keeps an hour of them, and [`analyze`]s the window: least-squares
//! growth in MB a minute, leak suspicion (sustained, well-fitting growth), a stability
//! score, and a [`Health`] level against the limit (2 GB; Warning at 80 %, Critical at
//! 90 %) with recommendations in words. On Warning the registered `cache_core::Reclaim`
//! targets free least recently used entries until resident memory would be at
//! `reclaim_to` (70 %) of the limit; on Critical the warm tier is dropped and the hot tier
//! at least halved. Every action is recorded ([`ReclaimAction`]).
//!
//! Allocation profiling: the binary installs [`CountingAlloc`] as its global allocator;
//! [`Profiles`] then records bytes allocated, allocations and peak per named scope
//! ([`Profiles::scope`], [`profile`], [`Profiles::future`] for async code). [`heap`] has
//! the process-wide counts.
//!
//! It depends on `cache-core` only, for the `Reclaim` seam.

mod analysis;
mod config;
mod error;
mod guard;
mod profile;
mod sampler;

pub use analysis::{analyze, Analysis, Health, Sample};
pub use config::Config;
pub use error::{Error, Result};
pub use guard::{MemGuard, Point, ReclaimAction, Report, Sampler, Trigger};
pub use profile::{heap, profile, CountingAlloc, Heap, Profiled, Profiles, ScopeGuard, ScopeStats};
pub use sampler::{ProcessSource, SampleSource};
