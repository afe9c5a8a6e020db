//! Prometheus metrics (`--metrics-listen ADDR`).
//!
//! ```text
//!  worker threads ── per-batch latency ──> LatencyRecorder (one per worker, plain stores)
//!                                                │
//!  collector thread (once a second) ─── reads ───┤ StatsRegistry::raw_totals, Engine::raw_stats,
//!        │                                       │ class_stats, ConnCounters
//!        v                                       v
//!  `metrics` facade ──> metrics-exporter-prometheus recorder ──> HTTP listener thread
//!                                                                 (GET /metrics)
//! ```
//!
//! Counters are not bumped on the hot path: the collector copies the `stats` counters
//! (the memcached-compatible source of truth) into Prometheus counters with `absolute`.
//! The only hot-path work is the latency histogram: a worker reads the clock once per
//! event-loop wake-up and once after executing each batch of pipelined requests, and adds
//! the batch to its own bucket array (no allocation, no lock, no shared cache line). The
//! collector turns bucket deltas into histogram samples.
//!
//! The exporter's own HTTP listener cannot report the port it bound when asked for port 0,
//! so [`serve`] binds the socket itself and answers scrapes with
//! [`PrometheusHandle::render`]. The recorder is process-wide (the `metrics` facade has
//! one global recorder): the router's local tier runs several cache servers in one process
//! and tells them apart with a `server` label ([`Labels`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, Label, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;

use crate::server::Shared;

/// Upper bounds (seconds) of every latency histogram of both binaries: 10 µs to 10 s.
/// Explicit and shared, so Grafana can aggregate across instances.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often collectors copy counters into the recorder (and histograms are drained).
pub const COLLECT_INTERVAL: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
pub fn handle() -> io::Result<&'static PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h);
    }
    let mut err = None;
    let h = HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .expect("non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            err = Some(e.to_string());
        }
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(COLLECT_INTERVAL);
                upkeep.run_upkeep();
            });
        handle
    });
    match err {
        Some(e) => Err(io::Error::other(format!(
            "cannot install the metrics recorder: {e}"
        ))),
        None => Ok(h),
    }
}

/// Serve `GET /metrics` (any path, in fact) on `addr` from a background thread; returns
/// the bound address (port 0 picks one).
pub fn serve(addr: &str) -> io::Result<SocketAddr> {
    let handle = handle()?;
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("metrics address {addr}: {e}")))?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("metrics address {addr}: no address"),
            )
        })?;
    let listener = TcpListener::bind(sock)
        .map_err(|e| io::Error::new(e.kind(), format!("metrics listener on {sock}: {e}")))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, handle);
            }
        })?;
    Ok(bound)
}

/// One scrape: read the request head, answer with the rendered metrics, close.
fn answer(mut s: std::net::TcpStream, handle: &PrometheusHandle) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if head.starts_with(b"GET ") || head.starts_with(b"HEAD ") {
        ("200 OK", handle.render())
    } else {
        ("405 Method Not Allowed", String::new())
    };
    let head_only = head.starts_with(b"HEAD ");
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if !head_only {
        s.write_all(body.as_bytes())?;
    }
    s.flush()
}

/// Extra labels on every series of one server (the local tier's `server="ADDR"`).
pub type Labels = Vec<Label>;

/// Per-worker request latency buckets. Exactly one thread (the worker) writes; the
/// collector reads. Counts and summed nanoseconds per bucket, so the exported histogram
/// has exact bucket counts and an exact sum.
#[derive(Debug, Default)]
pub struct LatencyRecorder {
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    nanos: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

/// Bucket bounds in nanoseconds, for the hot path's integer compare.
const BOUNDS_NS: [u64; LATENCY_BUCKETS.len()] = {
    let mut out = [0u64; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (LATENCY_BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    out
};

impl LatencyRecorder {
    /// `n` requests were answered in a batch that ended `elapsed` after the worker woke up
    /// (each request's reply leaves with the batch).
    #[inline]
    pub fn record(&self, elapsed: Duration, n: u64) {
        let ns = elapsed.as_nanos().min(u64::MAX as u128) as u64;
        let i = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BOUNDS_NS.len());
        // Single writer: a load and a store, no locked read-modify-write.
        let c = &self.counts[i];
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        let t = &self.nanos[i];
        t.store(
            t.load(Ordering::Relaxed).wrapping_add(ns.saturating_mul(n)),
            Ordering::Relaxed,
        );
    }
}

/// All workers' latency recorders of one server.
#[derive(Debug, Default)]
pub struct LatencyRegistry {
    recorders: Mutex<Vec<Arc<LatencyRecorder>>>,
}

impl LatencyRegistry {
    pub fn register(&self) -> Arc<LatencyRecorder> {
        let r = Arc::new(LatencyRecorder::default());
        self.recorders.lock().push(r.clone());
        r
    }

    /// Summed (count, nanoseconds) per bucket.
    fn snapshot(&self) -> [(u64, u64); LATENCY_BUCKETS.len() + 1] {
        let mut out = [(0u64, 0u64); LATENCY_BUCKETS.len() + 1];
        for r in self.recorders.lock().iter() {
            for (i, o) in out.iter_mut().enumerate() {
                o.0 += r.counts[i].load(Ordering::Relaxed);
                o.1 = o.1.wrapping_add(r.nanos[i].load(Ordering::Relaxed));
            }
        }
        out
    }
}

/// Describe every cache-server metric once (idempotent).
pub fn describe() {
    describe_counter!(
        "cache_server_commands_total",
        "Commands received, by command (memcached's cmd_get counts keys; cmd_meta counts meta commands)"
    );
    describe_counter!(
        "cache_server_command_results_total",
        "Command outcomes, by command and result (hit, miss, stored, not_stored, exists, not_found, too_large, out_of_memory)"
    );
    describe_histogram!(
        "cache_server_request_duration_seconds",
        Unit::Seconds,
        "Server-side time per request, from the worker's wake-up for the readiness that brought it to its batch's replies being ready"
    );
    describe_counter!(
        "cache_server_read_bytes_total",
        Unit::Bytes,
        "Bytes read from client connections"
    );
    describe_counter!(
        "cache_server_written_bytes_total",
        Unit::Bytes,
        "Bytes written to client connections"
    );
    describe_gauge!("cache_server_connections", "Open client connections");
    describe_counter!(
        "cache_server_connections_total",
        "Client connections accepted"
    );
    describe_counter!(
        "cache_server_connections_rejected_total",
        "Client connections refused over the connection limit (-c)"
    );
    describe_gauge!("cache_server_items", "Items currently stored");
    describe_gauge!(
        "cache_server_item_bytes",
        Unit::Bytes,
        "Bytes used by stored items (header, key and value)"
    );
    describe_gauge!(
        "cache_server_limit_bytes",
        Unit::Bytes,
        "Memory limit for items (-m)"
    );
    describe_gauge!(
        "cache_server_allocated_bytes",
        Unit::Bytes,
        "Bytes of slab pages allocated"
    );
    describe_counter!(
        "cache_server_evictions_total",
        "Items evicted to make room for new ones"
    );
    describe_counter!(
        "cache_server_expired_reclaimed_total",
        "Expired items whose memory was reclaimed, by reclaimer (alloc: reused at an LRU tail; crawler)"
    );
    describe_counter!(
        "cache_server_slab_pages_moved_total",
        "Slab pages moved between classes (slabs reassign and automove)"
    );
    describe_gauge!("cache_server_slab_pages", "Pages assigned to a slab class");
    describe_gauge!(
        "cache_server_slab_chunks",
        "Chunks of a slab class, by state (used: holding items; free: on the free list or never used)"
    );
    describe_gauge!(
        "cache_server_slab_chunk_size_bytes",
        Unit::Bytes,
        "Chunk size of a slab class"
    );
    describe_counter!(
        "cache_server_lease_tokens_issued_total",
        "Lease tokens handed out on misses"
    );
    describe_counter!(
        "cache_server_lease_hot_misses_total",
        "Lease gets answered with a hot miss (another client holds the lease)"
    );
    describe_counter!(
        "cache_server_lease_stale_answers_total",
        "Lease gets answered with a stale value"
    );
}

/// Copies one server's counters into the recorder once a second until shutdown.
pub fn spawn_collector(sh: Arc<Shared>, labels: Labels) -> io::Result<()> {
    handle()?;
    describe();
    std::thread::Builder::new()
        .name("metrics-collector".into())
        .spawn(move || {
            let mut c = Collector {
                labels,
                last: [(0, 0); LATENCY_BUCKETS.len() + 1],
            };
            while !sh.shutdown.is_set() {
                c.collect(&sh);
                sh.shutdown.sleep(COLLECT_INTERVAL);
            }
        })?;
    Ok(())
}

struct Collector {
    labels: Labels,
    last: [(u64, u64); LATENCY_BUCKETS.len() + 1],
}

impl Collector {
    fn labels(&self, extra: &[(&'static str, String)]) -> Vec<Label> {
        let mut l = self.labels.clone();
        l.extend(extra.iter().map(|(k, v)| Label::new(*k, v.clone())));
        l
    }

    fn counter(&self, name: &'static str, extra: &[(&'static str, String)], v: u64) {
        metrics::counter!(name, self.labels(extra)).absolute(v);
    }

    fn gauge(&self, name: &'static str, extra: &[(&'static str, String)], v: f64) {
        metrics::gauge!(name, self.labels(extra)).set(v);
    }

    fn collect(&mut self, sh: &Shared) {
        // Raw counters: `stats reset` must not make Prometheus counters go back.
        let t = sh.stats.raw_totals();
        let cmd = |c: &str| vec![("command", c.to_string())];
        for (c, v) in [
            ("get", t.cmd_get),
            ("set", t.cmd_set),
            ("touch", t.cmd_touch),
            ("flush", t.cmd_flush),
            ("meta", t.cmd_meta),
        ] {
            self.counter("cache_server_commands_total", &cmd(c), v);
        }
        for (c, r, v) in [
            ("get", "hit", t.get_hits),
            ("get", "miss", t.get_misses),
            ("delete", "hit", t.delete_hits),
            ("delete", "miss", t.delete_misses),
            ("incr", "hit", t.incr_hits),
            ("incr", "miss", t.incr_misses),
            ("decr", "hit", t.decr_hits),
            ("decr", "miss", t.decr_misses),
            ("cas", "hit", t.cas_hits),
            ("cas", "miss", t.cas_misses),
            ("cas", "exists", t.cas_badval),
            ("touch", "hit", t.touch_hits),
            ("touch", "miss", t.touch_misses),
            ("set", "stored", t.set_stored),
            ("set", "not_stored", t.set_not_stored),
            ("set", "exists", t.set_exists),
            ("set", "not_found", t.set_not_found),
            ("set", "too_large", t.store_too_large),
            ("set", "out_of_memory", t.store_no_memory),
        ] {
            self.counter(
                "cache_server_command_results_total",
                &[("command", c.to_string()), ("result", r.to_string())],
                v,
            );
        }
        self.counter("cache_server_read_bytes_total", &[], t.bytes_read);
        self.counter("cache_server_written_bytes_total", &[], t.bytes_written);
        self.counter(
            "cache_server_lease_tokens_issued_total",
            &[],
            t.lease_tokens,
        );
        self.counter(
            "cache_server_lease_hot_misses_total",
            &[],
            t.lease_hot_misses,
        );
        self.counter(
            "cache_server_lease_stale_answers_total",
            &[],
            t.lease_stale_answers,
        );

        self.gauge(
            "cache_server_connections",
            &[],
            sh.conns.curr.load(Ordering::Relaxed) as f64,
        );
        self.counter(
            "cache_server_connections_total",
            &[],
            sh.conns.total.load(Ordering::Relaxed),
        );
        self.counter(
            "cache_server_connections_rejected_total",
            &[],
            sh.conns.rejected.load(Ordering::Relaxed),
        );

        let e = sh.engine.raw_stats();
        self.gauge("cache_server_items", &[], e.curr_items as f64);
        self.gauge("cache_server_item_bytes", &[], e.bytes as f64);
        self.gauge("cache_server_limit_bytes", &[], e.limit_maxbytes as f64);
        self.gauge("cache_server_allocated_bytes", &[], e.total_malloced as f64);
        self.counter("cache_server_evictions_total", &[], e.evictions);
        self.counter(
            "cache_server_expired_reclaimed_total",
            &[("reclaimer", "alloc".into())],
            e.reclaimed,
        );
        self.counter(
            "cache_server_expired_reclaimed_total",
            &[("reclaimer", "crawler".into())],
            e.crawler_reclaimed,
        );
        self.counter("cache_server_slab_pages_moved_total", &[], e.slabs_moved);

        for c in sh.engine.raw_class_stats() {
            let class = ("class", c.id.to_string());
            self.gauge(
                "cache_server_slab_pages",
                std::slice::from_ref(&class),
                c.total_pages as f64,
            );
            self.gauge(
                "cache_server_slab_chunk_size_bytes",
                std::slice::from_ref(&class),
                c.chunk_size as f64,
            );
            self.gauge(
                "cache_server_slab_chunks",
                &[class.clone(), ("state", "used".into())],
                c.used_chunks as f64,
            );
            self.gauge(
                "cache_server_slab_chunks",
                &[class, ("state", "free".into())],
                (c.free_chunks + c.free_chunks_end) as f64,
            );
        }

        let now = sh.latency.snapshot();
        let h = metrics::histogram!("cache_server_request_duration_seconds", self.labels.clone());
        for (i, (&(count, nanos), last)) in now.iter().zip(self.last.iter()).enumerate() {
            let n = count.wrapping_sub(last.0);
            if n == 0 {
                continue;
            }
            let mean = nanos.wrapping_sub(last.1) as f64 / n as f64 / 1e9;
            // The mean of a bucket's samples lies inside that bucket (`lo < v <= hi`);
            // clamp float rounding so it is counted there.
            let hi = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::MAX);
            let v = match i.checked_sub(1).map(|j| LATENCY_BUCKETS[j]) {
                Some(lo) if mean <= lo => f64::from_bits(lo.to_bits() + 1),
                _ => mean.min(hi),
            };
            h.record_many(v, n as usize);
        }
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_by_bound() {
        let r = LatencyRecorder::default();
        r.record(Duration::from_nanos(5_000), 3);
        r.record(Duration::from_micros(10), 1);
        r.record(Duration::from_micros(11), 1);
        r.record(Duration::from_secs(60), 2);
        assert_eq!(r.counts[0].load(Ordering::Relaxed), 4);
        assert_eq!(r.nanos[0].load(Ordering::Relaxed), 25_000);
        assert_eq!(r.counts[1].load(Ordering::Relaxed), 1);
        assert_eq!(r.counts[LATENCY_BUCKETS.len()].load(Ordering::Relaxed), 2);
    }

    #[test]
    fn bounds_are_increasing() {
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(BOUNDS_NS[0], 10_000);
    }
}
