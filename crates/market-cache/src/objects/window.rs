//! A window of closed history answered from the object store before the local store
//! holds it: only an object's footer and the row groups the window needs are fetched.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use object_store::{GetOptions, GetRange, ObjectStoreExt};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::bucket::{Footers, Objects};
use super::codec::{decode_window, footer_len, month_path, row_groups_for, Parts};
use crate::live::edge::CLOSE_GRACE_MS;
use crate::store::CandleStore;
use crate::{Candle, Result, Symbol, Timeframe};

/// Bytes read from an object's end in the first request: the footer and metadata of a
/// month of 1m candles in 10,000-row groups fit many times over, so one request does.
const TAIL_BYTES: u64 = 64 * 1024;

/// Footers remembered (a few KB each); all are forgotten when there are more.
const FOOTERS: usize = 256;

impl Objects {
    /// The candles of `[start, end)` from the objects alone, when the local store holds
    /// none of the closed months it touches and the object store has each of them:
    /// `None` otherwise (the caller fills the months as before). The months are not
    /// stored here; the caller keeps them locally afterwards.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn window<S: CandleStore + Sync>(
        &self,
        store: &S,
        symbol: &Symbol,
        tf: Timeframe,
        (start, end): (i64, i64),
        now: i64,
    ) -> Result<Option<Vec<Candle>>> {
        if !Self::keeps(tf) || end > now - CLOSE_GRACE_MS || start >= end {
            return Ok(None);
        }
        let mut month = Timeframe::Mo1.floor(start);
        let mut months = Vec::new();
        while month < end {
            let next = Timeframe::Mo1.next(month);
            if store.missing(symbol, tf, month, next).await? != [(month, next)] {
                return Ok(None);
            }
            months.push((month, (start.max(month), end.min(next))));
            month = next;
        }
        let mut candles = Vec::new();
        for (month, part) in months {
            match self.get_part(symbol, tf, month, part).await {
                Some(c) => candles.extend(c),
                None => return Ok(None),
            }
        }
        self.counters.windows.fetch_add(1, Ordering::Relaxed);
        Ok(Some(candles))
    }

    /// The candles of `part` of one month's object: its footer, then the byte ranges of
    /// the row groups `part` needs. `None` as [`Objects::get_month`] gives it.
    async fn get_part(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        month: i64,
        part: (i64, i64),
    ) -> Option<Vec<Candle>> {
        let path = month_path(symbol, tf, month);
        let (size, meta) = match self.footer(&path).await {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(why) => return self.refused(&path, &why),
        };
        let ranges: Vec<Range<u64>> = row_groups_for(&meta, part)
            .into_iter()
            .filter_map(|g| {
                let cols = meta.row_group(g).columns();
                let lo = cols.iter().map(|c| c.byte_range().0).min()?;
                let hi = cols
                    .iter()
                    .map(|c| c.byte_range().0 + c.byte_range().1)
                    .max()?;
                (hi <= size).then_some(lo..hi)
            })
            .collect();
        let bytes = match self.store.get_ranges(&path, &ranges).await {
            Ok(b) => b,
            Err(e) => return self.failed(&path, &e.to_string()),
        };
        let parts = Parts {
            len: size,
            parts: ranges.iter().map(|r| r.start).zip(bytes).collect(),
        };
        match decode_window(meta, parts, symbol, tf, month, part) {
            Ok(c) => Some(c),
            Err(why) => self.refused(&path, &why),
        }
    }

    /// An object's size and metadata, remembered (objects never change once written):
    /// `Ok(None)` when it is not there or cannot be read (counted), `Err` when it is not
    /// Parquet.
    async fn footer(
        &self,
        path: &object_store::path::Path,
    ) -> std::result::Result<Option<(u64, Arc<ParquetMetaData>)>, String> {
        if let Some(f) = self.footers().get(path.as_ref()) {
            return Ok(Some(f.clone()));
        }
        let fetched = async {
            let tail = self
                .store
                .get_opts(
                    path,
                    GetOptions {
                        range: Some(GetRange::Suffix(TAIL_BYTES)),
                        ..GetOptions::default()
                    },
                )
                .await?;
            let size = tail.meta.size;
            let tail = tail.bytes().await?;
            Ok::<_, object_store::Error>((size, tail))
        };
        let (size, tail) = match fetched.await {
            Ok(t) => t,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Ok(self.failed(path, &e.to_string())),
        };
        let len = footer_len(&tail)?;
        if len + 8 > size as usize {
            return Err("its footer is longer than the object".into());
        }
        let meta_bytes = if len + 8 <= tail.len() {
            tail.slice(tail.len() - 8 - len..tail.len() - 8)
        } else {
            let at = size - 8 - len as u64;
            match self.store.get_range(path, at..size - 8).await {
                Ok(b) => b,
                Err(e) => return Ok(self.failed(path, &e.to_string())),
            }
        };
        let meta = Arc::new(
            ParquetMetaDataReader::decode_metadata(&meta_bytes).map_err(|e| e.to_string())?,
        );
        let mut footers = self.footers();
        if footers.len() >= FOOTERS {
            footers.clear();
        }
        footers.insert(path.to_string(), (size, meta.clone()));
        Ok(Some((size, meta)))
    }

    fn footers(&self) -> std::sync::MutexGuard<'_, Footers> {
        self.footers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::ObjectConfig;
    use crate::Decimal;

    #[tokio::test]
    async fn windows_of_a_month_read_through_its_row_groups_equal_the_month() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&ObjectConfig {
            url: Some(format!("file://{}", dir.path().display())),
            ..ObjectConfig::default()
        })
        .unwrap();
        let sym: Symbol = "BTCUSDT".parse().unwrap();
        let month = crate::parse_time("2024-02-01").unwrap();
        let next = Timeframe::Mo1.next(month);
        let d = |v: i64, scale: u8| Decimal::from_f64(v as f64 / 100.0, scale).unwrap();
        let candles: Vec<Candle> = (month..next)
            .step_by(60_000)
            .filter(|t| (t / 60_000) % 97 != 5)
            .map(|t| {
                let k = (t / 60_000) % 10_000;
                Candle {
                    open_time: t,
                    open: d(4_000_000 + k, 2),
                    high: d(4_000_000 + k + 50, 2),
                    low: d(4_000_000 + k - 50, 2),
                    close: d(4_000_000 + k + 7, 2),
                    volume: d(k * 13, 5),
                    quote_volume: Some(d(k * 17, 8)),
                    trades: Some(k as u64),
                    taker_base: Some(d(k * 3, 5)),
                    taker_quote: Some(d(k * 5, 8)),
                    volume_ccy: None,
                }
            })
            .collect();
        let body = super::super::codec::encode(&sym, Timeframe::M1, month, &candles).unwrap();
        let path = month_path(&sym, Timeframe::M1, month);
        objects
            .store
            .put(&path, object_store::PutPayload::from(body))
            .await
            .unwrap();
        for (from, to) in [(0, 1_000), (990, 2_010), (17_000, 19_500), (40_000, 44_640)] {
            let part = (month + from * 60_000, month + to * 60_000);
            let got = objects
                .get_part(&sym, Timeframe::M1, month, part)
                .await
                .expect("the window reads");
            let want: Vec<Candle> = candles
                .iter()
                .filter(|c| c.open_time >= part.0 && c.open_time < part.1)
                .cloned()
                .collect();
            assert_eq!(got, want, "rows {from}..{to}");
        }
    }
}
