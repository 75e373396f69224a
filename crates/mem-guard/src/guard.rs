//! The guard: samples on a timer, judges, reclaims, and reports.

use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use cache_core::Reclaim;
use serde::Serialize;

use crate::profile::{heap, Heap, Profiles, ScopeStats};
use crate::sampler::{ProcessSource, SampleSource};
use crate::{analyze, Analysis, Config, Health, Result, Sample};

/// Reclaim actions kept for the report.
const ACTIONS_KEPT: usize = 200;
/// Points of history in the report; longer histories are downsampled to this.
const HISTORY_POINTS: usize = 120;

/// What set a reclaim off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The periodic sample found Warning or Critical.
    Sampler,
    /// Someone asked (`POST /api/performance/optimize`).
    OnDemand,
}

/// One thing the guard did to free memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReclaimAction {
    /// When, epoch ms.
    pub at_ms: i64,
    /// What set it off.
    pub trigger: Trigger,
    /// The health level that called for it.
    pub level: Health,
    /// The reclaim target that gave memory back (e.g. `cache`).
    pub by: String,
    /// `evict_lru` (Warning: least recently used entries), `drop_warm` (Critical: the
    /// compressed tier) or `shrink_hot` (Critical: half the hot tier or more).
    pub action: &'static str,
    /// Bytes the target reports freed.
    pub bytes_freed: u64,
    /// Private resident memory at the sample that called for it.
    pub private_bytes: u64,
}

/// A point of the memory history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point {
    /// When, epoch ms (the last sample of the point).
    pub at_ms: i64,
    /// The highest resident memory among the samples of the point.
    pub rss_bytes: u64,
    /// The highest private resident memory among them.
    pub private_bytes: u64,
}

/// Everything the guard knows, for `/api/performance/memory`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The analysis of the history.
    #[serde(flatten)]
    pub analysis: Analysis,
    /// The latest virtual memory of the process.
    pub virtual_bytes: u64,
    /// The system's memory.
    pub system_total_bytes: u64,
    /// The system's available memory.
    pub system_available_bytes: u64,
    /// Milliseconds between samples.
    pub sample_interval_ms: u64,
    /// Samples in the history.
    pub samples: usize,
    /// Samples that could not be taken.
    pub sample_errors: u64,
    /// The history, oldest first, at most 120 points.
    pub history: Vec<Point>,
    /// The heap as the counting allocator saw it.
    pub heap: Heap,
    /// Allocation figures per profiled scope.
    pub profiles: Vec<ScopeStats>,
    /// The latest reclaim actions, oldest first.
    pub reclaims: Vec<ReclaimAction>,
    /// Bytes freed by all reclaims since start.
    pub reclaimed_bytes_total: u64,
    /// Reclaim actions since start.
    pub reclaim_count: u64,
}

#[derive(Default)]
struct State {
    history: VecDeque<Sample>,
    actions: VecDeque<ReclaimAction>,
    reclaimed_bytes: u64,
    reclaims: u64,
    sample_errors: u64,
}

struct Inner {
    config: Config,
    /// The service's clock: reclaim actions are stamped with it.
    now: cache_core::Now,
    source: Mutex<Box<dyn SampleSource>>,
    state: Mutex<State>,
    targets: RwLock<Vec<(String, Arc<dyn Reclaim>)>>,
    profiles: Profiles,
}

/// Watches the process's memory and gives cache memory back under pressure. Cloning is
/// cheap; clones share everything.
#[derive(Clone)]
pub struct MemGuard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemGuard")
            .field("config", &self.inner.config)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere leaves figures that are still worth reporting.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemGuard {
    /// A guard reading `source`.
    ///
    /// # Errors
    /// [`crate::Error::Config`] if `config` cannot work.
    pub fn new(config: Config, source: impl SampleSource) -> Result<Self> {
        Self::with_clock(config, source, cache_core::wall_clock())
    }

    /// A guard reading `source`, its reclaim actions stamped by `now`.
    ///
    /// # Errors
    /// [`crate::Error::Config`] if `config` cannot work.
    fn with_clock(config: Config, source: impl SampleSource, now: cache_core::Now) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                now,
                source: Mutex::new(Box::new(source)),
                state: Mutex::default(),
                targets: RwLock::default(),
                profiles: Profiles::default(),
            }),
        })
    }

    /// A guard reading this process through the operating system.
    ///
    /// # Errors
    /// A bad `config`, or a platform that cannot name the current process.
    pub fn for_process(config: Config) -> Result<Self> {
        Self::new(config, ProcessSource::new()?)
    }

    /// A guard reading this process, its samples and actions stamped by `now` (the
    /// service's clock).
    ///
    /// # Errors
    /// As [`MemGuard::for_process`].
    pub fn for_process_with_clock(config: Config, now: cache_core::Now) -> Result<Self> {
        Self::with_clock(config, ProcessSource::new()?.with_clock(now.clone()), now)
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The per-scope allocation figures, to profile code with.
    pub fn profiles(&self) -> &Profiles {
        &self.inner.profiles
    }

    /// Adds something that can give memory back, asked in the order registered.
    pub fn register(&self, name: &str, target: Arc<dyn Reclaim>) {
        self.inner
            .targets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), target));
    }

    /// Takes a sample, judges the history and reclaims if the level calls for it. Returns
    /// the analysis, or `None` if no sample could be taken.
    pub fn tick(&self) -> Option<Analysis> {
        self.sample_and_reclaim(Trigger::Sampler).map(|(a, _)| a)
    }

    /// Samples now and reclaims as the level calls for (nothing below Warning); returns
    /// the analysis and what was done.
    pub fn reclaim_now(&self) -> Option<(Analysis, Vec<ReclaimAction>)> {
        self.sample_and_reclaim(Trigger::OnDemand)
    }

    fn sample_and_reclaim(&self, trigger: Trigger) -> Option<(Analysis, Vec<ReclaimAction>)> {
        let sample = lock(&self.inner.source).sample();
        let analysis = {
            let mut st = lock(&self.inner.state);
            let Ok(mut sample) = sample else {
                st.sample_errors += 1;
                return None;
            };
            sample.accounted_bytes = self
                .inner
                .targets
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(_, t)| t.held_bytes())
                .sum();
            if st.history.len() >= self.inner.config.capacity() {
                st.history.pop_front();
            }
            st.history.push_back(sample);
            analyze(st.history.make_contiguous(), &self.inner.config)
        };
        let actions = self.reclaim(&analysis, trigger);
        Some((analysis, actions))
    }

    fn reclaim(&self, a: &Analysis, trigger: Trigger) -> Vec<ReclaimAction> {
        if a.health < Health::Warning {
            return Vec::new();
        }
        let c = &self.inner.config;
        let target_rss = (c.limit_bytes() as f64 * c.reclaim_to) as u64;
        let mut want = a.private_bytes.saturating_sub(target_rss);
        let mut done = Vec::new();
        let mut record = |by: &str, action: &'static str, bytes_freed: u64| {
            if bytes_freed > 0 {
                done.push(ReclaimAction {
                    at_ms: (self.inner.now)(),
                    trigger,
                    level: a.health,
                    by: by.to_owned(),
                    action,
                    bytes_freed,
                    private_bytes: a.private_bytes,
                });
            }
        };
        let targets = self
            .inner
            .targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, t) in &targets {
            if a.health == Health::Critical {
                let freed = t.drop_compressed();
                want = want.saturating_sub(freed);
                record(name, "drop_warm", freed);
                // At least half of what is left, so the next sample finds room.
                let ask = want.max(t.held_bytes() / 2);
                let freed = t.free_at_least(ask);
                want = want.saturating_sub(freed);
                record(name, "shrink_hot", freed);
            } else {
                if want == 0 {
                    break;
                }
                let freed = t.free_at_least(want.min(t.held_bytes()));
                want = want.saturating_sub(freed);
                record(name, "evict_lru", freed);
            }
        }
        if !done.is_empty() {
            let mut st = lock(&self.inner.state);
            for action in &done {
                st.reclaimed_bytes += action.bytes_freed;
                st.reclaims += 1;
                if st.actions.len() >= ACTIONS_KEPT {
                    st.actions.pop_front();
                }
                st.actions.push_back(action.clone());
            }
        }
        done
    }

    /// Samples every `sample_interval_ms` on a thread of its own until the returned
    /// handle is dropped. The first sample is taken at once.
    pub fn start(&self) -> Sampler {
        let (stop, stopped) = mpsc::channel::<()>();
        let guard = self.clone();
        let every = Duration::from_millis(self.inner.config.sample_interval_ms);
        let thread = std::thread::Builder::new()
            .name("mem-guard".into())
            .spawn(move || loop {
                guard.tick();
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            })
            .ok();
        Sampler {
            stop: Some(stop),
            thread,
        }
    }

    /// The analysis of the history with everything around it.
    pub fn report(&self) -> Report {
        let st = lock(&self.inner.state);
        let samples: Vec<Sample> = st.history.iter().copied().collect();
        let analysis = analyze(&samples, &self.inner.config);
        let last = samples.last().copied();
        Report {
            analysis,
            virtual_bytes: last.map_or(0, |s| s.virtual_bytes),
            system_total_bytes: last.map_or(0, |s| s.system_total_bytes),
            system_available_bytes: last.map_or(0, |s| s.system_available_bytes),
            sample_interval_ms: self.inner.config.sample_interval_ms,
            samples: samples.len(),
            sample_errors: st.sample_errors,
            history: downsample(&samples, HISTORY_POINTS),
            heap: heap(),
            profiles: self.inner.profiles.snapshot(),
            reclaims: st.actions.iter().cloned().collect(),
            reclaimed_bytes_total: st.reclaimed_bytes,
            reclaim_count: st.reclaims,
        }
    }
}

/// At most `points` points, each the highest reading of consecutive samples: a spike
/// survives downsampling.
fn downsample(samples: &[Sample], points: usize) -> Vec<Point> {
    let per = samples.len().div_ceil(points.max(1)).max(1);
    samples
        .chunks(per)
        .map(|c| Point {
            at_ms: c.last().map_or(0, |s| s.at_ms),
            rss_bytes: c.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
            private_bytes: c.iter().map(|s| s.private_bytes).max().unwrap_or(0),
        })
        .collect()
}

/// The running sampler; dropping it stops the thread.
#[derive(Debug)]
pub struct Sampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_spikes_and_bounds_points() {
        let s: Vec<Sample> = (0..1000)
            .map(|i| Sample {
                at_ms: i,
                rss_bytes: if i == 517 { 9_999 } else { 10 },
                private_bytes: 5,
                accounted_bytes: 0,
                virtual_bytes: 0,
                system_total_bytes: 0,
                system_available_bytes: 0,
            })
            .collect();
        let d = downsample(&s, 120);
        assert!(d.len() <= 120 && d.len() >= 100, "{}", d.len());
        assert_eq!(d.iter().filter(|p| p.rss_bytes == 9_999).count(), 1);
        assert_eq!(d.last().map(|p| p.at_ms), Some(999));
        assert_eq!(downsample(&s[..5], 120).len(), 5);
        assert!(downsample(&[], 120).is_empty());
    }
}
