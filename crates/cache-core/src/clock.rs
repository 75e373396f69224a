use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Wall-clock time in milliseconds since the Unix epoch: the one wall clock of every
/// crate (timestamps in logs, stats and answers; the read path's default `now`), so
/// they agree and a test or a future time source changes it in one place. 0 if the
/// system clock is before 1970.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A wall clock in epoch ms, injectable: the service's "now" (the live edge, the streams'
/// watchdog, dates in answers, memory samples) is one of these, so a test that moves it
/// moves every reader of it.
pub type Now = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// [`wall_ms`] as a [`Now`].
pub fn wall_clock() -> Now {
    std::sync::Arc::new(wall_ms)
}

/// A monotonic time source; the cache uses it for TTLs and for LRU recency.
///
/// Injecting a [`ManualClock`] lets tests move time without sleeping.
pub trait Clock: Send + Sync + Debug {
    /// Returns nanoseconds since an arbitrary, fixed origin. Must never go backwards.
    fn now_nanos(&self) -> u64;
}

/// The real clock: nanoseconds since the clock was created, from [`Instant`].
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// Creates a clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        // u64 nanoseconds last 584 years of uptime.
        self.origin.elapsed().as_nanos() as u64
    }
}

/// A clock that only moves when told to, for tests.
///
/// Every reading is one nanosecond later than the previous one, so LRU recency stays
/// strictly ordered even while the test holds time still.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// Creates a clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.now.fetch_add(1, Ordering::SeqCst) + 1
    }
}
