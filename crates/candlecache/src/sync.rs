//! `candlecache sync`: publish the complete closed months the database holds to the shared
//! object store.

use std::path::Path;

use anyhow::{bail, Result};
use market_cache::objects::{Objects, Published};
use market_cache::{CandleStore, Symbol, Timeframe};

use crate::config::FileConfig;
use crate::store_cmds::{bar, open_store_with, runtime};

/// Options of `candlecache sync`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The object store (`s3://bucket/prefix` or `file:///path`); default: the
    /// configuration file's `[object_store] url`.
    #[arg(long, env = "CANDLECACHE_OBJECT_STORE", value_name = "URL")]
    object_store: Option<String>,
}

pub(crate) fn run(db: &Path, config: Option<&Path>, args: &Args) -> Result<()> {
    let file = FileConfig::load(config)?;
    let Some(objects) = file.objects(args.object_store.as_deref())? else {
        bail!("no object store: pass --object-store URL (s3://bucket/prefix or file:///path) or set [object_store] url in the configuration");
    };
    runtime()?.block_on(async {
        let store = open_store_with(file.db(db), true, None).await?;
        let now = market_cache::read::wall_clock();
        let closed = now - market_cache::upstream::CLOSE_GRACE_MS;
        let mut months = Vec::new();
        for m in store.markets().await? {
            let (Ok(tf), Some(first), Some(last)) = (
                m.timeframe.parse::<Timeframe>(),
                m.first_time,
                m.last_time,
            ) else {
                continue;
            };
            let Ok(symbol) = m.symbol.parse::<Symbol>() else {
                continue;
            };
            if !Objects::keeps(tf) {
                continue;
            }
            let symbol = symbol.with_kind(m.kind);
            let mut month = Timeframe::Mo1.floor(first);
            while month <= last && Timeframe::Mo1.next(month) <= closed {
                months.push((m.exchange.clone(), symbol.clone(), tf, month));
                month = Timeframe::Mo1.next(month);
            }
        }
        let bar = bar(months.len() as u64, "pos");
        bar.set_prefix("publishing months");
        let (mut created, mut existed, mut incomplete) = (0u64, 0u64, 0u64);
        for (exchange, symbol, tf, month) in &months {
            match objects.publish(&store, exchange, symbol, *tf, *month).await? {
                Some(Published::Created) => created += 1,
                Some(Published::Existed) => existed += 1,
                None => incomplete += 1,
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        println!(
            "synced {} closed months to {}: {created} published, {existed} already there, {incomplete} not known complete (only ranges fetched from an exchange are; imported files are not)",
            months.len(),
            objects.stats().url
        );
        Ok(())
    })
}
