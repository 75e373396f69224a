//! Where samples come from: the operating system, or a test's script.

use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::{Error, Result, Sample};

/// A source of memory readings. The guard asks it once per interval.
pub trait SampleSource: Send + 'static {
    /// Reads the process and the system now.
    ///
    /// # Errors
    /// If the reading is not available; the guard skips that tick.
    fn sample(&mut self) -> Result<Sample>;
}

/// Reads this process and the system through `sysinfo`.
pub struct ProcessSource {
    system: System,
    pid: Pid,
    now: cache_core::Now,
}

impl ProcessSource {
    /// A source for the current process.
    ///
    /// # Errors
    /// [`Error::Sample`] where the platform cannot name the current process.
    pub fn new() -> Result<Self> {
        let pid = sysinfo::get_current_pid().map_err(|e| Error::Sample(e.to_owned()))?;
        Ok(Self {
            system: System::new(),
            pid,
            now: cache_core::wall_clock(),
        })
    }

    /// The same source stamping its samples with `now` (the service's clock).
    pub fn with_clock(mut self, now: cache_core::Now) -> Self {
        self.now = now;
        self
    }
}

impl std::fmt::Debug for ProcessSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSource")
            .field("pid", &self.pid)
            .finish()
    }
}

impl SampleSource for ProcessSource {
    fn sample(&mut self) -> Result<Sample> {
        // Only this process and only its memory: a full process scan costs milliseconds.
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let p = self
            .system
            .process(self.pid)
            .ok_or_else(|| Error::Sample(format!("process {} not found", self.pid)))?;
        let rss = p.memory();
        Ok(Sample {
            at_ms: (self.now)(),
            rss_bytes: rss,
            private_bytes: private_resident().unwrap_or(rss),
            accounted_bytes: 0,
            virtual_bytes: p.virtual_memory(),
            system_total_bytes: self.system.total_memory(),
            system_available_bytes: self.system.available_memory(),
        })
    }
}

/// Anonymous plus shared-memory resident bytes, from `/proc/self/status` (Linux); `None`
/// where that is not available, and RSS is used instead.
fn private_resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((kb("RssAnon:")? + kb("RssShmem:").unwrap_or(0)) * 1024)
}
