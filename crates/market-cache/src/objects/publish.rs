//! Writing a complete month once (create-only) and reading one back, checked.

use std::sync::atomic::Ordering;

use object_store::{GetOptions, PutMode, PutOptions, PutPayload};

use super::bucket::{store_error, Objects, Published};
use super::codec::{decode, encode, month_path};
use crate::live::edge::CLOSE_GRACE_MS;
use crate::store::CandleStore;
use crate::{Candle, Result, Symbol, Timeframe};

impl Objects {
    /// Publishes the month opening at `month` of a series from `store`, if the store has
    /// it complete; `None` if it has not.
    ///
    /// # Errors
    /// Store errors, and [`Error::Upstream`] when the object store refuses the write.
    pub(crate) async fn publish<S: CandleStore + Sync>(
        &self,
        store: &S,
        symbol: &Symbol,
        tf: Timeframe,
        month: i64,
    ) -> Result<Option<Published>> {
        let next = Timeframe::Mo1.next(month);
        if !store.missing(symbol, tf, month, next).await?.is_empty() {
            return Ok(None);
        }
        let candles = store.read(symbol, tf, month, next).await?;
        let body = encode(symbol, tf, month, &candles)?;
        let path = month_path(symbol, tf, month);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
        {
            Ok(_) => {
                self.counters.written.fetch_add(1, Ordering::Relaxed);
                self.shared(symbol, tf, month);
                Ok(Some(Published::Created))
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.counters.existing.fetch_add(1, Ordering::Relaxed);
                self.shared(symbol, tf, month);
                Ok(Some(Published::Existed))
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                Err(store_error(e))
            }
        }
    }

    /// The candles of one month from the object store, checked; `None` when there is no
    /// object, it cannot be read, or it is not this series' month (counted as rejected).
    pub(super) async fn get_month(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        month: i64,
    ) -> Option<Vec<Candle>> {
        let path = month_path(symbol, tf, month);
        let got = match self.store.get_opts(&path, GetOptions::default()).await {
            Ok(g) => g.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match got {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return None,
            Err(e) => return self.failed(&path, &e.to_string()),
        };
        match decode(bytes, symbol, tf, month) {
            Ok(c) => Some(c),
            Err(why) => self.refused(&path, &why),
        }
    }

    /// Counts and logs a request the object store failed; the read falls through.
    pub(super) fn failed<T>(&self, path: &object_store::path::Path, why: &str) -> Option<T> {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("candlecache: object store {}: {path}: {why}", self.url);
        None
    }

    /// Counts and logs an object refused as foreign or damaged; the read falls through.
    pub(super) fn refused<T>(&self, path: &object_store::path::Path, why: &str) -> Option<T> {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "candlecache: object store {}: {path} refused: {why}",
            self.url
        );
        None
    }
}

/// The closed months the local store has candles in, series by series: what `sync`
/// publishes and what a trim may drop. Months whose candles are not known complete are
/// listed too; callers check.
///
/// # Errors
/// Store errors.
pub(crate) async fn local_months<S: CandleStore + Sync>(
    store: &S,
    now: i64,
) -> Result<Vec<(Symbol, Timeframe, i64)>> {
    let closed = now - CLOSE_GRACE_MS;
    let mut months = Vec::new();
    for m in store.markets().await? {
        let (Ok(tf), Some(first), Some(last)) =
            (m.timeframe.parse::<Timeframe>(), m.first_time, m.last_time)
        else {
            continue;
        };
        let Some(symbol) = m.series() else {
            continue;
        };
        if !Objects::keeps(tf) {
            continue;
        }
        let mut month = Timeframe::Mo1.floor(first);
        while month <= last && Timeframe::Mo1.next(month) <= closed {
            months.push((symbol.clone(), tf, month));
            month = Timeframe::Mo1.next(month);
        }
    }
    Ok(months)
}
