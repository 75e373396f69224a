//! Allocation profiling with the counting allocator installed, as the binary does.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use mem_guard::{heap, profile, CountingAlloc, Profiles};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::system();

#[test]
fn a_scope_counts_its_bytes_allocations_and_peak() {
    let profiles = Profiles::default();
    let total = profile(&profiles, "two_buffers", || {
        let a = black_box(vec![1u8; 1_000_000]);
        let b = black_box(vec![2u8; 500_000]);
        a.len() + b.len()
    });
    assert_eq!(total, 1_500_000);
    profile(&profiles, "freed_early", || {
        for _ in 0..4 {
            drop(black_box(vec![0u8; 1_000_000]));
        }
    });
    let s = profiles.snapshot();
    let two = s.iter().find(|s| s.scope == "two_buffers").unwrap();
    assert_eq!(two.calls, 1);
    assert!(two.allocated_bytes >= 1_500_000 && two.allocated_bytes < 1_510_000);
    assert!(two.allocations >= 2);
    assert!(two.peak_bytes >= 1_500_000, "{two:?}");
    let early = s.iter().find(|s| s.scope == "freed_early").unwrap();
    assert!(early.allocated_bytes >= 4_000_000);
    // Each buffer is gone before the next: the peak is one buffer, not four.
    assert!(
        early.peak_bytes >= 1_000_000 && early.peak_bytes < 1_100_000,
        "{early:?}"
    );
    let h = heap();
    assert!(h.installed && h.allocations > 0 && h.allocated_bytes >= 5_500_000);
}

/// Returns Pending once, so the profiled future is polled twice.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn a_future_is_charged_for_its_own_polls_only() {
    let profiles = Profiles::default();
    let mut fut = profiles.future("route", async {
        let a = black_box(vec![0u8; 300_000]);
        YieldOnce(false).await;
        let b = black_box(vec![0u8; 200_000]);
        a.len() + b.len()
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
    // Between the polls, someone else allocates on this thread.
    let other = black_box(vec![0u8; 5_000_000]);
    let Poll::Ready(n) = Pin::new(&mut fut).poll(&mut cx) else {
        panic!("the second poll completes")
    };
    assert_eq!(n, 500_000);
    drop(other);
    let s = profiles.snapshot();
    assert_eq!(s.len(), 1);
    let r = &s[0];
    assert_eq!((r.scope.as_str(), r.calls), ("route", 1));
    assert!(
        r.allocated_bytes >= 500_000 && r.allocated_bytes < 600_000,
        "{r:?}"
    );
    // Both buffers were alive at once across the two polls.
    assert!(r.peak_bytes >= 500_000 && r.peak_bytes < 600_000, "{r:?}");
}

#[test]
fn threads_add_up_in_the_process_totals() {
    let before = heap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                // Enough allocations to flush each thread's counters several times.
                for _ in 0..2_000 {
                    drop(black_box(vec![0u8; 1000]));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = heap();
    assert!(after.allocations - before.allocations >= 4 * 2_000 - 4 * 256);
    assert!(after.allocated_bytes - before.allocated_bytes >= 4 * 1_744_000);
}
