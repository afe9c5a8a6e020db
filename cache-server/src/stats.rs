//! Server-level counters (what memcached keeps per worker thread) and the `stats` replies.
//!
//! Each worker owns one [`ThreadStats`] and is its only writer (relaxed atomic adds, no
//! contention); `stats` sums all workers. `stats reset` records a baseline that later reads
//! subtract, so resetting never races with the writers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// One worker's counters.
        #[derive(Debug, Default)]
        pub struct ThreadStats {
            $(pub $name: AtomicU64,)*
        }

        /// A sum of counters.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Totals {
            $(pub $name: u64,)*
        }

        impl ThreadStats {
            fn add_to(&self, t: &mut Totals) {
                $(t.$name += self.$name.load(Ordering::Relaxed);)*
            }
        }

        impl Totals {
            fn minus(&self, base: &Totals) -> Totals {
                Totals { $($name: self.$name.wrapping_sub(base.$name),)* }
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    bytes_read,
    bytes_written,
    conn_yields,
    lease_tokens,
    lease_hot_misses,
    lease_stale_answers,
    set_stored,
    set_not_stored,
    set_exists,
    set_not_found,
);

impl ThreadStats {
    #[inline]
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Server-wide counters memcached keeps in its `struct stats` (zeroed by `stats reset`)
/// that live outside the workers and the engine here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GlobalCounts {
    pub total_connections: u64,
    pub rejected_connections: u64,
    pub lru_crawler_starts: u64,
    pub lru_maintainer_juggles: u64,
}

impl GlobalCounts {
    fn minus(&self, base: &GlobalCounts) -> GlobalCounts {
        GlobalCounts {
            total_connections: self.total_connections.wrapping_sub(base.total_connections),
            rejected_connections: self
                .rejected_connections
                .wrapping_sub(base.rejected_connections),
            lru_crawler_starts: self
                .lru_crawler_starts
                .wrapping_sub(base.lru_crawler_starts),
            lru_maintainer_juggles: self
                .lru_maintainer_juggles
                .wrapping_sub(base.lru_maintainer_juggles),
        }
    }
}

/// All workers' counters, plus the reset baselines.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    threads: Mutex<Vec<Arc<ThreadStats>>>,
    baseline: Mutex<Totals>,
    global_baseline: Mutex<GlobalCounts>,
}

impl StatsRegistry {
    /// A new worker's counters.
    pub fn register(&self) -> Arc<ThreadStats> {
        let t = Arc::new(ThreadStats::default());
        self.threads.lock().push(t.clone());
        t
    }

    fn raw(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.threads.lock().iter() {
            s.add_to(&mut t);
        }
        t
    }

    /// Counters since start or the last `stats reset`.
    pub fn totals(&self) -> Totals {
        self.raw().minus(&self.baseline.lock())
    }

    /// Counters since start, never reset (for monotonic metrics).
    pub fn raw_totals(&self) -> Totals {
        self.raw()
    }

    /// `global` (raw values) counted since the last `stats reset`.
    pub fn globals(&self, global: GlobalCounts) -> GlobalCounts {
        global.minus(&self.global_baseline.lock())
    }

    /// `stats reset`: the workers' counters, and the server-wide ones whose raw values
    /// are `global`, count from zero again.
    pub fn reset(&self, global: GlobalCounts) {
        *self.baseline.lock() = self.raw();
        *self.global_baseline.lock() = global;
    }
}

/// `getrusage(RUSAGE_SELF)` user and system time as memcached prints them (`sec.usec`).
pub fn rusage() -> (String, String) {
    // SAFETY: getrusage writes into the zeroed struct we own; no other preconditions.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    (
        format!("{}.{:06}", ru.ru_utime.tv_sec, ru.ru_utime.tv_usec),
        format!("{}.{:06}", ru.ru_stime.tv_sec, ru.ru_stime.tv_usec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_workers_and_resets_with_a_baseline() {
        let reg = StatsRegistry::default();
        let a = reg.register();
        let b = reg.register();
        ThreadStats::incr(&a.cmd_get);
        ThreadStats::add(&b.cmd_get, 2);
        ThreadStats::incr(&b.get_hits);
        assert_eq!(reg.totals().cmd_get, 3);
        assert_eq!(reg.totals().get_hits, 1);
        let g = GlobalCounts {
            total_connections: 5,
            rejected_connections: 1,
            lru_crawler_starts: 2,
            lru_maintainer_juggles: 9,
        };
        assert_eq!(reg.globals(g), g);
        reg.reset(g);
        assert_eq!(reg.totals(), Totals::default());
        assert_eq!(reg.globals(g), GlobalCounts::default());
        ThreadStats::incr(&a.cmd_get);
        assert_eq!(reg.totals().cmd_get, 1);
        assert_eq!(reg.raw_totals().cmd_get, 4);
        let later = GlobalCounts {
            total_connections: 7,
            ..g
        };
        assert_eq!(reg.globals(later).total_connections, 2);
    }

    #[test]
    fn rusage_format() {
        let (u, s) = rusage();
        for v in [u, s] {
            let (sec, usec) = v.split_once('.').unwrap();
            assert!(sec.parse::<u64>().is_ok());
            assert_eq!(usec.len(), 6);
        }
    }
}
