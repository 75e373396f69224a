//! Request counters and latency histograms, rendered with the cache, pool and query
//! figures as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use cache_core::Cache;
use dashmap::DashMap;
use market_cache::{DatabaseStats, HostStats};
use serde_json::json;

mod render;
use render::{render_live, render_memory, render_served};

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default, Clone)]
struct Route {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    recent_ms: Vec<f64>,
}

/// Counts every request by route and status, with a latency histogram per route.
#[derive(Default)]
pub(crate) struct Metrics {
    /// By route: a concurrent map, so requests of different routes do not queue on one
    /// lock to be counted.
    routes: DashMap<&'static str, Route>,
}

/// Latency samples kept per route for the percentiles of /api/performance/stats.
const RECENT: usize = 1024;

impl Metrics {
    pub(crate) fn record(&self, route: &'static str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut r = self.routes.entry(route).or_default();
        *r.by_status.entry(status).or_default() += 1;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                r.buckets[i] += 1;
            }
        }
        r.count += 1;
        r.sum += secs;
        if r.recent_ms.len() == RECENT {
            r.recent_ms.remove(0);
        }
        r.recent_ms.push(secs * 1000.0);
    }

    /// A copy of every route's figures, in route order.
    fn snapshot(&self) -> BTreeMap<&'static str, Route> {
        self.routes
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect()
    }

    /// Requests and latency percentiles by route, for the stats endpoint.
    pub(crate) fn summary(&self) -> serde_json::Value {
        let routes = self.snapshot();
        let mut out = serde_json::Map::new();
        for (name, r) in routes.iter() {
            let mut v = r.recent_ms.clone();
            v.sort_by(f64::total_cmp);
            let q = |p: f64| {
                if v.is_empty() {
                    0.0
                } else {
                    v[((v.len() - 1) as f64 * p).round() as usize]
                }
            };
            out.insert(
                (*name).to_owned(),
                json!({"requests": r.count, "by_status": r.by_status, "p50_ms": q(0.5), "p99_ms": q(0.99)}),
            );
        }
        serde_json::Value::Object(out)
    }

    pub(crate) fn render(
        &self,
        cache: &Cache,
        db: &DatabaseStats,
        upstream: &[HostStats],
        live: (
            &market_cache::ReadStats,
            &[(&str, &str, &market_cache::StreamStats)],
        ),
        served: &crate::streams::WsStats,
        memory: &mem_guard::Report,
    ) -> String {
        let mut s = String::new();
        let routes = self.snapshot();
        s.push_str("# HELP candlecache_http_requests_total HTTP requests by route and status.\n# TYPE candlecache_http_requests_total counter\n");
        for (name, r) in routes.iter() {
            for (status, n) in &r.by_status {
                let _ = writeln!(
                    s,
                    "candlecache_http_requests_total{{route=\"{name}\",status=\"{status}\"}} {n}"
                );
            }
        }
        s.push_str("# HELP candlecache_http_request_duration_seconds Time to answer a request.\n# TYPE candlecache_http_request_duration_seconds histogram\n");
        for (name, r) in routes.iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(s, "candlecache_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"{b}\"}} {}", r.buckets[i]);
            }
            let _ = writeln!(s, "candlecache_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {}", r.count);
            let _ = writeln!(
                s,
                "candlecache_http_request_duration_seconds_sum{{route=\"{name}\"}} {}",
                r.sum
            );
            let _ = writeln!(
                s,
                "candlecache_http_request_duration_seconds_count{{route=\"{name}\"}} {}",
                r.count
            );
        }
        drop(routes);
        let st = cache.stats();
        let gauge = |s: &mut String, name: &str, help: &str, kind: &str| {
            let _ = writeln!(
                s,
                "# HELP candlecache_{name} {help}\n# TYPE candlecache_{name} {kind}"
            );
        };
        gauge(
            &mut s,
            "cache_hits_total",
            "Cache hits by namespace and tier.",
            "counter",
        );
        for (n, v) in &st.namespaces {
            let _ = writeln!(
                s,
                "candlecache_cache_hits_total{{namespace=\"{n}\",tier=\"hot\"}} {}",
                v.hits_hot
            );
            let _ = writeln!(
                s,
                "candlecache_cache_hits_total{{namespace=\"{n}\",tier=\"warm\"}} {}",
                v.hits_warm
            );
        }
        for (metric, help, kind, get) in [
            (
                "cache_misses_total",
                "Cache misses by namespace.",
                "counter",
                (|v: &cache_core::NamespaceStats| v.misses)
                    as fn(&cache_core::NamespaceStats) -> u64,
            ),
            (
                "cache_evictions_total",
                "Entries evicted by namespace.",
                "counter",
                |v| v.evictions,
            ),
            (
                "cache_demotions_total",
                "Entries compressed into the warm tier.",
                "counter",
                |v| v.demotions,
            ),
            (
                "cache_admitted_total",
                "New entries that displaced others, their keys asked for often enough (admission).",
                "counter",
                |v| v.admitted,
            ),
            (
                "cache_rejected_by_admission_total",
                "New entries not stored: they would have displaced others and their keys were asked for once.",
                "counter",
                |v| v.rejected_by_admission,
            ),
            (
                "cache_entries",
                "Entries held by namespace.",
                "gauge",
                |v| v.entries,
            ),
            (
                "cache_bytes_hot",
                "Bytes charged to hot entries.",
                "gauge",
                |v| v.bytes_hot,
            ),
            (
                "cache_bytes_warm",
                "Bytes charged to warm entries.",
                "gauge",
                |v| v.bytes_warm,
            ),
            (
                "cache_bytes_saved",
                "Bytes the warm tier saves by compressing.",
                "gauge",
                |v| v.bytes_saved,
            ),
        ] {
            gauge(&mut s, metric, help, kind);
            for (n, v) in &st.namespaces {
                let _ = writeln!(s, "candlecache_{metric}{{namespace=\"{n}\"}} {}", get(v));
            }
        }
        gauge(
            &mut s,
            "cache_budget_bytes",
            "The cache's byte budget.",
            "gauge",
        );
        let _ = writeln!(s, "candlecache_cache_budget_bytes {}", st.budget_bytes);
        let p = &db.pool;
        gauge(
            &mut s,
            "sqlite_pool_connections",
            "SQLite connections by state.",
            "gauge",
        );
        let _ = writeln!(
            s,
            "candlecache_sqlite_pool_connections{{state=\"in_use\"}} {}",
            p.in_use
        );
        let _ = writeln!(
            s,
            "candlecache_sqlite_pool_connections{{state=\"idle\"}} {}",
            p.idle
        );
        let _ = writeln!(
            s,
            "candlecache_sqlite_pool_connections{{state=\"waiting\"}} {}",
            p.waiting
        );
        gauge(
            &mut s,
            "sqlite_pool_wait_p99_seconds",
            "99th percentile wait for a connection.",
            "gauge",
        );
        let _ = writeln!(
            s,
            "candlecache_sqlite_pool_wait_p99_seconds {}",
            p.wait_p99_ms / 1000.0
        );
        gauge(
            &mut s,
            "query_executions_total",
            "Executions by query pattern.",
            "counter",
        );
        for q in &db.patterns {
            let pattern = q.pattern.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                s,
                "candlecache_query_executions_total{{pattern=\"{pattern}\"}} {}",
                q.count
            );
        }
        for (metric, help, get) in [
            (
                "upstream_requests_total",
                "Upstream attempts sent, retries included.",
                (|h: &HostStats| h.requests) as fn(&HostStats) -> u64,
            ),
            ("upstream_retries_total", "Upstream retries.", |h| h.retries),
            (
                "upstream_errors_total",
                "Upstream calls that failed for good.",
                |h| h.errors,
            ),
            (
                "upstream_rate_limited_total",
                "429 and 418 answers from the upstream.",
                |h| h.rate_limited,
            ),
            (
                "upstream_received_bytes_total",
                "Body bytes received from the upstream.",
                |h| h.bytes,
            ),
        ] {
            gauge(&mut s, metric, help, "counter");
            for h in upstream {
                let _ = writeln!(s, "candlecache_{metric}{{host=\"{}\"}} {}", h.host, get(h));
            }
        }
        render_live(&mut s, live.0, live.1);
        render_served(&mut s, served);
        render_memory(&mut s, memory);
        s
    }
}
