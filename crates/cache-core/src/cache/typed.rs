//! Typed values on top of the bytes API, in postcard's compact binary format.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::NamespaceCache;
use crate::codec::{decode, encode};
use crate::Result;

impl NamespaceCache {
    /// Returns the typed value for `key`.
    ///
    /// # Errors
    /// [`Error::Codec`](crate::Error::Codec) if the stored bytes are not a `T`.
    pub fn get_typed<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.get(key).map(|b| decode(&b)).transpose()
    }

    /// Stores a typed value with the namespace's TTL.
    ///
    /// # Errors
    /// [`Error::Codec`](crate::Error::Codec) if it cannot be encoded, else as [`NamespaceCache::insert`].
    pub fn insert_typed<T: Serialize>(&self, key: &[u8], value: &T) -> Result<()> {
        self.insert(key, encode(value)?)
    }

    /// Stores a typed value with its own TTL.
    ///
    /// # Errors
    /// As [`NamespaceCache::insert_typed`].
    pub fn insert_typed_with_ttl<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        self.insert_with_ttl(key, encode(value)?, ttl)
    }
}
