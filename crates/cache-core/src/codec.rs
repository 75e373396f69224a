//! The compact binary format of typed values (postcard).

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    postcard::to_allocvec(value)
        .map(Bytes::from)
        .map_err(|e| Error::Codec(Arc::new(e)))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Codec(Arc::new(e)))
}
