//! Open-addressing hash index (linear probing) from key hash to chunk id, with
//! incremental resizing.
//!
//! Each slot is one tag byte (0 = empty, 1 = tombstone, 2..=255 = occupied,
//! derived from the top hash bits) plus one `u32` chunk id: 5 bytes per slot.
//! Keys are not stored here: a tag match is confirmed by comparing the key in
//! the arena (callback).
//!
//! An entry's home slot is the top bits of its *order key* ([`order_key`], the
//! hash rotated so that its low 32 bits come first), so slot order is order-key
//! order in every table size: when a table doubles, home slot `s` becomes `2s`
//! or `2s + 1`. [`HashIndex::scan_range`] uses this to visit every entry whose
//! order key lies in a range, whatever resizes happened between two calls: a
//! cursor over order keys (the `lru_crawler metadump` walk) sees each entry
//! present for the whole walk exactly once, and never sees a key twice.
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
    /// `64 - log2(capacity)`: the home slot is `order_key >> shift`.
    shift: u32,
    live: usize,
    used: usize,
}

impl Table {
    fn new(cap: usize) -> Table {
        debug_assert!(cap.is_power_of_two() && cap >= 2);
        Table {
            tags: vec![EMPTY; cap].into_boxed_slice(),
            ids: vec![0u32; cap].into_boxed_slice(),
            mask: cap - 1,
            shift: 64 - cap.trailing_zeros(),
            live: 0,
            used: 0,
        }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        (order_key(hash) >> self.shift) as usize
    }

    fn cap(&self) -> usize {
        self.mask + 1
    }

    fn bytes(&self) -> usize {
        self.cap() * 5
    }

    #[inline]
    fn find(&self, hash: u64, tag: u8, eq: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        let mut i = self.home(hash);
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
        let mut i = self.home(hash);
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

    /// Calls `f` for every entry whose order key is in `lo..hi` (`hi` up to 2^64).
    ///
    /// Linear probing keeps every entry within the run of non-empty slots that starts
    /// at its home slot (a slot only turns EMPTY again when the next one is EMPTY), so
    /// the entries homed in the range's slots are found by scanning those slots and
    /// then on, wrapping, up to the first EMPTY slot. Entries met there that are homed
    /// elsewhere are skipped by their order key.
    fn scan_range(
        &self,
        lo: u64,
        hi: u128,
        hash_of: &mut impl FnMut(u32) -> u64,
        f: &mut impl FnMut(u32),
    ) {
        if self.live == 0 || u128::from(lo) >= hi {
            return;
        }
        let first = (lo >> self.shift) as usize;
        // One past the last home slot that holds keys below `hi` (may be `cap`).
        let end = ((hi + (1u128 << self.shift) - 1) >> self.shift) as usize;
        // Never more than one lap: a table always has EMPTY slots (load <= 80%).
        for i in first..first + self.cap() {
            let slot = i & self.mask;
            let t = self.tags[slot];
            if t == EMPTY && i >= end {
                break;
            }
            if t > TOMB {
                let id = self.ids[slot];
                let k = order_key(hash_of(id));
                if k >= lo && u128::from(k) < hi {
                    f(id);
                }
            }
        }
    }
}

/// The key that orders entries for [`HashIndex::scan_range`]: the hash with its low
/// 32 bits on top (the high bits pick the shard and the tag, so they are nearly constant
/// within one table).
#[inline]
pub(crate) fn order_key(hash: u64) -> u64 {
    hash.rotate_left(32)
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

    /// Calls `f` for every entry whose [`order_key`] is in `lo..hi` (`hi` up to 2^64),
    /// in both tables while a resize is in progress (an entry is in exactly one of
    /// them). `hash_of` recomputes an entry's hash from its key.
    pub(crate) fn scan_range(
        &self,
        lo: u64,
        hi: u128,
        mut hash_of: impl FnMut(u32) -> u64,
        mut f: impl FnMut(u32),
    ) {
        self.cur.scan_range(lo, hi, &mut hash_of, &mut f);
        if let Some(old) = &self.old {
            old.scan_range(lo, hi, &mut hash_of, &mut f);
        }
    }

    /// log2 of the current table's capacity.
    pub(crate) fn power(&self) -> u32 {
        self.cur.cap().trailing_zeros()
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

    /// A small deterministic generator (no `rand` dependency).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const REPLACED: u32 = 1 << 31;

    fn key_of(id: u32) -> u32 {
        id & !REPLACED
    }

    fn hk(id: u32) -> u64 {
        h(key_of(id))
    }

    /// A cursor over order keys, stepped a few slots at a time while entries come and
    /// go and the table grows, shrinks and migrates between steps: every entry present
    /// for the whole walk is seen exactly once, and no key is seen twice.
    #[test]
    fn scan_cursor_exactly_once_across_resizes() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut t = HashIndex::new(4);
            // key -> current id
            let mut present: HashMap<u32, u32> = HashMap::new();
            let mut next_key = 0u32;
            let insert = |t: &mut HashIndex, present: &mut HashMap<u32, u32>, k: u32| {
                t.prepare_insert(hk);
                t.insert(h(k), k);
                present.insert(k, k);
            };
            let initial = 200 + rng.below(3000) as u32;
            for _ in 0..initial {
                insert(&mut t, &mut present, next_key);
                next_key += 1;
            }
            // Keys never removed during the walk (their id may be replaced).
            let stable: Vec<u32> = present
                .keys()
                .copied()
                .filter(|_| rng.below(2) == 0)
                .collect();
            let stable_set: std::collections::HashSet<u32> = stable.iter().copied().collect();
            let mut seen: HashMap<u32, u32> = HashMap::new();
            let mut ever: std::collections::HashSet<u32> = present.keys().copied().collect();
            let mut pos = 0u64;
            let mut resizes = 0;
            let mut caps = std::collections::HashSet::new();
            loop {
                let slots = 1 + rng.below(4) as u128;
                let hi = u128::from(pos) + (slots << (64 - t.power()));
                t.scan_range(pos, hi, hk, |id| *seen.entry(key_of(id)).or_default() += 1);
                if hi > u128::from(u64::MAX) {
                    break;
                }
                pos = hi as u64;
                // Churn between steps.
                let before = (t.capacity(), t.is_expanding());
                for _ in 0..rng.below(40) {
                    match rng.below(10) {
                        0..=4 => {
                            insert(&mut t, &mut present, next_key);
                            ever.insert(next_key);
                            next_key += 1;
                        }
                        5..=6 => {
                            // Remove a non-stable key (sometimes many: the table shrinks).
                            let n = if rng.below(400) == 0 { 300 } else { 1 };
                            let victims: Vec<u32> = present
                                .keys()
                                .copied()
                                .filter(|k| !stable_set.contains(k))
                                .take(n)
                                .collect();
                            for k in victims {
                                let id = present.remove(&k).unwrap();
                                assert!(t.remove(h(k), id));
                            }
                        }
                        7 => {
                            // Re-add a removed key: same hash, maybe another slot.
                            let k = rng.below(u64::from(next_key.max(1))) as u32;
                            if !present.contains_key(&k) {
                                insert(&mut t, &mut present, k);
                            }
                        }
                        8 => {
                            // Replace a stable key's id (a page move rescuing the item).
                            if !stable.is_empty() {
                                let k = stable[rng.below(stable.len() as u64) as usize];
                                let id = present[&k];
                                assert!(t.replace(h(k), id, id ^ REPLACED));
                                present.insert(k, id ^ REPLACED);
                            }
                        }
                        _ => t.migrate(rng.below(64) as usize, &mut hk),
                    }
                }
                if (t.capacity(), t.is_expanding()) != before || t.is_expanding() {
                    resizes += 1;
                }
                caps.insert(t.capacity());
            }
            for k in &stable {
                assert_eq!(seen.get(k), Some(&1), "seed {seed}: stable key {k}");
            }
            for (k, n) in &seen {
                assert_eq!(*n, 1, "seed {seed}: key {k} seen {n} times");
                assert!(ever.contains(k), "seed {seed}: key {k} never stored");
            }
            assert!(resizes > 0, "seed {seed}: no resize during the walk ({initial} initial, {next_key} keys, caps {caps:?}, present {})", present.len());
            let _ = caps;
        }
    }

    #[test]
    fn scan_whole_range_sees_everything_once() {
        let mut t = HashIndex::new(4);
        for k in 0..10_000u32 {
            t.prepare_insert(h);
            t.insert(h(k), k);
        }
        assert!(t.is_expanding() || t.capacity() >= 16384);
        let mut seen = vec![0u8; 10_000];
        t.scan_range(0, 1u128 << 64, h, |id| seen[id as usize] += 1);
        assert!(seen.iter().all(|&n| n == 1));
        // Many small ranges cover the same.
        let mut seen = vec![0u8; 10_000];
        let step = 1u128 << 50;
        let mut lo = 0u128;
        while lo < 1u128 << 64 {
            t.scan_range(lo as u64, lo + step, h, |id| seen[id as usize] += 1);
            lo += step;
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
