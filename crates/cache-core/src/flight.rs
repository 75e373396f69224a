//! Single-flight loading: concurrent misses of one key share one loader run. The loads
//! in progress of a namespace are a concurrent map (dashmap: sharded locks, so flights
//! of different keys do not queue on one mutex).

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::watch;

pub(crate) type Shared = std::result::Result<Bytes, Arc<dyn std::error::Error + Send + Sync>>;
pub(crate) type Slot = watch::Receiver<Option<Shared>>;

/// Loads in progress in one namespace, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: DashMap<Box<[u8]>, Slot, foldhash::fast::RandomState>,
}

/// Removes the flight when the leader finishes, fails, panics or is dropped. Dropping the
/// sender without a value wakes the waiters with an error, and they start over.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: &'a [u8],
    pub(crate) tx: watch::Sender<Option<Shared>>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.flights.map.remove(self.key);
    }
}

pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Waiter(Slot),
}

impl Flights {
    /// Joins the flight of `key`, or starts one and leads it.
    pub(crate) fn join<'a>(&'a self, key: &'a [u8]) -> Role<'a> {
        // A waiter's path takes a read lock of one shard and allocates nothing.
        if let Some(rx) = self.map.get(key) {
            return Role::Waiter(rx.clone());
        }
        match self.map.entry(key.into()) {
            dashmap::Entry::Occupied(e) => Role::Waiter(e.get().clone()),
            dashmap::Entry::Vacant(e) => {
                let (tx, rx) = watch::channel(None);
                e.insert(rx);
                Role::Leader(Leader {
                    flights: self,
                    key,
                    tx,
                })
            }
        }
    }
}
