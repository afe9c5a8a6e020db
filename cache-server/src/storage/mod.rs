//! The storage engine: slab-allocated memory, a hash table with incremental
//! resizing and a segmented LRU, with memcached 1.6 item semantics.
//!
//! No sockets, no wire protocol: the server layer parses commands and calls
//! the methods of [`Engine`]; everything here is testable single-threaded
//! with a [`ManualClock`].
//!
//! # Memory layout
//!
//! ```text
//!  memory budget (-m)  = N pages of page_size (1 MiB), handed out lazily
//!  ┌────────┬────────┬────────┬────────┬─ ─ ─ ─ ─ ─ ─ ─ ─ ┐
//!  │ page 0 │ page 1 │ page 2 │ page 3 │  not yet allocated │
//!  └───┬────┴───┬────┴───┬────┴───┬────┴─ ─ ─ ─ ─ ─ ─ ─ ─ ┘
//!      │        │        │        │   each page belongs to one (shard, class)
//!      v        v        v        v
//!  class 1 (80 B chunks)  class 2 (104 B) ... class 39 (512 KiB = page/2)
//!  ┌──────┬──────┬──────┬─────┐
//!  │chunk │chunk │chunk │ ... │   chunk sizes grow by -f (1.25), 8-byte aligned,
//!  └──┬───┴──────┴──────┴─────┘   from header + -n (48) up to page_size / 2
//!     v
//!  item = header (18 B, +8 CAS unless -C, +4 exptime if != 0, +4 flags if != 0)
//!         + key + value (no trailing "\r\n")
//!  header: it_flags u16 | nkey u8 | nbytes u24 | lru prev u32 | lru next u32 | time u32
//!          [cas u64] [exptime u32] [client flags u32] [chain: total u32, first u32]
//! ```
//!
//! Items larger than the largest chunk are *chained*: the head chunk (largest
//! class) holds the header, key and the first part of the value, followed by
//! continuation chunks of the same class. Chunk ids, LRU links and hash
//! entries are `u32` (page number << slot bits | slot), never pointers.
//!
//! A 100-byte value with a 10-byte key takes 26 + 10 + 100 = 136 bytes, which
//! is exactly class 3 (136 B): 7710 items per MiB (memcached: 192 B, 5461).
//!
//! # Hash table
//!
//! Per shard, open addressing with linear probing: one `u32` item id and one
//! tag byte per slot (5 bytes per slot, load kept between 0.25 and 0.8, so
//! 6-20 bytes per item; memcached uses 8 bytes per bucket plus an 8-byte chain
//! pointer inside every item). Like memcached's, it is *outside* the `-m`
//! budget and reported as `hash_bytes`. Resizing is incremental: a new table
//! is allocated and a bounded number of old slots (32 per insert, 4096 per
//! maintainer tick) migrate per operation; lookups consult both tables
//! meanwhile. Keys are compared in place in the arena. A key's home slot is
//! taken from the top bits of its (rotated) hash, so slot order is hash order
//! at every table size: [`Engine::dump_step`] walks the items in that order a
//! few hundred slots at a time, exactly once each across resizes.
//!
//! # Segmented LRU
//!
//! Per (shard, class): HOT, WARM and COLD doubly linked lists (`u32` links in
//! the item header), with memcached's rules: new items enter HOT; the second
//! fetch marks an item ACTIVE; HOT/WARM tails over their size share
//! (`hot_lru_pct`, `warm_lru_pct`) or age limit flow to COLD; ACTIVE items in
//! COLD move to WARM on the maintainer tick; evictions only from the COLD
//! tail. Expired and flushed items are reclaimed lazily on access, at the
//! LRU tails, and by the crawler ([`Engine::crawler_step`]).
//!
//! # Locking
//!
//! ```text
//!   worker threads ──hash(key)──> shard i: parking_lot::Mutex<Shard>
//!                                   (hash table + classes + LRUs + its pages)
//!   shared by all shards (atomics, no lock): page budget (pages in use vs
//!   limit), CAS counter, flush_all state, config switches
//! ```
//!
//! There are up to [`DEFAULT_SHARDS`], fewer when the memory limit cannot give
//! each shard a page per slab class (one shard below about 42 MiB per shard with
//! the default ladder: `-m 64` runs one shard, `-m 350` and up eight).
//!
//! Every key operation locks exactly one shard. A shard that needs a page
//! for a class while the budget is exhausted and it has no item of that
//! class to evict takes a page from its own other classes, or, with
//! `try_lock` only (so no lock-order deadlock is possible), from another
//! shard. Admin and background entry points lock shards one at a time.
//!
//! # Memory bound
//!
//! Pages never exceed `memory_limit / page_size` in total (unlike memcached
//! we do not give every class one page over the limit). Outside the budget:
//! the hash tables ([`Engine::hash_bytes`]), a few hundred bytes per class
//! per shard, a 4 KiB COLD->WARM bump queue per shard, and one scratch buffer
//! per shard for append/prepend/touch reallocation (kept only up to 64 KiB).
//! No per-item heap allocation happens outside the pages.

mod clock;
mod dump;
mod hashtable;
mod item;
mod lease;
mod shard;
mod slab;
mod stats;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub use clock::{Clock, ManualClock, SystemClock, CLOCK_START_OFFSET};
pub use dump::{DumpCursor, DumpItem, ALL_CLASSES};
pub use lease::{LeaseMiss, HOT_MISS_TOKEN, MAX_ENTRIES as LEASE_MAX_ENTRIES, MAX_STALE_VALUE};
pub use stats::{ClassStats, EngineStats, SizeBucket};

use lease::LeaseTable;

use shard::Shard;

/// memcached's `REALTIME_MAXDELTA`: exptimes above 30 days are absolute Unix times.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;
/// Items are bumped within HOT/WARM (their `time` updated) at most this often.
pub const ITEM_UPDATE_INTERVAL: u32 = 60;
/// Maximum key length (memcached's `KEY_MAX_LENGTH`).
pub const KEY_MAX_LENGTH: usize = 250;

/// Default memory limit (`-m 64`).
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Default slab page size (1 MiB).
pub const DEFAULT_PAGE_SIZE: usize = 1024 * 1024;
/// Default growth factor (`-f 1.25`).
pub const DEFAULT_GROWTH_FACTOR: f64 = 1.25;
/// Default minimum space for key + value in the smallest chunk (`-n 48`).
pub const DEFAULT_MIN_SPACE: usize = 48;
/// Default maximum item size (`-I 1m`).
pub const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;
/// Default initial hash power (`-o hashpower=16`), split over the shards.
pub const DEFAULT_HASHPOWER: u8 = 16;
/// Default shard count (rounded to a power of two; capped so every shard can
/// own a page of every slab class).
pub const DEFAULT_SHARDS: usize = 8;

/// Engine configuration, mirroring memcached's flags.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Memory budget for item pages in bytes (`-m`, MiB on the command line).
    pub memory_limit: usize,
    /// Slab page size in bytes (memcached's `slab_page_size`, 1 MiB).
    pub page_size: usize,
    /// Chunk size growth factor (`-f`).
    pub growth_factor: f64,
    /// Minimum space for key + value in the smallest chunk (`-n`).
    pub min_space: usize,
    /// Maximum item size (`-I`): header + key + value must not exceed it.
    /// Items larger than half a page are chained across chunks.
    pub max_item_size: usize,
    /// CAS values enabled (`-C` sets this to false: cas = 0, 8 bytes less per item).
    pub cas_enabled: bool,
    /// Evict when memory is full (`-M` sets this to false: `OutOfMemory` instead).
    pub evict: bool,
    /// Allow moving pages between classes (`-o slab_reassign`, default on in 1.6).
    pub slab_reassign: bool,
    /// Automove mode: 0 off, 1 conservative (default), 2 aggressive.
    pub slab_automove: u8,
    /// Automove ratio: move a page from the oldest class when the youngest
    /// evicting class's age is below `oldest_age * ratio` (memcached: 0.8).
    pub slab_automove_ratio: f64,
    /// Whether [`Engine::crawler_step`] does anything (`-o no_lru_crawler`).
    pub lru_crawler: bool,
    /// Initial hash power for the whole engine (`-o hashpower`).
    pub hashpower_init: u8,
    /// Requested number of shards (power of two; see [`DEFAULT_SHARDS`]).
    pub shards: usize,
    /// HOT share of a class's bytes (`-o hot_lru_pct`, 20).
    pub hot_lru_pct: u8,
    /// WARM share of a class's bytes (`-o warm_lru_pct`, 40).
    pub warm_lru_pct: u8,
    /// HOT items older than COLD tail age times this move to COLD (0.2).
    pub hot_max_factor: f64,
    /// WARM items older than COLD tail age times this move to COLD (2.0).
    pub warm_max_factor: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            page_size: DEFAULT_PAGE_SIZE,
            growth_factor: DEFAULT_GROWTH_FACTOR,
            min_space: DEFAULT_MIN_SPACE,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
            cas_enabled: true,
            evict: true,
            slab_reassign: true,
            slab_automove: 1,
            slab_automove_ratio: 0.8,
            lru_crawler: true,
            hashpower_init: DEFAULT_HASHPOWER,
            shards: DEFAULT_SHARDS,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            hot_max_factor: 0.2,
            warm_max_factor: 2.0,
        }
    }
}

/// Invalid engine configuration.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The page size is out of range.
    #[error("page_size must be between 64 KiB and 16 MiB, got {0}")]
    PageSize(usize),
    /// The growth factor is not > 1.0.
    #[error("growth_factor must be greater than 1.0, got {0}")]
    GrowthFactor(f64),
    /// The memory limit is smaller than one page.
    #[error("memory_limit must be at least one page ({page_size} bytes), got {limit}")]
    MemoryLimit {
        /// The configured limit.
        limit: usize,
        /// The page size.
        page_size: usize,
    },
    /// The maximum item size is out of range.
    #[error("max_item_size must be between 1 KiB and 1 GiB, got {0}")]
    MaxItemSize(usize),
    /// The min space is out of range.
    #[error("min_space must be between 8 and 1024, got {0}")]
    MinSpace(usize),
    /// Automove mode not in 0..=2.
    #[error("slab_automove must be 0, 1 or 2, got {0}")]
    Automove(u8),
    /// LRU percentages do not leave room for COLD.
    #[error("hot_lru_pct + warm_lru_pct must be below 80, got {0} + {1}")]
    LruPct(u8, u8),
}

impl EngineConfig {
    /// Checks ranges (called by [`Engine::new`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(64 * 1024..=16 * 1024 * 1024).contains(&self.page_size) {
            return Err(ConfigError::PageSize(self.page_size));
        }
        if self.growth_factor.is_nan() || self.growth_factor <= 1.0 {
            return Err(ConfigError::GrowthFactor(self.growth_factor));
        }
        if self.memory_limit < self.page_size {
            return Err(ConfigError::MemoryLimit {
                limit: self.memory_limit,
                page_size: self.page_size,
            });
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_item_size) {
            return Err(ConfigError::MaxItemSize(self.max_item_size));
        }
        if !(8..=1024).contains(&self.min_space) {
            return Err(ConfigError::MinSpace(self.min_space));
        }
        if self.slab_automove > 2 {
            return Err(ConfigError::Automove(self.slab_automove));
        }
        if u16::from(self.hot_lru_pct) + u16::from(self.warm_lru_pct) >= 80 {
            return Err(ConfigError::LruPct(self.hot_lru_pct, self.warm_lru_pct));
        }
        Ok(())
    }
}

/// Storage command mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if the key is absent (an existing item's `time` is bumped).
    Add,
    /// Store only if the key exists.
    Replace,
    /// Append to an existing value, keeping its flags and exptime.
    Append,
    /// Prepend to an existing value, keeping its flags and exptime.
    Prepend,
    /// Store only if [`StoreRequest::cas`] equals the item's CAS (`cas`, and
    /// `ms` in set/replace mode with `C`). Missing key: `NotFound`.
    Cas,
}

/// One storage command. Build with [`StoreRequest::new`] and the `with_*` methods.
#[derive(Clone, Copy, Debug)]
pub struct StoreRequest<'a> {
    /// The mode.
    pub mode: StoreMode,
    /// The key (at most [`KEY_MAX_LENGTH`] bytes; the server validates it,
    /// longer keys are refused with `TooLarge`).
    pub key: &'a [u8],
    /// The value, without the trailing `"\r\n"`.
    pub value: &'a [u8],
    /// Client flags (ignored by Append/Prepend, which keep the old ones).
    pub flags: u32,
    /// Protocol exptime (see [`Engine::realtime`]); ignored by Append/Prepend.
    pub exptime: i64,
    /// CAS to compare (0 = none). Required by [`StoreMode::Cas`]; with
    /// Append/Prepend a non-zero value must match or the result is `Exists`.
    /// Ignored by Set/Add/Replace (the `ms` layer maps set/replace + `C` to `Cas`).
    pub cas: u64,
    /// `ms ... I`: with `Cas`, a compare value *lower* than the item's CAS
    /// still stores, but the new item is marked stale, keeps the old exptime
    /// and the old "token sent" bit (memcached's `CAS_STALE`).
    pub invalidate: bool,
    /// `ms ... MA/MP N<ttl>`: Append/Prepend on a missing key stores the value
    /// as a new item with this protocol exptime instead of `NotStored`.
    pub vivify: Option<i64>,
    /// `ms ... E<cas>`: use this CAS value for the new item instead of the next
    /// one from the counter.
    pub explicit_cas: Option<u64>,
    /// `ms ... b`: the key came base64-encoded; `mg ... k` echoes it that way.
    pub binary_key: bool,
}

impl<'a> StoreRequest<'a> {
    /// A request with no CAS, no meta extras.
    pub fn new(mode: StoreMode, key: &'a [u8], value: &'a [u8], flags: u32, exptime: i64) -> Self {
        StoreRequest {
            mode,
            key,
            value,
            flags,
            exptime,
            cas: 0,
            invalidate: false,
            vivify: None,
            explicit_cas: None,
            binary_key: false,
        }
    }

    /// Sets the compare CAS.
    pub fn with_cas(mut self, cas: u64) -> Self {
        self.cas = cas;
        self
    }

    /// Sets the `I` (invalidate) flag.
    pub fn with_invalidate(mut self, invalidate: bool) -> Self {
        self.invalidate = invalidate;
        self
    }

    /// Sets `N<ttl>` (append/prepend autovivify).
    pub fn with_vivify(mut self, exptime: Option<i64>) -> Self {
        self.vivify = exptime;
        self
    }

    /// Sets `E<cas>`.
    pub fn with_explicit_cas(mut self, cas: Option<u64>) -> Self {
        self.explicit_cas = cas;
        self
    }

    /// Marks a key that came base64-encoded (`ms ... b`).
    pub fn with_binary_key(mut self, binary: bool) -> Self {
        self.binary_key = binary;
        self
    }
}

/// Result of a storage command (memcached's `enum store_item_type` plus errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStatus {
    /// `STORED` / `HD`.
    Stored,
    /// `NOT_STORED` / `NS`: add on existing, replace/append/prepend on missing.
    NotStored,
    /// `EXISTS` / `EX`: CAS mismatch.
    Exists,
    /// `NOT_FOUND` / `NF`: CAS on a missing key.
    NotFound,
    /// `SERVER_ERROR object too large for cache`.
    TooLarge,
    /// `SERVER_ERROR out of memory storing object` (only with `-M`, or when
    /// nothing is evictable).
    OutOfMemory,
}

/// What a storage command returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOutcome {
    /// The status.
    pub status: StoreStatus,
    /// CAS of the stored item (0 unless `Stored`, or with `-C`).
    pub cas: u64,
    /// Remaining TTL of the stored item in seconds, -1 = never expires.
    pub ttl: i64,
}

/// Options for [`Engine::get`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// New protocol exptime to set (`gat`/`gats`, `mg T`). Counts as a touch.
    pub touch: Option<i64>,
    /// `mg u`: do not bump the item in the LRU nor mark it fetched/accessed.
    pub no_bump: bool,
    /// `mg N<ttl>`: on a miss create an empty item with this exptime; the
    /// caller wins (`W`) and later fetchers see `Z` until it is replaced.
    pub vivify: Option<i64>,
    /// `mg R<ttl>`: win if the item's remaining TTL is below this many
    /// seconds (and no token was sent yet).
    pub recache: Option<i64>,
    /// `mg R<a> T<b>`: memcached takes the flags in order, so an `R` before the `T`
    /// compares the TTL the item had before the touch.
    pub recache_before_touch: bool,
    /// Hand out no win token (`W`): memcached's `mg` stops at an over-long `O` after the
    /// fetch (and any `N` vivify) but before it marks the item's token as sent, so the next
    /// fetch sees neither `W` nor `Z` (or wins, if the item is stale).
    pub no_token: bool,
    /// `mg T<a> N<b>`: memcached applies `T` and `N` to a vivified item in flag order, so
    /// when `N` comes after `T` the new item keeps the `N` TTL (the touch is still counted).
    pub vivify_ttl_last: bool,
}

impl GetOptions {
    /// Plain `get`/`gets`.
    pub fn get() -> Self {
        Self::default()
    }

    /// `gat`/`gats` with the given protocol exptime.
    pub fn touch(exptime: i64) -> Self {
        GetOptions {
            touch: Some(exptime),
            ..Self::default()
        }
    }
}

/// A borrowed view of an item, valid while the shard lock is held (inside
/// the [`Engine::get`] visitor).
pub struct ItemView<'a> {
    key: &'a [u8],
    parts: ValueParts<'a>,
    value_len: usize,
    flags: u32,
    cas: u64,
    ttl: i64,
    ttl_before: i64,
    last_access: u32,
    fetched: bool,
    stale: bool,
    win: bool,
    token_sent: bool,
    binary_key: bool,
    vivified: bool,
    class_id: u8,
}

impl<'a> ItemView<'a> {
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// Length of the value in bytes.
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    /// The value when it is stored contiguously (every item that fits in one
    /// chunk, i.e. up to half a page). `None` for chained items: use
    /// [`ItemView::value_parts`].
    pub fn value(&self) -> Option<&'a [u8]> {
        self.parts.contiguous()
    }

    /// The value as a sequence of slices (one for unchained items).
    pub fn value_parts(&self) -> ValueParts<'a> {
        self.parts.clone()
    }

    /// Appends the whole value to `out`.
    pub fn copy_value_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.value_len);
        for p in self.value_parts() {
            out.extend_from_slice(p);
        }
    }

    /// Client flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// CAS value (0 with `-C`).
    pub fn cas(&self) -> u64 {
        self.cas
    }

    /// Remaining TTL in seconds (after any touch in this request); -1 = never.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// Remaining TTL before this request's touch or vivify: an item `N` just created
    /// starts without one (-1), as memcached creates it before applying `N`'s TTL.
    pub fn ttl_before(&self) -> i64 {
        self.ttl_before
    }

    /// Seconds since the last access, *before* this fetch (`mg l`).
    pub fn last_access(&self) -> u32 {
        self.last_access
    }

    /// Whether the item had been fetched before this fetch (`mg h`).
    pub fn fetched_before(&self) -> bool {
        self.fetched
    }

    /// The item is stale (`X`), e.g. after `md ... I` or `ms ... I`.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// This caller won the right to recache (`W`).
    pub fn win(&self) -> bool {
        self.win
    }

    /// A win token had already been handed out to someone else (`Z`).
    pub fn token_sent(&self) -> bool {
        self.token_sent
    }

    /// Stored by `ms` with a base64 key (memcached's `ITEM_KEY_BINARY`).
    pub fn binary_key(&self) -> bool {
        self.binary_key
    }

    /// The item was created by this request (`mg N` on a miss).
    pub fn vivified(&self) -> bool {
        self.vivified
    }

    /// memcached slab class id (1-based) of the item's head chunk.
    pub fn class_id(&self) -> u8 {
        self.class_id
    }
}

/// Iterator over the slices of a value.
#[derive(Clone)]
pub struct ValueParts<'a> {
    inner: item::PartsIter<'a>,
}

impl<'a> ValueParts<'a> {
    fn contiguous(&self) -> Option<&'a [u8]> {
        self.inner.contiguous()
    }
}

impl<'a> Iterator for ValueParts<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.inner.next()
    }
}

/// Options for [`Engine::delete`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Only delete if the item's CAS equals this (`md C`; `C0` compares too, as in
    /// memcached, and so fails on any item that has a CAS).
    pub cas: Option<u64>,
    /// `md I`: mark stale (and bump CAS, clear the token) instead of removing.
    pub invalidate: bool,
    /// `md T`: with `invalidate`, also set this protocol exptime.
    pub new_exptime: Option<i64>,
    /// Keep the deleted value this many seconds as a stale copy for
    /// `lease-get` hot misses (0 = do not keep; see the lease table docs).
    /// The copy is invisible to every other command.
    pub keep_stale: u32,
}

/// Result of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// `DELETED` / `HD` (also when marked stale).
    Deleted,
    /// `NOT_FOUND` / `NF`.
    NotFound,
    /// `EX`: CAS mismatch.
    Exists,
}

/// One incr/decr (`incr`, `decr`, `ma`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArithRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// true = incr (wraps at 2^64), false = decr (floors at 0).
    pub incr: bool,
    /// The delta.
    pub delta: u64,
    /// Compare CAS (`ma C`; `C0` compares too, as in memcached).
    pub cas: Option<u64>,
    /// `ma N<ttl> J<initial>`: on a miss create the item with value `initial`
    /// (returned as is, no delta applied) and exptime `ttl`.
    pub vivify: Option<(u64, i64)>,
    /// `ma T<ttl>`: set this protocol exptime on success.
    pub touch: Option<i64>,
    /// `ma T<a> N<b>`: memcached applies `T` and `N` to a vivified item in flag order, so
    /// when `N` comes after `T` the new item keeps the `N` TTL.
    pub vivify_ttl_last: bool,
}

impl<'a> ArithRequest<'a> {
    /// Plain `incr`/`decr`.
    pub fn new(key: &'a [u8], incr: bool, delta: u64) -> Self {
        ArithRequest {
            key,
            incr,
            delta,
            cas: None,
            vivify: None,
            touch: None,
            vivify_ttl_last: false,
        }
    }
}

/// Result of an incr/decr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new value, the item's new CAS, its remaining TTL (-1 = never), and
    /// whether it was created by autovivify.
    Ok {
        /// New numeric value.
        value: u64,
        /// New CAS.
        cas: u64,
        /// Remaining TTL, -1 = never.
        ttl: i64,
        /// Remaining TTL before this request's `T`/`N` (-1 for an item just created:
        /// memcached creates it before applying the TTL flags).
        ttl_before: i64,
        /// Created on a miss (`ma N`).
        created: bool,
    },
    /// `NOT_FOUND` / `NF`.
    NotFound,
    /// `CLIENT_ERROR cannot increment or decrement non-numeric value`.
    NonNumeric,
    /// `EX`: CAS mismatch.
    Exists,
    /// `SERVER_ERROR out of memory`.
    OutOfMemory,
}

/// Outcome of [`Engine::slabs_reassign`] (memcached's reply strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReassignOutcome {
    /// `OK`.
    Ok,
    /// `BUSY currently processing reassign request`.
    Busy,
    /// `BADCLASS invalid src or dst class id`.
    BadClass,
    /// `NOSPARE source class has no spare pages`.
    NoSpare,
    /// `SAME src and dst class are identical`.
    Same,
    /// `CLIENT_ERROR slab reassignment disabled`.
    Disabled,
}

/// What one maintainer/crawler/automove call did (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkReport {
    /// Items moved between LRU segments or within one.
    pub moved: u64,
    /// Items examined (crawler).
    pub checked: u64,
    /// Items reclaimed (expired or flushed).
    pub reclaimed: u64,
    /// Pages moved between classes or released.
    pub pages_moved: u64,
}

/// Shared state of all shards.
pub(crate) struct Ctx {
    pub(crate) cfg: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    /// Chunk size and chunks per page per class (index 0 = memcached class 1).
    pub(crate) classes: Vec<slab::ClassInfo>,
    /// Fixed header bytes (18, +8 with CAS).
    pub(crate) hdr_base: usize,
    pub(crate) cas_counter: AtomicU64,
    pub(crate) pages_used: AtomicUsize,
    pub(crate) page_limit: AtomicUsize,
    pub(crate) oldest_live: AtomicU32,
    pub(crate) oldest_cas: AtomicU64,
    pub(crate) automove: AtomicU8,
    pub(crate) reassign_running: AtomicBool,
    pub(crate) slabs_moved: AtomicU64,
    /// The segmented-LRU parameters, changeable at run time (`lru tune`, `lru mode`).
    pub(crate) lru: LruTuning,
    pub(crate) hasher: ahash::RandomState,
    pub(crate) shards: Box<[ShardCell]>,
    /// The server's `watch` hub, if any (see `crate::watch`).
    pub(crate) watch: std::sync::OnceLock<Arc<crate::watch::Hub>>,
}

impl Ctx {
    /// The hub and the requesting connection's fd when log type `flag` is watched: a
    /// thread-local read, no atomics, when nobody watches.
    #[inline]
    pub(crate) fn watching(&self, flag: u16) -> Option<(&crate::watch::Hub, i32)> {
        let fd = crate::watch::current(flag)?;
        Some((self.watch.get()?, fd))
    }

    /// The hub when log type `flag` is watched, whichever thread asks (the maintenance
    /// thread evicts too): one relaxed load.
    #[inline]
    pub(crate) fn watched(&self, flag: u16) -> Option<&crate::watch::Hub> {
        self.watch
            .get()
            .filter(|h| h.flags() & flag != 0)
            .map(|h| &**h)
    }
}

/// The LRU parameters `lru tune` and `lru mode` change while the engine runs. Read with
/// relaxed loads on the LRU paths (a change takes effect at the next juggle).
pub(crate) struct LruTuning {
    hot_pct: AtomicU8,
    warm_pct: AtomicU8,
    /// `f64` bits.
    hot_factor: AtomicU64,
    warm_factor: AtomicU64,
    segmented: AtomicBool,
}

impl LruTuning {
    fn new(cfg: &EngineConfig) -> Self {
        LruTuning {
            hot_pct: AtomicU8::new(cfg.hot_lru_pct),
            warm_pct: AtomicU8::new(cfg.warm_lru_pct),
            hot_factor: AtomicU64::new(cfg.hot_max_factor.to_bits()),
            warm_factor: AtomicU64::new(cfg.warm_max_factor.to_bits()),
            segmented: AtomicBool::new(true),
        }
    }

    pub(crate) fn hot_pct(&self) -> u8 {
        self.hot_pct.load(Ordering::Relaxed)
    }

    pub(crate) fn warm_pct(&self) -> u8 {
        self.warm_pct.load(Ordering::Relaxed)
    }

    pub(crate) fn hot_factor(&self) -> f64 {
        f64::from_bits(self.hot_factor.load(Ordering::Relaxed))
    }

    pub(crate) fn warm_factor(&self) -> f64 {
        f64::from_bits(self.warm_factor.load(Ordering::Relaxed))
    }

    /// HOT/WARM/COLD (true) or memcached's "flat" mode (false: new items enter COLD).
    pub(crate) fn segmented(&self) -> bool {
        self.segmented.load(Ordering::Relaxed)
    }
}

/// Items `stats cachedump` looks at per shard (one lock hold, a few milliseconds at most);
/// its 2 MB reply holds fewer than that anyway.
const CACHEDUMP_VISITS_PER_SHARD: usize = 200_000;

/// The current segmented-LRU parameters ([`Engine::lru_params`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LruParams {
    /// HOT share of a class's bytes, percent.
    pub hot_lru_pct: u8,
    /// WARM share of a class's bytes, percent.
    pub warm_lru_pct: u8,
    /// HOT items older than the COLD tail's age times this move to COLD.
    pub hot_max_factor: f64,
    /// WARM items older than the COLD tail's age times this move to COLD.
    pub warm_max_factor: f64,
    /// Segmented (HOT/WARM/COLD) or flat (COLD only for new items).
    pub segmented: bool,
}

/// A shard lock on its own cache lines (no false sharing between shards).
#[repr(align(128))]
pub(crate) struct ShardCell(Mutex<Shard>);

impl std::ops::Deref for ShardCell {
    type Target = Mutex<Shard>;
    fn deref(&self) -> &Mutex<Shard> {
        &self.0
    }
}

impl Ctx {
    pub(crate) fn next_cas(&self) -> u64 {
        if self.cfg.cas_enabled {
            self.cas_counter.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        }
    }

    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        ((hash >> 32) as usize) & (self.shards.len() - 1)
    }

    /// memcached's `realtime()`.
    pub(crate) fn realtime(&self, exptime: i64) -> u32 {
        realtime(exptime, self.clock.now(), self.clock.process_started())
    }

    pub(crate) fn try_reserve_page(&self) -> bool {
        let limit = self.page_limit.load(Ordering::Relaxed);
        self.pages_used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| {
                (u < limit).then_some(u + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_page_budget(&self) {
        self.pages_used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// memcached's `ITEM_ntotal`: its 48-byte item header, the key and a NUL, 4 bytes of client
/// flags when they are not 0, the value and its CRLF, 8 bytes of CAS unless `-C`. memcached
/// refuses an item over the item size limit by this count and `me` reports it as `size`.
pub fn memcached_item_size(nkey: usize, flags: u32, vlen: usize, cas_enabled: bool) -> usize {
    let flags = if flags != 0 { 4 } else { 0 };
    let cas = if cas_enabled { 8 } else { 0 };
    48 + nkey + 1 + flags + vlen + 2 + cas
}

/// memcached's `realtime()`: converts a protocol exptime to relative time.
/// 0 = never (0); negative = already expired (1); up to 30 days = relative to
/// `now`; larger = absolute Unix time (1 if not after the process start).
pub fn realtime(exptime: i64, now: u32, process_started: i64) -> u32 {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        1
    } else if exptime > REALTIME_MAXDELTA {
        if exptime <= process_started {
            1
        } else {
            (exptime - process_started).min(i64::from(u32::MAX)) as u32
        }
    } else {
        (exptime + i64::from(now)).min(i64::from(u32::MAX)) as u32
    }
}

/// The storage engine. `Send + Sync`; share it with `Arc<Engine>`.
pub struct Engine {
    ctx: Ctx,
    automove: Mutex<stats::AutomoveState>,
    leases: LeaseTable,
    /// Counter values at the last [`Engine::reset_stats`].
    baseline: Mutex<stats::Baseline>,
}

/// What [`Engine::lease_get`] found.
pub enum LeaseView<'v, 'a> {
    /// The item exists: answer it as `get` does.
    Hit(&'v ItemView<'a>),
    /// A miss: `LVALUE` with this token and stale copy.
    Miss(LeaseMiss<'v>),
}

impl Engine {
    /// Creates an engine. No memory is allocated for items until they are stored.
    pub fn new(cfg: EngineConfig, clock: Arc<dyn Clock>) -> Result<Engine, ConfigError> {
        cfg.validate()?;
        let hdr_base = item::HDR_FIXED + if cfg.cas_enabled { 8 } else { 0 };
        let classes = slab::build_classes(&cfg, hdr_base);
        let max_perslab = classes.iter().map(|c| c.perslab).max().unwrap_or(1);
        let slot_bits = 32 - (max_perslab.max(2) - 1).leading_zeros();
        // Chunk ids must leave room for page numbers (and NIL).
        let max_pages = ((1usize << (32 - slot_bits)) - 2).max(1);
        let page_limit = (cfg.memory_limit / cfg.page_size).min(max_pages);
        // Pages belong to shards: every shard must be able to hold a page of every class,
        // or a workload spread over many classes makes the shards steal each other's pages
        // and evict far below the limit (-m 64 with 8 shards kept 220 of 480 items of 30
        // sizes; memcached kept all). Small budgets get fewer shards (-m 64: one).
        let mut nshards = cfg.shards.max(1).next_power_of_two();
        while nshards > 1 && nshards * classes.len() > page_limit {
            nshards /= 2;
        }
        let shard_power = (u32::from(cfg.hashpower_init))
            .saturating_sub(nshards.trailing_zeros())
            .clamp(4, 30) as u8;
        let shards = (0..nshards)
            .map(|i| {
                ShardCell(Mutex::new(Shard::new(
                    i,
                    classes.len(),
                    slot_bits,
                    shard_power,
                    classes.iter().map(|c| c.size).collect(),
                )))
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let automove = AtomicU8::new(cfg.slab_automove);
        let lru = LruTuning::new(&cfg);
        let leases = LeaseTable::new(cfg.memory_limit);
        Ok(Engine {
            leases,
            ctx: Ctx {
                cfg,
                clock,
                classes,
                hdr_base,
                cas_counter: AtomicU64::new(0),
                pages_used: AtomicUsize::new(0),
                page_limit: AtomicUsize::new(page_limit),
                oldest_live: AtomicU32::new(0),
                oldest_cas: AtomicU64::new(0),
                automove,
                reassign_running: AtomicBool::new(false),
                slabs_moved: AtomicU64::new(0),
                lru,
                hasher: ahash::RandomState::with_seeds(
                    0x243f_6a88_85a3_08d3,
                    0x1319_8a2e_0370_7344,
                    0xa409_3822_299f_31d0,
                    0x082e_fa98_ec4e_6c89,
                ),
                shards,
                watch: std::sync::OnceLock::new(),
            },
            automove: Mutex::new(stats::AutomoveState::default()),
            baseline: Mutex::new(stats::Baseline::default()),
        })
    }

    /// Log item events (fetches, stores, evictions) to `hub`'s watchers (`watch`). Set once.
    pub fn set_watch(&self, hub: Arc<crate::watch::Hub>) {
        let _ = self.ctx.watch.set(hub);
    }

    /// The configuration in effect (memory limit and automove may have changed since).
    pub fn config(&self) -> &EngineConfig {
        &self.ctx.cfg
    }

    /// The clock the engine uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ctx.clock
    }

    /// memcached's `realtime()` with this engine's clock (see [`realtime`]).
    pub fn realtime(&self, exptime: i64) -> u32 {
        self.ctx.realtime(exptime)
    }

    /// The remaining TTL (`mg t`) of an item given protocol exptime `exptime` now.
    pub fn ttl_for(&self, exptime: i64) -> i64 {
        match self.ctx.realtime(exptime) {
            0 => -1,
            e => i64::from(e) - i64::from(self.ctx.clock.now()),
        }
    }

    /// Number of shards actually used.
    pub fn shard_count(&self) -> usize {
        self.ctx.shards.len()
    }

    /// Chunk size of each slab class (index 0 = memcached class id 1).
    pub fn class_sizes(&self) -> Vec<u32> {
        self.ctx.classes.iter().map(|c| c.size).collect()
    }

    /// Largest value (bytes) storable with a key of `key_len` bytes and non-zero
    /// flags and exptime.
    pub fn max_value_len(&self, key_len: usize) -> usize {
        let max = self.ctx.cfg.max_item_size;
        let ours = max.saturating_sub(self.ctx.hdr_base + 8 + item::CHAIN_EXT + key_len);
        let memcacheds =
            max.saturating_sub(memcached_item_size(key_len, 1, 0, self.ctx.cfg.cas_enabled));
        ours.min(memcacheds)
    }

    fn shard_for(&self, key: &[u8]) -> (u64, parking_lot::MutexGuard<'_, Shard>) {
        let h = self.ctx.hash(key);
        (h, self.ctx.shards[self.ctx.shard_of(h)].lock())
    }

    /// set/add/replace/append/prepend/cas and `ms`.
    ///
    /// Like every write, it voids the key's outstanding lease token.
    pub fn store(&self, req: &StoreRequest<'_>) -> StoreOutcome {
        let mut lease = self.leases.lock(req.key);
        let (h, mut s) = self.shard_for(req.key);
        let r = s.store(&self.ctx, h, req);
        lease.invalidate(req.key);
        r
    }

    /// mcrouter's `lease-get`: a hit calls `f` with [`LeaseView::Hit`]; a
    /// miss hands out the key's token for this window of `lease_ttl` seconds
    /// (the first miss gets a fresh token > 1, the others [`HOT_MISS_TOKEN`]),
    /// with the stale copy a delete kept, if any.
    pub fn lease_get<R>(
        &self,
        key: &[u8],
        lease_ttl: u32,
        f: impl FnOnce(LeaseView<'_, '_>) -> R,
    ) -> R {
        let mut lease = self.leases.lock(key);
        {
            let (h, mut s) = self.shard_for(key);
            if let Some(view) = s.fetch(&self.ctx, h, key, &GetOptions::get()) {
                return f(LeaseView::Hit(&view));
            }
        }
        let now = self.ctx.clock.now();
        f(LeaseView::Miss(lease.miss(key, now, lease_ttl)))
    }

    /// mcrouter's `lease-set`: stores (as `set`) only while `token` is the
    /// key's live lease token; `None` (`NOT_STORED`) otherwise.
    pub fn lease_set(&self, token: u64, req: &StoreRequest<'_>) -> Option<StoreOutcome> {
        let mut lease = self.leases.lock(req.key);
        if !lease.token_valid(req.key, token, self.ctx.clock.now()) {
            return None;
        }
        let (h, mut s) = self.shard_for(req.key);
        let r = s.store(&self.ctx, h, req);
        if r.status == StoreStatus::Stored {
            lease.invalidate(req.key);
        }
        Some(r)
    }

    /// Lease table entries and stale bytes held (outside the `-m` budget).
    pub fn lease_usage(&self) -> (usize, usize) {
        self.leases.usage()
    }

    /// Fetches an item (get/gets/gat/gats/mg). On a hit (or a vivified miss)
    /// calls `f` with a view of the item while the shard lock is held and
    /// returns `Some(f(..))`; on a miss returns `None`. Expired and flushed
    /// items are reclaimed here and reported as misses. Keep `f` short.
    pub fn get<R>(
        &self,
        key: &[u8],
        opts: &GetOptions,
        f: impl FnOnce(&ItemView<'_>) -> R,
    ) -> Option<R> {
        let (h, mut s) = self.shard_for(key);
        let view = s.fetch(&self.ctx, h, key, opts)?;
        Some(f(&view))
    }

    /// Whether a live item exists, without touching LRU or access info.
    pub fn contains(&self, key: &[u8]) -> bool {
        let (h, mut s) = self.shard_for(key);
        s.peek(&self.ctx, h, key)
    }

    /// `delete` and `md`.
    ///
    /// Voids the key's lease token; with `opts.keep_stale` the removed value
    /// is kept in the lease table for `lease-get` hot misses.
    pub fn delete(&self, key: &[u8], opts: &DeleteOptions) -> DeleteOutcome {
        let mut lease = self.leases.lock(key);
        let (h, mut s) = self.shard_for(key);
        let mut copy = None;
        if opts.keep_stale > 0 && !opts.invalidate {
            let peek = GetOptions {
                no_bump: true,
                ..GetOptions::default()
            };
            // Not a lookup of memcached's: `watch` does not see it.
            copy = crate::watch::quiet(|| {
                let view = s.fetch(&self.ctx, h, key, &peek)?;
                (view.value_len() <= MAX_STALE_VALUE && opts.cas.is_none_or(|c| c == view.cas()))
                    .then(|| {
                        let mut v = Vec::with_capacity(view.value_len());
                        view.copy_value_into(&mut v);
                        (view.flags(), v)
                    })
            });
        }
        let r = s.delete(&self.ctx, h, key, opts);
        drop(s);
        match (r, copy) {
            (DeleteOutcome::Deleted, Some((flags, v))) => {
                let now = self.ctx.clock.now();
                lease.keep_stale(key, flags, &v, now, opts.keep_stale);
            }
            _ => lease.invalidate(key),
        }
        r
    }

    /// `touch`: sets a new exptime. Returns false if the key is missing.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        self.get(key, &GetOptions::touch(exptime), |_| ()).is_some()
    }

    /// `incr`/`decr`/`ma`. Values are parsed like memcached's `safe_strtoull`;
    /// a shorter result is padded with spaces in place (as memcached does), a
    /// longer one reallocates the item.
    pub fn arith(&self, req: &ArithRequest<'_>) -> ArithOutcome {
        let mut lease = self.leases.lock(req.key);
        let (h, mut s) = self.shard_for(req.key);
        let r = s.arith(&self.ctx, h, req);
        lease.invalidate(req.key);
        r
    }

    /// `flush_all [delay]`: items last updated before the flush time become
    /// invalid (lazily; the crawler reclaims them). A positive delay sets the
    /// flush time in the future (memcached's `oldest_live` rules, including
    /// the 1-second granularity).
    pub fn flush_all(&self, delay: i64) {
        self.leases.clear();
        let now = self.ctx.clock.now();
        let new_oldest = if delay > 0 {
            self.ctx.realtime(delay)
        } else {
            now
        };
        if self.ctx.cfg.cas_enabled {
            let ol = new_oldest.saturating_sub(1);
            self.ctx.oldest_live.store(ol, Ordering::SeqCst);
            if ol <= now {
                // Like memcached 1.6, an immediate flush takes a CAS id of its own: items
                // with a lower CAS are gone, and the next store gets the id after it.
                let next = self.ctx.next_cas();
                self.ctx.oldest_cas.store(next, Ordering::SeqCst);
            }
        } else {
            self.ctx.oldest_live.store(new_oldest, Ordering::SeqCst);
        }
    }

    /// Bytes of pages allocated (`total_malloced`); never above the limit.
    pub fn memory_used(&self) -> usize {
        self.ctx.pages_used.load(Ordering::Relaxed) * self.ctx.cfg.page_size
    }

    /// Current memory limit in bytes (`limit_maxbytes`).
    pub fn memory_limit(&self) -> usize {
        self.ctx.page_limit.load(Ordering::Relaxed) * self.ctx.cfg.page_size
    }

    /// Bytes used by the hash tables (outside the memory limit, `hash_bytes`).
    pub fn hash_bytes(&self) -> usize {
        self.ctx.shards.iter().map(|s| s.lock().hash_bytes()).sum()
    }

    /// `cache_memlimit`: changes the memory limit. Shrinking releases pages
    /// (evicting their items) on later [`Engine::automove_tick`] calls.
    pub fn set_memory_limit(&self, bytes: usize) {
        let pages = (bytes / self.ctx.cfg.page_size).max(1);
        self.ctx.page_limit.store(pages, Ordering::SeqCst);
    }

    /// `slabs automove 0|1|2`. Values above 2 are clamped to 2.
    pub fn set_automove(&self, mode: u8) {
        self.ctx.automove.store(mode.min(2), Ordering::SeqCst);
    }

    /// The segmented-LRU parameters in force.
    pub fn lru_params(&self) -> LruParams {
        let l = &self.ctx.lru;
        LruParams {
            hot_lru_pct: l.hot_pct(),
            warm_lru_pct: l.warm_pct(),
            hot_max_factor: l.hot_factor(),
            warm_max_factor: l.warm_factor(),
            segmented: l.segmented(),
        }
    }

    /// `lru tune`: new HOT/WARM size shares (percent) and age factors, used from the
    /// next juggle on. The caller checks them (memcached: `hot + warm <= 80`, factors > 0).
    pub fn set_lru_tune(&self, hot_pct: u8, warm_pct: u8, hot_factor: f64, warm_factor: f64) {
        let l = &self.ctx.lru;
        l.hot_pct.store(hot_pct, Ordering::Relaxed);
        l.warm_pct.store(warm_pct, Ordering::Relaxed);
        l.hot_factor.store(hot_factor.to_bits(), Ordering::Relaxed);
        l.warm_factor
            .store(warm_factor.to_bits(), Ordering::Relaxed);
    }

    /// `lru mode segmented|flat`: in flat mode new items enter COLD (memcached's
    /// compat mode) and fetches only refresh an item's place there; items already in
    /// HOT/WARM drain to COLD as usual.
    pub fn set_lru_segmented(&self, segmented: bool) {
        self.ctx.lru.segmented.store(segmented, Ordering::Relaxed);
    }

    /// `stats cachedump <class> <limit>`: the items of memcached class `class_id`'s COLD
    /// LRU (what memcached 1.6 walks), shard by shard from the head (most recently
    /// moved in) towards the tail, expired ones included as in memcached. `f` gets the
    /// key, the value length and the absolute expiration time (Unix seconds, 0 = never)
    /// and returns whether to go on. Each shard is locked while it is walked.
    pub fn cachedump(&self, class_id: usize, mut f: impl FnMut(&[u8], usize, i64) -> bool) {
        let Some(cls) = class_id.checked_sub(1) else {
            return;
        };
        if cls >= self.ctx.classes.len() {
            return;
        }
        for cell in self.ctx.shards.iter() {
            if !cell
                .lock()
                .cold_walk(&self.ctx, cls, CACHEDUMP_VISITS_PER_SHARD, &mut f)
            {
                return;
            }
        }
    }

    /// `slabs reassign <src> <dst>`: moves one page from class `src` (memcached
    /// id; -1 = any class with a spare page) to class `dst`, rescuing its
    /// items into free chunks of `src` where possible and evicting the rest.
    /// Synchronous.
    pub fn slabs_reassign(&self, src: i32, dst: i32) -> ReassignOutcome {
        shard::slabs_reassign(&self.ctx, src, dst)
    }

    /// LRU maintainer tick (call every ~10-1000 ms from a background thread):
    /// applies queued COLD->WARM bumps, juggles HOT/WARM/COLD of every class,
    /// reclaims expired items found at the tails, advances hash migrations.
    pub fn lru_maintainer_tick(&self) -> WorkReport {
        let mut r = WorkReport::default();
        for s in self.ctx.shards.iter() {
            let w = s.lock().maintain(&self.ctx);
            r.moved += w.moved;
            r.reclaimed += w.reclaimed;
        }
        r
    }

    /// LRU crawler step: examines up to `budget` chunks (resuming where the
    /// previous call stopped) and reclaims expired and flushed items. Does
    /// nothing when the crawler is disabled in the config.
    pub fn crawler_step(&self, budget: usize) -> WorkReport {
        let mut r = WorkReport::default();
        if !self.ctx.cfg.lru_crawler {
            return r;
        }
        let per = budget.div_ceil(self.ctx.shards.len()).max(1);
        for s in self.ctx.shards.iter() {
            let w = s.lock().crawl(&self.ctx, per);
            r.checked += w.checked;
            r.reclaimed += w.reclaimed;
        }
        r
    }

    /// Slab automove tick (call about once per second): releases pages when
    /// the memory limit shrank, and with automove on moves pages from classes
    /// with old items (or many free chunks) to classes evicting young items.
    pub fn automove_tick(&self) -> WorkReport {
        let mut st = self.automove.lock();
        shard::automove_tick(&self.ctx, &mut st)
    }

    /// Global counters for `stats`, counted since the last [`Engine::reset_stats`].
    pub fn stats(&self) -> EngineStats {
        let raw = stats::collect(&self.ctx);
        raw.since(&self.baseline.lock().engine)
    }

    /// Global counters since the engine started, never reset (for monotonic metrics).
    pub fn raw_stats(&self) -> EngineStats {
        stats::collect(&self.ctx)
    }

    /// Per-class rows for `stats slabs` and `stats items` (only classes that
    /// have pages or items), counted since the last [`Engine::reset_stats`].
    pub fn class_stats(&self) -> Vec<ClassStats> {
        let mut rows = stats::collect_classes(&self.ctx);
        let base = self.baseline.lock();
        for r in rows.iter_mut() {
            if let Some(b) = base.classes.get(usize::from(r.id) - 1) {
                *r = r.since(b);
            }
        }
        rows
    }

    /// Like [`Engine::class_stats`], never reset (for monotonic metrics).
    pub fn raw_class_stats(&self) -> Vec<ClassStats> {
        stats::collect_classes(&self.ctx)
    }

    /// `stats reset`: from now on [`Engine::stats`] and [`Engine::class_stats`] count
    /// from zero the fields memcached 1.6.18 resets (see `EngineStats::since`). The raw
    /// counters are untouched.
    pub fn reset_stats(&self) {
        let engine = stats::collect(&self.ctx);
        let classes = stats::collect_all_classes(&self.ctx);
        *self.baseline.lock() = stats::Baseline { engine, classes };
    }

    /// `stats sizes`: item count per 32-byte bucket of total item size
    /// (walks all items; admin use only).
    pub fn size_histogram(&self) -> Vec<SizeBucket> {
        stats::size_histogram(&self.ctx)
    }
}
