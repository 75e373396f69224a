//! `candlecache fetch`: backfill a range from the upstream into the store.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use market_cache::{format_time, wall_ms, Exchange, FillProgress, Symbol, Timeframe};

use crate::config::FileConfig;
use crate::store_cmds::{
    bar, open_service, parse_symbol, parse_timeframe, parse_when, runtime, MarketArgs,
};

/// Options of `candlecache fetch`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The symbol, e.g. BTCUSDT.
    #[arg(long, value_parser = parse_symbol)]
    symbol: Symbol,
    /// The timeframe (1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M).
    #[arg(long, value_parser = parse_timeframe)]
    timeframe: Timeframe,
    #[command(flatten)]
    market: MarketArgs,
    /// First open time (epoch ms, RFC 3339 or a date like 2024-01-01).
    #[arg(long, value_parser = parse_when)]
    start: i64,
    /// End of the range, exclusive (same forms); default: now.
    #[arg(long, value_parser = parse_when)]
    end: Option<i64>,
    /// The exchange's API, e.g. `https://api.binance.com`; default: the configuration
    /// file's `[upstream] url` (with `--exchange bybit`: `[upstream.bybit] rest`, else
    /// `https://api.bybit.com`; with `--exchange okx`: `[upstream.okx] rest`, else
    /// `https://www.okx.com`).
    #[arg(long, env = "CANDLECACHE_UPSTREAM")]
    upstream: Option<String>,
    /// The upstream's USD-M futures API for `--market futures` (default:
    /// `https://fapi.binance.com` for Binance's hosts, else the upstream itself).
    #[arg(long, env = "CANDLECACHE_UPSTREAM_FUTURES")]
    upstream_futures: Option<String>,
    /// Shared history on an object store (`s3://bucket/prefix` or `file:///path`; also
    /// `[object_store] url`): closed months already there are read from it instead of the
    /// exchange, and months fetched from the exchange are published there.
    #[arg(long, env = "CANDLECACHE_OBJECT_STORE", value_name = "URL")]
    object_store: Option<String>,
}

pub(crate) fn run(db: &Path, config: Option<&Path>, args: &Args) -> Result<()> {
    let file = FileConfig::load(config)?;
    let symbol = args.market.series(&args.symbol)?;
    if symbol.kind().is_futures() && args.timeframe == Timeframe::S1 {
        bail!("--timeframe 1s: the futures market has no 1s candles (1m and up)");
    }
    let upstream = match symbol.exchange() {
        Exchange::Binance => {
            file.upstream(args.upstream.as_deref(), args.upstream_futures.as_deref())?
        }
        // The exchange's own host unless another is given: one host serves both markets.
        e => file.venue(e, Some(args.upstream.as_deref()))?,
    };
    let Some(upstream) = upstream else {
        bail!("no upstream: pass --upstream URL (e.g. https://api.binance.com) or set [upstream] url in the configuration");
    };
    let end = args.end.unwrap_or_else(|| args.timeframe.next(wall_ms()));
    if args.start >= end {
        bail!(
            "--start {} must be before --end {}",
            format_time(args.start),
            format_time(end)
        );
    }
    runtime()?.block_on(async {
        let objects = file.objects(args.object_store.as_deref(), None)?;
        let service = open_service(file.db(db), false, |b| {
            b.upstream(Some(upstream)).objects(objects)
        })
        .await?;
        let bar = bar((end - args.start) as u64, "pos");
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {percent}% {msg} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{} {}", args.symbol, args.timeframe));
        let show = |p: FillProgress| {
            bar.set_position((p.done_until - args.start).max(0) as u64);
            bar.set_message(format!("{} pages, {} candles", p.pages, p.fetched));
        };
        let t = Instant::now();
        if service.object_stats().is_some() {
            bar.set_message("closed months from the object store first");
        }
        let report = service
            .fill(&symbol, args.timeframe, (args.start, end), &show)
            .await;
        bar.finish_and_clear();
        let report = report?;
        println!(
            "{} {} {} .. {}: fetched {} candles in {} pages ({} new), {} already covered, {} still forming (not stored), {:.1} s",
            args.symbol,
            args.timeframe,
            format_time(args.start),
            format_time(end),
            report.fetched,
            report.pages,
            report.inserted,
            human_span(report.already_covered_ms),
            report.forming.len(),
            t.elapsed().as_secs_f64()
        );
        if let Some(st) = service.object_stats() {
            println!(
                "object store {}: {} months read, {} published, {} already there",
                st.url, st.months_read, st.months_written, st.months_existing
            );
        }
        Ok(())
    })
}

fn human_span(ms: i64) -> String {
    match ms {
        0 => "nothing".into(),
        ms if ms < 3_600_000 => format!("{} min", ms / 60_000),
        ms if ms < 172_800_000 => format!("{:.1} h", ms as f64 / 3_600_000.0),
        ms => format!("{:.1} days", ms as f64 / 86_400_000.0),
    }
}
