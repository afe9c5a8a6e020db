//! One run: configuration, driver threads, merged report, progress line.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcrouter::hash::{HashFunc, HashSelector};
use protocol::{MetaFlags, Request};

use crate::driver::Driver;
use crate::herd::HerdConfig;
use crate::stats::{Report, ThreadStats};
use crate::workload::Workload;
use crate::{ConfigError, RunError};

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// Measured time, after warm-up.
    Duration(Duration),
    /// Total requests over all threads, after warm-up.
    Requests(u64),
}

/// Open-loop inter-arrival times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly spaced.
    Fixed,
    /// Exponentially distributed gaps (a Poisson process).
    Poisson,
}

/// Meta flag sets parsed once (with the protocol crate) and reused for every request.
#[derive(Debug, Clone)]
pub struct MetaTemplates {
    /// `mg`: `v k` (value and key).
    pub mg: MetaFlags<'static>,
    ms: Vec<MetaFlags<'static>>,
    ttl_min: i64,
    ttl_max: i64,
}

/// Most distinct TTLs the meta `ms` templates cover; wider expiry ranges are quantised.
const MAX_META_TTLS: i64 = 1024;

fn meta_flags(line: String) -> MetaFlags<'static> {
    static CACHE: OnceLock<Mutex<HashMap<String, MetaFlags<'static>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(f) = cache.get(&line) {
        return *f;
    }
    // Leaked once per distinct template line (bounded by MAX_META_TTLS + 1 per process).
    let text: &'static str = Box::leak(line.clone().into_boxed_str());
    let flags = match protocol::parse_request(text.as_bytes(), &protocol::Limits::default()) {
        Ok(Some((Request::MetaGet { flags, .. } | Request::MetaSet { flags, .. }, _))) => flags,
        other => panic!("meta template {text:?} does not parse: {other:?}"),
    };
    cache.insert(line, flags);
    flags
}

impl MetaTemplates {
    pub fn new(ttl_min: i64, ttl_max: i64) -> Self {
        let span = (ttl_max - ttl_min).max(0);
        let n = span.min(MAX_META_TTLS - 1) + 1;
        let ms = (0..n)
            .map(|i| {
                let ttl = if n == 1 {
                    ttl_min
                } else {
                    ttl_min + i * span / (n - 1)
                };
                meta_flags(format!("ms k 1 T{ttl}\r\nx\r\n"))
            })
            .collect();
        MetaTemplates {
            mg: meta_flags("mg k v k\r\n".to_string()),
            ms,
            ttl_min,
            ttl_max,
        }
    }

    /// Flags of an `ms` with (about) this TTL.
    #[inline]
    pub fn ms_for(&self, ttl: i64) -> MetaFlags<'static> {
        let n = self.ms.len() as i64;
        if n == 1 {
            return self.ms[0];
        }
        let i = (ttl - self.ttl_min) * (n - 1) / (self.ttl_max - self.ttl_min).max(1);
        self.ms[i.clamp(0, n - 1) as usize]
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub servers: Vec<SocketAddr>,
    /// Client-side sharding over `servers` (mcrouter's hash functions).
    pub selector: Option<HashSelector>,
    pub threads: usize,
    /// Connections per thread (per server).
    pub connections: usize,
    /// Outstanding requests per connection.
    pub pipeline: usize,
    pub workload: Workload,
    pub stop: Stop,
    pub warmup: Duration,
    /// Open loop: total offered requests per second.
    pub rate: Option<f64>,
    pub arrival: Arrival,
    pub verify: bool,
    pub herd: Option<HerdConfig>,
    pub seed: u64,
    pub meta: MetaTemplates,
    /// Show a live progress line on stderr.
    pub progress: bool,
    /// Send and receive through io_uring when the kernel allows it (Linux 6.1+, io_uring
    /// not disabled): one `io_uring_enter` per event-loop round submits the round's sends
    /// and waits for replies (multishot receives), instead of epoll_wait plus one send()
    /// and one recv() per request. Default on; epoll otherwise. `Report::io_path` says which
    /// ran.
    pub io_uring: bool,
    /// Closed loop: run the driver threads as `SCHED_BATCH`, so a reply does not preempt a
    /// server thread sharing the CPU (fewer context switches per request when client and
    /// server share a machine; no effect across machines). Default on.
    pub sched_batch: bool,
    /// The order the threads open their connections in (see [`ConnOrder`]).
    pub conn_order: ConnOrder,
}

/// The order in which the driver threads open their connections. Deterministic either way,
/// so a run is repeatable: with connections opened concurrently, which server worker gets
/// which thread's connections (memcached hands them out round-robin) changed from run to
/// run, and so did the throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnOrder {
    /// Thread 0's first connection, thread 1's first, ..., thread 0's second, ... (the
    /// default). Against a server that deals connections round-robin to as many workers as
    /// there are threads, each thread's connections all land on one worker, so a client
    /// thread and its server worker can share a CPU without waking across CPUs.
    Interleave,
    /// All of thread 0's connections, then thread 1's, ...: every thread's connections are
    /// spread over all the server's workers.
    Block,
}

impl std::str::FromStr for ConnOrder {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "interleave" => Ok(ConnOrder::Interleave),
            "block" => Ok(ConnOrder::Block),
            _ => Err(ConfigError::Invalid {
                option: "--conn-order",
                value: s.to_string(),
                expected: "interleave or block",
            }),
        }
    }
}

/// Hands out turns to open connections in [`ConnOrder`], across the driver threads.
#[derive(Debug, Default)]
pub struct ConnTurns {
    next: Mutex<u64>,
    cv: Condvar,
    aborted: AtomicBool,
}

impl ConnTurns {
    /// Block until turn `n` comes; false if a thread gave up (its connect failed).
    pub(crate) fn wait(&self, n: u64) -> bool {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        while *next != n {
            if self.aborted.load(Ordering::Relaxed) {
                return false;
            }
            next = self.cv.wait(next).unwrap_or_else(|e| e.into_inner());
        }
        true
    }

    /// The current turn is done.
    pub(crate) fn advance(&self) {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_all();
    }

    /// Aborts the turns when dropped, unless [`AbortOnDrop::disarm`]ed: a thread that
    /// leaves its connect loop early by any error path never leaves the others waiting.
    pub(crate) fn abort_on_drop(&self) -> AbortOnDrop<'_> {
        AbortOnDrop(Some(self))
    }

    /// No more turns will be taken: wake every waiter.
    pub(crate) fn abort(&self) {
        let _g = self.next.lock().unwrap_or_else(|e| e.into_inner());
        self.aborted.store(true, Ordering::Relaxed);
        self.cv.notify_all();
    }
}

pub(crate) struct AbortOnDrop<'a>(Option<&'a ConnTurns>);

impl AbortOnDrop<'_> {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            t.abort();
        }
    }
}

impl RunConfig {
    /// Defaults (memtier's: 4 threads x 50 connections, 1:10, 32-byte values) against
    /// `servers` (`host:port`), sharded with `hash` (`Ch3`, `Ketama`, ...).
    pub fn new<S: AsRef<str>>(servers: &[S], hash: &str) -> Result<Self, ConfigError> {
        if servers.is_empty() {
            return Err(ConfigError::Invalid {
                option: "--server",
                value: String::new(),
                expected: "at least one HOST:PORT",
            });
        }
        let mut addrs = Vec::new();
        for s in servers {
            let s = s.as_ref();
            let addr = s
                .to_socket_addrs()
                .map_err(|e| ConfigError::Resolve {
                    addr: s.to_string(),
                    reason: e.to_string(),
                })?
                .next()
                .ok_or_else(|| ConfigError::Resolve {
                    addr: s.to_string(),
                    reason: "no address".into(),
                })?;
            addrs.push(addr);
        }
        let selector = if servers.len() > 1 {
            Some(HashSelector::new(
                HashFunc::from_config(hash, servers, None)?,
                None,
            ))
        } else {
            None
        };
        Ok(RunConfig {
            servers: addrs,
            selector,
            threads: 4,
            connections: 50,
            pipeline: 1,
            workload: Workload::default(),
            stop: Stop::Duration(Duration::from_secs(10)),
            warmup: Duration::ZERO,
            rate: None,
            arrival: Arrival::Fixed,
            verify: false,
            herd: None,
            seed: 0x5eed,
            meta: MetaTemplates::new(0, 0),
            progress: false,
            io_uring: true,
            sched_batch: true,
            conn_order: ConnOrder::Interleave,
        })
    }

    /// Check the options against each other and build derived state. `run` calls it.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let bad = |option, value: String, expected| {
            Err(ConfigError::Invalid {
                option,
                value,
                expected,
            })
        };
        if self.threads == 0 {
            return bad("--threads", "0".into(), "at least 1");
        }
        if self.connections == 0 {
            return bad("--connections", "0".into(), "at least 1");
        }
        if self.pipeline == 0 {
            return bad("--pipeline", "0".into(), "at least 1");
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return bad(
                    "--rate",
                    r.to_string(),
                    "a positive number of requests per second",
                );
            }
        }
        self.workload.validate()?;
        if self.verify {
            let conns = (self.threads * self.connections) as u64;
            if self.workload.key_space < conns {
                return bad(
                    "--key-space",
                    self.workload.key_space.to_string(),
                    "at least threads x connections with --verify (each connection owns its keys)",
                );
            }
            let need = crate::verify::min_value_len(self.workload.key_prefix.len() + 20) as u64;
            if self.workload.value_size.min < need {
                self.workload.value_size.min = need;
                self.workload.value_size.max = self.workload.value_size.max.max(need);
            }
        }
        if self.herd.is_some() {
            self.workload.multiget = 1;
        }
        self.meta = MetaTemplates::new(
            self.workload.expiry.min as i64,
            self.workload.expiry.max as i64,
        );
        Ok(())
    }
}

/// State shared by the driver threads and the progress line.
#[derive(Debug, Default)]
pub struct Shared {
    /// Completed (measured) requests so far.
    pub ops: AtomicU64,
    /// p99 (µs) of the last full second seen by any thread.
    pub p99_us: AtomicU64,
    /// Ask the drivers to stop early.
    pub cancel: AtomicBool,
    /// Connection-opening turns ([`ConnOrder`]).
    pub turns: ConnTurns,
}

/// Run one measurement.
pub fn run(cfg: &RunConfig) -> Result<Report, RunError> {
    let mut cfg = cfg.clone();
    cfg.validate()?;
    let shared = Shared::default();
    let barrier = Barrier::new(cfg.threads);
    let cpu_before = crate::compare::cpu_ticks(std::process::id());
    let results: Vec<Result<(ThreadStats, f64), RunError>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (cfg, shared, barrier) = (&cfg, &shared, &barrier);
                std::thread::Builder::new()
                    .name(format!("loadgen-{t}"))
                    .spawn_scoped(sc, move || {
                        let driver = Driver::new(cfg, shared, t);
                        if driver.is_err() {
                            shared.cancel.store(true, Ordering::Relaxed);
                        }
                        barrier.wait();
                        driver?.run(Instant::now())
                    })
                    .expect("spawn driver thread")
            })
            .collect();
        if cfg.progress {
            progress(&cfg, &shared, &handles);
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(RunError::Thread("driver thread panicked".into())))
            })
            .collect()
    });
    let mut merged = ThreadStats::default();
    let mut secs: f64 = 0.0;
    for r in results {
        let (s, t) = r?;
        merged.merge(&s);
        secs = secs.max(t);
    }
    let mut report = Report::new(secs, merged, cfg.rate);
    if let (Some(a), Some(b)) = (cpu_before, crate::compare::cpu_ticks(std::process::id())) {
        report.client_cpu_seconds = Some(b.saturating_sub(a) as f64 / crate::compare::clk_tck());
    }
    Ok(report)
}

fn progress<T>(cfg: &RunConfig, shared: &Shared, handles: &[std::thread::ScopedJoinHandle<'_, T>]) {
    let bar = indicatif::ProgressBar::new_spinner();
    let start = Instant::now();
    let mut last = (start, 0u64);
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let ops = shared.ops.load(Ordering::Relaxed);
        let rate = (ops - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
        last = (now, ops);
        let total = match cfg.stop {
            Stop::Duration(d) => format!("/{:.0}s", (d + cfg.warmup).as_secs_f64()),
            Stop::Requests(_) => String::new(),
        };
        bar.set_message(format!(
            "[{:.1}s{total}] {:>10.0} ops/s  p99 {:.3} ms  total {ops}",
            start.elapsed().as_secs_f64(),
            rate,
            shared.p99_us.load(Ordering::Relaxed) as f64 / 1000.0,
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_templates_cover_the_range() {
        let m = MetaTemplates::new(10, 20);
        assert_eq!(m.ms_for(10).ttl, Some(10));
        assert_eq!(m.ms_for(20).ttl, Some(20));
        assert_eq!(m.ms_for(15).ttl, Some(15));
        let wide = MetaTemplates::new(0, 100_000);
        let t = wide.ms_for(50_000).ttl.unwrap();
        assert!((49_900..=50_100).contains(&t), "{t}");
        assert!(m.mg.has(b'v') && m.mg.has(b'k'));
    }
}
