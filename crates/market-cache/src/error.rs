use std::path::PathBuf;

/// Errors returned by `market-cache`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A symbol is not 1 to 32 of A-Z and 0-9.
    #[error("invalid symbol `{0}`: use 1 to 32 letters A-Z and digits")]
    InvalidSymbol(String),
    /// A timeframe is not one of the 16 supported names.
    #[error(
        "invalid timeframe `{0}`: use one of 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M"
    )]
    InvalidTimeframe(String),
    /// A time is neither epoch milliseconds nor an RFC 3339 / ISO 8601 date.
    #[error("invalid time `{value}`: {reason}")]
    InvalidTime {
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A decimal number cannot be read.
    #[error("invalid number `{0}`")]
    InvalidNumber(String),
    /// An input file cannot be read as candles; `location` names the line or row.
    #[error("{file}: {location}: {reason}")]
    Malformed {
        /// The file (and zip entry) at fault.
        file: String,
        /// `line N`, `row N` or `header`.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// Rows failed validation and the import was asked to fail on them.
    #[error("{file}: {count} invalid rows, nothing imported; first: {first}")]
    Rejected {
        /// The file at fault.
        file: String,
        /// How many rows failed.
        count: usize,
        /// The first failure, with its line.
        first: String,
    },
    /// Symbol or timeframe are neither given nor in the file name.
    #[error("{file}: {what} is not given and not in the file name (like BTCUSDT-1m-2024-01.csv); pass --{what}")]
    Unnamed {
        /// The file.
        file: String,
        /// `symbol` or `timeframe`.
        what: &'static str,
    },
    /// A file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Writing Parquet or Arrow data failed.
    #[error("encoding {what} failed: {message}")]
    Encode {
        /// The format.
        what: &'static str,
        /// What the encoder said.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] query_opt::Error),
    /// The symbol is not in the store (nor, with an upstream, on the exchange).
    #[error("unknown symbol `{0}`")]
    UnknownSymbol(String),
    /// A configuration value cannot be used (a URL, a cache without a namespace the read
    /// path needs); the message names it.
    #[error("{0}")]
    Config(String),
    /// The upstream failed, refused the request or sent what is not candles.
    #[error("upstream: {0}")]
    Upstream(String),
    /// The upstream did not answer in time (rate limits waited out included).
    #[error("upstream: {0}")]
    UpstreamTimeout(String),
}

impl From<conn_pool::Error> for Error {
    fn from(e: conn_pool::Error) -> Self {
        match e {
            conn_pool::Error::Deadline { .. } => Self::UpstreamTimeout(e.to_string()),
            conn_pool::Error::Config { .. } | conn_pool::Error::Url { .. } => {
                Self::Config(e.to_string())
            }
            other => Self::Upstream(other.to_string()),
        }
    }
}

impl Error {
    /// True when the database had no free connection in time: worth retrying shortly.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Db(db) if db.is_busy())
    }

    /// True when a write did not fit (the disk is full or the configured maximum size is
    /// reached); nothing was written.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Db(query_opt::Error::Full { .. }))
    }
}

/// The result type of `market-cache`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
