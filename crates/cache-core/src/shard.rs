//! One lock shard: a slab of entries, a hash index and LRU lists per namespace and tier.
//!
//! Reads hold the shard's lock shared: a hit only stores its time in the entry's atomic
//! stamp and never relinks. Lists are ordered by `linked`, the stamp an entry had when it
//! was put at the head; an eviction scan (lock held exclusively) moves entries touched
//! since then back to the head, so the untouched entries it meets from the tail are the
//! least recently used. The byte accounting that spans shards lives in `cache.rs`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

/// The two resident tiers; an evicted entry is simply gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    Hot = 0,
    Warm = 1,
}

pub(crate) struct Node {
    pub(crate) key: Box<[u8]>,
    pub(crate) hash: u64,
    /// Hot: the value. Warm: the lz4 block of the value.
    pub(crate) value: Bytes,
    /// Length of the uncompressed value.
    pub(crate) raw_len: usize,
    pub(crate) tier: Tier,
    /// Bytes charged against the budgets for this entry.
    pub(crate) charge: u64,
    pub(crate) expires_at: u64,
    /// Last access, in clock nanoseconds; written by reads under the shared lock.
    pub(crate) stamp: AtomicU64,
    /// The stamp when the entry was put at the head of its list; lists are ordered by it.
    linked: u64,
    /// Unique per insert within the shard, so work done outside the lock can tell whether
    /// the entry it looked at is still the same one.
    pub(crate) id: u64,
    pub(crate) warm_hits: AtomicU32,
    /// Read at least once since it was stored: only such entries are worth compressing
    /// when they leave the hot tier.
    pub(crate) read: AtomicBool,
    pub(crate) ns: u16,
    prev: u32,
    next: u32,
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ns: u16,
        key: Box<[u8]>,
        hash: u64,
        value: Bytes,
        charge: u64,
        expires_at: u64,
        stamp: u64,
    ) -> Self {
        Self {
            raw_len: value.len(),
            key,
            hash,
            value,
            tier: Tier::Hot,
            charge,
            expires_at,
            stamp: AtomicU64::new(stamp),
            linked: stamp,
            id: 0,
            warm_hits: AtomicU32::new(0),
            read: AtomicBool::new(false),
            ns,
            prev: NIL,
            next: NIL,
        }
    }
}

#[derive(Clone, Copy)]
struct List {
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// A namespace's slice of a shard.
pub(crate) struct Part {
    table: HashTable<u32>,
    lists: [List; 2],
    /// Counted under the shared lock, so atomics; per shard, so no global hot spot.
    pub(crate) hits: [AtomicU64; 2],
    pub(crate) misses: AtomicU64,
}

/// An entry that is among the least recently used of its list, as seen during a scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) stamp: u64,
    pub(crate) shard: usize,
    pub(crate) idx: u32,
    pub(crate) id: u64,
    pub(crate) expired: bool,
}

pub(crate) struct Shard {
    nodes: Vec<Option<Node>>,
    free: Vec<u32>,
    pub(crate) parts: Vec<Part>,
    next_id: u64,
}

impl Shard {
    pub(crate) fn new(namespaces: usize) -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            parts: (0..namespaces)
                .map(|_| Part {
                    table: HashTable::new(),
                    lists: [List::EMPTY; 2],
                    hits: Default::default(),
                    misses: AtomicU64::new(0),
                })
                .collect(),
            next_id: 0,
        }
    }

    pub(crate) fn find(&self, ns: u16, hash: u64, key: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.parts[usize::from(ns)]
            .table
            .find(hash, |&i| {
                nodes[i as usize].as_ref().is_some_and(|n| &*n.key == key)
            })
            .copied()
    }

    pub(crate) fn node(&self, idx: u32) -> &Node {
        self.nodes[idx as usize]
            .as_ref()
            .expect("indices handed out by the table point at live nodes")
    }

    pub(crate) fn node_mut(&mut self, idx: u32) -> &mut Node {
        self.nodes[idx as usize]
            .as_mut()
            .expect("indices handed out by the table point at live nodes")
    }

    /// Returns the node at `idx` if it is still the entry with `id`.
    pub(crate) fn live(&self, idx: u32, id: u64) -> Option<&Node> {
        self.nodes
            .get(idx as usize)
            .and_then(Option::as_ref)
            .filter(|n| n.id == id)
    }

    /// Adds a node that is not in the shard yet (the caller removed any old one) at the
    /// head of its list, and returns its index.
    pub(crate) fn insert(&mut self, mut node: Node) -> u32 {
        self.next_id += 1;
        node.id = self.next_id;
        let ns = usize::from(node.ns);
        let hash = node.hash;
        let idx = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                u32::try_from(self.nodes.len() - 1).expect("fewer than 4 billion entries a shard")
            }
        };
        let nodes = &self.nodes;
        self.parts[ns].table.insert_unique(hash, idx, |&i| {
            nodes[i as usize].as_ref().map_or(0, |n| n.hash)
        });
        self.link_front(idx);
        idx
    }

    /// Takes the node out of the shard.
    pub(crate) fn remove(&mut self, idx: u32) -> Node {
        self.unlink(idx);
        let (ns, hash) = {
            let n = self.node(idx);
            (usize::from(n.ns), n.hash)
        };
        if let Ok(entry) = self.parts[ns].table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        self.free.push(idx);
        self.nodes[idx as usize]
            .take()
            .expect("a removed index was live")
    }

    /// Moves the node to the head of another tier's list; `stamp` is when it moved, so
    /// every list stays ordered by stamp.
    pub(crate) fn retier(&mut self, idx: u32, tier: Tier, value: Bytes, charge: u64, stamp: u64) {
        self.unlink(idx);
        let n = self.node_mut(idx);
        n.tier = tier;
        *n.stamp.get_mut() = stamp;
        n.linked = stamp;
        n.value = value;
        n.charge = charge;
        *n.warm_hits.get_mut() = 0;
        self.link_front(idx);
    }

    /// Appends up to `k` of the least recently used entries of one list, oldest first,
    /// and returns whether the list holds more than it appended.
    ///
    /// Entries read since they were linked go back to the head on the way; at most
    /// `max_steps` entries are looked at, to bound how long the lock is held.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn oldest(
        &mut self,
        shard: usize,
        ns: u16,
        tier: Tier,
        k: usize,
        max_steps: usize,
        now: u64,
        out: &mut Vec<Candidate>,
    ) -> bool {
        let mut cur = self.parts[usize::from(ns)].lists[tier as usize].tail;
        let mut taken = 0;
        for _ in 0..max_steps {
            if cur == NIL {
                return false;
            }
            if taken == k {
                return true;
            }
            let n = self.node(cur);
            let (prev, stamp) = (n.prev, n.stamp.load(Ordering::Relaxed));
            if stamp > n.linked {
                // Read since it was linked: not old, back to the head.
                if prev == NIL {
                    // Already the head: it stays, and is looked at again as it is now.
                    self.node_mut(cur).linked = stamp;
                    continue;
                }
                self.unlink(cur);
                self.node_mut(cur).linked = stamp;
                self.link_front(cur);
            } else {
                out.push(Candidate {
                    stamp,
                    shard,
                    idx: cur,
                    id: n.id,
                    expired: n.expires_at <= now,
                });
                taken += 1;
            }
            cur = prev;
        }
        cur != NIL
    }

    /// Indices of every entry of a namespace in one tier, oldest first.
    pub(crate) fn indices(&self, ns: u16, tier: Tier) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = self.parts[usize::from(ns)].lists[tier as usize].tail;
        while cur != NIL {
            out.push(cur);
            cur = self.node(cur).prev;
        }
        out
    }

    fn link_front(&mut self, idx: u32) {
        let (ns, tier) = {
            let n = self.node(idx);
            (usize::from(n.ns), n.tier as usize)
        };
        let head = self.parts[ns].lists[tier].head;
        // Keep the list ordered by `linked` even when clock readings raced.
        let head_linked = if head != NIL {
            self.node(head).linked
        } else {
            0
        };
        {
            let n = self.node_mut(idx);
            n.prev = NIL;
            n.next = head;
            n.linked = n.linked.max(head_linked);
        }
        if head != NIL {
            self.node_mut(head).prev = idx;
        } else {
            self.parts[ns].lists[tier].tail = idx;
        }
        self.parts[ns].lists[tier].head = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let (ns, tier, prev, next) = {
            let n = self.node(idx);
            (usize::from(n.ns), n.tier as usize, n.prev, n.next)
        };
        if prev != NIL {
            self.node_mut(prev).next = next;
        } else {
            self.parts[ns].lists[tier].head = next;
        }
        if next != NIL {
            self.node_mut(next).prev = prev;
        } else {
            self.parts[ns].lists[tier].tail = prev;
        }
        let n = self.node_mut(idx);
        n.prev = NIL;
        n.next = NIL;
    }
}
