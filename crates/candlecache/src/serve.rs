//! `candlecache serve`: wiring the store, the cache, the read path and the server.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use cache_core::{Cache, CacheConfig};
use http_api::HttpConfig;
use market_cache::{ImportOptions, Service};
use mem_guard::MemGuard;

use crate::config::FileConfig;
use crate::store_cmds::{open_service, runtime};

/// Options of `candlecache serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (default 127.0.0.1:8080); port 0 picks a free one.
    #[arg(long, env = "CANDLECACHE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Bearer token for the mutating endpoints (needed when listening beyond loopback).
    #[arg(long, env = "CANDLECACHE_TOKEN")]
    token: Option<String>,
    /// Memory budget of the cache, in MB (default 500).
    #[arg(long, env = "CANDLECACHE_CACHE_MB", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    cache_mb: Option<u64>,
    /// The most candles one answer may hold (default 100000).
    #[arg(long, env = "CANDLECACHE_MAX_ROWS", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_rows: Option<u64>,
    /// A Binance-compatible exchange to fetch missing candles from, once, e.g.
    /// `https://api.binance.com` (or another candlecache). Without it only stored candles
    /// are served.
    #[arg(long, env = "CANDLECACHE_UPSTREAM")]
    upstream: Option<String>,
    /// The upstream's USD-M futures API serving `/fapi/v1` (default:
    /// `https://fapi.binance.com` when the upstream is Binance's, else the upstream
    /// itself, so another candlecache or a test server serves both).
    #[arg(long, env = "CANDLECACHE_UPSTREAM_FUTURES")]
    upstream_futures: Option<String>,
    /// The futures upstream's WebSocket market streams, which keep futures candles as fresh
    /// as the exchange's (`wss://fstream.binance.com/market` for Binance's futures host; none
    /// for other upstreams: `ws://A:8080/market` chains another candlecache), or `off`.
    #[arg(long, env = "CANDLECACHE_UPSTREAM_FUTURES_WS", value_name = "URL|off")]
    upstream_futures_ws: Option<String>,
    /// Shared history on an object store (`s3://bucket/prefix` or `file:///path`; also
    /// `[object_store] url`): closed months the database lacks are read from it before the
    /// upstream is asked, and months fetched from the upstream are published there for
    /// other instances.
    #[arg(long, env = "CANDLECACHE_OBJECT_STORE", value_name = "URL")]
    object_store: Option<String>,
    /// With an object store: the MB of candles the local database keeps at most (also
    /// `[store] local_max_mb`); closed months safe in the object store are dropped beyond
    /// it, least recently read first, and read back from it on demand. 0: no bound.
    #[arg(long, env = "CANDLECACHE_LOCAL_MAX_MB", value_name = "MB")]
    local_max_mb: Option<u64>,
    /// The upstream's WebSocket market streams, which keep the latest candles as fresh
    /// as the exchange's (`wss://stream.binance.com:9443` by default for Binance's
    /// hosts; none for other upstreams), or `off` to refresh the edge over REST only.
    #[arg(long, env = "CANDLECACHE_UPSTREAM_WS", value_name = "URL|off")]
    upstream_ws: Option<String>,
    /// Serve Bybit v5 too, fetching what the store lacks from this Bybit-compatible API
    /// (`https://api.bybit.com` when given without a URL; also `[upstream.bybit] rest`).
    #[arg(long, env = "CANDLECACHE_UPSTREAM_BYBIT", value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    upstream_bybit: Option<String>,
    /// Bybit's public streams, which keep Bybit candles as fresh as the exchange's
    /// (`wss://stream.bybit.com/v5/public`, its `/spot` and `/linear` under it, by default
    /// for Bybit's own host; none for other upstreams), or `off`.
    #[arg(long, env = "CANDLECACHE_UPSTREAM_BYBIT_WS", value_name = "URL|off")]
    upstream_bybit_ws: Option<String>,
    /// Serve OKX v5 too, fetching what the store lacks from this OKX-compatible API
    /// (`https://www.okx.com` when given without a URL; also `[upstream.okx] rest`).
    #[arg(long, env = "CANDLECACHE_UPSTREAM_OKX", value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    upstream_okx: Option<String>,
    /// OKX's streams, which keep OKX candles as fresh as the exchange's
    /// (`wss://ws.okx.com:8443/ws/v5`, candle channels on its `/business`, by default for
    /// OKX's own host; none for other upstreams), or `off`.
    #[arg(long, env = "CANDLECACHE_UPSTREAM_OKX_WS", value_name = "URL|off")]
    upstream_okx_ws: Option<String>,
    /// Client WebSocket connections (`/ws`, `/stream`) open at once at most (default
    /// 4096; also `[server.ws] max_connections`); beyond it the handshake gets 503.
    #[arg(long, env = "CANDLECACHE_MAX_WS_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_ws_connections: Option<u64>,
    /// The memory limit in MB (default 2000): at 80 % of it the cache gives memory back,
    /// at 90 % it drops its compressed tier and halves the rest.
    #[arg(long, env = "CANDLECACHE_MEMORY_LIMIT_MB", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    memory_limit_mb: Option<u64>,
    /// No access-log line per request on stderr (also `[server] access_log = false`).
    #[arg(long)]
    no_access_log: bool,
    /// Load the bundled real candles (XRPETH 1m and 5m, XRP/USDT 1h) into an empty
    /// database first, so there is something to look at.
    #[arg(long)]
    demo: bool,
}

pub(crate) fn run(db: &Path, config: Option<&Path>, args: &Args) -> Result<()> {
    let file = FileConfig::load(config)?;
    runtime()?.block_on(async {
        let mut cache_config: CacheConfig = file.cache.clone();
        if let Some(mb) = args.cache_mb {
            cache_config.budget_bytes = mb * 1_000_000;
        }
        let cache = Cache::new(cache_config)?;
        let upstream = file.upstream(args.upstream.as_deref(), args.upstream_futures.as_deref())?;
        let upstream = match upstream {
            Some(up) => Some(file.with_streams(
                up,
                args.upstream_ws.as_deref().or(file.upstream.ws.as_deref()),
                args.upstream_futures_ws
                    .as_deref()
                    .or(file.upstream.futures_ws.as_deref()),
                "the upstream streams (--upstream-ws, --upstream-futures-ws / [upstream] ws, futures_ws)",
            )?),
            None => None,
        };
        let mut venues = Vec::new();
        for (exchange, flag, ws_flag) in [
            (market_cache::Exchange::Bybit, &args.upstream_bybit, &args.upstream_bybit_ws),
            (market_cache::Exchange::Okx, &args.upstream_okx, &args.upstream_okx_ws),
        ] {
            let flag = flag.as_deref().map(|u| Some(u).filter(|u| !u.is_empty()));
            if let Some(up) = file.venue(exchange, flag)? {
                let ws = ws_flag.as_deref().or(file
                    .venue_section(exchange)
                    .and_then(|v| v.ws.as_deref()));
                let what = format!(
                    "the {exchange} streams (--upstream-{exchange}-ws / [upstream.{exchange}] ws)"
                );
                venues.push(file.with_streams(up, ws, ws, &what)?);
            }
        }
        for up in upstream.iter().chain(venues.iter()) {
            eprintln!(
                "candlecache: fetching missing {} candles from {}{}",
                up.exchange(),
                up.base_url(),
                if up.futures_url() == up.base_url() {
                    String::new()
                } else {
                    format!(" (futures: {})", up.futures_url())
                }
            );
            for (market, futures) in [("spot", false), ("futures", true)] {
                match up.streams(futures) {
                    Some(st) => eprintln!(
                        "candlecache: {} {market} live edge from the streams at {}",
                        up.exchange(),
                        st.url
                    ),
                    None => eprintln!(
                        "candlecache: {} {market} live edge refreshed over REST at most every {} ms",
                        up.exchange(),
                        file.upstream.refresh_ms
                    ),
                }
            }
        }
        let live = file.live();
        let any_upstream = upstream.is_some() || !venues.is_empty();
        let objects = file.objects(args.object_store.as_deref(), args.local_max_mb)?;
        if objects.as_ref().is_some_and(|o| o.local_max_bytes().is_some()) && !any_upstream {
            anyhow::bail!("`local_max_mb` needs an upstream (--upstream): months dropped locally come back through it, from the object store first");
        }
        let sharing = objects.is_some();
        if let Some(objects) = &objects {
            eprintln!("candlecache: closed months shared through {}", objects.stats().url);
        }
        let service = open_service(file.db(db), false, |b| {
            let b = venues
                .into_iter()
                .fold(b.cache(&cache).upstream(upstream), |b, v| b.upstream(Some(v)));
            b.live(live)
                .objects(objects)
        })
        .await?;
        if args.demo && service.markets().await?.is_empty() {
            for (name, bytes) in crate::samples::SAMPLES {
                let opts = ImportOptions::default();
                for r in service.import_bytes(name, bytes.to_vec(), &opts, &|_| {}).await? {
                    eprintln!(
                        "demo: loaded {} {} candles of {}",
                        r.inserted, r.timeframe, r.symbol
                    );
                }
            }
        }
        if let Some(max) = service.local_max_bytes() {
            eprintln!(
                "candlecache: the local store keeps at most {} MB; months safe in the object store are dropped beyond it",
                max / 1_000_000
            );
        }
        if sharing {
            tokio::spawn(objects_loop(service.clone()));
        }
        let mut memory = file.memory.clone();
        if let Some(mb) = args.memory_limit_mb {
            memory.limit_mb = mb;
        }
        let guard = MemGuard::for_process_with_clock(memory, service.clock())?;
        guard.register("cache", std::sync::Arc::new(cache.clone()));
        if guard.config().limit_bytes() < cache.budget_bytes() {
            eprintln!(
                "candlecache: the cache budget ({} MB) is above the memory limit ({} MB); the memory guard will keep the cache smaller",
                cache.budget_bytes() / 1_000_000,
                guard.config().limit_mb
            );
        }
        // Samples until serving ends (dropping it stops the thread).
        let _sampler = guard.start();
        let listen = args.listen.unwrap_or(file.server.listen);
        let token = args.token.clone().or(file.server.token.clone());
        // Refused before binding: nothing listens beyond loopback, even for a moment,
        // without a token.
        if !listen.ip().is_loopback() && token.is_none() {
            anyhow::bail!(
                "listening on {listen} (beyond loopback) needs a token for the mutating endpoints: --token or CANDLECACHE_TOKEN"
            );
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let config = HttpConfig {
            listen: addr,
            max_rows: args.max_rows.map_or(file.server.max_rows, |m| m as usize),
            token,
            header_timeout_secs: file.server.header_timeout_secs,
            access_log: file.server.access_log && !args.no_access_log,
            ws: http_api::WsConfig {
                max_connections: args
                    .max_ws_connections
                    .map_or(file.server.ws.max_connections, |n| n as usize),
                ..file.server.ws.clone()
            },
        };
        println!("listening on http://{addr}");
        std::io::stdout().flush()?;
        http_api::serve(listener, config, service.clone(), cache, guard, shutdown_signal()).await?;
        // The file alone is then complete: a copy or a backup needs no -wal beside it.
        match service.checkpoint().await {
            Ok((false, frames)) => {
                eprintln!("candlecache: stopped; WAL checkpointed ({frames} frames)")
            }
            Ok((true, _)) => eprintln!("candlecache: stopped; WAL checkpoint partly blocked by a reader"),
            Err(e) => eprintln!("candlecache: stopped; WAL checkpoint failed: {e}"),
        }
        Ok(())
    })
}

/// Every 2 s: publishes the months that closed complete since they were written (the
/// stream's, or a page's that ran past a read), then keeps the local store within
/// `[store] local_max_mb` if it is bounded. Each look is a few small queries when there
/// is nothing to do.
async fn objects_loop(service: Service) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        service.publish_closed().await;
        if let Err(e) = service.trim_local().await {
            eprintln!("candlecache: trimming the local store: {e}");
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
