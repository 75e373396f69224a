//! The one error type of the crate.

/// What can go wrong in the memory guard.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that cannot work.
    #[error("memory.{key}: {reason}")]
    Config {
        /// The key, as written in the `[memory]` table.
        key: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The operating system did not tell the process's memory.
    #[error("cannot read the process's memory: {0}")]
    Sample(String),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
