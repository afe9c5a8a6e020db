//! The router's own counters, answered by `stats` (memcached's format, so memcached
//! tooling such as `memcstat` and memcached_exporter can read them).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Process-wide counters (relaxed atomics; read only by `stats`).
#[derive(Debug)]
pub struct Stats {
    start: Instant,
    start_unix: u64,
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
    /// Connections refused over `--max-conns`.
    pub rejected_connections: AtomicU64,
    /// Requests accepted from clients and not yet answered (all workers).
    pub in_flight: AtomicI64,
    /// Requests routed (a multi-key get counts once).
    pub requests: AtomicU64,
    /// Keys looked up by get-like commands.
    pub cmd_get: AtomicU64,
    pub cmd_set: AtomicU64,
    pub cmd_delete: AtomicU64,
    pub cmd_other: AtomicU64,
    /// Replies that were errors made or passed on by the router.
    pub errors: AtomicU64,
    /// Backend requests sent for multi-key gets (one per destination).
    pub multiget_backend_requests: AtomicU64,
    pub config_reloads: AtomicU64,
    pub config_failures: AtomicU64,
    pub config_last_success: AtomicU64,
    /// Deletes received on the invalidation intake, and the batches they came in.
    pub intake_deletes: AtomicU64,
    pub intake_batches: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        let now = unix_now();
        Stats {
            start: Instant::now(),
            start_unix: now,
            curr_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            requests: AtomicU64::new(0),
            cmd_get: AtomicU64::new(0),
            cmd_set: AtomicU64::new(0),
            cmd_delete: AtomicU64::new(0),
            cmd_other: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            multiget_backend_requests: AtomicU64::new(0),
            config_reloads: AtomicU64::new(0),
            config_failures: AtomicU64::new(0),
            config_last_success: AtomicU64::new(now),
            intake_deletes: AtomicU64::new(0),
            intake_batches: AtomicU64::new(0),
        }
    }
}

/// What `version` and `stats` report: a memcached-style `major.minor.micro` first, since
/// libmemcached (`memcstat`) parses it, then who we are.
pub const VERSION: &str = concat!("1.6.0-mcrouter-rs-", env!("CARGO_PKG_VERSION"));

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Stats {
    pub fn uptime_secs(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `STAT name value` lines and `END`. `extra` adds router-level facts.
    pub fn render(&self, extra: &[(&str, String)]) -> Vec<u8> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let mut lines: Vec<(&str, String)> = vec![
            ("pid", std::process::id().to_string()),
            ("uptime", self.uptime_secs().to_string()),
            ("time", unix_now().to_string()),
            ("start_time", self.start_unix.to_string()),
            (
                "version",
                format!("mcrouter-rs {}", env!("CARGO_PKG_VERSION")),
            ),
            ("curr_connections", g(&self.curr_connections)),
            ("total_connections", g(&self.total_connections)),
            ("rejected_connections", g(&self.rejected_connections)),
            ("cmd_get", g(&self.cmd_get)),
            ("cmd_set", g(&self.cmd_set)),
            ("cmd_delete", g(&self.cmd_delete)),
            ("cmd_other", g(&self.cmd_other)),
            ("requests", g(&self.requests)),
            (
                "in_flight",
                self.in_flight.load(Ordering::Relaxed).to_string(),
            ),
            ("errors", g(&self.errors)),
            (
                "multiget_backend_requests",
                g(&self.multiget_backend_requests),
            ),
            ("config_reloads", g(&self.config_reloads)),
            ("config_failures", g(&self.config_failures)),
            ("config_last_success", g(&self.config_last_success)),
            ("intake_deletes", g(&self.intake_deletes)),
            ("intake_batches", g(&self.intake_batches)),
            (
                "dev_null_requests",
                crate::route::dev_null::requests().to_string(),
            ),
            (
                "coalesced_requests",
                crate::coalesce::coalesced().to_string(),
            ),
        ];
        lines.extend(extra.iter().cloned());
        let mut out = Vec::new();
        for (k, v) in lines {
            out.extend_from_slice(b"STAT ");
            out.extend_from_slice(k.as_bytes());
            out.push(b' ');
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"END\r\n");
        out
    }
}
