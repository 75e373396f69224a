//! `/api/performance/*`, `/metrics`: what the server knows of itself.

use bytes::Bytes;
use cache_core::{Reclaim, Scope};
use serde_json::json;

use market_cache::{Exchange, Kind};

use crate::query::Params;
use crate::reply::{envelope, Reply};
use crate::state::App;
use crate::{Error, Result};

impl App {
    /// The upstream streams' figures by exchange and market, for `/metrics`.
    fn stream_markets(&self) -> Vec<(Exchange, &'static str, market_cache::StreamStats)> {
        let mut out = Vec::new();
        for e in Exchange::ALL {
            for (market, kind) in [("spot", Kind::Spot), ("futures", Kind::Futures)] {
                if let Some(st) = self.read.stream_stats(e, kind) {
                    out.push((e, market, st));
                }
            }
        }
        out
    }

    /// One upstream's block of `/api/performance/stats`.
    fn upstream_block(&self, u: market_cache::UpstreamStats) -> serde_json::Value {
        let read_stats = self.read.read_stats();
        json!({
            "exchange": u.exchange,
            "base_url": u.base_url,
            "hosts": u.hosts,
            "edge_refreshes": read_stats.edge_refreshes,
            "edge_from_stream": read_stats.edge_from_stream,
            "streams": self.read.stream_stats(u.exchange, Kind::Spot),
            "futures_streams": self.read.stream_stats(u.exchange, Kind::Futures),
            "objects": self.read.object_stats(),
        })
    }

    pub(crate) async fn stats(&self) -> Result<Reply> {
        let db = self.read.database_stats();
        let read_stats = self.read.read_stats();
        let upstream = self.read.upstream_stats();
        let memory = self.guard.report();
        let data = json!({
            "cache": self.cache.stats(),
            "memory": {
                "rss_bytes": memory.analysis.rss_bytes,
                "private_bytes": memory.analysis.private_bytes,
                "limit_bytes": memory.analysis.limit_bytes,
                "usage_pct": memory.analysis.usage_pct,
                "health": memory.analysis.health,
                "trend_mb_per_min": memory.analysis.trend_mb_per_min,
                "leak_suspected": memory.analysis.leak_suspected,
                "stability_score": memory.analysis.stability_score,
                "recommendations": memory.analysis.recommendations,
                "heap": memory.heap,
                "reclaimed_bytes_total": memory.reclaimed_bytes_total,
                "reclaim_count": memory.reclaim_count,
            },
            "pools": {
                "sqlite": db.pool,
                "http": upstream.iter().flat_map(|u| u.hosts.clone()).collect::<Vec<_>>(),
            },
            // Binance's (else the first) as before; every exchange's in `upstreams`.
            "upstream": upstream
                .iter()
                .find(|u| u.exchange == Exchange::Binance)
                .or(upstream.first())
                .map(|u| self.upstream_block(u.clone())),
            "upstreams": upstream
                .iter()
                .map(|u| self.upstream_block(u.clone()))
                .collect::<Vec<_>>(),
            "served_streams": self.ws.stats(),
            "queries": {"patterns": db.patterns, "slow": db.slow},
            "read_path": read_stats,
            "http": self.metrics.summary(),
            "access_log": {
                "enabled": self.access_log.enabled(),
                "dropped_lines": self.access_log.dropped(),
            },
        });
        Ok(Reply::json(envelope(self.read.now(), data, None)))
    }

    pub(crate) fn clear(&self, p: &Params) -> Result<Reply> {
        let freed = match p.get("namespace") {
            None | Some("") => self.cache.clear(Scope::All),
            Some(name) => self.cache.clear(Scope::Namespace(name)),
        }
        .map_err(|e| match e {
            cache_core::Error::UnknownNamespace(n) => Error::UnknownNamespace(n),
            other => Error::Internal(other.to_string()),
        })?;
        Ok(Reply::json(envelope(
            self.read.now(),
            json!({"bytes_freed": freed}),
            None,
        )))
    }

    pub(crate) async fn optimize(&self) -> Result<Reply> {
        // Memory first: what the database work allocates should not count against it.
        let guard = self.guard.clone();
        let memory = tokio::task::spawn_blocking(move || guard.reclaim_now())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let memory = match memory {
            Some((a, actions)) => json!({
                "health": a.health,
                "rss_bytes": a.rss_bytes,
                "private_bytes": a.private_bytes,
                "usage_pct": a.usage_pct,
                "bytes_freed": actions.iter().map(|x| x.bytes_freed).sum::<u64>(),
                "reclaims": actions,
                "recommendations": a.recommendations,
            }),
            None => json!({"error": "memory could not be sampled"}),
        };
        let done = self
            .read
            .optimize()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Reply::json(envelope(
            self.read.now(),
            json!({"optimize": done.optimize, "recommendations": done.recommendations, "memory": memory}),
            None,
        )))
    }

    /// `/metrics`: Prometheus text.
    pub(crate) fn prometheus(&self) -> Reply {
        let streams = self.stream_markets();
        Reply {
            content_type: "text/plain; version=0.0.4",
            body: Bytes::from(
                self.metrics.render(
                    &self.cache,
                    &self.read.database_stats(),
                    &self
                        .read
                        .upstream_stats()
                        .into_iter()
                        .flat_map(|u| u.hosts)
                        .collect::<Vec<_>>(),
                    (
                        &self.read.read_stats(),
                        &streams
                            .iter()
                            .map(|(e, m, st)| (e.as_str(), *m, st))
                            .collect::<Vec<_>>(),
                    ),
                    &self.ws.stats(),
                    &self.guard.report(),
                ),
            ),
            ..Reply::json(json!(null))
        }
    }
}
