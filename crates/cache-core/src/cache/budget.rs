//! The byte budget: reserving an entry's bytes in its namespace and in the whole cache
//! (never past either limit, at any instant) and giving them back.

use super::victims::Mode;
use super::*;

/// Upper bound on attempts to reserve room for one entry.
const MAX_ROOM_ROUNDS: u32 = 64;

/// Which budget a reservation ran into, and by how many bytes.
enum Short {
    Namespace(u64),
    Budget(u64),
}

impl Inner {
    pub(super) fn release(&self, ns: u16, bytes: u64) {
        self.namespaces[usize::from(ns)]
            .used
            .fetch_sub(bytes, Ordering::AcqRel);
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Reserves `size` bytes in the namespace and the budget, or reports the shortfall.
    /// Both counters only ever move within their limits, so the invariant holds at all
    /// times, not only between operations.
    fn try_charge(&self, ns: u16, size: u64) -> std::result::Result<(), Short> {
        let st = &self.namespaces[usize::from(ns)];
        let mut cur = st.used.load(Ordering::Acquire);
        loop {
            if cur + size > st.limit {
                return Err(Short::Namespace(cur + size - st.limit));
            }
            match st.used.compare_exchange_weak(
                cur,
                cur + size,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            if cur + size > self.budget {
                st.used.fetch_sub(size, Ordering::AcqRel);
                return Err(Short::Budget(cur + size - self.budget));
            }
            match self.used.compare_exchange_weak(
                cur,
                cur + size,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    pub(super) fn make_room(&self, ns: u16, size: u64) -> Result<()> {
        let mut idle_rounds = 0;
        for _ in 0..MAX_ROOM_ROUNDS {
            let (scope, need) = match self.try_charge(ns, size) {
                Ok(()) => return Ok(()),
                Err(Short::Namespace(n)) => (Some(ns), n),
                Err(Short::Budget(n)) => (None, n),
            };
            if self.free(scope, need, Mode::Pressure) == 0 {
                // Nothing was evictable: other writers hold the room as reservations.
                idle_rounds += 1;
                if idle_rounds > 8 {
                    break;
                }
                std::thread::yield_now();
            }
        }
        let st = &self.namespaces[usize::from(ns)];
        Err(Error::NoRoom {
            ns: st.name.clone(),
            size,
            rounds: MAX_ROOM_ROUNDS,
        })
    }
}
