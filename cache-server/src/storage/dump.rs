//! Walking every item without holding a lock for long: the engine side of
//! `lru_crawler metadump` / `mgdump`.
//!
//! A [`DumpCursor`] is a position in a fixed total order of keys: shard index,
//! then the key's *order key* inside the shard (its hash with the low 32 bits on
//! top; see `hashtable`). Each [`Engine::dump_step`] locks one shard, visits the
//! items whose order keys fall in the next stretch (about `slots` hash slots'
//! worth), and moves the cursor past it. Nothing is allocated per step and no
//! state is left in the engine, so a dump costs nothing while its client is slow.
//!
//! Guarantees, whatever happens between steps (stores, deletes, evictions, page
//! moves, hash table growth or shrinkage half done):
//!
//! - an item present for the whole dump is visited exactly once: its key's hash,
//!   and so its place in the order, never changes, and each stretch of the order
//!   is visited once, atomically under the shard lock (an item is in exactly one
//!   of the old and new tables while the index is migrating);
//! - no key is visited twice, even one deleted and stored again during the dump;
//! - an item stored or removed during the dump may or may not be visited
//!   (memcached gives the same guarantee);
//! - expired and flushed items are skipped (and left for the crawler).

use super::Engine;

/// A class filter that selects every class.
pub const ALL_CLASSES: u64 = u64::MAX;

/// One live item, as the dump reports it. Valid only inside the visitor.
#[derive(Clone, Copy, Debug)]
pub struct DumpItem<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Absolute expiration time (Unix seconds), -1 = never.
    pub exptime: i64,
    /// Last access time (Unix seconds).
    pub last_access: i64,
    /// CAS value (0 with `-C`).
    pub cas: u64,
    /// Fetched at least once.
    pub fetched: bool,
    /// memcached slab class id (1-based) of the item's head chunk.
    pub class_id: u8,
    /// Total item size: header + key + value, memcached's `ITEM_ntotal`.
    pub size: u64,
}

/// Where a dump stands. Create one per dump; feed it to [`Engine::dump_step`]
/// until that returns `false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpCursor {
    shard: usize,
    /// Order keys below this are done in `shard`.
    pos: u64,
    /// Bit `i` selects memcached class id `i` (1..=63).
    classes: u64,
    done: bool,
}

impl DumpCursor {
    /// A cursor at the start, visiting the classes whose bits are set in
    /// `classes` (bit `i` = class id `i`; [`ALL_CLASSES`] for all).
    pub fn new(classes: u64) -> Self {
        DumpCursor {
            shard: 0,
            pos: 0,
            classes,
            done: false,
        }
    }

    /// Every item has been visited.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Engine {
    /// Visits the next stretch of a dump: about `slots` hash slots of one shard
    /// (at least one), under that shard's lock only, calling `f` for each live
    /// item of the selected classes. Returns `false` once the dump is complete
    /// (this call may still have visited items). Keep `f` short: it runs with
    /// the shard locked.
    pub fn dump_step(
        &self,
        cur: &mut DumpCursor,
        slots: usize,
        mut f: impl FnMut(&DumpItem<'_>),
    ) -> bool {
        if cur.done {
            return false;
        }
        let ctx = &self.ctx;
        let Some(cell) = ctx.shards.get(cur.shard) else {
            cur.done = true;
            return false;
        };
        let shard = cell.lock();
        // A stretch of `slots` home slots of the current table.
        let shift = 64 - shard.hash.power();
        let width = (slots.max(1) as u128) << shift;
        let hi = u128::from(cur.pos) + width;
        shard.dump_range(ctx, cur.pos, hi, cur.classes, &mut f);
        drop(shard);
        if hi > u128::from(u64::MAX) {
            cur.shard += 1;
            cur.pos = 0;
            if cur.shard >= ctx.shards.len() {
                cur.done = true;
                return false;
            }
        } else {
            cur.pos = hi as u64;
        }
        true
    }
}
