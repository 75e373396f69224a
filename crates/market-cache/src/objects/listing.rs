//! What the object store holds: a listing at most 30 s old, per series.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::bucket::{store_error, Listing, Objects, LISTING_TTL};
use super::codec::exchange_key;
use crate::store::ObjectMonths;
use crate::{Result, Symbol};

impl Objects {
    /// Where each series' months are in the object store, from a listing at most
    /// [`LISTING_TTL`] old; keyed by (exchange partition, symbol, timeframe) as
    /// [`Self::months_of`] asks.
    ///
    /// # Errors
    /// [`Error::Upstream`] when the object store cannot be listed.
    async fn listing(&self) -> Result<Arc<Listing>> {
        let mut last = self.listing.lock().await;
        if let Some((_, l)) = last.as_ref().filter(|(at, _)| at.elapsed() < LISTING_TTL) {
            return Ok(l.clone());
        }
        use futures_util::TryStreamExt;
        let mut out = Listing::new();
        let mut objects = self.store.list(None);
        while let Some(meta) = objects.try_next().await.map_err(|e| {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            store_error(e)
        })? {
            let mut parts = meta.location.parts();
            let mut level = |name: &str| {
                parts.next().and_then(|p| {
                    p.as_ref()
                        .strip_prefix(name)
                        .and_then(|v| v.strip_prefix('='))
                        .map(str::to_owned)
                })
            };
            let (Some(e), Some(s), Some(t), Some(y), Some(m)) = (
                level("exchange"),
                level("symbol"),
                level("timeframe"),
                level("year"),
                level("month"),
            ) else {
                continue;
            };
            if let (Ok(y), Ok(m)) = (y.parse(), m.parse()) {
                out.entry((e, s, t)).or_default().push((y, m));
            }
        }
        for months in out.values_mut() {
            months.sort_unstable();
            months.dedup();
        }
        let out = Arc::new(out);
        *last = Some((std::time::Instant::now(), out.clone()));
        Ok(out)
    }

    /// Says for each series of `markets` which of its months the object store holds (from
    /// a listing at most 30 s old). A store that cannot be listed leaves them unsaid.
    pub(crate) async fn annotate(&self, markets: &mut [crate::Market]) {
        for m in markets.iter_mut() {
            let Some(symbol) = m.series() else {
                continue;
            };
            match self.months_of(&symbol, &m.timeframe).await {
                Ok(months) => m.object_store = Some(months),
                Err(e) => {
                    eprintln!("candlecache: object store {}: cannot list: {e}", self.url);
                    return;
                }
            }
        }
    }

    /// The months of a series in the object store (from a listing at most 30 s old).
    ///
    /// # Errors
    /// [`Error::Upstream`] when the object store cannot be listed.
    pub(crate) async fn months_of(&self, symbol: &Symbol, tf: &str) -> Result<ObjectMonths> {
        let listing = self.listing().await?;
        let key = (exchange_key(symbol), symbol.to_string(), tf.to_owned());
        let months = listing.get(&key).map(Vec::as_slice).unwrap_or_default();
        let mut ranges: Vec<((u16, u8), (u16, u8))> = Vec::new();
        for &m in months {
            match ranges.last_mut() {
                Some((_, last)) if next_month(*last) == m => *last = m,
                _ => ranges.push((m, m)),
            }
        }
        let name = |(y, m): (u16, u8)| format!("{y:04}-{m:02}");
        Ok(ObjectMonths {
            months: months.len() as u64,
            ranges: ranges
                .into_iter()
                .map(|(a, b)| (name(a), name(b)))
                .collect(),
        })
    }
}

fn next_month((y, m): (u16, u8)) -> (u16, u8) {
    if m == 12 {
        (y + 1, 1)
    } else {
        (y, m + 1)
    }
}
