//! `--workload herd`: many clients on a few hot keys that are invalidated periodically and
//! refilled from a simulated slow backing store.
//!
//! Every client loops on `get` (or `lease-get` with `--leases`) of a hot key. On a miss it
//! "fetches" from the backing store (a timer of `backing_latency`, the connection slot held
//! meanwhile) and writes the value back with `set` (or `lease-set` with the token it got).
//! With leases, a hot miss (token 0 or 1: someone else holds the lease) is retried after
//! `retry`. Thread 0 deletes all hot keys at the start and every `invalidate_every`.
//! The figure of merit is backing-store fills per invalidation: a thundering herd makes
//! it about the number of connections; leases bring it to about 1 per key.

use std::time::Duration;

use serde::Serialize;

/// Herd parameters.
#[derive(Debug, Clone)]
pub struct HerdConfig {
    /// Simulated backing-store latency per fill.
    pub backing_latency: Duration,
    /// Period of invalidation (delete of every hot key).
    pub invalidate_every: Duration,
    /// Use `lease-get` / `lease-set`.
    pub leases: bool,
    /// Wait before retrying a lease hot miss.
    pub retry: Duration,
}

impl Default for HerdConfig {
    fn default() -> Self {
        HerdConfig {
            backing_latency: Duration::from_millis(50),
            invalidate_every: Duration::from_millis(1000),
            leases: false,
            retry: Duration::from_millis(10),
        }
    }
}

/// Herd counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HerdStats {
    /// Invalidation rounds (including the initial one).
    pub invalidations: u64,
    /// Backing-store fetches.
    pub fills: u64,
    /// Lease hot misses (someone else holds the lease).
    pub hot_misses: u64,
    /// `lease-set`s answered `STALE_STORED` or `NOT_STORED`.
    pub rejected_fills: u64,
}

impl HerdStats {
    pub fn merge(&mut self, o: &HerdStats) {
        self.invalidations += o.invalidations;
        self.fills += o.fills;
        self.hot_misses += o.hot_misses;
        self.rejected_fills += o.rejected_fills;
    }

    pub fn summary(&self) -> HerdSummary {
        HerdSummary {
            invalidations: self.invalidations,
            fills: self.fills,
            fills_per_invalidation: self.fills as f64 / self.invalidations.max(1) as f64,
            hot_misses: self.hot_misses,
            rejected_fills: self.rejected_fills,
        }
    }
}

/// Herd figures in the report.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct HerdSummary {
    pub invalidations: u64,
    pub fills: u64,
    pub fills_per_invalidation: f64,
    pub hot_misses: u64,
    pub rejected_fills: u64,
}
