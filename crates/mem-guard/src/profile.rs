//! Allocation profiling: a counting global allocator and per-scope figures.
//!
//! The binary installs [`CountingAlloc`]; without it every figure here stays zero and
//! [`heap`] says so. Each thread counts into its own plain (non-atomic) counters, because
//! an atomic add per allocation contended by every core would cost more than the rest of
//! a cached request. The process-wide totals are flushed from those counters every
//! [`FLUSH_EVERY`] allocations and frees or [`FLUSH_BYTES`] bytes, so they lag by at most
//! that much per thread.
//!
//! A scope ([`Profiles::scope`], [`profile`], [`Profiles::future`]) reads its thread's
//! counters when it starts and ends. A future is measured poll by poll, so it is charged
//! with what its own polls allocate on whichever thread they run, and not with other
//! tasks that share the thread in between.

use dashmap::DashMap;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::Serialize;

/// Allocations and frees a thread counts before it adds them to the process totals.
const FLUSH_EVERY: u64 = 256;
/// ... or once this many bytes went through it, so a large buffer shows at once.
const FLUSH_BYTES: u64 = 64 * 1024;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// One thread's counters, each its own `Cell` so an allocation touches only what it
/// changes. `net` is what this thread allocated minus what it freed (memory freed by
/// another thread makes it drift, which only matters within a scope's peak).
struct Local {
    allocated: Cell<u64>,
    freed: Cell<u64>,
    count: Cell<u64>,
    frees: Cell<u64>,
    net: Cell<i64>,
    peak: Cell<i64>,
    /// What the process totals already hold of this thread's counters.
    flushed: Cell<(u64, u64, u64)>,
    /// The next flush is due at this many events (allocations plus frees) ...
    due_events: Cell<u64>,
    /// ... or at this many bytes (allocated plus freed).
    due_bytes: Cell<u64>,
}

thread_local! {
    // Const-initialised and without a destructor, so it is usable from the allocator at
    // any point of a thread's life, even while the thread exits.
    static LOCAL: Local = const {
        Local {
            allocated: Cell::new(0),
            freed: Cell::new(0),
            count: Cell::new(0),
            frees: Cell::new(0),
            net: Cell::new(0),
            peak: Cell::new(0),
            flushed: Cell::new((0, 0, 0)),
            due_events: Cell::new(FLUSH_EVERY),
            due_bytes: Cell::new(FLUSH_BYTES),
        }
    };
}

fn on_alloc(size: usize) {
    let _ = LOCAL.try_with(|l| {
        let size = size as u64;
        l.allocated.set(l.allocated.get() + size);
        l.count.set(l.count.get() + 1);
        let net = l.net.get() + size as i64;
        l.net.set(net);
        if net > l.peak.get() {
            l.peak.set(net);
        }
        maybe_flush(l);
    });
}

fn on_free(size: usize) {
    let _ = LOCAL.try_with(|l| {
        l.freed.set(l.freed.get() + size as u64);
        // A thread that mostly frees what others allocated must flush too.
        l.frees.set(l.frees.get() + 1);
        l.net.set(l.net.get() - size as i64);
        maybe_flush(l);
    });
}

#[inline]
fn maybe_flush(l: &Local) {
    let events = l.count.get() + l.frees.get();
    let bytes = l.allocated.get() + l.freed.get();
    if events < l.due_events.get() && bytes < l.due_bytes.get() {
        return;
    }
    let (a, f, c) = l.flushed.get();
    let (na, nf, nc) = (l.allocated.get(), l.freed.get(), l.count.get());
    ALLOCATED.fetch_add(na - a, Ordering::Relaxed);
    FREED.fetch_add(nf - f, Ordering::Relaxed);
    ALLOCATIONS.fetch_add(nc - c, Ordering::Relaxed);
    INSTALLED.store(true, Ordering::Relaxed);
    l.flushed.set((na, nf, nc));
    l.due_events.set(events + FLUSH_EVERY);
    l.due_bytes.set(bytes + FLUSH_BYTES);
}

/// A global allocator that counts what passes through it to the allocator it wraps.
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: mem_guard::CountingAlloc = mem_guard::CountingAlloc::system();
/// ```
#[derive(Debug, Default)]
pub struct CountingAlloc<A = System> {
    inner: A,
}

impl CountingAlloc<System> {
    /// Counts the system allocator.
    pub const fn system() -> Self {
        Self { inner: System }
    }
}

impl<A> CountingAlloc<A> {
    /// Counts `inner`.
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }
}

// SAFETY: every call is passed unchanged to `inner`, which upholds `GlobalAlloc`'s contract;
// the counting around it touches only a const thread-local and atomics, and never allocates.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are passed on.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) };
        on_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's guarantees for `ptr`, `layout` and `new_size` are passed on.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

/// The process's heap as the counting allocator saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Heap {
    /// Whether the counting allocator is installed; if not, the other figures are zero.
    pub installed: bool,
    /// Bytes allocated since start.
    pub allocated_bytes: u64,
    /// Bytes freed since start.
    pub freed_bytes: u64,
    /// Allocated minus freed: the heap in use.
    pub live_bytes: u64,
    /// Allocations since start.
    pub allocations: u64,
}

/// The process-wide counters (each thread's latest allocations, fewer than 256 events and
/// 64 KiB, are not in them yet).
pub fn heap() -> Heap {
    let allocated = ALLOCATED.load(Ordering::Relaxed);
    let freed = FREED.load(Ordering::Relaxed);
    Heap {
        installed: INSTALLED.load(Ordering::Relaxed),
        allocated_bytes: allocated,
        freed_bytes: freed,
        live_bytes: allocated.saturating_sub(freed),
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
    }
}

/// What one run of a scope allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    allocated: u64,
    allocations: u64,
    /// The most the scope held at once beyond what its thread held when it started.
    peak: u64,
}

/// A measurement in progress on the current thread.
struct Mark {
    allocated: u64,
    count: u64,
    net: i64,
    saved_peak: i64,
}

impl Mark {
    fn start() -> Self {
        LOCAL
            .try_with(|l| {
                let m = Self {
                    allocated: l.allocated.get(),
                    count: l.count.get(),
                    net: l.net.get(),
                    saved_peak: l.peak.get(),
                };
                l.peak.set(m.net);
                m
            })
            .unwrap_or(Self {
                allocated: 0,
                count: 0,
                net: 0,
                saved_peak: 0,
            })
    }

    /// Returns what happened since `start`, and the net bytes it left allocated.
    fn end(self) -> (Usage, i64) {
        LOCAL
            .try_with(|l| {
                let peak = l.peak.get();
                let usage = Usage {
                    allocated: l.allocated.get() - self.allocated,
                    allocations: l.count.get() - self.count,
                    peak: (peak - self.net).max(0) as u64,
                };
                l.peak.set(peak.max(self.saved_peak));
                (usage, l.net.get() - self.net)
            })
            .unwrap_or_default()
    }
}

/// The accumulated figures of one named scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScopeStats {
    /// The scope's name (a route, for the HTTP server).
    pub scope: String,
    /// Runs measured.
    pub calls: u64,
    /// Bytes allocated, all runs together.
    pub allocated_bytes: u64,
    /// Allocations, all runs together.
    pub allocations: u64,
    /// The largest peak of one run.
    pub peak_bytes: u64,
    /// `allocated_bytes / calls`.
    pub bytes_per_call: u64,
}

/// Per-scope allocation figures.
#[derive(Debug, Default)]
pub struct Profiles {
    /// By scope: every request records here when it completes, so a concurrent map
    /// keeps routes from queueing on one lock.
    scopes: DashMap<&'static str, ScopeStats>,
}

impl Profiles {
    fn record(&self, name: &'static str, u: Usage) {
        let mut s = self.scopes.entry(name).or_insert_with(|| ScopeStats {
            scope: name.to_owned(),
            ..ScopeStats::default()
        });
        s.calls += 1;
        s.allocated_bytes += u.allocated;
        s.allocations += u.allocations;
        s.peak_bytes = s.peak_bytes.max(u.peak);
        s.bytes_per_call = s.allocated_bytes / s.calls;
    }

    /// Measures until the guard drops; for synchronous code on one thread.
    pub fn scope(&self, name: &'static str) -> ScopeGuard<'_> {
        ScopeGuard {
            profiles: self,
            name,
            mark: Some(Mark::start()),
        }
    }

    /// Measures every poll of `fut`, and records when it completes.
    pub fn future<F: Future>(&self, name: &'static str, fut: F) -> Profiled<'_, F> {
        Profiled {
            profiles: self,
            name,
            fut: Box::pin(fut),
            usage: Usage::default(),
            net: 0,
        }
    }

    /// Every scope measured so far, by name.
    pub fn snapshot(&self) -> Vec<ScopeStats> {
        let mut out: Vec<ScopeStats> = self.scopes.iter().map(|s| s.value().clone()).collect();
        out.sort_by(|a, b| a.scope.cmp(&b.scope));
        out
    }
}

/// Runs `f` as the scope `name` of `profiles`.
pub fn profile<R>(profiles: &Profiles, name: &'static str, f: impl FnOnce() -> R) -> R {
    let _scope = profiles.scope(name);
    f()
}

/// Records a scope's figures when dropped.
#[must_use = "the scope ends when this is dropped"]
pub struct ScopeGuard<'a> {
    profiles: &'a Profiles,
    name: &'static str,
    mark: Option<Mark>,
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        if let Some(mark) = self.mark.take() {
            let (usage, _) = mark.end();
            self.profiles.record(self.name, usage);
        }
    }
}

impl std::fmt::Debug for ScopeGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeGuard")
            .field("name", &self.name)
            .finish()
    }
}

/// A future measured poll by poll; see [`Profiles::future`].
#[must_use = "futures do nothing unless polled"]
pub struct Profiled<'a, F> {
    profiles: &'a Profiles,
    name: &'static str,
    // Boxed so that this wrapper is `Unpin` without unsafe pin projection.
    fut: Pin<Box<F>>,
    usage: Usage,
    net: i64,
}

impl<F: Future> Future for Profiled<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mark = Mark::start();
        let poll = self.fut.as_mut().poll(cx);
        let (u, net) = mark.end();
        let this = &mut *self;
        this.usage.allocated += u.allocated;
        this.usage.allocations += u.allocations;
        this.usage.peak = this
            .usage
            .peak
            .max((this.net.max(0) as u64).saturating_add(u.peak));
        this.net += net;
        if poll.is_ready() {
            this.profiles.record(this.name, this.usage);
        }
        poll
    }
}

impl<F> std::fmt::Debug for Profiled<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiled")
            .field("name", &self.name)
            .finish()
    }
}
