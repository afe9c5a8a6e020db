//! Open-addressing hash index (linear probing) from key hash to chunk id, with
//! incremental resizing.
//!
//! Each slot is one tag byte (0 = empty, 1 = tombstone, 2..=255 = occupied,
//! derived from the top hash bits) plus one `u32` chunk id: 5 bytes per slot.
//! Keys are not stored here: a tag match is confirmed by comparing the key in
//! the arena (callback).
//!
//! Resizing: when `live + tombstones` exceeds 80% of the slots, a new table
//! sized for `2 * live` is allocated and becomes current; the old one is only
//! read (and tombstoned) until [`HashIndex::migrate`] has moved all of its
//! entries, a bounded number of slots per call. Lookups probe the current
//! table, then the old one; inserts always go to the current table.

const EMPTY: u8 = 0;
const TOMB: u8 = 1;
/// Old-table slots migrated per insert while a resize is in progress.
const MIGRATE_PER_INSERT: usize = 32;

struct Table {
    tags: Box<[u8]>,
    ids: Box<[u32]>,
    mask: usize,
    live: usize,
    used: usize,
}

impl Table {
    fn new(cap: usize) -> Table {
        Table {
            tags: vec![EMPTY; cap].into_boxed_slice(),
            ids: vec![0u32; cap].into_boxed_slice(),
            mask: cap - 1,
            live: 0,
            used: 0,
        }
    }

    fn cap(&self) -> usize {
        self.mask + 1
    }

    fn bytes(&self) -> usize {
        self.cap() * 5
    }

    #[inline]
    fn find(&self, hash: u64, tag: u8, eq: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        let mut i = (hash as usize) & self.mask;
        loop {
            let t = self.tags[i];
            if t == EMPTY {
                return None;
            }
            if t == tag && eq(self.ids[i]) {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    fn find_id(&self, hash: u64, tag: u8, id: u32) -> Option<usize> {
        self.find(hash, tag, &mut |x| x == id)
    }

    fn insert(&mut self, hash: u64, tag: u8, id: u32) {
        let mut i = (hash as usize) & self.mask;
        loop {
            let t = self.tags[i];
            if t == EMPTY || t == TOMB {
                if t == EMPTY {
                    self.used += 1;
                }
                self.tags[i] = tag;
                self.ids[i] = id;
                self.live += 1;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn remove_at(&mut self, i: usize) {
        // A slot followed by an empty slot can become empty again.
        if self.tags[(i + 1) & self.mask] == EMPTY {
            self.tags[i] = EMPTY;
            self.used -= 1;
        } else {
            self.tags[i] = TOMB;
        }
        self.live -= 1;
    }

    fn over_threshold(&self) -> bool {
        (self.used + 1) * 5 > self.cap() * 4
    }
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    2 + ((hash >> 56) as u8 % 254)
}

/// The per-shard hash index.
pub(crate) struct HashIndex {
    cur: Table,
    old: Option<Table>,
    cursor: usize,
    min_cap: usize,
}

impl HashIndex {
    pub(crate) fn new(power: u8) -> Self {
        let cap = 1usize << power;
        HashIndex {
            cur: Table::new(cap),
            old: None,
            cursor: 0,
            min_cap: cap,
        }
    }

    /// Entries (live items).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cur.live + self.old.as_ref().map_or(0, |t| t.live)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.cur.bytes() + self.old.as_ref().map_or(0, |t| t.bytes())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cur.cap()
    }

    pub(crate) fn is_expanding(&self) -> bool {
        self.old.is_some()
    }

    /// Finds the id whose key matches (`eq` compares the key in the arena).
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        if let Some(i) = self.cur.find(hash, tag, &mut eq) {
            return Some(self.cur.ids[i]);
        }
        let old = self.old.as_ref()?;
        old.find(hash, tag, &mut eq).map(|i| old.ids[i])
    }

    /// Inserts an id whose key is known to be absent. Call
    /// [`HashIndex::prepare_insert`] first.
    pub(crate) fn insert(&mut self, hash: u64, id: u32) {
        self.cur.insert(hash, tag_of(hash), id);
    }

    /// Grows or migrates as needed so that one insert can follow.
    /// `hash_of` recomputes an entry's hash from its key.
    pub(crate) fn prepare_insert(&mut self, mut hash_of: impl FnMut(u32) -> u64) {
        if self.old.is_some() {
            self.migrate(MIGRATE_PER_INSERT, &mut hash_of);
        }
        if self.cur.over_threshold() {
            // Unreachable in practice: the new table has room for at least
            // 0.075 * cap more inserts, and migration needs cap / 32.
            if self.old.is_some() {
                self.migrate(usize::MAX, &mut hash_of);
            }
            let want = ((self.cur.live + 1) * 2)
                .next_power_of_two()
                .max(self.min_cap);
            let new = Table::new(want);
            let old = std::mem::replace(&mut self.cur, new);
            self.old = Some(old);
            self.cursor = 0;
            self.migrate(MIGRATE_PER_INSERT, &mut hash_of);
        }
    }

    /// Moves up to `slots` old-table slots into the current table.
    pub(crate) fn migrate(&mut self, slots: usize, hash_of: &mut impl FnMut(u32) -> u64) {
        let Some(old) = self.old.as_mut() else {
            return;
        };
        let end = old.cap().min(self.cursor.saturating_add(slots));
        for i in self.cursor..end {
            let t = old.tags[i];
            if t > TOMB {
                let id = old.ids[i];
                old.tags[i] = TOMB;
                old.live -= 1;
                self.cur.insert(hash_of(id), t, id);
            }
        }
        self.cursor = end;
        if self.cursor >= old.cap() || old.live == 0 {
            self.old = None;
            self.cursor = 0;
        }
    }

    /// Removes the entry for `id`. Returns false if absent.
    pub(crate) fn remove(&mut self, hash: u64, id: u32) -> bool {
        let tag = tag_of(hash);
        if let Some(i) = self.cur.find_id(hash, tag, id) {
            self.cur.remove_at(i);
            return true;
        }
        if let Some(old) = self.old.as_mut() {
            if let Some(i) = old.find_id(hash, tag, id) {
                // Never turn old slots back to EMPTY: the migration cursor and
                // probe chains rely on them.
                old.tags[i] = TOMB;
                old.live -= 1;
                return true;
            }
        }
        false
    }

    /// Replaces `old_id` by `new_id` (same key). Returns false if absent.
    pub(crate) fn replace(&mut self, hash: u64, old_id: u32, new_id: u32) -> bool {
        let tag = tag_of(hash);
        if let Some(i) = self.cur.find_id(hash, tag, old_id) {
            self.cur.ids[i] = new_id;
            return true;
        }
        if let Some(old) = self.old.as_mut() {
            if let Some(i) = old.find_id(hash, tag, old_id) {
                old.ids[i] = new_id;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn h(k: u32) -> u64 {
        let mut x = u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }

    #[test]
    fn grows_incrementally_and_keeps_entries() {
        let mut t = HashIndex::new(4);
        let mut max_old = 0;
        for k in 0..100_000u32 {
            t.prepare_insert(h);
            assert!(t.find(h(k), |id| id == k).is_none());
            t.insert(h(k), k);
            if t.is_expanding() {
                max_old = max_old.max(t.old.as_ref().unwrap().cap());
            }
            // every few inserts check an older key
            if k % 97 == 0 {
                let j = k / 2;
                assert_eq!(t.find(h(j), |id| id == j), Some(j));
            }
        }
        assert_eq!(t.len(), 100_000);
        assert!(max_old > 0, "resizes happened while inserting");
        for k in 0..100_000u32 {
            assert_eq!(t.find(h(k), |id| id == k), Some(k), "key {k}");
        }
        assert!(t.bytes() <= 5 * 262_144 * 2);
    }

    #[test]
    fn churn_keeps_table_small() {
        // Insert/delete churn with a bounded live set: tombstones trigger
        // same-size rehashes, never unbounded growth.
        let mut t = HashIndex::new(4);
        for k in 0..500_000u32 {
            t.prepare_insert(h);
            t.insert(h(k), k);
            if k >= 1000 {
                assert!(t.remove(h(k - 1000), k - 1000));
            }
        }
        assert_eq!(t.len(), 1000);
        assert!(t.capacity() <= 4096, "{}", t.capacity());
        for k in 499_000..500_000u32 {
            assert_eq!(t.find(h(k), |id| id == k), Some(k));
        }
    }

    #[test]
    fn remove_replace_during_migration() {
        let mut t = HashIndex::new(4);
        let mut model = HashMap::new();
        for k in 0..5000u32 {
            t.prepare_insert(|id| h(id % 1_000_000));
            t.insert(h(k), k);
            model.insert(k, k);
            if k % 3 == 0 {
                let j = k / 3;
                if let Some(id) = model.remove(&j) {
                    assert!(t.remove(h(j), id));
                }
            }
            if k % 5 == 0 && model.contains_key(&k) {
                // replace id k by k + 1_000_000 (same key hash)
                assert!(t.replace(h(k), k, k + 1_000_000));
                model.insert(k, k + 1_000_000);
            }
        }
        for (k, id) in &model {
            assert_eq!(t.find(h(*k), |x| x == *id), Some(*id));
        }
        assert_eq!(t.len(), model.len());
    }
}
