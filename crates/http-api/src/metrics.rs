//! Request counters and latency histograms, rendered with the cache, pool and query
//! figures as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use cache_core::Cache;
use market_cache::{DatabaseStats, HostStats};
use serde_json::json;
use std::sync::Mutex;

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
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
    routes: Mutex<BTreeMap<&'static str, Route>>,
}

/// Latency samples kept per route for the percentiles of /api/performance/stats.
const RECENT: usize = 1024;

impl Metrics {
    pub(crate) fn record(&self, route: &'static str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let r = routes.entry(route).or_default();
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

    /// Requests and latency percentiles by route, for the stats endpoint.
    pub(crate) fn summary(&self) -> serde_json::Value {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
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
            &[(&str, &market_cache::StreamStats)],
        ),
        served: &crate::ws::WsStats,
        memory: &mem_guard::Report,
    ) -> String {
        let mut s = String::new();
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
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

/// The streams served to clients.
fn render_served(s: &mut String, w: &crate::ws::WsStats) {
    for (name, help, kind, v) in [
        (
            "ws_connections",
            "Client stream connections open.",
            "gauge",
            w.connections,
        ),
        (
            "ws_streams",
            "Streams served to at least one client.",
            "gauge",
            w.streams,
        ),
        (
            "ws_subscriptions",
            "Client subscriptions over all streams.",
            "gauge",
            w.subscriptions,
        ),
        (
            "ws_frames_sent_total",
            "Event frames queued to clients.",
            "counter",
            w.frames_sent,
        ),
        (
            "ws_refused_total",
            "Stream handshakes refused at the connection limit.",
            "counter",
            w.refused,
        ),
        (
            "ws_closed_slow_total",
            "Clients closed (1008) for a full queue.",
            "counter",
            w.closed_slow,
        ),
        (
            "ws_closed_rate_total",
            "Clients closed (1008) for sending too many messages.",
            "counter",
            w.closed_rate,
        ),
        (
            "ws_closed_pong_total",
            "Clients closed (1008) for no pong.",
            "counter",
            w.closed_pong,
        ),
        (
            "ws_bad_requests_total",
            "Control messages answered with an error, and binary frames.",
            "counter",
            w.bad_requests,
        ),
    ] {
        let _ = writeln!(
            s,
            "# HELP candlecache_{name} {help}\n# TYPE candlecache_{name} {kind}\ncandlecache_{name} {v}"
        );
    }
}

/// The live edge: REST refreshes, and the upstream streams of each market (`market`
/// label: spot, futures) when configured.
fn render_live(
    s: &mut String,
    read: &market_cache::ReadStats,
    markets: &[(&str, &market_cache::StreamStats)],
) {
    for (name, help, kind, v) in [
        (
            "edge_refreshes_total",
            "Live-edge chunks re-read (over REST when there is an upstream).",
            "counter",
            read.edge_refreshes as f64,
        ),
        (
            "edge_from_stream_total",
            "Answers whose live edge came from the upstream stream.",
            "counter",
            read.edge_from_stream as f64,
        ),
    ] {
        let _ = writeln!(
            s,
            "# HELP candlecache_{name} {help}\n# TYPE candlecache_{name} {kind}\ncandlecache_{name} {v}"
        );
    }
    if markets.is_empty() {
        return;
    }
    type Figure = fn(&market_cache::StreamStats) -> f64;
    let figures: [(&str, &str, &str, Figure); 13] = [
        (
            "stream_connections",
            "Upstream stream connections open.",
            "gauge",
            |st| st.connections as f64,
        ),
        (
            "stream_streams",
            "Upstream streams subscribed.",
            "gauge",
            |st| st.streams as f64,
        ),
        (
            "stream_live_streams",
            "Upstream streams trusted for the edge now.",
            "gauge",
            |st| st.live_streams as f64,
        ),
        (
            "stream_reconnects_total",
            "Upstream stream reconnects.",
            "counter",
            |st| st.reconnects as f64,
        ),
        (
            "stream_stalls_total",
            "Upstream stream connections replaced for silence.",
            "counter",
            |st| st.stalls as f64,
        ),
        (
            "stream_connect_failures_total",
            "Failed upstream stream connection attempts.",
            "counter",
            |st| st.connect_failures as f64,
        ),
        (
            "stream_events_total",
            "Kline events received from the upstream.",
            "counter",
            |st| st.events as f64,
        ),
        (
            "stream_events_per_second",
            "Kline events a second over the last 10 s.",
            "gauge",
            |st| st.events_per_sec,
        ),
        (
            "stream_closed_stored_total",
            "Closed candles stored from the stream.",
            "counter",
            |st| st.closed_stored as f64,
        ),
        (
            "stream_bad_frames_total",
            "Upstream frames ignored as invalid.",
            "counter",
            |st| st.bad_frames as f64,
        ),
        (
            "stream_unexpected_total",
            "Upstream events for streams not subscribed or contradicting theirs.",
            "counter",
            |st| st.unexpected as f64,
        ),
        (
            "stream_out_of_order_total",
            "Upstream events older than what the series had.",
            "counter",
            |st| st.out_of_order as f64,
        ),
        (
            "stream_backfills_total",
            "REST backfills after a stream (re)subscription.",
            "counter",
            |st| st.backfills as f64,
        ),
    ];
    for (name, help, kind, figure) in figures {
        let _ = writeln!(
            s,
            "# HELP candlecache_{name} {help}\n# TYPE candlecache_{name} {kind}"
        );
        for (market, st) in markets {
            let _ = writeln!(
                s,
                "candlecache_{name}{{market=\"{market}\"}} {}",
                figure(st)
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP candlecache_stream_last_event_age_seconds Age of the last event per upstream stream.\n# TYPE candlecache_stream_last_event_age_seconds gauge"
    );
    for (market, st) in markets {
        for p in &st.per_stream {
            if let Some(age) = p.last_event_age_ms {
                let _ = writeln!(
                    s,
                    "candlecache_stream_last_event_age_seconds{{market=\"{market}\",stream=\"{}\"}} {}",
                    p.stream,
                    age as f64 / 1000.0
                );
            }
        }
    }
}

fn render_memory(s: &mut String, m: &mem_guard::Report) {
    let a = &m.analysis;
    let level = match a.health {
        mem_guard::Health::Excellent => 0,
        mem_guard::Health::Good => 1,
        mem_guard::Health::Warning => 2,
        mem_guard::Health::Critical => 3,
    };
    for (metric, help, kind, value) in [
        (
            "memory_private_bytes",
            "Private (anonymous) resident memory: what the level judges.",
            "gauge",
            a.private_bytes as f64,
        ),
        (
            "memory_rss_bytes",
            "Resident memory of the process.",
            "gauge",
            a.rss_bytes as f64,
        ),
        (
            "memory_virtual_bytes",
            "Virtual memory of the process.",
            "gauge",
            m.virtual_bytes as f64,
        ),
        (
            "memory_limit_bytes",
            "The memory limit health is judged against.",
            "gauge",
            a.limit_bytes as f64,
        ),
        (
            "memory_usage_ratio",
            "Resident memory over the limit.",
            "gauge",
            a.usage_pct / 100.0,
        ),
        (
            "memory_health",
            "0 Excellent, 1 Good, 2 Warning (reclaiming), 3 Critical.",
            "gauge",
            f64::from(level),
        ),
        (
            "memory_trend_mb_per_minute",
            "Least-squares growth of resident memory.",
            "gauge",
            a.trend_mb_per_min,
        ),
        (
            "memory_leak_suspected",
            "1 when growth is steady and above the leak rate.",
            "gauge",
            f64::from(u8::from(a.leak_suspected)),
        ),
        (
            "memory_stability_score",
            "0 (erratic or growing) to 100 (flat).",
            "gauge",
            f64::from(a.stability_score),
        ),
        (
            "memory_system_available_bytes",
            "Memory the system has available.",
            "gauge",
            m.system_available_bytes as f64,
        ),
        (
            "memory_reclaimed_bytes_total",
            "Bytes the guard made the cache give back.",
            "counter",
            m.reclaimed_bytes_total as f64,
        ),
        (
            "memory_reclaims_total",
            "Reclaim actions taken.",
            "counter",
            m.reclaim_count as f64,
        ),
        (
            "heap_live_bytes",
            "Heap in use, as the counting allocator sees it.",
            "gauge",
            m.heap.live_bytes as f64,
        ),
        (
            "heap_allocated_bytes_total",
            "Bytes allocated since start.",
            "counter",
            m.heap.allocated_bytes as f64,
        ),
        (
            "heap_allocations_total",
            "Allocations since start.",
            "counter",
            m.heap.allocations as f64,
        ),
    ] {
        let _ = writeln!(
            s,
            "# HELP candlecache_{metric} {help}\n# TYPE candlecache_{metric} {kind}\ncandlecache_{metric} {value}"
        );
    }
    for (metric, help, kind, get) in [
        (
            "route_allocated_bytes_total",
            "Bytes allocated while handling requests, by route.",
            "counter",
            (|p: &mem_guard::ScopeStats| p.allocated_bytes) as fn(&mem_guard::ScopeStats) -> u64,
        ),
        (
            "route_allocations_total",
            "Allocations while handling requests, by route.",
            "counter",
            |p| p.allocations,
        ),
        (
            "route_peak_bytes",
            "The most one request of the route held at once.",
            "gauge",
            |p| p.peak_bytes,
        ),
    ] {
        let _ = writeln!(
            s,
            "# HELP candlecache_{metric} {help}\n# TYPE candlecache_{metric} {kind}"
        );
        for p in &m.profiles {
            let _ = writeln!(
                s,
                "candlecache_{metric}{{route=\"{}\"}} {}",
                p.scope,
                get(p)
            );
        }
    }
}
