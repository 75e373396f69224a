//! Funding events through the read path: fetched once from the upstream, then read
//! from the store.

use super::path::ReadPath;
use super::tiers::load_error;
use crate::live::edge::funding_settled;
use crate::store::CandleStore;
use crate::{Funding, Kind, Result, Symbol};

impl<S: CandleStore + Clone + Send + Sync + 'static> ReadPath<S> {
    /// Funding events of a futures symbol (whatever kind `symbol` was given as): with
    /// `start`, the first `limit` with `start <= time < end`; without, the latest `limit`
    /// before `end`, as Binance's `fundingRate` answers. With an upstream, what the store
    /// lacks is fetched and stored first; a range reaching the present is re-asked at most
    /// once per refresh period, by one caller however many ask.
    ///
    /// # Errors
    /// [`Error::UnknownSymbol`] when the upstream does not know it, upstream and store errors.
    pub(crate) async fn funding(
        &self,
        symbol: &Symbol,
        start: Option<i64>,
        end: i64,
        limit: usize,
    ) -> Result<Vec<Funding>> {
        let symbol = symbol.clone().with_kind(Kind::Futures);
        let store = &self.inner.store;
        let from = start.unwrap_or(0);
        if let Some(up) = self.upstream_for(&symbol) {
            let now = (self.inner.now)();
            let to = end.min(now);
            if from < to {
                let edge = !funding_settled(to, now);
                let key = if edge {
                    format!("{}/funding/{from}/now", symbol.key())
                } else {
                    format!("{}/funding/{from}/{to}", symbol.key())
                };
                let fill = || async {
                    up.fill_funding(store, &symbol, (from, to), &self.inner.now)
                        .await
                        .map(|_| bytes::Bytes::new())
                };
                self.inner
                    .recent
                    .get_or_load_with_ttl(key.as_bytes(), self.inner.live.refresh, fill)
                    .await
                    .map_err(|e| load_error(e, "funding"))?;
            }
        }
        let rows = store.read_funding(&symbol, from, end).await?;
        let skip = if start.is_some() {
            0
        } else {
            rows.len().saturating_sub(limit)
        };
        Ok(rows.into_iter().skip(skip).take(limit).collect())
    }
}
