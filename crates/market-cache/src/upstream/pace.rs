//! Pacing under each endpoint's own request limit (OKX limits every endpoint on its own,
//! 10 to 40 requests per 2 s): a sliding log of the requests of the last window per
//! endpoint; a request that would exceed its share waits for the oldest to leave it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::exchange::Pace;

/// The share of an endpoint's limit candlecache uses, leaving room for clocks that
/// disagree on where a window starts.
const SHARE: f64 = 0.8;

#[derive(Debug, Default)]
pub(crate) struct Pacer {
    sent: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl Pacer {
    /// Waits until a request under `pace` may go, and counts it.
    pub(crate) async fn wait(&self, pace: &Pace) {
        let allowed = ((f64::from(pace.limit) * SHARE) as usize).max(1);
        loop {
            let wait_ms = {
                let now = cache_core::wall_ms();
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let log = sent.entry(pace.endpoint.clone()).or_default();
                while log.front().is_some_and(|t| *t <= now - pace.window_ms) {
                    log.pop_front();
                }
                if log.len() < allowed {
                    log.push_back(now);
                    return;
                }
                log.front().map_or(1, |t| t + pace.window_ms - now).max(1)
            };
            tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endpoint_waits_for_its_own_window_only() {
        let p = Pacer::default();
        let pace = |e: &str| Pace {
            endpoint: e.into(),
            limit: 5,
            window_ms: 300,
        };
        let t0 = std::time::Instant::now();
        for _ in 0..4 {
            p.wait(&pace("a")).await;
        }
        p.wait(&pace("b")).await;
        assert!(
            t0.elapsed() < Duration::from_millis(250),
            "within the share"
        );
        p.wait(&pace("a")).await;
        assert!(
            t0.elapsed() >= Duration::from_millis(290),
            "the fifth waits a window"
        );
    }
}
