//! The lease table: mcrouter-style `lease-get` tokens and stale copies of
//! deleted values ("Scaling Memcache at Facebook", NSDI'13, 3.2.1).
//!
//! # Why a separate table
//!
//! Plain `get`/`gets`/`mg`/`add`/`incr`... must behave exactly as memcached
//! 1.6.18 (a differential test compares the bytes). A lease placeholder or a
//! stale-after-delete copy stored as an item would be visible to them (an
//! `add` would fail, a `get` would hit). So leases live here, beside the
//! item arena, and items never know about them:
//!
//! ```text
//!  key --hash--> lease shard i: Mutex<{ key -> Entry }>
//!  Entry = token (0 = none) + token deadline + optional stale copy
//!          (flags, value bytes, deadline)
//! ```
//!
//! # Consistency
//!
//! Every writer of a key (`set`/`add`/.../`cas`, `delete`, `incr`/`decr`,
//! the meta `ms`/`md`/`ma`) takes the key's lease shard lock *around* its
//! engine call and drops the key's token while holding it ([`Engine::store`]
//! and friends do this). `lease-get` checks the item and hands out a token
//! under the same lock, and `lease-set` checks the token and stores under it.
//! So a token is valid exactly when no write of the key happened since the
//! miss that created it and the window (`lease_ttl`) has not ended: one fill
//! per invalidation, never a stale fill over a newer write. Lock order: lease
//! shard, then item shard; nothing takes them the other way.
//!
//! # Memory bound
//!
//! Outside the `-m` budget, like the hash table: at most [`MAX_ENTRIES`]
//! entries (key + ~48 bytes each) and stale values totalling at most
//! `memory_limit / 64` bytes (each at most [`MAX_STALE_VALUE`]). When full,
//! expired entries are swept from the shard, then the new token or stale copy
//! is simply not kept (a lease-get then answers as if another client held
//! the lease: token 1, so clients back off instead of stampeding).
//!
//! # Relation to the meta protocol
//!
//! memcached 1.6's meta commands implement the same idea *inside* items:
//! `mg <key> N<ttl>` creates an empty placeholder on a miss and answers `W`
//! (win) to the first client and `Z` to the others; `md <key> I` marks an item
//! stale (`X`, and the next `mg` wins a refill while the others get the stale
//! value with `Z`); `ms <key> I` / `ms` with `C<cas>` completes the fill. Those
//! keep memcached's exact semantics (the placeholder *is* visible to `get`).
//! Both mechanisms share the write path: any `ms`/`md`/`ma` (and text writes)
//! invalidates an outstanding lease token, and a `lease-set` is a plain set
//! for the item state (it replaces a meta placeholder or stale item).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

/// Token answered to clients that must not fill ("hot miss": back off and retry).
pub const HOT_MISS_TOKEN: u64 = 1;
/// Upper bound of entries in the whole table.
pub const MAX_ENTRIES: usize = 1 << 16;
/// Larger deleted values are not kept as stale copies.
pub const MAX_STALE_VALUE: usize = 64 * 1024;
const SHARDS: usize = 64;

struct Stale {
    flags: u32,
    value: Box<[u8]>,
    /// Engine time (`Clock::now`) after which the copy is dropped.
    until: u32,
}

#[derive(Default)]
struct Entry {
    /// 0 = no outstanding token.
    token: u64,
    /// The window: a token is valid while `now < token_until`; until then no
    /// new token is handed out.
    token_until: u32,
    stale: Option<Stale>,
}

impl Entry {
    fn token_live(&self, now: u32) -> bool {
        self.token != 0 && now < self.token_until
    }

    fn stale_live(&self, now: u32) -> Option<&Stale> {
        self.stale.as_ref().filter(|s| now < s.until)
    }

    fn dead(&self, now: u32) -> bool {
        !self.token_live(now) && self.stale_live(now).is_none()
    }
}

#[derive(Default)]
pub(crate) struct LeaseShard {
    map: HashMap<Box<[u8]>, Entry>,
    stale_bytes: usize,
}

/// What a lease-get miss answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseMiss<'a> {
    /// A fresh token (> 1) or [`HOT_MISS_TOKEN`].
    pub token: u64,
    /// The stale copy `(flags, value)` kept after a delete, if any.
    pub stale: Option<(u32, &'a [u8])>,
}

/// The per-engine lease table (see the module docs).
pub(crate) struct LeaseTable {
    shards: Box<[Mutex<LeaseShard>]>,
    hasher: ahash::RandomState,
    next_token: AtomicU64,
    max_entries_per_shard: usize,
    stale_budget_per_shard: usize,
}

impl LeaseTable {
    pub(crate) fn new(memory_limit: usize) -> Self {
        let seed = std::collections::hash_map::RandomState::new();
        let start = std::hash::BuildHasher::hash_one(&seed, 0x1ea5e_u64);
        // Tokens: a random start in [2^32, 2^62), then consecutive (unique, never 0 or 1).
        let start = (start >> 2) | (1 << 32);
        LeaseTable {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: ahash::RandomState::with_seeds(7, 11, 13, 17),
            next_token: AtomicU64::new(start),
            max_entries_per_shard: MAX_ENTRIES / SHARDS,
            stale_budget_per_shard: (memory_limit / 64 / SHARDS).max(MAX_STALE_VALUE),
        }
    }

    /// Locks the shard of `key`; hold it across the engine call that goes with it.
    pub(crate) fn lock(&self, key: &[u8]) -> LeaseGuard<'_> {
        let i = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        LeaseGuard {
            table: self,
            shard: self.shards[i].lock(),
        }
    }

    /// `flush_all`: forget every token and stale copy.
    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            let mut s = s.lock();
            s.map.clear();
            s.stale_bytes = 0;
        }
    }

    /// Entries and stale bytes held (for tests and docs).
    pub(crate) fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock();
            (n + s.map.len(), b + s.stale_bytes)
        })
    }
}

pub(crate) struct LeaseGuard<'a> {
    table: &'a LeaseTable,
    shard: MutexGuard<'a, LeaseShard>,
}

impl LeaseGuard<'_> {
    /// A write of `key` happened: its token (and stale copy) are void.
    pub(crate) fn invalidate(&mut self, key: &[u8]) {
        if self.shard.map.is_empty() {
            return;
        }
        if let Some(e) = self.shard.map.remove(key) {
            if let Some(s) = e.stale {
                self.shard.stale_bytes -= s.value.len();
            }
        }
    }

    /// A delete removed `(flags, value)`: drop the token, keep the value as
    /// stale for `ttl` seconds (if it fits the budget).
    pub(crate) fn keep_stale(&mut self, key: &[u8], flags: u32, value: &[u8], now: u32, ttl: u32) {
        self.invalidate(key);
        if ttl == 0 || value.len() > MAX_STALE_VALUE {
            return;
        }
        if self.shard.stale_bytes + value.len() > self.table.stale_budget_per_shard
            || self.shard.map.len() >= self.table.max_entries_per_shard
        {
            self.sweep(now);
        }
        if self.shard.stale_bytes + value.len() > self.table.stale_budget_per_shard
            || self.shard.map.len() >= self.table.max_entries_per_shard
        {
            return;
        }
        self.shard.stale_bytes += value.len();
        self.shard.map.insert(
            key.into(),
            Entry {
                token: 0,
                token_until: 0,
                stale: Some(Stale {
                    flags,
                    value: value.into(),
                    until: now.saturating_add(ttl),
                }),
            },
        );
    }

    /// A lease-get missed the item: hand out the window's token (first
    /// caller) or the hot-miss token, with the stale copy if one is kept.
    pub(crate) fn miss(&mut self, key: &[u8], now: u32, ttl: u32) -> LeaseMiss<'_> {
        let full = self.shard.map.len() >= self.table.max_entries_per_shard;
        if full && !self.shard.map.contains_key(key) {
            self.sweep(now);
        }
        let max = self.table.max_entries_per_shard;
        let shard = &mut *self.shard;
        if !shard.map.contains_key(key) && shard.map.len() >= max {
            // Table full of live leases: do not let this key stampede.
            return LeaseMiss {
                token: HOT_MISS_TOKEN,
                stale: None,
            };
        }
        let e = shard.map.entry(key.into()).or_default();
        if e.stale.as_ref().is_some_and(|s| now >= s.until) {
            let s = e.stale.take().expect("checked");
            shard.stale_bytes -= s.value.len();
        }
        let token = if e.token_live(now) {
            HOT_MISS_TOKEN
        } else {
            e.token = self.table.next_token.fetch_add(1, Ordering::Relaxed);
            e.token_until = now.saturating_add(ttl.max(1));
            e.token
        };
        LeaseMiss {
            token,
            stale: e.stale.as_ref().map(|s| (s.flags, &s.value[..])),
        }
    }

    /// Whether `token` is the key's live token (a lease-set may store).
    pub(crate) fn token_valid(&self, key: &[u8], token: u64, now: u32) -> bool {
        token > HOT_MISS_TOKEN
            && self
                .shard
                .map
                .get(key)
                .is_some_and(|e| e.token == token && e.token_live(now))
    }

    fn sweep(&mut self, now: u32) {
        let shard = &mut *self.shard;
        let mut freed = 0;
        shard.map.retain(|_, e| {
            if e.dead(now) {
                freed += e.stale.as_ref().map_or(0, |s| s.value.len());
                false
            } else {
                true
            }
        });
        shard.stale_bytes -= freed;
    }
}
