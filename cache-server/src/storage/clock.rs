//! Time sources for the engine.
//!
//! The engine works in memcached's *relative* seconds (`rel_time_t`,
//! `current_time`): seconds since the process started, plus the Unix time of
//! that start (`process_started`) to convert absolute expiration times.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// memcached starts `current_time` at `ITEM_UPDATE_INTERVAL + 2` (62 s) so that
/// "time 0" and "time 1" (used as "never" and "already expired") are in the past.
pub const CLOCK_START_OFFSET: u32 = 62;

/// A source of memcached-style time. Must be cheap: it is read on every command.
pub trait Clock: Send + Sync {
    /// Seconds since the process started (memcached's `current_time`). Monotonic.
    fn now(&self) -> u32;
    /// Unix time (seconds) that corresponds to `now() == 0`
    /// (memcached's `process_started`).
    fn process_started(&self) -> i64;
    /// Current Unix time in seconds, as seen by this clock.
    fn unix_now(&self) -> i64 {
        self.process_started() + i64::from(self.now())
    }
}

/// The real clock: monotonic whole seconds since creation, offset like memcached's, plus
/// the wall-clock Unix time of the start.
///
/// Like memcached's `current_time`, it is *coarse*: a ticker thread refreshes an atomic every
/// [`SystemClock::TICK`], and `now()` is a single relaxed load (reading the OS clock on every
/// command cost hundreds of instructions per request). The ticker stops when the clock is
/// dropped.
#[derive(Debug)]
pub struct SystemClock {
    inner: Arc<Ticking>,
}

#[derive(Debug)]
struct Ticking {
    start: Instant,
    started_unix: i64,
    now: AtomicU32,
}

impl Ticking {
    fn read_os(&self) -> u32 {
        let secs = self.start.elapsed().as_secs();
        (secs.min(u64::from(u32::MAX - CLOCK_START_OFFSET)) as u32) + CLOCK_START_OFFSET
    }
}

impl SystemClock {
    /// How often the ticker refreshes the time.
    pub const TICK: Duration = Duration::from_millis(50);

    /// Creates a clock whose `now()` starts at [`CLOCK_START_OFFSET`].
    pub fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let inner = Arc::new(Ticking {
            start: Instant::now(),
            started_unix: unix - i64::from(CLOCK_START_OFFSET),
            now: AtomicU32::new(CLOCK_START_OFFSET),
        });
        let weak: Weak<Ticking> = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new()
            .name("clock".into())
            .spawn(move || loop {
                std::thread::sleep(Self::TICK);
                match weak.upgrade() {
                    Some(t) => t.now.store(t.read_os(), Ordering::Relaxed),
                    None => return,
                }
            });
        if spawned.is_err() {
            // No thread: fall back to reading the OS clock on each call (see `now`).
            inner.now.store(0, Ordering::Relaxed);
        }
        SystemClock { inner }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> u32 {
        match self.inner.now.load(Ordering::Relaxed) {
            0 => self.inner.read_os(),
            n => n,
        }
    }

    fn process_started(&self) -> i64 {
        self.inner.started_unix
    }
}

/// A clock moved by hand, for tests. Starts at `now() == 1000` with
/// `process_started == 1_700_000_000`.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU32,
    started_unix: i64,
}

impl ManualClock {
    /// Default start values (see the type docs).
    pub fn new() -> Self {
        Self::with_start(1000, 1_700_000_000)
    }

    /// A clock at relative time `now` whose relative 0 is Unix time `started_unix`.
    pub fn with_start(now: u32, started_unix: i64) -> Self {
        ManualClock {
            now: AtomicU32::new(now),
            started_unix,
        }
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: u32) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the relative time.
    pub fn set(&self, now: u32) {
        self.now.store(now, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u32 {
        self.now.load(Ordering::SeqCst)
    }

    fn process_started(&self) -> i64 {
        self.started_unix
    }
}

#[cfg(test)]
mod system_clock_tests {
    use super::*;

    #[test]
    fn system_clock_ticks_forward() {
        let c = SystemClock::new();
        let t0 = c.now();
        assert!(t0 >= CLOCK_START_OFFSET);
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.now() == t0 {
            assert!(Instant::now() < deadline, "clock did not advance");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(c.now(), t0 + 1);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((c.unix_now() - unix).abs() <= 1);
    }
}
