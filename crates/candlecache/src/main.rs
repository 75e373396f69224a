//! The candlecache binary: command line and wiring only.

#![forbid(unsafe_code)]

mod config;
mod demo;
mod fetch;
mod samples;
mod serve;
mod store_cmds;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Counts allocations for /api/performance/memory's per-route profiles; its cost on a
// cached hit is measured by `cargo xtask bench http` (docs/BENCHMARKS.md).
#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOC: mem_guard::CountingAlloc = mem_guard::CountingAlloc::system();

/// Keeps historical market candles (OHLCV) close at hand and serves them fast.
#[derive(Debug, Parser)]
#[command(name = "candlecache", version, about, long_about = None)]
struct Cli {
    /// The SQLite database file.
    #[arg(
        long,
        global = true,
        env = "CANDLECACHE_DB",
        default_value = "candlecache.db"
    )]
    db: PathBuf,
    /// A TOML configuration file (sections `[server]`, `[cache]`, `[database]`,
    /// `[upstream]`, `[memory]`; every command uses `[database]`); flags and environment
    /// variables override it.
    #[arg(long, global = true, env = "CANDLECACHE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Caches the bundled real candles (XRPETH 1m and 5m, Binance CSV) in chunks, reads
    /// them back, squeezes the budget until entries move to the compressed tier, and
    /// prints what the cache did.
    Demo(demo::Args),
    /// Imports candle files: Binance kline CSV (with or without header, ms or µs times),
    /// freqtrade JSON, CSV with a header (time, open, high, low, close, volume), Parquet,
    /// or zip archives of those. Symbol and timeframe come from Binance-style file names
    /// (BTCUSDT-1m-2024-01.csv) unless given. Importing the same candles again changes
    /// nothing.
    Import(store_cmds::ImportArgs),
    /// Exports one series as CSV, Binance kline CSV, one Parquet file, or a
    /// hive-partitioned Parquet dataset (symbol=/timeframe=/year=/) for DuckDB or polars.
    Export(store_cmds::ExportArgs),
    /// Backfills a range from a Binance-compatible exchange into the database: only what
    /// is not stored yet is fetched (pages of 1000 candles, retries, rate limits
    /// respected), and the range is recorded as complete so it is never fetched again.
    Fetch(fetch::Args),
    /// Lists what the database holds: symbols, timeframes, ranges and counts.
    Markets(store_cmds::MarketsArgs),
    /// Publishes the complete closed months the database holds to the shared object store
    /// (`--object-store` / `[object_store] url`) as hive-partitioned Parquet, each created
    /// only if absent, so instances and DuckDB, DataFusion, Spark or Trino share them.
    Sync(sync::Args),
    /// Serves candles over HTTP (JSON, CSV, Arrow) from the cache and the database.
    /// Prints `listening on http://ADDR` once it accepts connections.
    Serve(serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Import(args) => store_cmds::import(&cli.db, cli.config.as_deref(), &args),
        Command::Export(args) => store_cmds::export(&cli.db, cli.config.as_deref(), &args),
        Command::Fetch(args) => fetch::run(&cli.db, cli.config.as_deref(), &args),
        Command::Markets(args) => store_cmds::markets(&cli.db, cli.config.as_deref(), &args),
        Command::Sync(args) => sync::run(&cli.db, cli.config.as_deref(), &args),
        Command::Serve(args) => serve::run(&cli.db, cli.config.as_deref(), &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("candlecache: {err:#}");
            ExitCode::FAILURE
        }
    }
}
