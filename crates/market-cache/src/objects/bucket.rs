//! The object store handle: opening it from its URL, its per-month locks and its figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use object_store::ObjectStore;

use super::config::{ObjectConfig, ObjectStats};
use crate::{Error, Result, Timeframe};

/// The month objects of one series, as the listing found them.
pub(super) type Listing = std::collections::HashMap<(String, String, String), Vec<(u16, u8)>>;

/// A listing and when it was made.
pub(super) type Listed = (std::time::Instant, Arc<Listing>);

/// Months of the local store a read is using: a trim never drops them under it. Dropping
/// it lets the trim go on.
#[derive(Debug, Default)]
#[must_use = "the months are protected only while this is held"]
pub(crate) struct Held(pub(super) Vec<tokio::sync::OwnedMutexGuard<()>>);

#[derive(Default)]
pub(super) struct Counters {
    pub(super) read: AtomicU64,
    pub(super) written: AtomicU64,
    pub(super) existing: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) windows: AtomicU64,
    /// The clock of least-recent use: a month's last read is the tick it was given.
    pub(super) tick: AtomicU64,
}

/// What a publish found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// This call created the object.
    Created,
    /// The object was there already (another instance, or an earlier run).
    Existed,
}

/// A shared object store of closed months. Cloning shares it.
#[derive(Clone)]
pub struct Objects {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) url: Arc<str>,
    pub(super) counters: Arc<Counters>,
    /// One filler per month at a time: concurrent requests touching a month the store lacks
    /// read (or fetch) it once. One small entry per month ever filled.
    pub(super) filling:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The tick of each month's last read from the local store (least recent dropped
    /// first); months not read since start count as oldest.
    pub(super) used: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    pub(super) local_max_bytes: Option<u64>,
    /// The last listing and when it was made: the markets list shows it for a while.
    pub(super) listing: Arc<tokio::sync::Mutex<Option<Listed>>>,
    /// Months written locally and not yet published, and months known shared.
    pub(super) noted: Arc<std::sync::Mutex<Noted>>,
    /// Objects' sizes and metadata, for window reads.
    pub(super) footers: Arc<std::sync::Mutex<Footers>>,
}

/// The months written since they were last looked at, and those known to be shared.
#[derive(Default)]
pub(super) struct Noted {
    /// Month object path -> the month, until it is closed and looked at.
    pub(super) months: std::collections::HashMap<String, (crate::Symbol, Timeframe, i64)>,
    /// Month object paths known to be in the object store (published here, found there,
    /// or read from it): writing them again would be a wasted put.
    pub(super) shared: std::collections::HashSet<String>,
}

/// Object path -> its size and Parquet metadata.
pub(super) type Footers =
    std::collections::HashMap<String, (u64, Arc<parquet::file::metadata::ParquetMetaData>)>;

/// How long a listing of the object store is reused by the markets list.
pub(super) const LISTING_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("url", &self.url).finish()
    }
}

pub(super) fn store_error(e: impl std::error::Error) -> Error {
    // The causes too: object_store's own message often hides the one that matters.
    let mut message = format!("object store: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    Error::Upstream(message)
}

impl Objects {
    /// Opens the store `config.url` names.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `s3://bucket[/prefix]` or `file:///path`, a
    /// partition other than `month`, or a directory that cannot be created.
    pub fn open(config: &ObjectConfig) -> Result<Self> {
        let bad = |m: String| Error::Config(format!("[object_store] {m}"));
        let url = config
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("`url` is missing".into()))?;
        if let Some(p) = config.partition.as_deref().filter(|p| *p != "month") {
            return Err(bad(format!("`partition` `{p}` is not supported (month)")));
        }
        let store: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(format!(
                    "`url` `{url}` must be an absolute file:///path"
                )));
            }
            std::fs::create_dir_all(path)
                .map_err(|e| bad(format!("cannot create `{path}`: {e}")))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| bad(e.to_string()))?,
            )
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad(format!("`url` `{url}` names no bucket")));
            }
            // object_store's HTTP client (reqwest with rustls and no provider of its own)
            // takes the process's default TLS provider for https endpoints. Ignored if
            // one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(config.region.as_deref().unwrap_or("us-east-1"))
                .with_allow_http(config.allow_http)
                // Create-only puts with If-None-Match, as S3, R2 and MinIO support.
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                // An unreachable or failing store must cost a request seconds, not the
                // crate's default of minutes of retries: the exchange answers instead.
                .with_client_options(
                    // The whole client options replace the builder's, `allow_http` too.
                    object_store::ClientOptions::new()
                        .with_allow_http(config.allow_http)
                        .with_connect_timeout(std::time::Duration::from_secs(3))
                        .with_timeout(std::time::Duration::from_secs(30)),
                )
                .with_retry(object_store::RetryConfig {
                    max_retries: 2,
                    retry_timeout: std::time::Duration::from_secs(10),
                    ..Default::default()
                });
            if let Some(e) = &config.endpoint {
                b = b.with_endpoint(e);
            }
            if let (Some(k), Some(s)) = (&config.access_key_id, &config.secret_access_key) {
                b = b.with_access_key_id(k).with_secret_access_key(s);
            }
            let s3 = b.build().map_err(|e| bad(e.to_string()))?;
            if prefix.trim_matches('/').is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    s3,
                    prefix.trim_matches('/'),
                ))
            }
        } else {
            return Err(bad(format!(
                "`url` `{url}` must start with s3:// or file://"
            )));
        };
        Ok(Self {
            store,
            url: url.into(),
            counters: Arc::default(),
            filling: Arc::default(),
            used: Arc::default(),
            local_max_bytes: None,
            listing: Arc::default(),
            noted: Arc::default(),
            footers: Arc::default(),
        })
    }

    /// Bounds the local store to `bytes` (`[store] local_max_mb`): the trim ([`Service::trim_local`](crate::Service::trim_local)) drops
    /// the least recently read months that are safe in the object store beyond it.
    #[must_use]
    pub fn with_local_max(mut self, bytes: Option<u64>) -> Self {
        self.local_max_bytes = bytes;
        self
    }

    /// `[store] local_max_mb` in bytes, if the local store is bounded.
    pub fn local_max_bytes(&self) -> Option<u64> {
        self.local_max_bytes
    }

    /// The per-month turn: one filler (or trimmer) of a month at a time.
    pub(super) fn turn(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.filling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// The store's figures.
    pub fn stats(&self) -> ObjectStats {
        let c = &self.counters;
        ObjectStats {
            url: self.url.to_string(),
            months_read: c.read.load(Ordering::Relaxed),
            months_written: c.written.load(Ordering::Relaxed),
            months_existing: c.existing.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            months_dropped: c.dropped.load(Ordering::Relaxed),
            windows_read: c.windows.load(Ordering::Relaxed),
            local_max_bytes: self.local_max_bytes,
        }
    }

    /// Whether `tf` is kept in the object store: 1s months would be 2.6M rows an object.
    pub(crate) fn keeps(tf: Timeframe) -> bool {
        tf != Timeframe::S1
    }
}
