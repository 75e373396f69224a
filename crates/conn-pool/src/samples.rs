//! A bounded window of recent durations and its percentiles.

use std::collections::VecDeque;

/// The most recent `cap` durations in microseconds; old ones fall out.
#[derive(Debug)]
pub(crate) struct Samples {
    cap: usize,
    values: VecDeque<u64>,
}

impl Samples {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            values: VecDeque::with_capacity(cap),
        }
    }

    pub(crate) fn push(&mut self, us: u64) {
        if self.values.len() == self.cap {
            self.values.pop_front();
        }
        self.values.push_back(us);
    }

    /// The median and the 99th percentile, in milliseconds (0 with no samples).
    pub(crate) fn p50_p99_ms(&self) -> (f64, f64) {
        let mut v: Vec<u64> = self.values.iter().copied().collect();
        v.sort_unstable();
        let pick = |q: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
            }
        };
        (pick(0.5), pick(0.99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_over_the_window() {
        let mut s = Samples::new(100);
        assert_eq!(s.p50_p99_ms(), (0.0, 0.0));
        for us in 1..=200u64 {
            s.push(us * 1000);
        }
        // Only 101..=200 ms remain.
        assert_eq!(s.p50_p99_ms(), (151.0, 199.0));
    }
}
