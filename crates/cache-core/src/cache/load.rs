//! Loading through the cache: [`NamespaceCache::get_or_load`] and its typed and TTL
//! forms, single-flight through [`crate::flight`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::counters::Counters;
use super::NamespaceCache;
use crate::flight::Role;
use crate::{codec, Error, Result};

impl NamespaceCache {
    /// Returns the cached value, or runs `load` once for all concurrent callers of the same
    /// key, caches its value and hands it to every one of them.
    ///
    /// A loader error reaches every waiter and is not cached: the next call loads again.
    /// If the loading task panics or is cancelled, the waiters elect a new loader.
    ///
    /// # Errors
    /// [`Error::Load`] wrapping the loader's error.
    pub async fn get_or_load<F, Fut, E>(&self, key: &[u8], load: F) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.load_through(key, None, load).await
    }

    /// As [`NamespaceCache::get_or_load`], caching the loaded value with its own TTL.
    ///
    /// # Errors
    /// [`Error::Load`] wrapping the loader's error.
    pub async fn get_or_load_with_ttl<F, Fut, E>(
        &self,
        key: &[u8],
        ttl: Duration,
        load: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.load_through(key, Some(ttl), load).await
    }

    async fn load_through<F, Fut, E>(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        load: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut load = Some(load);
        loop {
            if let Some(v) = self.get(key) {
                return Ok(v);
            }
            match self.flights().join(key) {
                Role::Waiter(mut rx) => {
                    Counters::bump(&self.counters().coalesced, 1);
                    match rx.wait_for(Option::is_some).await {
                        Ok(done) => {
                            return match done.as_ref() {
                                Some(Ok(v)) => Ok(v.clone()),
                                Some(Err(e)) => Err(Error::Load(e.clone())),
                                None => unreachable!("wait_for returns only a Some"),
                            };
                        }
                        // The leader went away without an answer; try again.
                        Err(_) => continue,
                    }
                }
                Role::Leader(leader) => {
                    // Every path below returns, so a caller leads at most once.
                    let load = load.take().expect("a caller leads at most once");
                    Counters::bump(&self.counters().loads, 1);
                    let out = load().await;
                    return match out {
                        Ok(v) => {
                            // Insert before the flight ends so later callers hit the cache.
                            // An entry too large to cache is still handed out.
                            let _ = match ttl {
                                Some(ttl) => self.insert_with_ttl(key, v.clone(), ttl),
                                None => self.insert(key, v.clone()),
                            };
                            leader.tx.send_replace(Some(Ok(v.clone())));
                            Ok(v)
                        }
                        Err(e) => {
                            Counters::bump(&self.counters().load_errors, 1);
                            let e: Arc<dyn std::error::Error + Send + Sync> = Arc::from(e.into());
                            leader.tx.send_replace(Some(Err(e.clone())));
                            Err(Error::Load(e))
                        }
                    };
                }
            }
        }
    }

    /// As [`NamespaceCache::get_or_load`], for a typed value stored in the compact codec.
    ///
    /// # Errors
    /// [`Error::Load`] from the loader, [`Error::Codec`] if the value does not round-trip.
    pub async fn get_or_load_typed<T, F, Fut, E>(&self, key: &[u8], load: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.load_typed(key, None, load).await
    }

    /// As [`NamespaceCache::get_or_load_typed`], caching the loaded value with its own TTL.
    ///
    /// # Errors
    /// As [`NamespaceCache::get_or_load_typed`].
    pub async fn get_or_load_typed_with_ttl<T, F, Fut, E>(
        &self,
        key: &[u8],
        ttl: Duration,
        load: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.load_typed(key, Some(ttl), load).await
    }

    async fn load_typed<T, F, Fut, E>(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        load: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let bytes = self
            .load_through(key, ttl, || async {
                let value = load().await.map_err(Into::into)?;
                codec::encode(&value)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .await?;
        codec::decode(&bytes)
    }
}
