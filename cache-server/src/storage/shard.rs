//! One shard: its pages, slab classes, hash index and segmented LRUs, plus
//! every item operation. Called with the shard's lock held.

use std::sync::atomic::Ordering;

use super::hashtable::HashIndex;
use super::item::{
    self, header_len, Hdr, HdrMut, PartsIter, COLD, CONT_HDR, F_ACTIVE, F_BINKEY, F_CHAINED,
    F_CONT, F_FETCHED, F_FREE, F_HAS_EXP, F_HAS_FLAGS, F_LINKED, F_STALE, F_TOKEN, HOT, LRU_MASK,
    NIL, WARM,
};
use super::slab::{class_for, Arena, ChunkPool};
use super::stats::AutomoveState;
use super::{
    ArithOutcome, ArithRequest, Ctx, DeleteOptions, DeleteOutcome, GetOptions, ItemView,
    ReassignOutcome, StoreMode, StoreOutcome, StoreRequest, StoreStatus, ValueParts, WorkReport,
    ITEM_UPDATE_INTERVAL, KEY_MAX_LENGTH,
};
use crate::watch;

/// Capacity of the COLD->WARM bump queue per shard (memcached's bump buffer).
const BUMP_QUEUE: usize = 1024;
/// The append/prepend scratch buffer is dropped after use when it grew beyond this.
const SCRATCH_KEEP: usize = 64 * 1024;

/// A doubly linked LRU list (head = most recent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub head: u32,
    pub tail: u32,
    pub count: u64,
    pub bytes: u64,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            count: 0,
            bytes: 0,
        }
    }
}

/// Per-class counters (memcached's `itemstats_t` plus the slab command stats).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClassCounters {
    pub lru_hits: [u64; 4],
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub evicted_time: u32,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub outofmemory: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub moves_to_cold: u64,
    pub moves_to_warm: u64,
    pub moves_within_lru: u64,
    pub direct_reclaims: u64,
}

/// One slab class inside one shard.
pub(crate) struct Class {
    pub pool: ChunkPool,
    pub lru: [List; 3],
    pub requested: u64,
    pub c: ClassCounters,
}

impl Class {
    fn items(&self) -> u64 {
        self.lru.iter().map(|l| l.count).sum()
    }
}

/// Shard-wide counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ShardCounters {
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
    pub lru_bumps_dropped: u64,
    pub reassign_rescues: u64,
    pub reassign_evictions_nomem: u64,
    pub pages_stolen: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pull {
    /// Maintainer juggle with the class's byte total and max age for this list.
    Juggle { total: u64, max_age: u32 },
    /// Allocation pressure: evict from COLD.
    Evict,
    /// Allocation pressure: move the HOT/WARM tail to COLD regardless of limits.
    Force,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dead {
    Expired,
    Flushed,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AllocErr {
    TooLarge,
    NoMemory,
}

/// Cursor over the value parts being written into a new item.
struct Src<'a> {
    parts: [&'a [u8]; 2],
    i: usize,
    off: usize,
}

impl<'a> Src<'a> {
    fn new(a: &'a [u8], b: &'a [u8]) -> Self {
        Src {
            parts: [a, b],
            i: 0,
            off: 0,
        }
    }
    fn fill(&mut self, dst: &mut [u8]) -> usize {
        let mut n = 0;
        while n < dst.len() && self.i < 2 {
            let p = self.parts[self.i];
            let take = (p.len() - self.off).min(dst.len() - n);
            dst[n..n + take].copy_from_slice(&p[self.off..self.off + take]);
            n += take;
            self.off += take;
            if self.off == p.len() {
                self.i += 1;
                self.off = 0;
            }
        }
        n
    }
}

/// memcached's `safe_strtoull` on a value (which there is followed by "\r\n").
pub(crate) fn parse_u64(v: &[u8]) -> Option<u64> {
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut i = 0;
    while i < v.len() && is_space(v[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < v.len() && (v[i] == b'+' || v[i] == b'-') {
        neg = v[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut x: u64 = 0;
    while i < v.len() && v[i].is_ascii_digit() {
        x = x.checked_mul(10)?.checked_add(u64::from(v[i] - b'0'))?;
        i += 1;
    }
    if i == start {
        return None;
    }
    if i < v.len() && !is_space(v[i]) {
        return None;
    }
    if neg {
        let r = x.wrapping_neg();
        if (r as i64) < 0 {
            return None;
        }
        return Some(r);
    }
    Some(x)
}

pub(crate) struct Shard {
    pub idx: usize,
    pub arena: Arena,
    pub classes: Vec<Class>,
    pub hash: HashIndex,
    pub g: ShardCounters,
    scratch: Vec<u8>,
    bumps: Vec<u32>,
    crawl_page: u32,
    crawl_slot: u32,
}

impl Shard {
    pub(crate) fn new(
        idx: usize,
        nclasses: usize,
        slot_bits: u32,
        hashpower: u8,
        sizes: Vec<u32>,
    ) -> Self {
        Shard {
            idx,
            arena: Arena::new(slot_bits, sizes),
            classes: (0..nclasses)
                .map(|_| Class {
                    pool: ChunkPool::new(),
                    lru: [List::default(); 3],
                    requested: 0,
                    c: ClassCounters::default(),
                })
                .collect(),
            hash: HashIndex::new(hashpower),
            g: ShardCounters::default(),
            scratch: Vec::new(),
            bumps: Vec::new(),
            crawl_page: 0,
            crawl_slot: 0,
        }
    }

    pub(crate) fn hash_bytes(&self) -> usize {
        self.hash.bytes()
    }

    // ---------------------------------------------------------------- access

    #[inline]
    fn hdr(&self, ctx: &Ctx, id: u32) -> Hdr<'_> {
        Hdr::new(self.arena.chunk(id), ctx.hdr_base)
    }

    #[inline]
    fn hdr_mut(&mut self, ctx: &Ctx, id: u32) -> HdrMut<'_> {
        HdrMut::new(self.arena.chunk_mut(id), ctx.hdr_base)
    }

    /// Total bytes of an item (header + key + value), memcached's `ITEM_ntotal`.
    fn ntotal(&self, ctx: &Ctx, id: u32) -> u64 {
        let h = self.hdr(ctx, id);
        (h.hlen() + h.nkey() + h.value_len()) as u64
    }

    fn lookup(&self, ctx: &Ctx, hash: u64, key: &[u8]) -> Option<u32> {
        let arena = &self.arena;
        let base = ctx.hdr_base;
        self.hash
            .find(hash, |id| Hdr::new(arena.chunk(id), base).key() == key)
    }

    fn dead(&self, ctx: &Ctx, id: u32, now: u32) -> Option<Dead> {
        let h = self.hdr(ctx, id);
        let ol = ctx.oldest_live.load(Ordering::Relaxed);
        if ol != 0 && ol <= now {
            let oc = ctx.oldest_cas.load(Ordering::Relaxed);
            let cas = h.cas();
            if h.time() <= ol || (oc != 0 && cas != 0 && cas < oc) {
                return Some(Dead::Flushed);
            }
        }
        let e = h.exptime();
        if e != 0 && e <= now {
            return Some(Dead::Expired);
        }
        None
    }

    /// memcached's `do_item_get` without the bump: finds a live item,
    /// unlinking it if expired or flushed.
    /// Logs an `item_get` line for `watch fetchers`, as memcached's does.
    fn find_live(&mut self, ctx: &Ctx, hash: u64, key: &[u8], now: u32) -> Option<u32> {
        let r = self.find_live_quiet(ctx, hash, key, now);
        if let Some((hub, cfd)) = ctx.watching(watch::FETCHERS) {
            let (status, cls, size) = match r {
                Ok(id) => (
                    watch::GetStatus::Found,
                    self.arena.class_of(id) as u8 + 1,
                    self.hdr(ctx, id).value_len(),
                ),
                Err(None) => (watch::GetStatus::NotFound, 0, 0),
                Err(Some(Dead::Expired)) => (watch::GetStatus::Expired, 0, 0),
                Err(Some(Dead::Flushed)) => (watch::GetStatus::Flushed, 0, 0),
            };
            hub.emit(watch::FETCHERS, |o| {
                watch::push_item_get(o, key, status, cls, cfd, size)
            });
        }
        r.ok()
    }

    fn find_live_quiet(
        &mut self,
        ctx: &Ctx,
        hash: u64,
        key: &[u8],
        now: u32,
    ) -> Result<u32, Option<Dead>> {
        let id = self.lookup(ctx, hash, key).ok_or(None)?;
        match self.dead(ctx, id, now) {
            None => Ok(id),
            Some(d) => {
                match d {
                    Dead::Expired => self.g.get_expired += 1,
                    Dead::Flushed => self.g.get_flushed += 1,
                }
                self.unlink_item(ctx, id);
                Err(Some(d))
            }
        }
    }

    pub(crate) fn peek(&mut self, ctx: &Ctx, hash: u64, key: &[u8]) -> bool {
        let now = ctx.clock.now();
        self.find_live(ctx, hash, key, now).is_some()
    }

    // ------------------------------------------------------------------- LRU

    fn lru_link(&mut self, ctx: &Ctx, id: u32, cls: usize, lru: u16) {
        let nt = self.ntotal(ctx, id);
        let head = self.classes[cls].lru[lru as usize].head;
        {
            let mut h = self.hdr_mut(ctx, id);
            h.set_lru(lru);
            h.set_prev(NIL);
            h.set_next(head);
        }
        if head != NIL {
            self.hdr_mut(ctx, head).set_prev(id);
        }
        let l = &mut self.classes[cls].lru[lru as usize];
        l.head = id;
        if l.tail == NIL {
            l.tail = id;
        }
        l.count += 1;
        l.bytes += nt;
    }

    fn lru_unlink(&mut self, ctx: &Ctx, id: u32, cls: usize) {
        let nt = self.ntotal(ctx, id);
        let (lru, prev, next) = {
            let h = self.hdr(ctx, id);
            (h.flags() & LRU_MASK, h.prev(), h.next())
        };
        if prev != NIL {
            self.hdr_mut(ctx, prev).set_next(next);
        }
        if next != NIL {
            self.hdr_mut(ctx, next).set_prev(prev);
        }
        let l = &mut self.classes[cls].lru[lru as usize];
        if l.head == id {
            l.head = next;
        }
        if l.tail == id {
            l.tail = prev;
        }
        l.count -= 1;
        l.bytes -= nt;
    }

    fn lru_move(&mut self, ctx: &Ctx, id: u32, cls: usize, to: u16) {
        self.lru_unlink(ctx, id, cls);
        self.lru_link(ctx, id, cls, to);
    }

    // ------------------------------------------------------- link / unlink

    /// Links a freshly written item: hash, LRU (HOT), CAS, counters.
    fn link_new(&mut self, ctx: &Ctx, id: u32, hash: u64, cas: Option<u64>) {
        let arena = &self.arena;
        let base = ctx.hdr_base;
        self.hash
            .prepare_insert(|x| ctx.hash(Hdr::new(arena.chunk(x), base).key()));
        self.hash.insert(hash, id);
        self.finish_link(ctx, id, cas);
    }

    fn finish_link(&mut self, ctx: &Ctx, id: u32, cas: Option<u64>) {
        let cls = self.arena.class_of(id);
        let cas = if ctx.cfg.cas_enabled {
            cas.unwrap_or_else(|| ctx.next_cas())
        } else {
            0
        };
        {
            let mut h = self.hdr_mut(ctx, id);
            h.or_flags(F_LINKED);
            h.set_cas(cas);
        }
        // Juggle before linking so the new item itself is never touched
        // (callers keep using its id).
        self.juggle_once(ctx, cls);
        let lru = if ctx.lru.segmented() { HOT } else { COLD };
        self.lru_link(ctx, id, cls, lru);
        let nt = self.ntotal(ctx, id);
        self.g.curr_items += 1;
        self.g.total_items += 1;
        self.g.bytes += nt;
        self.classes[cls].requested += nt;
    }

    /// Replaces a linked item by a new one with the same key.
    fn replace_item(&mut self, ctx: &Ctx, old: u32, new: u32, hash: u64, cas: Option<u64>) {
        let ok = self.hash.replace(hash, old, new);
        debug_assert!(ok, "replaced item must be indexed");
        self.unlink_rest(ctx, old);
        self.finish_link(ctx, new, cas);
    }

    /// Removes an item from the index and LRU and frees its chunks.
    fn unlink_item(&mut self, ctx: &Ctx, id: u32) {
        let hash = ctx.hash(self.hdr(ctx, id).key());
        let ok = self.hash.remove(hash, id);
        debug_assert!(ok, "linked item must be indexed");
        self.unlink_rest(ctx, id);
    }

    fn unlink_rest(&mut self, ctx: &Ctx, id: u32) {
        let cls = self.arena.class_of(id);
        let nt = self.ntotal(ctx, id);
        self.lru_unlink(ctx, id, cls);
        self.g.curr_items -= 1;
        self.g.bytes -= nt;
        self.classes[cls].requested -= nt;
        self.free_item_chunks(ctx, id);
    }

    /// Frees the head chunk and the chain of an (unlinked or never linked) item.
    fn free_item_chunks(&mut self, ctx: &Ctx, id: u32) {
        let cls = self.arena.class_of(id);
        let mut c = self.hdr(ctx, id).first_cont();
        self.classes[cls].pool.free(&mut self.arena, id);
        while c != NIL {
            let next = item::cont_next(self.arena.chunk(c));
            let cc = self.arena.class_of(c);
            self.classes[cc].pool.free(&mut self.arena, c);
            c = next;
        }
    }

    // ------------------------------------------------------------ allocation

    /// Gets a page for `cls` within the budget.
    fn grow_class(&mut self, ctx: &Ctx, cls: usize) -> bool {
        if !ctx.try_reserve_page() {
            return false;
        }
        let mem = vec![0u8; ctx.cfg.page_size].into_boxed_slice();
        self.adopt_page(ctx, mem, cls);
        true
    }

    fn adopt_page(&mut self, ctx: &Ctx, mem: Box<[u8]>, cls: usize) {
        let no = self.arena.add_page(mem, cls);
        self.classes[cls]
            .pool
            .add_page(no, ctx.classes[cls].perslab, &mut self.arena);
    }

    /// One chunk of class `cls`, evicting or taking pages as memcached's
    /// `do_item_alloc_pull` would.
    fn alloc_chunk(&mut self, ctx: &Ctx, cls: usize) -> Option<u32> {
        for i in 0..10u64 {
            if let Some(id) = self.classes[cls].pool.alloc(&mut self.arena) {
                self.classes[cls].c.direct_reclaims += i;
                return Some(id);
            }
            if self.grow_class(ctx, cls) {
                continue;
            }
            if self.pull_tail(ctx, cls, COLD, Pull::Evict) > 0 {
                continue;
            }
            let mut moved = self.pull_tail(ctx, cls, HOT, Pull::Force);
            if moved == 0 {
                moved = self.pull_tail(ctx, cls, WARM, Pull::Force);
            }
            if moved > 0 {
                continue;
            }
            // Nothing of this class to evict here: take a page elsewhere.
            if !ctx.cfg.evict || self.classes[cls].items() > 0 || !self.steal_page(ctx, cls) {
                break;
            }
        }
        self.classes[cls].c.outofmemory += 1;
        None
    }

    /// Allocates and writes an unlinked item. `a` then `b` form the value.
    #[allow(clippy::too_many_arguments)]
    fn alloc_item(
        &mut self,
        ctx: &Ctx,
        key: &[u8],
        a: &[u8],
        b: &[u8],
        flags: u32,
        exptime: u32,
        now: u32,
    ) -> Result<u32, AllocErr> {
        let vlen = a.len() + b.len();
        let mut bits = 0u16;
        if exptime != 0 {
            bits |= F_HAS_EXP;
        }
        if flags != 0 {
            bits |= F_HAS_FLAGS;
        }
        let total = header_len(ctx.hdr_base, bits) + key.len() + vlen;
        // Our own header is smaller than memcached's, so memcached's size is the bound that
        // decides.
        let memcached_total = memcached_ntotal(ctx, key.len(), flags, vlen);
        if total.max(memcached_total) > ctx.cfg.max_item_size || key.len() > KEY_MAX_LENGTH {
            return Err(AllocErr::TooLarge);
        }
        let (cls, chained) = match class_for(&ctx.classes, total) {
            Some(c) => (c, false),
            None => {
                bits |= F_HAS_EXP | F_HAS_FLAGS | F_CHAINED;
                (ctx.classes.len() - 1, true)
            }
        };
        let size = ctx.classes[cls].size as usize;
        let hlen = header_len(ctx.hdr_base, bits);
        let head = self.alloc_chunk(ctx, cls).ok_or(AllocErr::NoMemory)?;
        let head_cap = if chained {
            size - hlen - key.len()
        } else {
            vlen
        };
        let mut src = Src::new(a, b);
        {
            let mut h = self.hdr_mut(ctx, head);
            h.set_flags(bits | HOT);
            h.set_nkey(key.len());
            h.set_nbytes(head_cap);
            h.set_prev(NIL);
            h.set_next(NIL);
            h.set_time(now);
            h.set_cas(0);
            if bits & F_HAS_EXP != 0 {
                h.set_exptime(exptime);
            }
            if bits & F_HAS_FLAGS != 0 {
                h.set_client_flags(flags);
            }
            if chained {
                h.set_chain(vlen, NIL);
            }
            h.b[hlen..hlen + key.len()].copy_from_slice(key);
            let o = hlen + key.len();
            let n = src.fill(&mut h.b[o..o + head_cap]);
            debug_assert_eq!(n, head_cap);
        }
        if chained {
            let mut remaining = vlen - head_cap;
            let mut prev = NIL;
            while remaining > 0 {
                let Some(c) = self.alloc_chunk(ctx, cls) else {
                    self.free_item_chunks(ctx, head);
                    return Err(AllocErr::NoMemory);
                };
                let chunk = self.arena.chunk_mut(c);
                item::init_cont(chunk, head, NIL);
                let room = (chunk.len() - CONT_HDR).min(remaining);
                let n = src.fill(&mut chunk[CONT_HDR..CONT_HDR + room]);
                debug_assert_eq!(n, room);
                remaining -= n;
                if prev == NIL {
                    self.hdr_mut(ctx, head).set_chain(vlen, c);
                } else {
                    item::wr32(self.arena.chunk_mut(prev), 8, c);
                }
                prev = c;
            }
        }
        Ok(head)
    }

    /// Class that an item of this shape would use (for `cmd_set` accounting).
    fn class_for_shape(
        &self,
        ctx: &Ctx,
        nkey: usize,
        vlen: usize,
        flags: u32,
        exptime: u32,
    ) -> usize {
        let mut bits = 0;
        if exptime != 0 {
            bits |= F_HAS_EXP;
        }
        if flags != 0 {
            bits |= F_HAS_FLAGS;
        }
        let total = header_len(ctx.hdr_base, bits) + nkey + vlen;
        class_for(&ctx.classes, total).unwrap_or(ctx.classes.len() - 1)
    }

    // ------------------------------------------------------------- LRU tail

    /// memcached's `lru_pull_tail`. Returns how many items were removed or moved.
    fn pull_tail(&mut self, ctx: &Ctx, cls: usize, lru: u16, mode: Pull) -> usize {
        let now = ctx.clock.now();
        let mut removed = 0;
        let mut id = self.classes[cls].lru[lru as usize].tail;
        let mut tries = 5;
        while tries > 0 && id != NIL {
            tries -= 1;
            let (prev, f, time, exptime) = {
                let h = self.hdr(ctx, id);
                (h.prev(), h.flags(), h.time(), h.exptime())
            };
            if self.dead(ctx, id, now).is_some() {
                let c = &mut self.classes[cls].c;
                c.reclaimed += 1;
                if f & F_FETCHED == 0 {
                    c.expired_unfetched += 1;
                }
                self.unlink_item(ctx, id);
                removed += 1;
                id = prev;
                continue;
            }
            if lru == HOT || lru == WARM {
                let (limit, max_age) = match mode {
                    Pull::Juggle { total, max_age } => {
                        let pct = if lru == HOT {
                            ctx.lru.hot_pct()
                        } else {
                            ctx.lru.warm_pct()
                        };
                        (total * u64::from(pct) / 100, max_age)
                    }
                    _ => (0, 0),
                };
                if f & F_ACTIVE != 0 {
                    self.hdr_mut(ctx, id).clear_flags(F_ACTIVE);
                    removed += 1;
                    if lru == WARM {
                        self.classes[cls].c.moves_within_lru += 1;
                        if time < now.saturating_sub(ITEM_UPDATE_INTERVAL) {
                            self.hdr_mut(ctx, id).set_time(now);
                        }
                        self.lru_move(ctx, id, cls, WARM);
                        id = prev;
                        continue;
                    }
                    self.classes[cls].c.moves_to_warm += 1;
                    self.lru_move(ctx, id, cls, WARM);
                } else if self.classes[cls].lru[lru as usize].bytes > limit
                    || now.saturating_sub(time) > max_age
                {
                    self.classes[cls].c.moves_to_cold += 1;
                    self.lru_move(ctx, id, cls, COLD);
                    removed += 1;
                }
                break;
            }
            // COLD
            if mode == Pull::Evict {
                if !ctx.cfg.evict {
                    break;
                }
                let c = &mut self.classes[cls].c;
                c.evicted += 1;
                c.evicted_time = now.saturating_sub(time);
                if exptime != 0 {
                    c.evicted_nonzero += 1;
                }
                if f & F_FETCHED == 0 {
                    c.evicted_unfetched += 1;
                }
                if f & F_ACTIVE != 0 {
                    c.evicted_active += 1;
                }
                if let Some(hub) = ctx.watched(watch::EVICTIONS) {
                    let h = self.hdr(ctx, id);
                    let ttl = if exptime == 0 {
                        -1
                    } else {
                        i64::from(exptime) - i64::from(now)
                    };
                    hub.emit(watch::EVICTIONS, |o| {
                        watch::push_eviction(
                            o,
                            h.key(),
                            f & F_FETCHED != 0,
                            ttl,
                            now.wrapping_sub(time) as i32,
                            cls as u8 + 1,
                            h.value_len(),
                        )
                    });
                }
                self.unlink_item(ctx, id);
                removed += 1;
            } else if f & F_ACTIVE != 0 {
                self.classes[cls].c.moves_to_warm += 1;
                self.hdr_mut(ctx, id).clear_flags(F_ACTIVE);
                self.lru_move(ctx, id, cls, WARM);
                removed += 1;
            }
            break;
        }
        removed
    }

    fn juggle_params(&self, ctx: &Ctx, cls: usize, now: u32) -> (u64, u32, u32) {
        let c = &self.classes[cls];
        let total: u64 = c.lru.iter().map(|l| l.bytes).sum();
        let cold_tail = c.lru[COLD as usize].tail;
        let cold_age = if cold_tail != NIL {
            now.saturating_sub(self.hdr(ctx, cold_tail).time())
        } else {
            0
        };
        let hot_age = (f64::from(cold_age) * ctx.lru.hot_factor()) as u32;
        let warm_age = (f64::from(cold_age) * ctx.lru.warm_factor()) as u32;
        (total, hot_age, warm_age)
    }

    /// A small inline juggle after each link so HOT/WARM stay near their
    /// limits even without the maintainer thread.
    fn juggle_once(&mut self, ctx: &Ctx, cls: usize) {
        let now = ctx.clock.now();
        let (total, hot_age, warm_age) = self.juggle_params(ctx, cls, now);
        self.pull_tail(
            ctx,
            cls,
            HOT,
            Pull::Juggle {
                total,
                max_age: hot_age,
            },
        );
        self.pull_tail(
            ctx,
            cls,
            WARM,
            Pull::Juggle {
                total,
                max_age: warm_age,
            },
        );
    }

    /// memcached's `lru_maintainer_juggle` for one class.
    fn juggle(&mut self, ctx: &Ctx, cls: usize) -> u64 {
        let now = ctx.clock.now();
        let (total, hot_age, warm_age) = self.juggle_params(ctx, cls, now);
        let mut did = 0;
        for _ in 0..500 {
            let mut more = self.pull_tail(
                ctx,
                cls,
                HOT,
                Pull::Juggle {
                    total,
                    max_age: hot_age,
                },
            );
            more += self.pull_tail(
                ctx,
                cls,
                WARM,
                Pull::Juggle {
                    total,
                    max_age: warm_age,
                },
            );
            more += self.pull_tail(ctx, cls, COLD, Pull::Juggle { total, max_age: 0 });
            if more == 0 {
                break;
            }
            did += more as u64;
        }
        did
    }

    /// Marks a fetched item (memcached's segmented `do_item_bump`).
    fn bump(&mut self, ctx: &Ctx, id: u32, now: u32) {
        let f = self.hdr(ctx, id).flags();
        if !ctx.lru.segmented() {
            // Flat mode (memcached's `do_item_update`): mark fetched, and refresh the
            // item's time and place at most once per interval.
            self.hdr_mut(ctx, id).or_flags(F_FETCHED);
            if self.hdr(ctx, id).time() < now.saturating_sub(ITEM_UPDATE_INTERVAL) {
                self.hdr_mut(ctx, id).set_time(now);
                let cls = self.arena.class_of(id);
                self.lru_move(ctx, id, cls, f & LRU_MASK);
            }
            return;
        }
        if f & F_ACTIVE != 0 {
            return;
        }
        if f & F_FETCHED == 0 {
            self.hdr_mut(ctx, id).or_flags(F_FETCHED);
            return;
        }
        self.hdr_mut(ctx, id).or_flags(F_ACTIVE);
        if f & LRU_MASK != COLD {
            self.hdr_mut(ctx, id).set_time(now);
        } else if self.bumps.len() < BUMP_QUEUE {
            self.bumps.push(id);
        } else {
            self.hdr_mut(ctx, id).clear_flags(F_ACTIVE);
            self.g.lru_bumps_dropped += 1;
        }
    }

    /// memcached's `do_item_update`: refresh `time` at most once per interval.
    fn touch_time(&mut self, ctx: &Ctx, id: u32, now: u32) {
        let t = self.hdr(ctx, id).time();
        if t < now.saturating_sub(ITEM_UPDATE_INTERVAL) {
            self.hdr_mut(ctx, id).set_time(now);
        }
    }

    /// Whether `id` currently names a linked item head (for queued ids).
    fn is_linked_head(&self, ctx: &Ctx, id: u32) -> bool {
        let page = self.arena.page_of(id);
        if !self.arena.has_page(page) {
            return false;
        }
        let cls = self.arena.page_class(page);
        if self.arena.slot_of(id) >= ctx.classes[cls].perslab {
            return false;
        }
        self.hdr(ctx, id).flags() & F_LINKED != 0
    }

    /// Maintainer tick for this shard.
    pub(crate) fn maintain(&mut self, ctx: &Ctx) -> WorkReport {
        let mut r = WorkReport::default();
        let bumps = std::mem::take(&mut self.bumps);
        for &id in &bumps {
            if !self.is_linked_head(ctx, id) {
                continue;
            }
            let f = self.hdr(ctx, id).flags();
            if f & LRU_MASK == COLD && f & F_ACTIVE != 0 {
                let cls = self.arena.class_of(id);
                self.hdr_mut(ctx, id).clear_flags(F_ACTIVE);
                self.classes[cls].c.moves_to_warm += 1;
                self.lru_move(ctx, id, cls, WARM);
                r.moved += 1;
            }
        }
        self.bumps = bumps;
        self.bumps.clear();
        let before: u64 = self.classes.iter().map(|c| c.c.reclaimed).sum();
        for cls in 0..self.classes.len() {
            if self.classes[cls].items() > 0 {
                r.moved += self.juggle(ctx, cls);
            }
        }
        let after: u64 = self.classes.iter().map(|c| c.c.reclaimed).sum();
        r.reclaimed = after - before;
        let arena = &self.arena;
        let base = ctx.hdr_base;
        self.hash.migrate(4096, &mut |x| {
            ctx.hash(Hdr::new(arena.chunk(x), base).key())
        });
        r
    }

    // ------------------------------------------------------------ exptime

    /// Sets an item's exptime, growing its header if it had none. Returns
    /// the (possibly new) id; on allocation failure the exptime is unchanged
    /// (and `None` if the allocation evicted the item itself).
    fn set_exptime(
        &mut self,
        ctx: &Ctx,
        id: u32,
        exptime: u32,
        now: u32,
        hash: u64,
    ) -> Option<u32> {
        let (f, head_total) = {
            let h = self.hdr(ctx, id);
            (h.flags(), h.head_total())
        };
        if f & F_HAS_EXP != 0 {
            self.hdr_mut(ctx, id).set_exptime(exptime);
            return Some(id);
        }
        if exptime == 0 {
            return Some(id);
        }
        let cls = self.arena.class_of(id);
        let size = ctx.classes[cls].size as usize;
        if head_total + 4 <= size {
            // Shift key + value (and flags) right by 4 and insert the field.
            let base = ctx.hdr_base;
            let c = self.arena.chunk_mut(id);
            c.copy_within(base..head_total, base + 4);
            let mut h = HdrMut::new(c, base);
            h.or_flags(F_HAS_EXP);
            h.set_exptime(exptime);
            let l = (f & LRU_MASK) as usize;
            self.classes[cls].lru[l].bytes += 4;
            self.classes[cls].requested += 4;
            self.g.bytes += 4;
            return Some(id);
        }
        // Reallocate into a larger chunk.
        let (key_flags, cas, time) = {
            let h = self.hdr(ctx, id);
            (h.client_flags(), h.cas(), h.time())
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let h = self.hdr(ctx, id);
        let nkey = h.nkey();
        scratch.extend_from_slice(h.key());
        for p in PartsIter::new(&self.arena, id, ctx.hdr_base) {
            scratch.extend_from_slice(p);
        }
        let (k, v) = scratch.split_at(nkey);
        let res = self.alloc_item(ctx, k, v, &[], key_flags, exptime, now);
        let out = match res {
            Ok(new) => {
                let keep = f & (F_FETCHED | F_ACTIVE | F_STALE | F_TOKEN | F_BINKEY);
                {
                    let mut nh = self.hdr_mut(ctx, new);
                    nh.or_flags(keep);
                    nh.set_time(time);
                }
                match self.lookup(ctx, hash, k) {
                    Some(cur) => self.replace_item(ctx, cur, new, hash, Some(cas)),
                    None => self.link_new(ctx, new, hash, Some(cas)),
                }
                self.g.total_items -= 1;
                Some(new)
            }
            Err(_) => self.lookup(ctx, hash, k),
        };
        self.put_scratch(scratch);
        out
    }

    /// Returns the scratch buffer, keeping it only if it is small.
    fn put_scratch(&mut self, mut scratch: Vec<u8>) {
        if scratch.capacity() > SCRATCH_KEEP {
            scratch = Vec::new();
        }
        self.scratch = scratch;
    }

    // ------------------------------------------------------------ commands

    /// A store, logged for `watch mutations` as memcached's `do_store_item` does: the
    /// stored item, or the one the request would have made.
    pub(crate) fn store(&mut self, ctx: &Ctx, hash: u64, req: &StoreRequest<'_>) -> StoreOutcome {
        let (r, stored) = self.store_quiet(ctx, hash, req);
        if let Some((hub, cfd)) = ctx.watching(watch::MUTATIONS) {
            let cmd = store_cmd(req.mode);
            let status = watch::store_status_word(r.status);
            let now = ctx.clock.now();
            let (cls, size, exptime) = match stored {
                Some(id) => {
                    let h = self.hdr(ctx, id);
                    (self.arena.class_of(id) + 1, h.value_len(), h.exptime())
                }
                None => {
                    let e = ctx.realtime(req.exptime);
                    let c = self.class_for_shape(ctx, req.key.len(), req.value.len(), req.flags, e);
                    (c + 1, req.value.len(), e)
                }
            };
            match r.status {
                // Logged where the allocation failed.
                StoreStatus::TooLarge | StoreStatus::OutOfMemory => {}
                _ => hub.emit(watch::MUTATIONS, |o| {
                    let ttl = if exptime == 0 {
                        0
                    } else {
                        exptime.wrapping_sub(now)
                    };
                    watch::push_item_store(o, req.key, status, cmd, ttl, cls as u32, cfd, size)
                }),
            }
        }
        r
    }

    /// Logs an allocation failure of a store for `watch mutations`.
    fn log_alloc_failure(ctx: &Ctx, req: &StoreRequest<'_>, status: StoreStatus) {
        if let Some((hub, cfd)) = ctx.watching(watch::MUTATIONS) {
            let cmd = store_cmd(req.mode);
            hub.alloc_failure(req.key, watch::store_status_word(status), cmd, cfd);
        }
    }

    /// The store; with the stored item's id.
    fn store_quiet(
        &mut self,
        ctx: &Ctx,
        hash: u64,
        req: &StoreRequest<'_>,
    ) -> (StoreOutcome, Option<u32>) {
        let now = ctx.clock.now();
        let fail = |status| {
            (
                StoreOutcome {
                    status,
                    cas: 0,
                    ttl: 0,
                },
                None,
            )
        };
        // Size check first, as memcached allocates before anything else (and then only
        // a `set` looks for the old item, to drop it).
        let base_exptime = ctx.realtime(req.exptime);
        let mut bits = 0;
        if base_exptime != 0 {
            bits |= F_HAS_EXP;
        }
        if req.flags != 0 {
            bits |= F_HAS_FLAGS;
        }
        if header_len(ctx.hdr_base, bits) + req.key.len() + req.value.len() > ctx.cfg.max_item_size
            || req.key.len() > KEY_MAX_LENGTH
        {
            Self::log_alloc_failure(ctx, req, StoreStatus::TooLarge);
            if req.mode == StoreMode::Set {
                if let Some(o) = self.find_live(ctx, hash, req.key, now) {
                    self.unlink_item(ctx, o);
                }
            }
            return fail(StoreStatus::TooLarge);
        }
        let old = self.find_live(ctx, hash, req.key, now);
        let set_cls =
            self.class_for_shape(ctx, req.key.len(), req.value.len(), req.flags, base_exptime);

        let (old_cas, old_flags) = match old {
            Some(o) => {
                let h = self.hdr(ctx, o);
                (h.cas(), h.flags())
            }
            None => (0, 0),
        };
        #[derive(PartialEq)]
        enum CasRes {
            None,
            Match,
            Stale,
            BadVal,
        }
        let cas_res = if old.is_none() || req.cas == 0 {
            CasRes::None
        } else if req.cas == old_cas {
            CasRes::Match
        } else if req.invalidate && req.cas < old_cas {
            CasRes::Stale
        } else {
            CasRes::BadVal
        };

        self.classes[set_cls].c.cmd_set += 1;
        let mut exptime = base_exptime;
        let mut flags = req.flags;
        let mut extra_bits = 0u16;
        let mut concat: Option<bool> = None; // Some(true) = append
        match (req.mode, old) {
            (StoreMode::Add, Some(o)) => {
                self.touch_time(ctx, o, now);
                return fail(StoreStatus::NotStored);
            }
            (StoreMode::Replace, None) => return fail(StoreStatus::NotStored),
            (StoreMode::Append | StoreMode::Prepend, None) => match req.vivify {
                Some(t) => exptime = ctx.realtime(t),
                None => return fail(StoreStatus::NotStored),
            },
            (StoreMode::Cas, None) => return fail(StoreStatus::NotFound),
            (StoreMode::Cas, Some(o)) => match cas_res {
                CasRes::Match => self.classes[self.arena.class_of(o)].c.cas_hits += 1,
                CasRes::Stale => {
                    self.classes[self.arena.class_of(o)].c.cas_hits += 1;
                    exptime = self.hdr(ctx, o).exptime();
                    extra_bits = F_STALE | (old_flags & F_TOKEN);
                }
                _ => {
                    self.classes[self.arena.class_of(o)].c.cas_badval += 1;
                    return fail(StoreStatus::Exists);
                }
            },
            (StoreMode::Append | StoreMode::Prepend, Some(o)) => {
                if cas_res != CasRes::None && cas_res != CasRes::Match {
                    return fail(StoreStatus::Exists);
                }
                let h = self.hdr(ctx, o);
                flags = h.client_flags();
                exptime = h.exptime();
                concat = Some(req.mode == StoreMode::Append);
            }
            _ => {}
        }

        let res = match concat {
            None => self.alloc_item(ctx, req.key, req.value, &[], flags, exptime, now),
            Some(append) => {
                let o = old.expect("old item for append");
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                for p in PartsIter::new(&self.arena, o, ctx.hdr_base) {
                    scratch.extend_from_slice(p);
                }
                let r = if append {
                    self.alloc_item(ctx, req.key, &scratch, req.value, flags, exptime, now)
                } else {
                    self.alloc_item(ctx, req.key, req.value, &scratch, flags, exptime, now)
                };
                self.put_scratch(scratch);
                r
            }
        };
        let id = match res {
            Ok(id) => id,
            Err(e) => {
                let status = match e {
                    // memcached stores the appended data as an item of its own first (too
                    // large: `SERVER_ERROR`), then fails to make the joined one: NOT_STORED.
                    AllocErr::TooLarge
                        if concat.is_some()
                            && memcached_ntotal(ctx, req.key.len(), req.flags, req.value.len())
                                <= ctx.cfg.max_item_size =>
                    {
                        StoreStatus::NotStored
                    }
                    AllocErr::TooLarge => StoreStatus::TooLarge,
                    AllocErr::NoMemory => StoreStatus::OutOfMemory,
                };
                Self::log_alloc_failure(ctx, req, status);
                if req.mode == StoreMode::Set {
                    if let Some(o) = self.lookup(ctx, hash, req.key) {
                        self.unlink_item(ctx, o);
                    }
                }
                return fail(status);
            }
        };
        // An append/prepend keeps the item's own key form (memcached).
        if req.binary_key && concat.is_none() {
            extra_bits |= F_BINKEY;
        }
        if extra_bits != 0 {
            self.hdr_mut(ctx, id).or_flags(extra_bits);
        }
        let cas = req.explicit_cas;
        // The allocation may have evicted or moved the old item: look again.
        match self.lookup(ctx, hash, req.key) {
            Some(cur) => self.replace_item(ctx, cur, id, hash, cas),
            None => self.link_new(ctx, id, hash, cas),
        }
        let h = self.hdr(ctx, id);
        (
            StoreOutcome {
                status: StoreStatus::Stored,
                cas: h.cas(),
                ttl: ttl_of(h.exptime(), now),
            },
            Some(id),
        )
    }

    pub(crate) fn fetch<'a>(
        &'a mut self,
        ctx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &GetOptions,
    ) -> Option<ItemView<'a>> {
        let now = ctx.clock.now();
        let mut created = false;
        let mut id = match self.find_live(ctx, hash, key, now) {
            Some(id) => id,
            None => {
                let t = opts.vivify?;
                let exp = ctx.realtime(t);
                let id = self.alloc_item(ctx, key, &[], &[], 0, exp, now).ok()?;
                self.link_new(ctx, id, hash, None);
                created = true;
                id
            }
        };
        let (f0, time0, exptime0) = {
            let h = self.hdr(ctx, id);
            (h.flags(), h.time(), h.exptime())
        };
        // An item `N` just created counts as fetched too (memcached: the next `mg h`
        // says `h1`), unless `u`.
        if !opts.no_bump {
            self.bump(ctx, id, now);
        }
        if let Some(t) = opts.touch {
            // memcached sets a vivified item's TTL from `T` and `N` in flag order.
            if !(created && opts.vivify_ttl_last) {
                let exp = ctx.realtime(t);
                id = self.set_exptime(ctx, id, exp, now, hash)?;
            }
            let cls = self.arena.class_of(id);
            self.classes[cls].c.touch_hits += 1;
        } else {
            // An item `mg N` just created counts as a hit, as in memcached.
            let cls = self.arena.class_of(id);
            self.classes[cls].c.lru_hits[(f0 & LRU_MASK) as usize] += 1;
        }
        let f = self.hdr(ctx, id).flags();
        let exptime = self.hdr(ctx, id).exptime();
        let mut won = created;
        if let Some(r) = opts.recache {
            let exptime = if opts.recache_before_touch {
                exptime0
            } else {
                exptime
            };
            if f & F_TOKEN == 0 && !created && exptime != 0 && exptime < ctx.realtime(r) {
                won = true;
            }
        }
        let token_sent = f & F_TOKEN != 0;
        let stale = f & F_STALE != 0;
        if stale && !token_sent {
            won = true;
        }
        if opts.no_token {
            won = false;
        }
        if won {
            self.hdr_mut(ctx, id).or_flags(F_TOKEN);
        }
        let cls = self.arena.class_of(id);
        let h = Hdr::new(self.arena.chunk(id), ctx.hdr_base);
        Some(ItemView {
            key: h.key(),
            parts: ValueParts {
                inner: PartsIter::new(&self.arena, id, ctx.hdr_base),
            },
            value_len: h.value_len(),
            flags: h.client_flags(),
            cas: h.cas(),
            ttl: ttl_of(exptime, now),
            ttl_before: if created { -1 } else { ttl_of(exptime0, now) },
            last_access: now.saturating_sub(time0),
            fetched: f0 & F_FETCHED != 0,
            stale,
            win: won,
            token_sent,
            binary_key: f & F_BINKEY != 0,
            vivified: created,
            class_id: (cls + 1) as u8,
        })
    }

    pub(crate) fn delete(
        &mut self,
        ctx: &Ctx,
        hash: u64,
        key: &[u8],
        opts: &DeleteOptions,
    ) -> DeleteOutcome {
        let now = ctx.clock.now();
        let Some(id) = self.find_live(ctx, hash, key, now) else {
            return DeleteOutcome::NotFound;
        };
        if opts.cas.is_some_and(|c| c != self.hdr(ctx, id).cas()) {
            return DeleteOutcome::Exists;
        }
        if opts.invalidate {
            let mut id = id;
            if let Some(t) = opts.new_exptime {
                let exp = ctx.realtime(t);
                let Some(n) = self.set_exptime(ctx, id, exp, now, hash) else {
                    return DeleteOutcome::NotFound;
                };
                id = n;
            }
            let cas = ctx.next_cas();
            let mut h = self.hdr_mut(ctx, id);
            h.or_flags(F_STALE);
            h.clear_flags(F_TOKEN);
            h.set_cas(cas);
        } else {
            let cls = self.arena.class_of(id);
            self.classes[cls].c.delete_hits += 1;
            self.unlink_item(ctx, id);
        }
        DeleteOutcome::Deleted
    }

    pub(crate) fn arith(&mut self, ctx: &Ctx, hash: u64, req: &ArithRequest<'_>) -> ArithOutcome {
        let now = ctx.clock.now();
        let Some(id) = self.find_live(ctx, hash, req.key, now) else {
            let Some((initial, ttl)) = req.vivify else {
                return ArithOutcome::NotFound;
            };
            let mut buf = [0u8; 20];
            let s = fmt_u64(initial, &mut buf);
            let exp = ctx.realtime(ttl);
            let Ok(id) = self.alloc_item(ctx, req.key, s, &[], 0, exp, now) else {
                return ArithOutcome::OutOfMemory;
            };
            self.link_new(ctx, id, hash, None);
            if let Some((hub, cfd)) = ctx.watching(watch::FETCHERS | watch::MUTATIONS) {
                // memcached's `ma` creates the item with an `add` store: its lookup and store.
                let (cls, size) = (self.arena.class_of(id) as u8 + 1, s.len());
                if watch::current(watch::FETCHERS).is_some() {
                    hub.emit(watch::FETCHERS, |o| {
                        watch::push_item_get(o, req.key, watch::GetStatus::NotFound, 0, cfd, 0)
                    });
                }
                if watch::current(watch::MUTATIONS).is_some() {
                    let ttl = if exp == 0 { 0 } else { exp.wrapping_sub(now) };
                    hub.emit(watch::MUTATIONS, |o| {
                        watch::push_item_store(
                            o,
                            req.key,
                            "stored",
                            "add",
                            ttl,
                            cls.into(),
                            cfd,
                            size,
                        )
                    });
                }
            }
            let mut id = id;
            if let Some(t) = req.touch.filter(|_| !req.vivify_ttl_last) {
                let Some(n) = self.set_exptime(ctx, id, ctx.realtime(t), now, hash) else {
                    return ArithOutcome::NotFound;
                };
                id = n;
            }
            let h = self.hdr(ctx, id);
            return ArithOutcome::Ok {
                value: initial,
                cas: h.cas(),
                ttl: ttl_of(h.exptime(), now),
                ttl_before: -1,
                created: true,
            };
        };
        let (vlen, f, cas, flags, exptime) = {
            let h = self.hdr(ctx, id);
            (
                h.value_len(),
                h.flags(),
                h.cas(),
                h.client_flags(),
                h.exptime(),
            )
        };
        if vlen == 0 || f & F_CHAINED != 0 {
            return ArithOutcome::NonNumeric;
        }
        if req.cas.is_some_and(|c| c != cas) {
            return ArithOutcome::Exists;
        }
        let Some(cur) = parse_u64(self.hdr(ctx, id).head_value()) else {
            return ArithOutcome::NonNumeric;
        };
        let cls = self.arena.class_of(id);
        let value = if req.incr {
            self.classes[cls].c.incr_hits += 1;
            cur.wrapping_add(req.delta)
        } else {
            self.classes[cls].c.decr_hits += 1;
            cur.saturating_sub(req.delta)
        };
        let mut buf = [0u8; 20];
        let s = fmt_u64(value, &mut buf);
        let mut id = id;
        if s.len() <= vlen {
            // In place, padded with spaces (memcached does the same).
            let new_cas = ctx.next_cas();
            let mut h = self.hdr_mut(ctx, id);
            h.set_cas(new_cas);
            let o = h.ro().hlen() + h.ro().nkey();
            h.b[o..o + s.len()].copy_from_slice(s);
            h.b[o + s.len()..o + vlen].fill(b' ');
            self.touch_time(ctx, id, now);
        } else {
            let key_copy_len = req.key.len();
            debug_assert_eq!(key_copy_len, self.hdr(ctx, id).nkey());
            match self.alloc_item(ctx, req.key, s, &[], flags, exptime, now) {
                Ok(new) => {
                    match self.lookup(ctx, hash, req.key) {
                        Some(cur) => self.replace_item(ctx, cur, new, hash, None),
                        None => self.link_new(ctx, new, hash, None),
                    }
                    id = new;
                }
                Err(_) => return ArithOutcome::OutOfMemory,
            }
        }
        if let Some(t) = req.touch {
            let Some(n) = self.set_exptime(ctx, id, ctx.realtime(t), now, hash) else {
                return ArithOutcome::NotFound;
            };
            id = n;
        }
        let h = self.hdr(ctx, id);
        ArithOutcome::Ok {
            value,
            cas: h.cas(),
            ttl: ttl_of(h.exptime(), now),
            ttl_before: ttl_of(exptime, now),
            created: false,
        }
    }

    // ------------------------------------------------------------ crawler

    /// Examines up to `budget` chunks from the crawl cursor, reclaiming
    /// expired and flushed items.
    pub(crate) fn crawl(&mut self, ctx: &Ctx, budget: usize) -> WorkReport {
        let mut r = WorkReport::default();
        let now = ctx.clock.now();
        let mut left = budget;
        let npages = self.arena.page_slots() as u32;
        let mut wrapped = 0;
        while left > 0 && npages > 0 {
            if self.crawl_page >= npages {
                self.crawl_page = 0;
                self.crawl_slot = 0;
                wrapped += 1;
                if wrapped > 1 {
                    break;
                }
            }
            let p = self.crawl_page;
            if !self.arena.has_page(p) {
                self.crawl_page += 1;
                self.crawl_slot = 0;
                continue;
            }
            let cls = self.arena.page_class(p);
            let pool = &self.classes[cls].pool;
            let limit = if pool.end_page == p {
                pool.end_next
            } else {
                ctx.classes[cls].perslab
            };
            while self.crawl_slot < limit && left > 0 {
                let id = self.arena.id(p, self.crawl_slot);
                self.crawl_slot += 1;
                left -= 1;
                if self.hdr(ctx, id).flags() & F_LINKED == 0 {
                    continue;
                }
                self.classes[cls].c.crawler_items_checked += 1;
                r.checked += 1;
                if let Some(d) = self.dead(ctx, id, now) {
                    // memcached's crawler counts expired (not flushed) items that were
                    // never fetched into `expired_unfetched` too.
                    let unfetched = self.hdr(ctx, id).flags() & F_FETCHED == 0;
                    let c = &mut self.classes[cls].c;
                    c.crawler_reclaimed += 1;
                    if d == Dead::Expired && unfetched {
                        c.expired_unfetched += 1;
                    }
                    self.unlink_item(ctx, id);
                    r.reclaimed += 1;
                }
            }
            if self.crawl_slot >= limit {
                self.crawl_page += 1;
                self.crawl_slot = 0;
            }
        }
        r
    }

    // ------------------------------------------------------------ dump

    /// Walks the COLD LRU of `cls` from its head (`stats cachedump`); see
    /// [`super::Engine::cachedump`]. Returns `false` once `f` asked to stop.
    /// Items stored with a base64 key are left out (memcached: "protect from printing
    /// binary keys"); at most `budget` items are visited, so the lock is held briefly.
    pub(crate) fn cold_walk(
        &self,
        ctx: &Ctx,
        cls: usize,
        budget: usize,
        f: &mut impl FnMut(&[u8], usize, i64) -> bool,
    ) -> bool {
        let started = ctx.clock.process_started();
        let mut id = self.classes[cls].lru[COLD as usize].head;
        for _ in 0..budget {
            if id == NIL {
                break;
            }
            let h = self.hdr(ctx, id);
            if h.flags() & F_BINKEY != 0 {
                id = h.next();
                continue;
            }
            let exptime = match h.exptime() {
                0 => 0,
                e => started + i64::from(e),
            };
            if !f(h.key(), h.value_len(), exptime) {
                return false;
            }
            id = h.next();
        }
        true
    }

    /// Calls `f` for every live item of the selected classes (bit = class id)
    /// whose order key is in `lo..hi` (see `dump.rs`). Reads only: expired and
    /// flushed items are skipped, not reclaimed, so the index is not modified.
    pub(crate) fn dump_range(
        &self,
        ctx: &Ctx,
        lo: u64,
        hi: u128,
        classes: u64,
        f: &mut impl FnMut(&super::DumpItem<'_>),
    ) {
        let now = ctx.clock.now();
        let started = ctx.clock.process_started();
        let arena = &self.arena;
        let base = ctx.hdr_base;
        self.hash.scan_range(
            lo,
            hi,
            |id| ctx.hash(Hdr::new(arena.chunk(id), base).key()),
            |id| {
                let cls = arena.class_of(id) + 1;
                if cls >= 64 || classes & (1u64 << cls) == 0 || self.dead(ctx, id, now).is_some() {
                    return;
                }
                let h = Hdr::new(arena.chunk(id), base);
                let exptime = match h.exptime() {
                    0 => -1,
                    e => started + i64::from(e),
                };
                f(&super::DumpItem {
                    key: h.key(),
                    exptime,
                    last_access: started + i64::from(h.time()),
                    cas: h.cas(),
                    fetched: h.flags() & F_FETCHED != 0,
                    class_id: cls as u8,
                    size: (h.hlen() + h.nkey() + h.value_len()) as u64,
                });
            },
        );
    }

    // ------------------------------------------------------------ pages

    fn class_pages(&self, cls: usize) -> usize {
        self.classes[cls].pool.pages.len()
    }

    /// The page to give up in `cls`: the one holding the oldest item.
    fn victim_page(&self, cls: usize) -> Option<u32> {
        let c = &self.classes[cls];
        for l in [COLD, WARM, HOT] {
            let t = c.lru[l as usize].tail;
            if t != NIL {
                return Some(self.arena.page_of(t));
            }
        }
        c.pool.pages.first().copied()
    }

    /// Empties one page of `cls` (rescuing items into free chunks of the
    /// class elsewhere when possible, evicting the rest) and detaches it from
    /// the class. The page stays in the arena.
    fn empty_page(&mut self, ctx: &Ctx, cls: usize, page: u32) {
        let perslab = ctx.classes[cls].perslab;
        {
            let pool = &mut self.classes[cls].pool;
            if pool.end_page == page {
                pool.end_left = 0;
                pool.end_page = NIL;
            }
        }
        // Pass 0: take this page's free chunks off the free list.
        for slot in 0..perslab {
            let id = self.arena.id(page, slot);
            if item::rd16(self.arena.chunk(id), 0) & F_FREE != 0 {
                self.classes[cls].pool.unfree(&mut self.arena, id);
                item::wr16(self.arena.chunk_mut(id), 0, 0);
            }
        }
        // Pass 1: rescue or evict every item touching this page.
        for slot in 0..perslab {
            let id = self.arena.id(page, slot);
            let f = item::rd16(self.arena.chunk(id), 0);
            if f & F_LINKED != 0 {
                if f & F_CHAINED == 0 && self.rescue(ctx, cls, id, page) {
                    self.g.reassign_rescues += 1;
                } else {
                    self.g.reassign_evictions_nomem += 1;
                    self.unlink_item(ctx, id);
                }
            } else if f & F_CONT != 0 {
                let head = item::cont_head(self.arena.chunk(id));
                if self.is_linked_head(ctx, head) {
                    self.g.reassign_evictions_nomem += 1;
                    self.unlink_item(ctx, head);
                }
            }
        }
        // Pass 2: chunks freed by pass 1 (heads, chain parts) leave the free list.
        for slot in 0..perslab {
            let id = self.arena.id(page, slot);
            if item::rd16(self.arena.chunk(id), 0) & F_FREE != 0 {
                let pool = &mut self.classes[cls].pool;
                pool.unfree(&mut self.arena, id);
                item::wr16(self.arena.chunk_mut(id), 0, 0);
            }
        }
        let pool = &mut self.classes[cls].pool;
        pool.pages.retain(|&p| p != page);
    }

    /// Moves an unchained item to a free chunk of its class outside `page`.
    fn rescue(&mut self, ctx: &Ctx, cls: usize, id: u32, page: u32) -> bool {
        let Some(new) = self.classes[cls].pool.alloc(&mut self.arena) else {
            return false;
        };
        if self.arena.page_of(new) == page {
            // A chunk of the dying page: drop it and evict instead.
            self.classes[cls].pool.used -= 1;
            item::wr16(self.arena.chunk_mut(new), 0, 0);
            return false;
        }
        let size = ctx.classes[cls].size as usize;
        self.arena.copy_between(id, 0, new, 0, size);
        let (lru, prev, next, hash) = {
            let h = self.hdr(ctx, id);
            (
                (h.flags() & LRU_MASK) as usize,
                h.prev(),
                h.next(),
                ctx.hash(h.key()),
            )
        };
        if prev != NIL {
            self.hdr_mut(ctx, prev).set_next(new);
        }
        if next != NIL {
            self.hdr_mut(ctx, next).set_prev(new);
        }
        let l = &mut self.classes[cls].lru[lru];
        if l.head == id {
            l.head = new;
        }
        if l.tail == id {
            l.tail = new;
        }
        self.hash.replace(hash, id, new);
        item::wr16(self.arena.chunk_mut(id), 0, 0);
        self.classes[cls].pool.used -= 1;
        true
    }

    /// Empties and removes one page of `cls` from this shard, returning its memory.
    pub(crate) fn release_page(&mut self, ctx: &Ctx, cls: usize) -> Option<Box<[u8]>> {
        let page = self.victim_page(cls)?;
        self.empty_page(ctx, cls, page);
        Some(self.arena.remove_page(page))
    }

    /// Class (other than `except`) with the most pages here, if it has at least `min`.
    fn richest_class(&self, except: usize, min: usize) -> Option<usize> {
        (0..self.classes.len())
            .filter(|&c| c != except)
            .max_by_key(|&c| self.class_pages(c))
            .filter(|&c| self.class_pages(c) >= min)
    }

    /// A class with no items here needs a page while the budget is
    /// exhausted: take one from our own other classes or (with `try_lock`,
    /// never blocking) from another shard.
    fn steal_page(&mut self, ctx: &Ctx, cls: usize) -> bool {
        for min in [2, 1] {
            if let Some(v) = self.richest_class(cls, min) {
                if let Some(page) = self.victim_page(v) {
                    self.empty_page(ctx, v, page);
                    self.arena.set_page_class(page, cls);
                    self.classes[cls].pool.add_page(
                        page,
                        ctx.classes[cls].perslab,
                        &mut self.arena,
                    );
                    self.g.pages_stolen += 1;
                    return true;
                }
            }
            let n = ctx.shards.len();
            for k in 1..n {
                let j = (self.idx + k) % n;
                let Some(mut other) = ctx.shards[j].try_lock() else {
                    continue;
                };
                let Some(v) = other.richest_class(usize::MAX, min) else {
                    continue;
                };
                if let Some(mem) = other.release_page(ctx, v) {
                    drop(other);
                    let mut mem = mem;
                    mem.fill(0);
                    self.adopt_page(ctx, mem, cls);
                    self.g.pages_stolen += 1;
                    return true;
                }
            }
        }
        false
    }

    pub(crate) fn size_histogram(&self, ctx: &Ctx, out: &mut std::collections::BTreeMap<u32, u64>) {
        for p in self.arena.page_nos() {
            let cls = self.arena.page_class(p);
            for slot in 0..ctx.classes[cls].perslab {
                let id = self.arena.id(p, slot);
                if self.classes[cls].pool.end_page == p && slot >= self.classes[cls].pool.end_next {
                    break;
                }
                if self.hdr(ctx, id).flags() & F_LINKED != 0 {
                    let nt = self.ntotal(ctx, id) as u32;
                    let bucket = nt.div_ceil(32) * 32;
                    *out.entry(bucket).or_default() += 1;
                }
            }
        }
    }

    /// Age (seconds) of the oldest item of a class here, and its item count.
    pub(crate) fn class_age(&self, ctx: &Ctx, cls: usize, now: u32) -> u32 {
        let c = &self.classes[cls];
        let mut age = 0;
        for l in [HOT, WARM, COLD] {
            let t = c.lru[l as usize].tail;
            if t != NIL {
                age = age.max(now.saturating_sub(self.hdr(ctx, t).time()));
            }
        }
        age
    }

    pub(crate) fn lru_age(&self, ctx: &Ctx, cls: usize, lru: u16, now: u32) -> u32 {
        let t = self.classes[cls].lru[lru as usize].tail;
        if t == NIL {
            0
        } else {
            now.saturating_sub(self.hdr(ctx, t).time())
        }
    }
}

/// [`super::memcached_item_size`] with this engine's CAS setting: an item over the item size
/// limit by this count is refused, as in memcached.
fn memcached_ntotal(ctx: &Ctx, nkey: usize, flags: u32, vlen: usize) -> usize {
    super::memcached_item_size(nkey, flags, vlen, ctx.cfg.cas_enabled)
}

fn ttl_of(exptime: u32, now: u32) -> i64 {
    if exptime == 0 {
        -1
    } else {
        i64::from(exptime) - i64::from(now)
    }
}

// ---------------------------------------------------------------- admin

/// Moves one page from class `src` to class `dst` (0-based), choosing the
/// shard richest in `src` and giving the page to the shard poorest in `dst`.
fn move_page(ctx: &Ctx, src: usize, dst: usize) -> bool {
    let mut best: Option<(usize, usize)> = None;
    for (i, s) in ctx.shards.iter().enumerate() {
        let n = s.lock().class_pages(src);
        if n > 0 && best.is_none_or(|(_, b)| n > b) {
            best = Some((i, n));
        }
    }
    let Some((si, _)) = best else {
        return false;
    };
    let Some(mut mem) = ctx.shards[si].lock().release_page(ctx, src) else {
        return false;
    };
    mem.fill(0);
    let mut target = 0;
    let mut fewest = usize::MAX;
    for (i, s) in ctx.shards.iter().enumerate() {
        let n = s.lock().class_pages(dst);
        if n < fewest {
            fewest = n;
            target = i;
        }
    }
    ctx.shards[target].lock().adopt_page(ctx, mem, dst);
    ctx.slabs_moved.fetch_add(1, Ordering::Relaxed);
    true
}

fn total_class_pages(ctx: &Ctx, cls: usize) -> usize {
    ctx.shards.iter().map(|s| s.lock().class_pages(cls)).sum()
}

pub(crate) fn slabs_reassign(ctx: &Ctx, src: i32, dst: i32) -> ReassignOutcome {
    if !ctx.cfg.slab_reassign {
        return ReassignOutcome::Disabled;
    }
    if src == dst {
        return ReassignOutcome::Same;
    }
    let n = ctx.classes.len() as i32;
    if dst < 1 || dst > n || src == 0 || src < -1 || src > n {
        return ReassignOutcome::BadClass;
    }
    if ctx
        .reassign_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return ReassignOutcome::Busy;
    }
    let dst0 = (dst - 1) as usize;
    let src0 = if src == -1 {
        (0..ctx.classes.len())
            .filter(|&c| c != dst0)
            .map(|c| (c, total_class_pages(ctx, c)))
            .filter(|&(_, n)| n >= 2)
            .max_by_key(|&(_, n)| n)
            .map(|(c, _)| c)
    } else {
        Some((src - 1) as usize)
    };
    let out = match src0 {
        Some(s) if total_class_pages(ctx, s) >= 2 => {
            if move_page(ctx, s, dst0) {
                ReassignOutcome::Ok
            } else {
                ReassignOutcome::NoSpare
            }
        }
        _ => ReassignOutcome::NoSpare,
    };
    ctx.reassign_running.store(false, Ordering::Release);
    out
}

/// Per-class sample gathered for automove.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClassSample {
    pub pages: usize,
    pub evicted: u64,
    pub age: u32,
    pub free_chunks: u64,
}

pub(crate) fn sample_classes(ctx: &Ctx) -> Vec<ClassSample> {
    let now = ctx.clock.now();
    let mut out = vec![ClassSample::default(); ctx.classes.len()];
    for s in ctx.shards.iter() {
        let s = s.lock();
        for (i, o) in out.iter_mut().enumerate() {
            let c = &s.classes[i];
            o.pages += c.pool.pages.len();
            o.evicted += c.c.evicted;
            o.free_chunks += c.pool.total_free();
            o.age = o.age.max(s.class_age(ctx, i, now));
        }
    }
    out
}

pub(crate) fn automove_tick(ctx: &Ctx, st: &mut AutomoveState) -> WorkReport {
    let mut r = WorkReport::default();
    // 1. Memory limit lowered: release pages until within the budget.
    let mut guard = 0;
    while ctx.pages_used.load(Ordering::Relaxed) > ctx.page_limit.load(Ordering::Relaxed)
        && guard < 64
    {
        guard += 1;
        let samples = sample_classes(ctx);
        let Some((cls, _)) = samples.iter().enumerate().max_by_key(|(_, s)| s.pages) else {
            break;
        };
        let mut released = false;
        for s in ctx.shards.iter() {
            let mut s = s.lock();
            if s.class_pages(cls) > 0 {
                if let Some(mem) = s.release_page(ctx, cls) {
                    drop(mem);
                    ctx.release_page_budget();
                    released = true;
                    break;
                }
            }
        }
        if !released {
            break;
        }
        r.pages_moved += 1;
    }
    let mode = ctx.automove.load(Ordering::Relaxed);
    if mode == 0 || !ctx.cfg.slab_reassign {
        return r;
    }
    let samples = sample_classes(ctx);
    if st.last_evicted.len() != samples.len() {
        st.last_evicted = samples.iter().map(|s| s.evicted).collect();
        st.window = vec![std::collections::VecDeque::new(); samples.len()];
        return r;
    }
    let now = ctx.clock.now();
    let _ = now;
    for (i, s) in samples.iter().enumerate() {
        let delta = s.evicted - st.last_evicted[i];
        st.last_evicted[i] = s.evicted;
        let w = &mut st.window[i];
        w.push_back(delta > 0);
        if w.len() > super::stats::AUTOMOVE_WINDOW {
            w.pop_front();
        }
    }
    // 2. Classes with more than 2.5 pages of free chunks give one back.
    for (i, s) in samples.iter().enumerate() {
        let perslab = u64::from(ctx.classes[i].perslab);
        if s.pages > 2 && s.free_chunks * 2 > perslab * 5 {
            for sh in ctx.shards.iter() {
                let mut sh = sh.lock();
                if sh.classes[i].pool.total_free() >= perslab && sh.class_pages(i) > 0 {
                    if let Some(mem) = sh.release_page(ctx, i) {
                        drop(mem);
                        ctx.release_page_budget();
                        r.pages_moved += 1;
                        return r;
                    }
                }
            }
        }
    }
    // 3. Move a page from the oldest class to the youngest evicting class.
    let mut youngest: Option<(usize, u32)> = None;
    let mut oldest: Option<(usize, u32)> = None;
    for (i, s) in samples.iter().enumerate() {
        let evicting = st.window[i].back().copied().unwrap_or(false);
        if evicting && youngest.is_none_or(|(_, a)| s.age < a) {
            youngest = Some((i, s.age));
        }
    }
    let Some((yi, yage)) = youngest else {
        return r;
    };
    for (i, s) in samples.iter().enumerate() {
        if i != yi && s.pages >= 2 && oldest.is_none_or(|(_, a)| s.age > a) {
            oldest = Some((i, s.age));
        }
    }
    let Some((oi, oage)) = oldest else {
        return r;
    };
    let go = match mode {
        2 => true,
        _ => f64::from(yage) < f64::from(oage) * ctx.cfg.slab_automove_ratio,
    };
    if go && move_page(ctx, oi, yi) {
        r.pages_moved += 1;
    }
    r
}

/// Formats `v` in decimal into `buf`, returning the digits.
fn fmt_u64(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The command name `watch mutations` logs for a store mode.
fn store_cmd(mode: StoreMode) -> &'static str {
    match mode {
        StoreMode::Set => "set",
        StoreMode::Add => "add",
        StoreMode::Replace => "replace",
        StoreMode::Append => "append",
        StoreMode::Prepend => "prepend",
        StoreMode::Cas => "cas",
    }
}
