use hyper::StatusCode;

/// Errors of `http-api`: what a request did wrong, or what failed serving it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required query parameter is missing.
    #[error("missing parameter `{0}`")]
    MissingParameter(&'static str),
    /// A query parameter appears twice.
    #[error("parameter `{0}` is given more than once")]
    DuplicateParameter(String),
    /// The symbol is malformed.
    #[error("{0}")]
    InvalidSymbol(String),
    /// The store does not know the symbol.
    #[error("{0}")]
    UnknownSymbol(String),
    /// The timeframe is not one of the 16 supported.
    #[error("{0}")]
    InvalidTimeframe(String),
    /// A time cannot be read.
    #[error("{0}")]
    InvalidTime(String),
    /// start is not before end.
    #[error("start must be before end")]
    InvalidRange,
    /// limit is not a positive count.
    #[error("limit must be a whole number from 1 to {max}")]
    InvalidLimit {
        /// The largest limit.
        max: usize,
    },
    /// limit is above the maximum.
    #[error("limit {asked} is above the maximum of {max} rows an answer may hold")]
    RangeTooLarge {
        /// The limit asked for.
        asked: usize,
        /// The largest limit.
        max: usize,
    },
    /// The format (or another enumerated parameter) is not one of the accepted values.
    #[error("{0}")]
    InvalidFormat(String),
    /// The cache has no namespace of this name.
    #[error("unknown cache namespace `{0}`")]
    UnknownNamespace(String),
    /// No route has this path.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method {method} is not allowed here; use {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the route accepts.
        allow: &'static str,
    },
    /// The URL is longer than the limit.
    #[error("the URL is longer than {0} bytes")]
    UriTooLong(usize),
    /// The request body is not well-formed (a broken chunked encoding, cut short).
    #[error("the request body is malformed: {0}")]
    MalformedBody(String),
    /// The body is larger than the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No database connection was free in time; answered 503 with Retry-After.
    #[error("busy: {0}; retry shortly")]
    Busy(String),
    /// A write did not fit in the database (disk full or the configured maximum).
    #[error("{0}")]
    StorageFull(String),
    /// The request's headers are larger than allowed.
    #[error("the request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// A mutating endpoint was called without the configured bearer token.
    #[error("this endpoint needs the bearer token")]
    Unauthorized,
    /// The upstream exchange failed or refused.
    #[error("the upstream exchange failed: {0}")]
    Upstream(String),
    /// The upstream exchange did not answer in time.
    #[error("the upstream exchange did not answer in time: {0}")]
    UpstreamTimeout(String),
    /// An error of the Binance-compatible routes, answered as Binance does:
    /// `{"code": -1121, "msg": "Invalid symbol."}`.
    #[error("{msg}")]
    Binance {
        /// The HTTP status.
        status: StatusCode,
        /// Binance's error code.
        code: i32,
        /// Binance's message.
        msg: String,
    },
    /// An error of an exchange's routes other than Binance's, in that exchange's own body
    /// (Bybit's `{"retCode", "retMsg", ...}`), written by its facade.
    #[error("{body}")]
    Exchange {
        /// The HTTP status.
        status: StatusCode,
        /// The body, JSON.
        body: String,
    },
    /// A stream name (in a stream path or query) is malformed or not served.
    #[error("{0}")]
    InvalidStream(String),
    /// A WebSocket endpoint was asked without a WebSocket handshake.
    #[error("{0}")]
    UpgradeRequired(String),
    /// Served streams need the upstream's streams, and none is configured.
    #[error("{0}")]
    StreamsUnavailable(String),
    /// The route needs something this server was not configured with (an upstream for
    /// live data passed through): not here (404), not a failed gateway.
    #[error("{0}")]
    NotConfigured(String),
    /// The server's configuration cannot be used (found at start, never per request).
    #[error("{0}")]
    Config(String),
    /// Something failed on our side; details are in the log.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The status code this error is answered with; the one place that decides it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownSymbol(_)
            | Self::NotFound(_)
            | Self::UnknownNamespace(_)
            | Self::NotConfigured(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Busy(_) | Self::StreamsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Internal(_) | Self::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Binance { status, .. } | Self::Exchange { status, .. } => *status,
            Self::MissingParameter(_)
            | Self::DuplicateParameter(_)
            | Self::InvalidSymbol(_)
            | Self::InvalidTimeframe(_)
            | Self::InvalidTime(_)
            | Self::InvalidRange
            | Self::InvalidLimit { .. }
            | Self::RangeTooLarge { .. }
            | Self::InvalidFormat(_)
            | Self::MalformedBody(_)
            | Self::InvalidStream(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable snake_case code of the error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingParameter(_) => "missing_parameter",
            Self::DuplicateParameter(_) => "duplicate_parameter",
            Self::InvalidSymbol(_) => "invalid_symbol",
            Self::UnknownSymbol(_) => "unknown_symbol",
            Self::InvalidTimeframe(_) => "invalid_timeframe",
            Self::InvalidTime(_) => "invalid_time",
            Self::InvalidRange => "invalid_range",
            Self::InvalidLimit { .. } => "invalid_limit",
            Self::RangeTooLarge { .. } => "range_too_large",
            Self::InvalidFormat(_) => "invalid_format",
            Self::NotFound(_) => "not_found",
            Self::UnknownNamespace(_) => "unknown_namespace",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::UriTooLong(_) => "uri_too_long",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::MalformedBody(_) => "malformed_body",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::Busy(_) => "busy",
            Self::StorageFull(_) => "storage_full",
            Self::Unauthorized => "unauthorized",
            Self::Upstream(_) | Self::UpstreamTimeout(_) => "upstream_unavailable",
            Self::Binance { .. } => "binance",
            Self::Exchange { .. } => "exchange",
            Self::InvalidStream(_) => "invalid_stream",
            Self::UpgradeRequired(_) => "upgrade_required",
            Self::StreamsUnavailable(_) => "streams_unavailable",
            Self::Internal(_) => "internal",
            Self::Config(_) => "config",
            Self::NotConfigured(_) => "not_configured",
        }
    }
}

impl From<market_cache::Error> for Error {
    fn from(e: market_cache::Error) -> Self {
        match e {
            market_cache::Error::UnknownSymbol(s) => {
                Self::UnknownSymbol(format!("unknown symbol `{s}`"))
            }
            market_cache::Error::InvalidSymbol(_) => Self::InvalidSymbol(e.to_string()),
            market_cache::Error::InvalidTimeframe(_) => Self::InvalidTimeframe(e.to_string()),
            market_cache::Error::InvalidTime { .. } => Self::InvalidTime(e.to_string()),
            market_cache::Error::Upstream(m) => Self::Upstream(m),
            market_cache::Error::Config(m) => Self::Config(m),
            market_cache::Error::UpstreamTimeout(m) => Self::UpstreamTimeout(m),
            busy if busy.is_busy() => Self::Busy(busy.to_string()),
            full if full.is_full() => Self::StorageFull(full.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The result type of `http-api`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
