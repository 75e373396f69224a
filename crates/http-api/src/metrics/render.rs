//! The Prometheus text of the served streams, the live edge and memory.

use std::fmt::Write as _;

/// The streams served to clients.
pub(super) fn render_served(s: &mut String, w: &crate::streams::WsStats) {
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

/// The live edge: REST refreshes, and the upstream streams of each exchange and market
/// (`exchange` label: binance, bybit; `market`: spot, futures) when configured.
pub(super) fn render_live(
    s: &mut String,
    read: &market_cache::ReadStats,
    markets: &[(&str, &str, &market_cache::StreamStats)],
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
        for (exchange, market, st) in markets {
            let _ = writeln!(
                s,
                "candlecache_{name}{{exchange=\"{exchange}\",market=\"{market}\"}} {}",
                figure(st)
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP candlecache_stream_last_event_age_seconds Age of the last event per upstream stream.\n# TYPE candlecache_stream_last_event_age_seconds gauge"
    );
    for (exchange, market, st) in markets {
        for p in &st.per_stream {
            if let Some(age) = p.last_event_age_ms {
                let _ = writeln!(
                    s,
                    "candlecache_stream_last_event_age_seconds{{exchange=\"{exchange}\",market=\"{market}\",stream=\"{}\"}} {}",
                    p.stream,
                    age as f64 / 1000.0
                );
            }
        }
    }
}

pub(super) fn render_memory(s: &mut String, m: &mem_guard::Report) {
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
