//! The object-store tier: closed history shared by many instances as immutable,
//! hive-partitioned Parquet that DuckDB, DataFusion, Spark and Trino read in place.
//!
//! One object per complete, closed calendar month of a series, at
//! `exchange=<e>/symbol=<S>/timeframe=<tf>/year=<YYYY>/month=<MM>/<S>-<tf>-<YYYY>-<MM>.parquet`,
//! written with a create-only put, so instances racing on a month leave exactly one object
//! and the loser keeps the winner's. Columns are those of the Parquet export (`time` as
//! timestamp(ms, UTC), floats); the key-value metadata names the series and the decimal
//! places of each column, so a reader gets the exchange's exact decimals back and can tell
//! a foreign or damaged object from a good one.
//!
//! The parts: `config` (`[object_store]`, the figures), `bucket` (the handle, per-month
//! locks), `listing` (what is there), `fill` (a read's months, object store before the
//! exchange), `publish` (writing a month once, reading one back), `noted` (months that
//! became complete locally, however they were written, published once closed), `trim`
//! (the local store bounded), `window` (a window answered from the row groups it needs
//! before the months are kept locally), `codec` (a month as Parquet, its path).

mod bucket;
mod codec;
mod config;
mod fill;
mod listing;
mod noted;
mod publish;
mod trim;
mod window;

pub use bucket::Objects;
pub(crate) use bucket::Published;
pub use config::{ObjectConfig, ObjectStats};
pub(crate) use publish::local_months;
