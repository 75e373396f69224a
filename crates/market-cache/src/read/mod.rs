//! The read path: ranges split into grid-aligned chunks cached in `cache-core`, so
//! overlapping queries share chunks; coarser timeframes resampled from the finest stored
//! one; gaps reported or filled.
//!
//! A request goes `walk` (the plan and the walk over the grid, once) → `tiers` (each
//! chunk from the first tier that has it) → `slices` (index ranges of chunks, copied out
//! once at the end); `resample` is a pure function; `funding` reads funding events.

mod funding;
mod path;
pub(crate) mod resample;
mod slices;
mod tiers;
mod types;
mod walk;

pub(crate) use path::ReadPath;
pub use types::{Answer, Fill, LiveConfig, ReadStats, Request, Source, DEFAULT_LIMIT, MAX_LIMIT};
