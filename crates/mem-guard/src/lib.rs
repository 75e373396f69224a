//! Memory watch for candlecache: sampling, trend, health and reclaim.
//!
//! This crate will own the process memory sampler (into a ring buffer, with an injectable
//! sample source), the analysis (growth rate by least squares, leak suspicion, stability
//! score, health level against a limit, recommendations), reclaim on pressure through
//! `cache_core::Reclaim`, and allocation profiling by scope with a counting allocator.
//!
//! It may depend on `cache-core` only.
//!
//! Today: [`analyze`], the analysis of a window of [`Sample`]s against [`Thresholds`]
//! (least-squares trend, leak suspicion, stability score, [`Health`], recommendations).
//! The sampler, reclaim, profiling and the endpoint are still to come.

mod analysis;

pub use analysis::{analyze, Analysis, Health, Sample, Thresholds};
