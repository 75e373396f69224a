//! The TOML configuration file of `serve`: defaults, then the file, then environment and
//! flags (which win).

use std::path::Path;

use anyhow::{bail, Context, Result};
use cache_core::CacheConfig;
use http_api::HttpConfig;
use serde::Deserialize;

/// The file's sections. Unknown keys are refused, naming the key.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// `[server]`: listen, max_rows, header_timeout_secs, token.
    pub(crate) server: HttpConfig,
    /// `[cache]`: budget_bytes, shards, min_compression_saving, warm_max_share,
    /// promote_after_warm_hits, and `[[cache.namespaces]]`.
    pub(crate) cache: CacheConfig,
    /// `[database]`: slow_query_ms, slow_query_keep, max_db_mb, and `[database.pool]`.
    pub(crate) database: market_cache::DbSettings,
    /// `[upstream]`: url, and `[upstream.client]` (timeouts, retries, weight budget).
    pub(crate) upstream: UpstreamSection,
    /// `[memory]`: limit_mb, warning, critical, reclaim_to, leak_mb_per_min, leak_min_r2,
    /// leak_min_minutes, sample_interval_ms, history_minutes.
    pub(crate) memory: mem_guard::Config,
    /// `[object_store]`: url (`s3://bucket/prefix` or `file:///path`), endpoint, region,
    /// allow_http, partition, access_key_id, secret_access_key.
    pub(crate) object_store: market_cache::ObjectConfig,
    /// `[store]`: local_max_mb.
    pub(crate) store: StoreSection,
}

/// `[store]`: the local store beside an object store.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct StoreSection {
    /// With an object store: the MB of candles the local database keeps at most; closed
    /// months safe in the object store are dropped beyond it, least recently read first,
    /// and read back on demand. 0 (the default): no bound.
    pub(crate) local_max_mb: u64,
}

/// `[upstream]`: where missing candles are fetched from.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UpstreamSection {
    /// A Binance-compatible base URL, e.g. `https://api.binance.com`.
    pub(crate) url: Option<String>,
    /// Its USD-M futures API (`/fapi/v1`): `https://fapi.binance.com` when `url` is
    /// Binance's, else `url` itself (another candlecache or a test server serves both).
    pub(crate) futures: Option<String>,
    /// The futures upstream's WebSocket market streams (`wss://fstream.binance.com/market`,
    /// the default for Binance's futures host), or `off`.
    pub(crate) futures_ws: Option<String>,
    /// The upstream's WebSocket market streams (`wss://stream.binance.com:9443`, the
    /// default for Binance's hosts), or `off`.
    pub(crate) ws: Option<String>,
    /// Without a stream, the live edge of a series is re-read at most this often.
    pub(crate) refresh_ms: u64,
    /// `[upstream.stream]`: max_streams_per_connection, max_messages_per_sec,
    /// watchdog_ms, rotate_ms, idle_ms, stale_ms, backoff_base_ms, backoff_max_ms.
    pub(crate) stream: market_cache::StreamConfig,
    /// `[upstream.client]`: connect_timeout_ms, request_timeout_ms, retries,
    /// backoff_base_ms, backoff_max_ms, deadline_ms, max_idle_per_host, idle_timeout_ms,
    /// weight_limit, weight_share, weight_window_ms, user_agent.
    pub(crate) client: market_cache::ClientSettings,
    /// `[upstream.bybit]`: rest, ws. Its presence asks for Bybit (`https://api.bybit.com`
    /// when `rest` is not given).
    pub(crate) bybit: Option<VenueSection>,
    /// `[upstream.okx]`: rest, ws. Its presence asks for OKX (`https://www.okx.com` when
    /// `rest` is not given).
    pub(crate) okx: Option<VenueSection>,
}

/// `[upstream.<exchange>]` of an exchange other than Binance.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct VenueSection {
    /// The REST API's base URL.
    pub(crate) rest: Option<String>,
    /// The public streams' URL (both markets under it), or `off`.
    pub(crate) ws: Option<String>,
}

/// Bybit's own REST host, the default when Bybit is asked for without a URL.
pub(crate) const BYBIT_REST: &str = "https://api.bybit.com";
/// OKX's own REST host, the default when OKX is asked for without a URL.
pub(crate) const OKX_REST: &str = "https://www.okx.com";

impl Default for UpstreamSection {
    fn default() -> Self {
        Self {
            url: None,
            futures: None,
            futures_ws: None,
            ws: None,
            refresh_ms: 1000,
            stream: market_cache::StreamConfig::default(),
            client: market_cache::ClientSettings::default(),
            bybit: None,
            okx: None,
        }
    }
}

impl FileConfig {
    /// Reads and checks the file; errors name the file and the key.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        let cfg: FileConfig = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("configuration {}: {}", path.display(), e.to_string().trim())
        })?;
        cfg.cache
            .validate()
            .map_err(|e| anyhow::anyhow!("configuration {}: [cache] {e}", path.display()))?;
        cfg.upstream.client.validate().map_err(|e| {
            anyhow::anyhow!("configuration {}: [upstream.client] {e}", path.display())
        })?;
        cfg.memory
            .validate()
            .map_err(|e| anyhow::anyhow!("configuration {}: [memory] {e}", path.display()))?;
        if !(100..=60_000).contains(&cfg.upstream.refresh_ms) {
            bail!(
                "configuration {}: [upstream] `refresh_ms` must be between 100 and 60000",
                path.display()
            );
        }
        let mut stream = cfg.upstream.stream.clone();
        stream.url = "ws://checked".into();
        stream.validate().map_err(|e| {
            anyhow::anyhow!("configuration {}: [upstream.stream] {e}", path.display())
        })?;
        if cfg.server.max_rows == 0 {
            bail!(
                "configuration {}: [server] `max_rows` must be greater than 0",
                path.display()
            );
        }
        if cfg.server.header_timeout_secs == 0 {
            bail!(
                "configuration {}: [server] `header_timeout_secs` must be greater than 0",
                path.display()
            );
        }
        Ok(cfg)
    }

    /// The upstream named by `flag` (which wins) or the file, with the file's client
    /// settings and its futures API from `futures_flag`, the file's `futures` or the
    /// default; `None` without an upstream.
    pub(crate) fn upstream(
        &self,
        flag: Option<&str>,
        futures_flag: Option<&str>,
    ) -> Result<Option<market_cache::Upstream>> {
        let Some(url) = flag.or(self.upstream.url.as_deref()) else {
            if futures_flag.is_some() {
                anyhow::bail!(
                    "--upstream-futures needs an upstream (--upstream or [upstream] url)"
                );
            }
            return Ok(None);
        };
        let up = market_cache::Upstream::new(url, &self.upstream.client)?;
        let up = match futures_flag.or(self.upstream.futures.as_deref()) {
            Some(f) => up.with_futures(f).with_context(|| {
                "the futures upstream (--upstream-futures / [upstream] futures)"
            })?,
            None => up,
        };
        Ok(Some(up))
    }

    /// The `[upstream.<exchange>]` section of an exchange other than Binance.
    pub(crate) fn venue_section(&self, exchange: market_cache::Exchange) -> Option<&VenueSection> {
        match exchange {
            market_cache::Exchange::Bybit => self.upstream.bybit.as_ref(),
            market_cache::Exchange::Okx => self.upstream.okx.as_ref(),
            market_cache::Exchange::Binance => None,
        }
    }

    /// Bybit's or OKX's upstream at `flag` (which wins; `Some(None)`: asked for without a
    /// URL), else `[upstream.<exchange>] rest`, else the exchange's own host when either
    /// asks for it; `None` when nothing does.
    pub(crate) fn venue(
        &self,
        exchange: market_cache::Exchange,
        flag: Option<Option<&str>>,
    ) -> Result<Option<market_cache::Upstream>> {
        let section = self.venue_section(exchange);
        let own = if exchange == market_cache::Exchange::Okx {
            OKX_REST
        } else {
            BYBIT_REST
        };
        let url = match (flag, section) {
            (Some(Some(url)), _) => url,
            (
                _,
                Some(VenueSection {
                    rest: Some(url), ..
                }),
            ) => url.as_str(),
            (Some(None), _) | (None, Some(_)) => own,
            (None, None) => return Ok(None),
        };
        let up = market_cache::Upstream::of(exchange, url, &self.upstream.client).with_context(
            || {
                format!(
                    "the {exchange} upstream (--upstream-{exchange} / [upstream.{exchange}] rest)"
                )
            },
        )?;
        Ok(Some(up))
    }

    /// The live edge's refresh period over REST, for series without a trusted stream.
    pub(crate) fn live(&self) -> market_cache::LiveConfig {
        market_cache::LiveConfig {
            refresh: std::time::Duration::from_millis(self.upstream.refresh_ms),
        }
    }

    /// `up` with the streams of its spot and derivatives markets: those named by `ws` and
    /// `futures_ws` (`off` disables one), else the exchange's own for its own hosts, none
    /// for any other host; `what` names the flags in errors.
    pub(crate) fn with_streams(
        &self,
        up: market_cache::Upstream,
        ws: Option<&str>,
        futures_ws: Option<&str>,
        what: &str,
    ) -> Result<market_cache::Upstream> {
        let stream = |given: Option<&str>, futures: bool| {
            let url = match given.map(str::trim) {
                Some("off" | "none" | "") => return Ok(None),
                given => match up.stream_url(given, futures) {
                    Some(url) => url,
                    None => return Ok(None),
                },
            };
            let mut stream = self.upstream.stream.clone();
            stream.url = url;
            stream.validate().with_context(|| what.to_owned())?;
            Ok::<_, anyhow::Error>(Some(stream))
        };
        let spot = stream(ws, false)?;
        let futures = stream(futures_ws, true)?;
        Ok(up.with_streams(spot, futures))
    }

    /// The object store named by `flag` (which wins) or the file's `[object_store] url`,
    /// with the file's other keys; `None` without either. `local_max_mb` (which wins over
    /// `[store] local_max_mb`) bounds the local store beside it.
    pub(crate) fn objects(
        &self,
        flag: Option<&str>,
        local_max_mb: Option<u64>,
    ) -> Result<Option<market_cache::Objects>> {
        let mut config = self.object_store.clone();
        if let Some(url) = flag {
            config.url = Some(url.to_owned());
        }
        let max_mb = local_max_mb.unwrap_or(self.store.local_max_mb);
        if config.url.is_none() {
            if max_mb > 0 {
                bail!("`local_max_mb` bounds the local store as a cache of an object store, and none is configured: pass --object-store URL or set [object_store] url");
            }
            return Ok(None);
        }
        let objects = market_cache::Objects::open(&config)?;
        Ok(Some(objects.with_local_max(
            (max_mb > 0).then(|| max_mb.saturating_mul(1_000_000)),
        )))
    }

    /// The database configuration for the file at `db`.
    pub(crate) fn db(&self, db: &Path) -> market_cache::DbSettings {
        market_cache::DbSettings {
            path: db.to_path_buf(),
            ..self.database.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A value of any TOML type, or text that is not TOML.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            any::<bool>().prop_map(|v| v.to_string()),
            "\\PC{0,16}".prop_map(|s| format!("{s:?}")),
            "\\PC{0,16}",
            Just("[1, 2]".to_owned()),
            Just("{ a = 1 }".to_owned()),
        ]
    }

    const KEYS: &[&str] = &[
        "listen",
        "max_rows",
        "header_timeout_secs",
        "token",
        "budget_bytes",
        "shards",
        "min_compression_saving",
        "warm_max_share",
        "promote_after_warm_hits",
        "slow_query_ms",
        "max_db_mb",
        "max_size",
        "wait_timeout_ms",
        "url",
        "rest",
        "ws",
        "refresh_ms",
        "watchdog_ms",
        "idle_ms",
        "retries",
        "weight_share",
        "limit_mb",
        "warning",
        "critical",
        "reclaim_to",
        "sample_interval_ms",
        "history_minutes",
        "nope",
    ];
    const SECTIONS: &[&str] = &[
        "upstream.bybit",
        "upstream.okx",
        "server",
        "cache",
        "database",
        "database.pool",
        "upstream",
        "upstream.client",
        "upstream.stream",
        "memory",
        "object_store",
        "elsewhere",
    ];

    proptest! {
        #[test]
        fn any_configuration_file_loads_or_is_refused_with_a_message(
            entries in proptest::collection::vec((0..SECTIONS.len(), 0..KEYS.len(), value()), 0..8),
        ) {
            let mut text = String::new();
            for (s, k, v) in &entries {
                text.push_str(&format!("[{}]\n{} = {v}\n", SECTIONS[*s], KEYS[*k]));
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.toml");
            std::fs::write(&path, &text).unwrap();
            match FileConfig::load(Some(&path)) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.to_string().contains("c.toml"), "{e}"),
            }
        }
    }
}
