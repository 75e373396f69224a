//! `candlecache sync`: publish the complete closed months the database holds to the shared
//! object store.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::FileConfig;
use crate::store_cmds::{bar, open_service, runtime};

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
        let url = objects.stats().url;
        let service = open_service(file.db(db), true, |b| b.objects(Some(objects))).await?;
        let bar = bar(0, "pos");
        bar.set_prefix("publishing months");
        let report = service
            .sync(&|done, all| {
                bar.set_length(all);
                bar.set_position(done);
            })
            .await;
        bar.finish_and_clear();
        let r = report?;
        println!(
            "synced {} closed months to {url}: {} published, {} already there, {} not known complete (only ranges fetched from an exchange are; imported files are not)",
            r.months, r.created, r.existed, r.incomplete
        );
        Ok(())
    })
}
