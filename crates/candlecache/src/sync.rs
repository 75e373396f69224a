//! `candlecache sync`: publish the complete closed months the database holds to the shared
//! object store.

use std::path::Path;

use anyhow::{bail, Result};
use market_cache::objects::{local_months, Published};

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
    let Some(objects) = file.objects(args.object_store.as_deref(), None)? else {
        bail!("no object store: pass --object-store URL (s3://bucket/prefix or file:///path) or set [object_store] url in the configuration");
    };
    runtime()?.block_on(async {
        let store = open_store_with(file.db(db), true, None).await?;
        let now = market_cache::read::wall_clock();
        let months = local_months(&store, now).await?;
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
