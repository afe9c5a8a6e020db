//! Statistics snapshots with memcached's field names.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;

use super::item::{COLD, HOT, WARM};
use super::Ctx;

/// Automove looks at this many ticks of eviction history (memcached: 30).
pub(crate) const AUTOMOVE_WINDOW: usize = 30;

/// State kept between automove ticks.
#[derive(Default)]
pub(crate) struct AutomoveState {
    pub last_evicted: Vec<u64>,
    pub window: Vec<VecDeque<bool>>,
}

/// Engine-wide counters for `stats` (field names as in memcached).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Items currently stored.
    pub curr_items: u64,
    /// Items ever stored.
    pub total_items: u64,
    /// Bytes used by stored items (header + key + value).
    pub bytes: u64,
    /// Items evicted to make room.
    pub evictions: u64,
    /// Times an expired item's memory was reused at an LRU tail.
    pub reclaimed: u64,
    /// Expired items reclaimed that were never fetched.
    pub expired_unfetched: u64,
    /// Evicted items that were never fetched.
    pub evicted_unfetched: u64,
    /// Evicted items that were active (fetched twice) at the time.
    pub evicted_active: u64,
    /// Items reclaimed by the crawler.
    pub crawler_reclaimed: u64,
    /// Items the crawler examined.
    pub crawler_items_checked: u64,
    /// Always 0: items are never referenced outside the shard lock.
    pub lrutail_reflocked: u64,
    /// HOT/WARM -> COLD moves.
    pub moves_to_cold: u64,
    /// HOT/COLD -> WARM moves.
    pub moves_to_warm: u64,
    /// Re-links at the WARM head.
    pub moves_within_lru: u64,
    /// Allocation retries that had to evict or move items inline.
    pub direct_reclaims: u64,
    /// COLD hits whose async bump was dropped (queue full).
    pub lru_bumps_dropped: u64,
    /// Fetches that found an expired item.
    pub get_expired: u64,
    /// Fetches that found a flushed item.
    pub get_flushed: u64,
    /// Items moved to another chunk during a page move.
    pub slab_reassign_rescues: u64,
    /// Always 0 (chained items are evicted, not rescued).
    pub slab_reassign_chunk_rescues: u64,
    /// Items evicted during a page move.
    pub slab_reassign_evictions_nomem: u64,
    /// Always 0.
    pub slab_reassign_inline_reclaim: u64,
    /// Always 0 (page moves are synchronous).
    pub slab_reassign_busy_items: u64,
    /// Always 0.
    pub slab_reassign_busy_deletes: u64,
    /// A `slabs reassign` is in progress.
    pub slab_reassign_running: bool,
    /// Pages moved between classes (reassign and automove).
    pub slabs_moved: u64,
    /// Pages a shard took for a class it had none of while memory was full.
    pub slab_pages_stolen: u64,
    /// Allocation failures (out of memory) over all classes.
    pub outofmemory: u64,
    /// Memory limit in bytes.
    pub limit_maxbytes: u64,
    /// Bytes of pages allocated.
    pub total_malloced: u64,
    /// Pages allocated.
    pub total_pages: u64,
    /// log2 of the hash slots (all shards).
    pub hash_power_level: u32,
    /// Bytes used by the hash tables (outside the limit).
    pub hash_bytes: u64,
    /// A hash table is migrating to a new size.
    pub hash_is_expanding: bool,
    /// Number of shards.
    pub shards: u64,
    /// Automove mode in effect.
    pub slab_automove: u8,
}

/// One slab class row for `stats slabs` and `stats items`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// memcached class id (1-based).
    pub id: u8,
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// Chunks per page.
    pub chunks_per_page: u32,
    /// Pages assigned to the class.
    pub total_pages: u64,
    /// `total_pages * chunks_per_page`.
    pub total_chunks: u64,
    /// Chunks holding item data.
    pub used_chunks: u64,
    /// Chunks on the free lists.
    pub free_chunks: u64,
    /// Never-used chunks at the end of the newest pages.
    pub free_chunks_end: u64,
    /// Fetch hits.
    pub get_hits: u64,
    /// Storage commands.
    pub cmd_set: u64,
    /// Delete hits.
    pub delete_hits: u64,
    /// Incr hits.
    pub incr_hits: u64,
    /// Decr hits.
    pub decr_hits: u64,
    /// CAS hits.
    pub cas_hits: u64,
    /// CAS mismatches.
    pub cas_badval: u64,
    /// Touch hits.
    pub touch_hits: u64,
    /// Bytes requested by stored items.
    pub mem_requested: u64,
    /// Items stored (heads).
    pub number: u64,
    /// Items in HOT.
    pub number_hot: u64,
    /// Items in WARM.
    pub number_warm: u64,
    /// Items in COLD.
    pub number_cold: u64,
    /// Always 0 (no TEMP LRU).
    pub number_temp: u64,
    /// Age of the oldest HOT item.
    pub age_hot: u32,
    /// Age of the oldest WARM item.
    pub age_warm: u32,
    /// Age of the oldest COLD item (`age`).
    pub age: u32,
    /// Evictions.
    pub evicted: u64,
    /// Evictions of items with an exptime.
    pub evicted_nonzero: u64,
    /// Seconds since last access of the last evicted item.
    pub evicted_time: u32,
    /// Allocation failures.
    pub outofmemory: u64,
    /// Always 0.
    pub tailrepairs: u64,
    /// Expired items reclaimed at the tail.
    pub reclaimed: u64,
    /// Expired items reclaimed unfetched.
    pub expired_unfetched: u64,
    /// Evicted unfetched.
    pub evicted_unfetched: u64,
    /// Evicted while active.
    pub evicted_active: u64,
    /// Reclaimed by the crawler.
    pub crawler_reclaimed: u64,
    /// Checked by the crawler.
    pub crawler_items_checked: u64,
    /// Always 0.
    pub lrutail_reflocked: u64,
    /// Moves to COLD.
    pub moves_to_cold: u64,
    /// Moves to WARM.
    pub moves_to_warm: u64,
    /// Moves within WARM.
    pub moves_within_lru: u64,
    /// Inline reclaim retries.
    pub direct_reclaims: u64,
    /// Hits on HOT items.
    pub hits_to_hot: u64,
    /// Hits on WARM items.
    pub hits_to_warm: u64,
    /// Hits on COLD items.
    pub hits_to_cold: u64,
    /// Always 0.
    pub hits_to_temp: u64,
}

/// One `stats sizes` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeBucket {
    /// Upper bound of the bucket (multiple of 32).
    pub size: u32,
    /// Items in the bucket.
    pub count: u64,
}

pub(crate) fn collect(ctx: &Ctx) -> EngineStats {
    let mut s = EngineStats {
        limit_maxbytes: (ctx.page_limit.load(Ordering::Relaxed) * ctx.cfg.page_size) as u64,
        total_pages: ctx.pages_used.load(Ordering::Relaxed) as u64,
        slabs_moved: ctx.slabs_moved.load(Ordering::Relaxed),
        slab_reassign_running: ctx.reassign_running.load(Ordering::Relaxed),
        shards: ctx.shards.len() as u64,
        slab_automove: ctx.automove.load(Ordering::Relaxed),
        ..Default::default()
    };
    s.total_malloced = s.total_pages * ctx.cfg.page_size as u64;
    let mut slots = 0usize;
    for sh in ctx.shards.iter() {
        let sh = sh.lock();
        let g = &sh.g;
        s.curr_items += g.curr_items;
        s.total_items += g.total_items;
        s.bytes += g.bytes;
        s.get_expired += g.get_expired;
        s.get_flushed += g.get_flushed;
        s.lru_bumps_dropped += g.lru_bumps_dropped;
        s.slab_reassign_rescues += g.reassign_rescues;
        s.slab_reassign_evictions_nomem += g.reassign_evictions_nomem;
        s.slab_pages_stolen += g.pages_stolen;
        s.hash_bytes += sh.hash.bytes() as u64;
        s.hash_is_expanding |= sh.hash.is_expanding();
        slots += sh.hash.capacity();
        for c in &sh.classes {
            let c = &c.c;
            s.evictions += c.evicted;
            s.reclaimed += c.reclaimed;
            s.expired_unfetched += c.expired_unfetched;
            s.evicted_unfetched += c.evicted_unfetched;
            s.evicted_active += c.evicted_active;
            s.crawler_reclaimed += c.crawler_reclaimed;
            s.crawler_items_checked += c.crawler_items_checked;
            s.moves_to_cold += c.moves_to_cold;
            s.moves_to_warm += c.moves_to_warm;
            s.moves_within_lru += c.moves_within_lru;
            s.direct_reclaims += c.direct_reclaims;
            s.outofmemory += c.outofmemory;
        }
    }
    s.hash_power_level = usize::BITS - 1 - slots.max(1).leading_zeros();
    s
}

/// Counters as of the last `stats reset` (memcached zeroes them; we keep the raw,
/// monotonic values for the Prometheus exporter and subtract this snapshot instead).
#[derive(Debug, Default)]
pub(crate) struct Baseline {
    pub engine: EngineStats,
    /// Every class, index = class id - 1 (empty until the first reset).
    pub classes: Vec<ClassStats>,
}

impl EngineStats {
    /// These counters minus `base`: exactly the fields memcached 1.6.18's `stats reset`
    /// zeroes (`struct stats`, the per-thread stats and `itemstats`); gauges and
    /// `lru_bumps_dropped` (per-thread bump buffers, not reset there) are kept.
    pub(crate) fn since(&self, base: &EngineStats) -> EngineStats {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        EngineStats {
            total_items: d(self.total_items, base.total_items),
            evictions: d(self.evictions, base.evictions),
            reclaimed: d(self.reclaimed, base.reclaimed),
            expired_unfetched: d(self.expired_unfetched, base.expired_unfetched),
            evicted_unfetched: d(self.evicted_unfetched, base.evicted_unfetched),
            evicted_active: d(self.evicted_active, base.evicted_active),
            crawler_reclaimed: d(self.crawler_reclaimed, base.crawler_reclaimed),
            crawler_items_checked: d(self.crawler_items_checked, base.crawler_items_checked),
            lrutail_reflocked: d(self.lrutail_reflocked, base.lrutail_reflocked),
            moves_to_cold: d(self.moves_to_cold, base.moves_to_cold),
            moves_to_warm: d(self.moves_to_warm, base.moves_to_warm),
            moves_within_lru: d(self.moves_within_lru, base.moves_within_lru),
            direct_reclaims: d(self.direct_reclaims, base.direct_reclaims),
            get_expired: d(self.get_expired, base.get_expired),
            get_flushed: d(self.get_flushed, base.get_flushed),
            slab_reassign_rescues: d(self.slab_reassign_rescues, base.slab_reassign_rescues),
            slab_reassign_chunk_rescues: d(
                self.slab_reassign_chunk_rescues,
                base.slab_reassign_chunk_rescues,
            ),
            slab_reassign_evictions_nomem: d(
                self.slab_reassign_evictions_nomem,
                base.slab_reassign_evictions_nomem,
            ),
            slab_reassign_inline_reclaim: d(
                self.slab_reassign_inline_reclaim,
                base.slab_reassign_inline_reclaim,
            ),
            slab_reassign_busy_items: d(
                self.slab_reassign_busy_items,
                base.slab_reassign_busy_items,
            ),
            slab_reassign_busy_deletes: d(
                self.slab_reassign_busy_deletes,
                base.slab_reassign_busy_deletes,
            ),
            slabs_moved: d(self.slabs_moved, base.slabs_moved),
            slab_pages_stolen: d(self.slab_pages_stolen, base.slab_pages_stolen),
            outofmemory: d(self.outofmemory, base.outofmemory),
            ..self.clone()
        }
    }
}

impl ClassStats {
    /// These counters minus `base` (see [`EngineStats::since`]): memcached zeroes the
    /// per-class command counters (`slab_stats`, `lru_hits`) and all of `itemstats`,
    /// including `evicted_time`; sizes, counts, ages and `mem_requested` are kept.
    pub(crate) fn since(&self, base: &ClassStats) -> ClassStats {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let evicted = d(self.evicted, base.evicted);
        ClassStats {
            get_hits: d(self.get_hits, base.get_hits),
            cmd_set: d(self.cmd_set, base.cmd_set),
            delete_hits: d(self.delete_hits, base.delete_hits),
            incr_hits: d(self.incr_hits, base.incr_hits),
            decr_hits: d(self.decr_hits, base.decr_hits),
            cas_hits: d(self.cas_hits, base.cas_hits),
            cas_badval: d(self.cas_badval, base.cas_badval),
            touch_hits: d(self.touch_hits, base.touch_hits),
            evicted,
            evicted_nonzero: d(self.evicted_nonzero, base.evicted_nonzero),
            // Seconds since the last access of the last item evicted since the reset.
            evicted_time: if evicted == 0 { 0 } else { self.evicted_time },
            outofmemory: d(self.outofmemory, base.outofmemory),
            tailrepairs: d(self.tailrepairs, base.tailrepairs),
            reclaimed: d(self.reclaimed, base.reclaimed),
            expired_unfetched: d(self.expired_unfetched, base.expired_unfetched),
            evicted_unfetched: d(self.evicted_unfetched, base.evicted_unfetched),
            evicted_active: d(self.evicted_active, base.evicted_active),
            crawler_reclaimed: d(self.crawler_reclaimed, base.crawler_reclaimed),
            crawler_items_checked: d(self.crawler_items_checked, base.crawler_items_checked),
            lrutail_reflocked: d(self.lrutail_reflocked, base.lrutail_reflocked),
            moves_to_cold: d(self.moves_to_cold, base.moves_to_cold),
            moves_to_warm: d(self.moves_to_warm, base.moves_to_warm),
            moves_within_lru: d(self.moves_within_lru, base.moves_within_lru),
            direct_reclaims: d(self.direct_reclaims, base.direct_reclaims),
            hits_to_hot: d(self.hits_to_hot, base.hits_to_hot),
            hits_to_warm: d(self.hits_to_warm, base.hits_to_warm),
            hits_to_cold: d(self.hits_to_cold, base.hits_to_cold),
            hits_to_temp: d(self.hits_to_temp, base.hits_to_temp),
            ..self.clone()
        }
    }
}

pub(crate) fn collect_classes(ctx: &Ctx) -> Vec<ClassStats> {
    let mut rows = collect_all_classes(ctx);
    rows.retain(|r| r.total_pages > 0 || r.number > 0 || r.cmd_set > 0 || r.evicted > 0);
    rows
}

/// One row per class, index = class id - 1.
pub(crate) fn collect_all_classes(ctx: &Ctx) -> Vec<ClassStats> {
    let now = ctx.clock.now();
    let mut rows: Vec<ClassStats> = ctx
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| ClassStats {
            id: (i + 1) as u8,
            chunk_size: c.size,
            chunks_per_page: c.perslab,
            ..Default::default()
        })
        .collect();
    for sh in ctx.shards.iter() {
        let sh = sh.lock();
        for (i, r) in rows.iter_mut().enumerate() {
            let cl = &sh.classes[i];
            let c = &cl.c;
            r.total_pages += cl.pool.pages.len() as u64;
            r.used_chunks += cl.pool.used;
            r.free_chunks += u64::from(cl.pool.free_count);
            r.free_chunks_end += u64::from(cl.pool.end_left);
            r.get_hits += c.lru_hits.iter().sum::<u64>();
            r.hits_to_hot += c.lru_hits[0];
            r.hits_to_warm += c.lru_hits[1];
            r.hits_to_cold += c.lru_hits[2];
            r.cmd_set += c.cmd_set;
            r.delete_hits += c.delete_hits;
            r.incr_hits += c.incr_hits;
            r.decr_hits += c.decr_hits;
            r.cas_hits += c.cas_hits;
            r.cas_badval += c.cas_badval;
            r.touch_hits += c.touch_hits;
            r.mem_requested += cl.requested;
            r.number_hot += cl.lru[HOT as usize].count;
            r.number_warm += cl.lru[WARM as usize].count;
            r.number_cold += cl.lru[COLD as usize].count;
            r.age_hot = r.age_hot.max(sh.lru_age(ctx, i, HOT, now));
            r.age_warm = r.age_warm.max(sh.lru_age(ctx, i, WARM, now));
            r.age = r.age.max(sh.lru_age(ctx, i, COLD, now));
            r.evicted += c.evicted;
            r.evicted_nonzero += c.evicted_nonzero;
            r.evicted_time = r.evicted_time.max(c.evicted_time);
            r.outofmemory += c.outofmemory;
            r.reclaimed += c.reclaimed;
            r.expired_unfetched += c.expired_unfetched;
            r.evicted_unfetched += c.evicted_unfetched;
            r.evicted_active += c.evicted_active;
            r.crawler_reclaimed += c.crawler_reclaimed;
            r.crawler_items_checked += c.crawler_items_checked;
            r.moves_to_cold += c.moves_to_cold;
            r.moves_to_warm += c.moves_to_warm;
            r.moves_within_lru += c.moves_within_lru;
            r.direct_reclaims += c.direct_reclaims;
        }
    }
    for r in rows.iter_mut() {
        r.number = r.number_hot + r.number_warm + r.number_cold;
        r.total_chunks = r.total_pages * u64::from(r.chunks_per_page);
    }
    rows
}

pub(crate) fn size_histogram(ctx: &Ctx) -> Vec<super::SizeBucket> {
    let mut m = BTreeMap::new();
    for sh in ctx.shards.iter() {
        sh.lock().size_histogram(ctx, &mut m);
    }
    m.into_iter()
        .map(|(size, count)| super::SizeBucket { size, count })
        .collect()
}
