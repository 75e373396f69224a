//! candlecache's own routes, by API family; the exchanges' facades are in
//! [`crate::exchange`].

mod crypto;
mod performance;
