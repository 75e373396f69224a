//! The upstream HTTP client: pooled keep-alive connections (hyper-util) over rustls,
//! retries with backoff and jitter, Retry-After, a request-weight budget, per-host stats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderMap, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;
use serde::Serialize;

use crate::samples::Samples;
use crate::{Error, HttpConfig, Result};

/// Latencies kept per host for the percentiles.
const LATENCY_SAMPLES: usize = 2048;
/// Retry-After as seconds or as an HTTP date (RFC 9110: `Sun, 06 Nov 1994 08:49:37 GMT`);
/// a date in the past means now.
fn retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    let rest = v.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split([' ', ':']).collect();
    let [day, month, year, h, m, sec, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|n| n == month)? as i64
        + 1;
    let (y, d): (i64, i64) = (year.parse().ok()?, day.parse().ok()?);
    let (h, m, sec): (i64, i64, i64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if !(1..=31).contains(&d) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if month <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let at = days * 86_400 + h * 3600 + m * 60 + sec;
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs((at - now).max(0) as u64))
}

/// Without a Retry-After header a 429 or 418 waits this long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A successful (non-5xx, non-rate-limited) answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code; 4xx answers are returned for the caller to read.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// A pooled HTTP(S) client. Cloning is cheap and shares the pool and the stats.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    config: Arc<HttpConfig>,
    /// By host; a concurrent map, so requests to different hosts do not share a lock.
    hosts: Arc<DashMap<String, Arc<Host>>>,
    jitter: Arc<AtomicU64>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish()
    }
}

/// What the client knows of one host.
struct Host {
    requests: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    rate_limited: AtomicU64,
    waited_ms: AtomicU64,
    bytes: AtomicU64,
    latency_us: Mutex<Samples>,
    budget: Mutex<Budget>,
}

/// The upstream's request-weight window as last reported, plus what was sent since.
#[derive(Default)]
struct Budget {
    window: i64,
    used: u32,
    /// Weight the last request cost (the header's increase), the estimate for the next.
    last_cost: u32,
}

/// A snapshot of one host's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostStats {
    /// `host:port`.
    pub host: String,
    /// Attempts sent, retries included.
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Calls that failed for good.
    pub errors: u64,
    /// 429 and 418 answers.
    pub rate_limited: u64,
    /// Time spent waiting for Retry-After and the weight budget, in ms.
    pub waited_ms: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Median latency of an attempt, in ms.
    pub latency_p50_ms: f64,
    /// 99th percentile latency of an attempt, in ms.
    pub latency_p99_ms: f64,
    /// The request weight the upstream last reported used in its window.
    pub used_weight: u32,
}

/// Why an attempt failed, and whether another may succeed.
enum Attempt {
    Done(HttpResponse),
    /// Connect error, 5xx, timeout or truncated body: retry after a backoff.
    Retry(String),
    /// 429/418: wait this long, without spending a retry.
    Wait(Duration, String),
}

impl HttpClient {
    /// A client with `config`; connections are opened on first use.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration.
    pub fn new(config: HttpConfig) -> Result<Self> {
        config.validate()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| Error::Config {
                key: "tls",
                reason: e.to_string(),
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_millis(config.idle_timeout_ms))
            .pool_max_idle_per_host(config.max_idle_per_host)
            .build(https);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
            | 1;
        Ok(Self {
            client,
            config: Arc::new(config),
            hosts: Arc::default(),
            jitter: Arc::new(AtomicU64::new(seed)),
        })
    }

    /// Returns the configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// GETs `url`, retrying as configured; returns 2xx, 3xx and 4xx answers (but 429 and
    /// 418, which are waited out) for the caller to read.
    ///
    /// # Errors
    /// [`Error::Url`], [`Error::Upstream`] when every attempt failed, [`Error::Deadline`].
    pub async fn get(&self, url: &str) -> Result<HttpResponse> {
        self.get_checked(url, |_| Ok(())).await.map(|(r, ())| r)
    }

    /// GETs `url` and decodes a 2xx body with `decode`; a body that does not decode counts
    /// as truncated and is fetched again (a connection cut at a chunk boundary or a
    /// length-less body can look complete to HTTP). Non-2xx answers are returned
    /// undecoded, with `None`.
    ///
    /// # Errors
    /// As [`HttpClient::get`]; a body that never decodes ends in [`Error::Upstream`].
    pub async fn get_decoded<T>(
        &self,
        url: &str,
        decode: impl Fn(&[u8]) -> std::result::Result<T, String>,
    ) -> Result<(HttpResponse, Option<T>)> {
        self.get_checked(url, |r| {
            if r.status.is_success() {
                decode(&r.body).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
    }

    async fn get_checked<T>(
        &self,
        url: &str,
        check: impl Fn(&HttpResponse) -> std::result::Result<T, String>,
    ) -> Result<(HttpResponse, T)> {
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| Error::Url {
                url: url.chars().take(200).collect(),
                reason: e.to_string(),
            })?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(Error::Url {
                url: url.chars().take(200).collect(),
                reason: "needs http:// or https:// and a host".into(),
            });
        };
        if scheme != "http" && scheme != "https" {
            return Err(Error::Url {
                url: url.chars().take(200).collect(),
                reason: format!("scheme `{scheme}` is not http or https"),
            });
        }
        let host_name = authority.to_string();
        let host = self.host(&host_name);
        let deadline = Instant::now() + Duration::from_millis(self.config.deadline_ms);
        let past_deadline = |reason: String| Error::Deadline {
            host: host_name.clone(),
            deadline_ms: self.config.deadline_ms,
            reason,
        };
        let mut failures = 0u32;
        let mut attempts = 0u32;
        loop {
            if let Some(wait) = self.budget_wait(&host) {
                if Instant::now() + wait > deadline {
                    host.errors.fetch_add(1, Ordering::Relaxed);
                    return Err(past_deadline("the request-weight budget is used up".into()));
                }
                host.waited_ms
                    .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
            attempts += 1;
            if failures > 0 {
                host.retries.fetch_add(1, Ordering::Relaxed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = Duration::from_millis(self.config.request_timeout_ms).min(left);
            let outcome = match tokio::time::timeout(timeout, self.attempt(&uri, &host)).await {
                Ok(a) => a,
                Err(_) => Attempt::Retry(format!("no answer within {} ms", timeout.as_millis())),
            };
            let reason = match outcome {
                Attempt::Done(r) => match check(&r) {
                    Ok(v) => return Ok((r, v)),
                    Err(why) => format!("truncated or malformed body: {why}"),
                },
                Attempt::Wait(wait, why) => {
                    host.rate_limited.fetch_add(1, Ordering::Relaxed);
                    if Instant::now() + wait > deadline {
                        host.errors.fetch_add(1, Ordering::Relaxed);
                        return Err(past_deadline(why));
                    }
                    host.waited_ms
                        .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Attempt::Retry(why) => why,
            };
            failures += 1;
            if failures > self.config.retries {
                host.errors.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Upstream {
                    host: host_name,
                    attempts,
                    reason,
                });
            }
            let backoff = self.backoff(failures);
            if Instant::now() + backoff > deadline {
                host.errors.fetch_add(1, Ordering::Relaxed);
                return Err(past_deadline(reason));
            }
            tokio::time::sleep(backoff).await;
        }
    }

    async fn attempt(&self, uri: &Uri, host: &Host) -> Attempt {
        let req = match Request::get(uri.clone())
            .header(USER_AGENT, self.config.user_agent.as_str())
            .body(Empty::new())
        {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(e.to_string()),
        };
        let t = Instant::now();
        host.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(error_chain(&e)),
        };
        let (parts, body) = resp.into_parts();
        // The body is read whole: a connection cut before Content-Length (or the last
        // chunk) is an error here, which is what makes truncation retryable.
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Attempt::Retry(format!("body cut short: {}", error_chain(&e))),
        };
        host.latency_us.lock().push(t.elapsed().as_micros() as u64);
        host.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        self.note_weight(host, &parts.headers);
        let status = parts.status;
        if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 418 {
            let wait = parts
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, std::time::SystemTime::now()))
                .unwrap_or(DEFAULT_RETRY_AFTER);
            return Attempt::Wait(wait, format!("{status}, Retry-After {}", wait.as_secs()));
        }
        if status.is_server_error() {
            return Attempt::Retry(format!("{status}"));
        }
        Attempt::Done(HttpResponse {
            status,
            headers: parts.headers,
            body,
        })
    }

    /// Reads the upstream's used weight (`X-MBX-USED-WEIGHT-1M` and its kin).
    fn note_weight(&self, host: &Host, headers: &HeaderMap) {
        let used = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-mbx-used-weight"))
            .filter_map(|(_, v)| v.to_str().ok()?.trim().parse::<u32>().ok())
            .max();
        if let Some(used) = used {
            let window = self.window_now();
            let mut b = host.budget.lock();
            if b.window == window && used > b.used {
                b.last_cost = used - b.used;
            }
            b.window = window;
            b.used = used;
        }
    }

    /// How long to wait before the next request so the window's weight stays within the
    /// budget; reserves the expected cost when no wait is needed.
    fn budget_wait(&self, host: &Host) -> Option<Duration> {
        if self.config.weight_limit == 0 {
            return None;
        }
        let allowed = (f64::from(self.config.weight_limit) * self.config.weight_share) as u32;
        let window = self.window_now();
        let mut b = host.budget.lock();
        if b.window != window {
            b.window = window;
            b.used = 0;
        }
        let cost = b.last_cost.max(1);
        if b.used + cost <= allowed {
            b.used += cost;
            return None;
        }
        let len = self.config.weight_window_ms as i64;
        let now = cache_core::wall_ms();
        Some(Duration::from_millis(
            ((window + 1) * len - now).max(1) as u64
        ))
    }

    fn window_now(&self) -> i64 {
        cache_core::wall_ms().div_euclid(self.config.weight_window_ms as i64)
    }

    /// Exponential backoff with jitter: half the step plus a random share of the other half.
    fn backoff(&self, failures: u32) -> Duration {
        let step = self
            .config
            .backoff_base_ms
            .saturating_mul(1 << (failures - 1).min(20))
            .min(self.config.backoff_max_ms);
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        Duration::from_millis(step / 2 + x % (step / 2 + 1))
    }

    fn host(&self, name: &str) -> Arc<Host> {
        if let Some(h) = self.hosts.get(name) {
            return h.clone();
        }
        self.hosts
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Host {
                    requests: AtomicU64::new(0),
                    retries: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    rate_limited: AtomicU64::new(0),
                    waited_ms: AtomicU64::new(0),
                    bytes: AtomicU64::new(0),
                    latency_us: Mutex::new(Samples::new(LATENCY_SAMPLES)),
                    budget: Mutex::new(Budget::default()),
                })
            })
            .clone()
    }

    /// Returns a snapshot per host, sorted by host.
    pub fn stats(&self) -> Vec<HostStats> {
        let hosts: Vec<(String, Arc<Host>)> = self
            .hosts
            .iter()
            .map(|kv| (kv.key().clone(), kv.value().clone()))
            .collect();
        let mut out: Vec<HostStats> = hosts
            .into_iter()
            .map(|(host, h)| {
                let (p50, p99) = h.latency_us.lock().p50_p99_ms();
                HostStats {
                    host,
                    requests: h.requests.load(Ordering::Relaxed),
                    retries: h.retries.load(Ordering::Relaxed),
                    errors: h.errors.load(Ordering::Relaxed),
                    rate_limited: h.rate_limited.load(Ordering::Relaxed),
                    waited_ms: h.waited_ms.load(Ordering::Relaxed),
                    bytes: h.bytes.load(Ordering::Relaxed),
                    latency_p50_ms: p50,
                    latency_p99_ms: p99,
                    used_weight: h.budget.lock().used,
                }
            })
            .collect();
        out.sort_by(|a, b| a.host.cmp(&b.host));
        out
    }
}

/// An error with its sources, which is where hyper says what actually went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        // 1994-11-06T08:49:37Z
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        // 2024-03-01T00:00:00Z is 1709251200.
        let before = std::time::UNIX_EPOCH + Duration::from_secs(1_709_251_197);
        assert_eq!(
            retry_after("Fri, 01 Mar 2024 00:00:00 GMT", before),
            Some(Duration::from_secs(3))
        );
        for bad in [
            "",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "-1",
        ] {
            assert_eq!(retry_after(bad, now), None, "{bad}");
        }
    }
}
