//! The candlecache binary: command line and wiring only.
//!
//! At this stage it offers `demo`, which runs the cache on bundled real candles; `serve`,
//! `import`, `export`, `fetch` and `markets` arrive with the crates that implement them.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps historical market candles (OHLCV) close at hand and serves them fast.
#[derive(Debug, Parser)]
#[command(name = "candlecache", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Caches the bundled real candles (XRPETH 1m and 5m, Binance CSV) in chunks, reads
    /// them back, squeezes the budget until entries move to the compressed tier, and
    /// prints what the cache did.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("candlecache: {err:#}");
            ExitCode::FAILURE
        }
    }
}
