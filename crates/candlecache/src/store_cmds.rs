//! `import`, `export` and `markets`: wiring the store to the terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use market_cache::DbSettings;
use market_cache::{
    format_time, parse_time, Exchange, ExportFormat, ExportTo, ImportOptions, ImportProgress, Kind,
    OnInvalid, Service, ServiceBuilder, Symbol, Timeframe,
};

/// Which market a command's candles belong to: `--market spot|futures`, `--price
/// trade|mark`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MarketArgs {
    /// The exchange the series comes from: binance (the default), bybit or okx. A Binance and
    /// a Bybit series of the same name are two series.
    #[arg(long, default_value = "binance", value_parser = parse_exchange)]
    exchange: Exchange,
    /// The market: spot (the default), or futures (Binance USD-M `/fapi/v1`, Bybit
    /// linear perpetuals). `import` takes freqtrade's `-futures` and `-mark` file names as
    /// saying it.
    #[arg(long, value_parser = ["spot", "futures"])]
    market: Option<String>,
    /// The price: trade (the default), or mark (futures only: Binance's mark-price klines).
    #[arg(long, value_parser = ["trade", "mark"])]
    price: Option<String>,
}

impl MarketArgs {
    /// The kind of series named (spot trades unless said), or a message saying why none is.
    pub(crate) fn kind(&self) -> Result<Kind> {
        let market = self.market.as_deref().unwrap_or("spot");
        let price = self.price.as_deref().unwrap_or("trade");
        Kind::of(market, price)
            .ok_or_else(|| anyhow::anyhow!("--price mark exists only with --market futures"))
    }

    /// The exchange named (Binance unless said).
    pub(crate) fn exchange(&self) -> Exchange {
        self.exchange
    }

    /// `symbol` as a series of the kind and exchange named.
    pub(crate) fn series(&self, symbol: &Symbol) -> Result<Symbol> {
        Ok(symbol
            .clone()
            .with_kind(self.kind()?)
            .with_exchange(self.exchange))
    }

    /// The kind, if `--market` or `--price` was given.
    pub(crate) fn given(&self) -> Result<Option<Kind>> {
        if self.market.is_none() && self.price.is_none() {
            return Ok(None);
        }
        self.kind().map(Some)
    }
}

/// Options of `candlecache import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// Files to import.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The symbol, when the file names do not say it.
    #[arg(long, value_parser = parse_symbol)]
    symbol: Option<Symbol>,
    /// The timeframe, when the file names do not say it (1s 1m 3m 5m 15m 30m 1h 2h 4h 6h
    /// 8h 12h 1d 3d 1w 1M).
    #[arg(long, value_parser = parse_timeframe)]
    timeframe: Option<Timeframe>,
    #[command(flatten)]
    market: MarketArgs,
    /// What to do with rows that fail validation: `fail` imports nothing from such a file,
    /// `skip` imports the valid rows and lists the others.
    #[arg(long, default_value = "fail", value_parser = ["fail", "skip"])]
    on_invalid: String,
    /// Rows parsed and written at a time (one transaction each with `--on-invalid skip`;
    /// with `fail` the whole file is one transaction).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    batch_rows: u32,
}

/// Options of `candlecache export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The symbol.
    #[arg(long, value_parser = parse_symbol)]
    symbol: Symbol,
    /// The timeframe.
    #[arg(long, value_parser = parse_timeframe)]
    timeframe: Timeframe,
    #[command(flatten)]
    market: MarketArgs,
    /// First open time to export (epoch ms or RFC 3339); default: the first stored.
    #[arg(long, value_parser = parse_when)]
    start: Option<i64>,
    /// Export open times before this (epoch ms or RFC 3339); default: all.
    #[arg(long, value_parser = parse_when)]
    end: Option<i64>,
    /// csv, binance, parquet or dataset.
    #[arg(long, value_parser = parse_format)]
    format: ExportFormat,
    /// The output file (`-` for standard output with csv and binance), or the dataset's
    /// directory.
    out: PathBuf,
}

/// Options of `candlecache markets`.
#[derive(Debug, clap::Args)]
pub(crate) struct MarketsArgs {
    /// Only the series of this exchange (binance, bybit, okx).
    #[arg(long, value_parser = parse_exchange)]
    exchange: Option<Exchange>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also say which months of each series the shared object store holds
    /// (`s3://bucket/prefix` or `file:///path`; default: `[object_store] url`).
    #[arg(long, env = "CANDLECACHE_OBJECT_STORE", value_name = "URL")]
    object_store: Option<String>,
}

pub(crate) fn parse_symbol(s: &str) -> Result<Symbol, String> {
    s.parse().map_err(|e: market_cache::Error| e.to_string())
}

fn parse_exchange(s: &str) -> Result<Exchange, String> {
    s.parse::<Exchange>().map_err(|e| e.to_string())
}

pub(crate) fn parse_timeframe(s: &str) -> Result<Timeframe, String> {
    s.parse().map_err(|e: market_cache::Error| e.to_string())
}

pub(crate) fn parse_when(s: &str) -> Result<i64, String> {
    parse_time(s).map_err(|e| e.to_string())
}

fn parse_format(s: &str) -> Result<ExportFormat, String> {
    s.parse()
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A one-shot command's service over the database, with the `[database]` settings of
/// the configuration file; refuses a missing file if asked to.
async fn open_store(db: &Path, config: Option<&Path>, must_exist: bool) -> Result<Service> {
    let file = crate::config::FileConfig::load(config)?;
    open_service(file.db(db), must_exist, |b| b).await
}

/// Opens a service over the database `config` names (with the parts `parts` adds to the
/// builder), naming the file when that fails; refuses a missing file if asked to.
pub(crate) async fn open_service(
    config: DbSettings,
    must_exist: bool,
    parts: impl FnOnce(ServiceBuilder) -> ServiceBuilder,
) -> Result<Service> {
    let path = config.path.clone();
    if must_exist && !path.exists() {
        bail!(
            "database {} does not exist; import candles first (candlecache import FILE)",
            path.display()
        );
    }
    parts(Service::builder(config))
        .open()
        .await
        .with_context(|| format!("cannot open database {}", path.display()))
}

pub(crate) fn bar(len: u64, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style =
        format!("{{prefix}} [{{bar:30}}] {{{unit}}}/{{total_{unit}}} {{per_sec}} eta {{eta}}");
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&style) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(crate) fn import(db: &Path, config: Option<&Path>, args: &ImportArgs) -> Result<()> {
    runtime()?.block_on(async {
        let store = open_store(db, config, false).await?;
        let opts = ImportOptions {
            symbol: args.symbol.clone(),
            timeframe: args.timeframe,
            kind: args.market.given()?,
            exchange: args.market.exchange(),
            on_invalid: if args.on_invalid == "skip" { OnInvalid::Skip } else { OnInvalid::Fail },
            batch_rows: args.batch_rows as usize,
        };
        let mut rejected_any = false;
        for file in &args.files {
            let bar = bar(file.metadata().map(|m| m.len()).unwrap_or(0), "bytes");
            bar.set_prefix(file.display().to_string());
            let show = |p: ImportProgress| {
                bar.set_length(p.bytes_total);
                bar.set_position(p.bytes_done);
            };
            let reports = store.import_path(file, &opts, &show).await;
            bar.finish_and_clear();
            for r in reports? {
                println!(
                    "{} ({}) -> {} {}: read {}, inserted {}, updated {}, duplicates {}, rejected {}, {:.0} rows/s",
                    r.source, r.format, r.symbol, r.timeframe, r.read, r.inserted, r.updated,
                    r.duplicates, r.rejected, r.rows_per_s
                );
                for rej in &r.rejects {
                    eprintln!("  skipped {}: {}", rej.location, rej.reason);
                }
                if r.rejected > r.rejects.len() as u64 {
                    eprintln!("  ... and {} more", r.rejected - r.rejects.len() as u64);
                }
                rejected_any |= r.rejected > 0;
            }
        }
        if rejected_any {
            eprintln!("candlecache: some rows were invalid and skipped (see above)");
        }
        Ok(())
    })
}

pub(crate) fn export(db: &Path, config: Option<&Path>, args: &ExportArgs) -> Result<()> {
    runtime()?.block_on(async {
        let symbol = args.market.series(&args.symbol)?;
        let store = open_store(db, config, true).await?;
        let (start, end) = (args.start.unwrap_or(0), args.end.unwrap_or(i64::MAX));
        if start >= end {
            bail!("--start must be before --end");
        }
        let bar = bar(0, "pos");
        bar.set_prefix("exporting");
        let show = |rows: u64| bar.set_position(rows);
        let to = if args.out.as_os_str() == "-" {
            ExportTo::Writer(Box::new(std::io::BufWriter::new(std::io::stdout())))
        } else {
            ExportTo::Path(args.out.clone())
        };
        let report = store
            .export(
                &symbol,
                args.timeframe,
                (start, end),
                args.format,
                to,
                &show,
            )
            .await;
        bar.finish_and_clear();
        let report = report?;
        if args.out.as_os_str() != "-" {
            println!(
                "exported {} {} candles of {} {} to {}",
                report.rows,
                args.timeframe,
                args.symbol,
                match report.files.len() {
                    1 => "in 1 file".to_owned(),
                    n => format!("in {n} files"),
                },
                args.out.display()
            );
        }
        Ok(())
    })
}

pub(crate) fn markets(db: &Path, config: Option<&Path>, args: &MarketsArgs) -> Result<()> {
    let file = crate::config::FileConfig::load(config)?;
    let objects = file.objects(args.object_store.as_deref(), None)?;
    let shared = objects.is_some();
    runtime()?.block_on(async {
        let store = open_service(file.db(db), true, |b| b.objects(objects)).await?;
        let mut markets = store.markets().await?;
        if let Some(e) = args.exchange {
            markets.retain(|m| m.exchange == e);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&markets)?);
            return Ok(());
        }
        if markets.is_empty() {
            println!("the database holds no candles yet");
            return Ok(());
        }
        let shared = if shared { "object store" } else { "" };
        println!(
            "{:<12} {:<8} {:<9} {:>4} {:>10}  {:<24}  {:<24}  {shared}",
            "symbol", "kind", "exchange", "tf", "candles", "first", "last"
        );
        for m in markets {
            let t = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), format_time);
            let months = m.object_store.as_ref().map_or_else(String::new, |o| {
                let runs: Vec<String> = o
                    .ranges
                    .iter()
                    .map(|(a, b)| {
                        if a == b {
                            a.clone()
                        } else {
                            format!("{a}..{b}")
                        }
                    })
                    .collect();
                format!("{} months {}", o.months, runs.join(", "))
            });
            println!(
                "{:<12} {:<8} {:<9} {:>4} {:>10}  {:<24}  {:<24}  {months}",
                m.symbol,
                m.kind,
                m.exchange,
                m.timeframe,
                m.count,
                t(m.first_time),
                t(m.last_time)
            );
        }
        Ok(())
    })
}
