/// Errors returned by `conn-pool`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message names the key.
    #[error("invalid pool configuration: `{key}` {reason}")]
    Config {
        /// The configuration key at fault.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection became free within the wait timeout.
    #[error("no database connection free after {waited_ms} ms ({max_size} in use)")]
    Exhausted {
        /// How long the caller waited.
        waited_ms: u64,
        /// The pool's size limit.
        max_size: usize,
    },
    /// A connection could not be opened or set up.
    #[error("cannot open the database `{path}`")]
    Open {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A URL cannot be used.
    #[error("invalid URL `{url}`: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The upstream failed every attempt, or answered with a server error each time.
    #[error("upstream {host} failed after {attempts} attempts: {reason}")]
    Upstream {
        /// The host asked.
        host: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The overall deadline passed (waiting out rate limits included).
    #[error("upstream {host} did not answer within {deadline_ms} ms: {reason}")]
    Deadline {
        /// The host asked.
        host: String,
        /// The deadline.
        deadline_ms: u64,
        /// What was still pending.
        reason: String,
    },
    /// The work given to a connection panicked or was aborted.
    #[error("database task failed: {0}")]
    Task(String),
}

/// The result type of `conn-pool`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
