/// Errors returned by `query-opt`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement failed.
    #[error("query failed: {sql}")]
    Query {
        /// The statement's normalized pattern.
        sql: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A write did not fit: the disk is full or the file reached its configured limit
    /// (`max_db_bytes`). The transaction was rolled back; nothing of it was stored.
    #[error("the database is full (the disk, or the configured maximum database size): `{sql}` was not written")]
    Full {
        /// The statement's normalized pattern.
        sql: String,
    },
    /// The database file was written by a newer candlecache.
    #[error(
        "database schema version {found} is newer than this candlecache understands ({supported})"
    )]
    SchemaTooNew {
        /// The file's `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The database is not usable (not SQLite, corrupt, read-only...).
    #[error("database unusable: {0}")]
    Unusable(String),
    /// The connection pool failed.
    #[error(transparent)]
    Pool(#[from] conn_pool::Error),
    /// The result cache failed.
    #[error(transparent)]
    Cache(#[from] cache_core::Error),
}

impl Error {
    /// True when no connection was free in time: the caller may retry soon.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Pool(conn_pool::Error::Exhausted { .. }))
    }
}

/// The result type of `query-opt`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
