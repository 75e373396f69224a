//! Backfill: what the store lacks is fetched once, a page at a time, validated, stored
//! idempotently and recorded as covered, so a range is never fetched twice; the
//! still-forming candle is returned but never stored. The paging is the same for every
//! exchange: a page is "up to the exchange's page size from a time on" (see
//! [`crate::exchange::RestApi`]).

use serde::Serialize;

use super::Upstream;
use crate::live::edge::{closed_end, FUNDING_GRACE_MS};
use crate::model::time::Now;
use crate::store::{CandleStore, MarketMeta};
use crate::{Candle, Kind, Result, Symbol, Timeframe};

/// What a backfill did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FillReport {
    /// Upstream pages fetched.
    pub pages: u64,
    /// Final candles received (duplicates in a page counted once).
    pub fetched: u64,
    /// Candles that were new to the store.
    pub inserted: u64,
    /// Milliseconds of the range that were already covered and not fetched.
    pub already_covered_ms: i64,
    /// Candles still forming at the end of the range: returned, not stored.
    #[serde(skip)]
    pub forming: Vec<Candle>,
}

/// Progress of a backfill, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct FillProgress {
    /// Everything up to this open time is done.
    pub done_until: i64,
    /// Pages so far.
    pub pages: u64,
    /// Final candles received so far.
    pub fetched: u64,
}

impl Upstream {
    /// Makes `[start, end)` of the series complete in `store`: fetches the parts not yet
    /// covered, page by page from their start, stores each page with the range it proves
    /// complete (gaps the exchange has are remembered too), and returns the candles
    /// still forming at the end, which are not stored.
    ///
    /// # Errors
    /// As [`Upstream::klines`], and [`Error::Db`] when storing fails; pages stored before
    /// a failure stay stored and covered.
    pub(crate) async fn fill<S: CandleStore + Sync>(
        &self,
        store: &S,
        symbol: &Symbol,
        tf: Timeframe,
        (start, end): (i64, i64),
        now: &Now,
        progress: &(dyn Fn(FillProgress) + Sync),
    ) -> Result<FillReport> {
        let mut report = FillReport::default();
        let page_size = self.api.page_of(symbol.kind());
        if start >= end {
            return Ok(report);
        }
        // Candles opening before this are closed (with a margin) and may be stored.
        let closed_end = closed_end(tf, now());
        let missing = store
            .missing(symbol, tf, start, end.min(closed_end))
            .await?;
        let missing_ms: i64 = missing.iter().map(|(a, b)| b - a).sum();
        report.already_covered_ms = (end.min(closed_end) - start).max(0) - missing_ms;
        let meta = self.meta(symbol);
        let mut forming_from = (end > closed_end).then_some(closed_end.max(start));
        for (a, b) in missing {
            let mut cursor = a;
            while cursor < b {
                let page = self.klines(symbol, tf, cursor, page_size).await?;
                report.pages += 1;
                // A full page proves everything up to its last candle; a short one, that
                // nothing more has closed yet. A window (OKX) proves itself, however few
                // candles it holds; one reaching the present is the short page.
                let window = self.api.window(tf, cursor, page_size);
                let full = match window {
                    Some(w) => w < closed_end,
                    None => page.len() >= page_size,
                };
                let covered_to = match (window, page.last()) {
                    (Some(w), _) if full => w,
                    (None, Some(l)) if full => tf.next(l.open_time).min(closed_end),
                    _ => closed_end,
                };
                let (closed, open): (Vec<Candle>, Vec<Candle>) =
                    page.into_iter().partition(|c| c.open_time < closed_end);
                if !full && forming_from.is_some() {
                    // A short page reached the present: it holds the forming candles, if
                    // the exchange has any.
                    report.forming = open.into_iter().filter(|c| c.open_time < end).collect();
                    forming_from = None;
                }
                report.fetched += closed.len() as u64;
                let written = store
                    .write_covered(&meta, tf, closed, (cursor, covered_to.max(cursor)))
                    .await?;
                report.inserted += written.inserted;
                if covered_to <= cursor {
                    break;
                }
                cursor = covered_to;
                progress(FillProgress {
                    done_until: cursor.min(end),
                    pages: report.pages,
                    fetched: report.fetched,
                });
            }
        }
        if let Some(from) = forming_from {
            let page = self.klines(symbol, tf, from, page_size).await?;
            report.pages += 1;
            report.forming = page
                .into_iter()
                .filter(|c| c.open_time >= closed_end && c.open_time < end)
                .collect();
        }
        Ok(report)
    }

    /// Makes the funding events of `[start, end)` complete in `store`, as [`Upstream::fill`]
    /// does for candles: only what is not covered is fetched, a page at a time; a full page
    /// proves up to its last event, a short one up to now less [`FUNDING_GRACE_MS`].
    /// Returns the pages fetched.
    ///
    /// # Errors
    /// As [`Upstream::funding`], and [`Error::Db`] when storing fails.
    pub(crate) async fn fill_funding<S: CandleStore + Sync>(
        &self,
        store: &S,
        symbol: &Symbol,
        (start, end): (i64, i64),
        now: &Now,
    ) -> Result<u64> {
        let symbol = symbol.clone().with_kind(Kind::Futures);
        let published = now() - FUNDING_GRACE_MS;
        let meta = self.meta(&symbol);
        let mut pages = 0;
        let page_size = self.api.funding_page();
        let backward = self.api.funding_before_path(&symbol, end, 1).is_some();
        for (a, b) in store
            .missing_funding(&symbol, start, end.min(now()))
            .await?
        {
            if b >= published && !next_funding_due(store, &symbol, a, now()).await? {
                // The tail up to the present, but the next event cannot have happened
                // yet: asking would fetch what is stored (every paging client asks this
                // tail once a page).
                continue;
            }
            if backward {
                pages += self.funding_back(store, &meta, (a, b), page_size).await?;
                continue;
            }
            let mut cursor = a;
            while cursor < b {
                let page = self.funding(&symbol, cursor, page_size).await?;
                pages += 1;
                let full = page.len() >= page_size;
                let covered_to = match page.last() {
                    Some(l) if full => l.time + 1,
                    _ => published,
                };
                store
                    .write_funding(&meta, page, (cursor, covered_to.max(cursor)))
                    .await?;
                // A short page reached the present: nothing more to ask for now.
                if !full || covered_to <= cursor {
                    break;
                }
                cursor = covered_to;
            }
        }
        Ok(pages)
    }

    /// [`Upstream::fill_funding`] of `[a, b)` for an exchange that pages back from an end:
    /// a full page proves its span complete, a short one everything back to `a`.
    async fn funding_back<S: CandleStore + Sync>(
        &self,
        store: &S,
        meta: &MarketMeta,
        (a, b): (i64, i64),
        page_size: usize,
    ) -> Result<u64> {
        let mut pages = 0;
        let mut end = b;
        while end > a {
            let page = self.funding_before(&meta.symbol, end, page_size).await?;
            pages += 1;
            let full = page.len() >= page_size;
            let from = match page.first() {
                Some(f) if full => f.time.max(a),
                _ => a,
            };
            let rows = page.into_iter().filter(|f| f.time >= a).collect();
            store.write_funding(meta, rows, (from, end)).await?;
            if !full || from >= end {
                break;
            }
            end = from;
        }
        Ok(pages)
    }
}

/// Whether a funding event may have happened in the uncovered tail from `a` to `now`:
/// events come at a fixed interval (8 h, 4 h, 1 h), so after the last stored one the next
/// is not due before the shortest gap of the last three has passed. With fewer than two
/// events stored nothing is known, and the exchange is asked.
async fn next_funding_due<S: CandleStore + Sync>(
    store: &S,
    symbol: &Symbol,
    a: i64,
    now: i64,
) -> Result<bool> {
    const LOOK_BACK_MS: i64 = 3 * 86_400_000;
    let rows = store
        .read_funding(symbol, a - LOOK_BACK_MS, now + 1)
        .await?;
    let times: Vec<i64> = rows.iter().rev().take(3).map(|f| f.time).collect();
    let gap = times
        .windows(2)
        .map(|w| w[0] - w[1])
        .filter(|g| *g > 0)
        .min();
    Ok(match (times.first(), gap) {
        (Some(last), Some(gap)) => now >= last + gap - FUNDING_GRACE_MS,
        _ => true,
    })
}
