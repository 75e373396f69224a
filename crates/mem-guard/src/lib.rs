//! Memory watch for candlecache: sampling, trend, health and reclaim.
//!
//! This crate will own the process memory sampler (into a ring buffer, with an injectable
//! sample source), the analysis (growth rate by least squares, leak suspicion, stability
//! score, health level against a limit, recommendations), reclaim on pressure through
//! `cache_core::Reclaim`, and allocation profiling by scope with a counting allocator.
//!
//! It may depend on `cache-core` only.
