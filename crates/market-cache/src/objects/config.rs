//! `[object_store]` and the tier's figures.

use serde::{Deserialize, Serialize};

/// `[object_store]`: where the shared history lives.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectConfig {
    /// `s3://bucket/prefix` or `file:///path`.
    pub url: Option<String>,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); AWS's by default.
    pub endpoint: Option<String>,
    /// The S3 region (`us-east-1` by default).
    pub region: Option<String>,
    /// Allow plain HTTP endpoints (local test servers).
    pub allow_http: bool,
    /// The partition period: `month` (the only one so far).
    pub partition: Option<String>,
    /// Credentials; the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment variables
    /// are used when these are absent. Never logged or shown.
    pub access_key_id: Option<String>,
    /// See `access_key_id`.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for ObjectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("partition", &self.partition)
            .field("credentials", &self.access_key_id.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// What the tier did, for `/api/performance/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectStats {
    /// The store's URL (without credentials).
    pub url: String,
    /// Months read from the object store into the local store.
    pub months_read: u64,
    /// Months this instance created.
    pub months_written: u64,
    /// Months another instance had created first.
    pub months_existing: u64,
    /// Objects refused as foreign or damaged.
    pub rejected: u64,
    /// Requests that failed (unreachable, refused); reads fell through to the upstream.
    pub errors: u64,
    /// Months dropped from the local store because they are safe in the object store.
    pub months_dropped: u64,
    /// Windows answered from the row groups they need before their months were local.
    pub windows_read: u64,
    /// `[store] local_max_mb` in bytes: the local store is trimmed to this; `None`: kept
    /// whole.
    pub local_max_bytes: Option<u64>,
}
