//! Prometheus metrics (`--metrics-listen ADDR`), exported through the same process-wide
//! recorder and HTTP listener as cache-server's ([`cache_server::metrics`]), so the local
//! tier serves the router's and its in-process cache servers' series on one endpoint.
//!
//! Router-wide counters are copied once a second from [`Stats`](crate::stats::Stats)
//! (what `stats` answers) and from each destination's [`Health`](crate::destination::Health);
//! the per-destination latency histogram and timeout counter are recorded where replies
//! and timeouts happen (`destination.rs`), through [`DestMetrics`].
//!
//! Only what is measured is exported. Extension points, for the features that add them:
//! coalescing, leases, asynclog and failovers should describe their metrics in
//! [`describe`] and update them where they happen (like [`DestMetrics`]) or copy their
//! counters in `Collector::collect`; the end-to-end latency histogram
//! (`mcrouter_request_duration_seconds`) needs a timer around the route future in
//! `proxy.rs`: [`RequestTimer`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{describe_counter, describe_gauge, describe_histogram, Histogram, Unit};

use crate::server::Shared;

pub use cache_server::metrics::{COLLECT_INTERVAL, LATENCY_BUCKETS};

/// Set once metrics are exported: the hot path skips its clock reads otherwise.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether metrics are exported by this process.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Serve metrics on `addr` (port 0 picks one); returns the bound address.
pub fn serve(addr: &str) -> io::Result<SocketAddr> {
    let bound = cache_server::metrics::serve(addr)?;
    describe();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(bound)
}

/// Describe every mcrouter metric once (idempotent).
pub fn describe() {
    describe_counter!(
        "mcrouter_requests_total",
        "Requests routed to destinations (a multi-key get counts once)"
    );
    describe_counter!(
        "mcrouter_commands_total",
        "Commands received, by operation (get counts keys; other includes local commands such as version and stats)"
    );
    describe_counter!(
        "mcrouter_errors_total",
        "Error replies sent to clients (made by the router or passed on from a destination)"
    );
    describe_counter!(
        "mcrouter_multiget_backend_requests_total",
        "Backend requests sent for multi-key gets (one per destination)"
    );
    describe_histogram!(
        "mcrouter_request_duration_seconds",
        Unit::Seconds,
        "End-to-end latency of routed requests, from parsing to the reply being ready, by operation"
    );
    describe_counter!(
        "mcrouter_replies_total",
        "Routed requests answered, by operation and result (hit, miss, ok, not_stored, exists, not_found, error)"
    );
    describe_counter!(
        "mcrouter_coalesced_requests_total",
        "Gets answered by joining an identical request already in flight to the same destination"
    );
    describe_counter!(
        "mcrouter_gutter_failovers_total",
        "Requests a FailoverWithExptimeRoute sent to its failover (gutter) route because the normal route failed"
    );
    describe_counter!(
        "mcrouter_warmup_gets_total",
        "Gets through a WarmUpRoute, by result: cold_hit, warm_hit (answered from the warm route and added to the cold one) or miss"
    );
    describe_counter!(
        "mcrouter_warmup_fills_total",
        "Adds a WarmUpRoute sent to its cold route after a warm hit, by result (stored, not_stored, error, held_off)"
    );
    describe_counter!(
        "mcrouter_intake_deletes_total",
        "Deletes received on the invalidation intake (--invalidation-listen)"
    );
    describe_counter!(
        "mcrouter_intake_batches_total",
        "Batches of deletes the invalidation intake routed (each reaches a destination in one write)"
    );
    describe_counter!(
        "mcrouter_asynclog_spooled_total",
        "Deletes that could not reach a destination and were spooled to disk (asynclog)"
    );
    describe_counter!(
        "mcrouter_asynclog_replayed_total",
        "Spooled deletes replayed and acknowledged by their destination"
    );
    describe_counter!(
        "mcrouter_asynclog_spool_errors_total",
        "Failed deletes that could not be spooled (the client got the error)"
    );
    describe_gauge!(
        "mcrouter_asynclog_backlog",
        "Spooled deletes waiting to be replayed"
    );
    describe_counter!(
        "mcrouter_destination_writes_total",
        "Write system calls to a destination (a batch of pipelined requests is one write)"
    );
    describe_counter!(
        "mcrouter_remote_marker_reads_total",
        "Reads a RemoteMarkerRoute sent to the master region because the key carried a remote marker"
    );
    describe_histogram!(
        "mcrouter_replication_lag_seconds",
        Unit::Seconds,
        "Time from routing a request to the acknowledgement of its asynchronous copies (AllAsyncRoute, AllInitialRoute's other children: cross-region replication)"
    );
    describe_counter!(
        "mcrouter_replication_errors_total",
        "Asynchronous copies (replication) that failed; failed deletes are also spooled when the asynclog is on"
    );
    describe_counter!(
        "mcrouter_lease_tokens_routed_total",
        "Lease-get misses passed through the router, by event: issued (a lease token the client may fill with lease-set) or hot_miss (another client holds the lease: wait and retry)"
    );
    describe_counter!(
        "mcrouter_lease_sets_total",
        "lease-set requests, by routing: issuer (sent to the server that issued the token) or unknown (token not remembered; routed by key)"
    );
    describe_gauge!("mcrouter_connections", "Open client connections");
    describe_counter!("mcrouter_connections_total", "Client connections accepted");
    describe_gauge!(
        "mcrouter_in_flight_requests",
        "Requests received from clients and not yet answered"
    );
    describe_counter!("mcrouter_config_reloads_total", "Successful config reloads");
    describe_counter!(
        "mcrouter_config_reload_failures_total",
        "Config reloads that failed (the old config stays in use)"
    );
    describe_gauge!(
        "mcrouter_config_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful config load"
    );
    describe_counter!(
        "mcrouter_destination_requests_total",
        "Requests sent to a destination"
    );
    describe_counter!(
        "mcrouter_destination_errors_total",
        "Failures talking to a destination (connect errors, timeouts, closed connections)"
    );
    describe_counter!(
        "mcrouter_destination_timeouts_total",
        "Connections to a destination closed because a reply took longer than the server timeout"
    );
    describe_gauge!(
        "mcrouter_destination_tko",
        "1 while a destination is marked TKO (down; requests fail fast until a probe succeeds)"
    );
    describe_histogram!(
        "mcrouter_destination_request_duration_seconds",
        Unit::Seconds,
        "Time from queueing a request to a destination to receiving its reply"
    );
}

/// Per-destination instruments, held by each destination connection.
pub struct DestMetrics {
    latency: Histogram,
    addr: Arc<str>,
}

impl DestMetrics {
    pub fn new(addr: &str) -> Self {
        DestMetrics {
            latency: metrics::histogram!(
                "mcrouter_destination_request_duration_seconds",
                "destination" => addr.to_string()
            ),
            addr: addr.into(),
        }
    }

    /// When a request is queued, if metrics are on.
    #[inline]
    pub fn start(&self) -> Option<Instant> {
        enabled().then(Instant::now)
    }

    /// A reply arrived for a request queued at `sent`.
    #[inline]
    pub fn replied(&self, sent: Option<Instant>) {
        if let Some(t) = sent {
            self.latency.record(t.elapsed());
        }
    }

    /// The connection was closed because a reply took too long.
    pub fn timed_out(&self) {
        metrics::counter!("mcrouter_destination_timeouts_total", "destination" => self.addr.to_string())
            .increment(1);
    }
}

/// The end-to-end timer `proxy.rs` wraps around each routed request (only when metrics are
/// exported: otherwise it reads no clock).
pub struct RequestTimer(Option<Instant>);

impl RequestTimer {
    #[inline]
    pub fn start() -> Self {
        RequestTimer(enabled().then(Instant::now))
    }

    /// Whether this timer records anything.
    #[inline]
    pub fn active(&self) -> bool {
        self.0.is_some()
    }

    /// The reply is ready: record its latency and result under the operation label.
    pub fn finish(self, op: &'static str, kind: &crate::reply::ReplyKind) {
        use crate::reply::ReplyKind;
        if let Some(t) = self.0 {
            metrics::histogram!("mcrouter_request_duration_seconds", "operation" => op)
                .record(t.elapsed());
            let result = match kind {
                ReplyKind::Hit => "hit",
                ReplyKind::Miss => "miss",
                ReplyKind::Ok => "ok",
                ReplyKind::NotStored => "not_stored",
                ReplyKind::Exists => "exists",
                ReplyKind::NotFound => "not_found",
                ReplyKind::Error(_) => "error",
            };
            metrics::counter!("mcrouter_replies_total", "operation" => op, "result" => result)
                .increment(1);
        }
    }
}

/// A background copy (the asynchronous children of `AllAsyncRoute` and
/// `AllInitialRoute`: cross-region replication): with metrics on, its time to
/// acknowledgement is the replication lag, and its failures are counted.
pub fn replicated(fut: crate::route::RouteFuture) -> impl std::future::Future<Output = ()> {
    let t = enabled().then(Instant::now);
    async move {
        let r = fut.await;
        if let Some(t) = t {
            metrics::histogram!("mcrouter_replication_lag_seconds").record(t.elapsed());
            if r.is_error() {
                metrics::counter!("mcrouter_replication_errors_total").increment(1);
            }
        }
    }
}

/// Copy the router's counters into the recorder once a second until `stop`.
pub fn spawn_collector(shared: Arc<Shared>, stop: Arc<AtomicBool>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("mcrouter-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                Collector::collect(&shared);
                std::thread::sleep(COLLECT_INTERVAL.min(Duration::from_secs(1)));
            }
        })
        .map(|_| ())
}

struct Collector;

impl Collector {
    fn collect(sh: &Shared) {
        use metrics::{counter, gauge};
        let st = &sh.stats;
        let l = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        counter!("mcrouter_requests_total").absolute(l(&st.requests));
        for (op, c) in [
            ("get", &st.cmd_get),
            ("set", &st.cmd_set),
            ("delete", &st.cmd_delete),
            ("other", &st.cmd_other),
        ] {
            counter!("mcrouter_commands_total", "operation" => op).absolute(l(c));
        }
        counter!("mcrouter_errors_total").absolute(l(&st.errors));
        counter!("mcrouter_coalesced_requests_total").absolute(crate::coalesce::coalesced());
        counter!("mcrouter_multiget_backend_requests_total")
            .absolute(l(&st.multiget_backend_requests));
        gauge!("mcrouter_connections").set(l(&st.curr_connections) as f64);
        counter!("mcrouter_connections_total").absolute(l(&st.total_connections));
        gauge!("mcrouter_in_flight_requests").set(st.in_flight.load(Ordering::Relaxed) as f64);
        counter!("mcrouter_config_reloads_total").absolute(l(&st.config_reloads));
        counter!("mcrouter_config_reload_failures_total").absolute(l(&st.config_failures));
        gauge!("mcrouter_config_last_success_timestamp_seconds")
            .set(l(&st.config_last_success) as f64);
        // Event counters incremented where the event happens: registered at zero so
        // dashboards and rules see the series before the first event.
        counter!("mcrouter_gutter_failovers_total").increment(0);
        counter!("mcrouter_replication_errors_total").increment(0);
        counter!("mcrouter_remote_marker_reads_total").increment(0);
        for result in ["cold_hit", "warm_hit", "miss"] {
            counter!("mcrouter_warmup_gets_total", "result" => result).increment(0);
        }
        for event in ["issued", "hot_miss"] {
            counter!("mcrouter_lease_tokens_routed_total", "event" => event).increment(0);
        }
        counter!("mcrouter_intake_deletes_total").absolute(l(&st.intake_deletes));
        counter!("mcrouter_intake_batches_total").absolute(l(&st.intake_batches));
        if let Some(log) = &sh.asynclog {
            counter!("mcrouter_asynclog_spooled_total").absolute(l(&log.spooled));
            counter!("mcrouter_asynclog_replayed_total").absolute(l(&log.replayed));
            counter!("mcrouter_asynclog_spool_errors_total").absolute(l(&log.spool_errors));
            gauge!("mcrouter_asynclog_backlog").set(log.backlog() as f64);
        }
        for d in sh.registry.all() {
            let dest = d.addr.clone();
            counter!("mcrouter_destination_writes_total", "destination" => dest.clone())
                .absolute(l(&d.health.writes));
            counter!("mcrouter_destination_requests_total", "destination" => dest.clone())
                .absolute(l(&d.health.requests));
            counter!("mcrouter_destination_errors_total", "destination" => dest.clone())
                .absolute(l(&d.health.errors));
            // Register the series at zero so dashboards and rules see it before the first
            // timeout.
            counter!("mcrouter_destination_timeouts_total", "destination" => dest.clone())
                .increment(0);
            gauge!("mcrouter_destination_tko", "destination" => dest).set(if d.health.is_tko() {
                1.0
            } else {
                0.0
            });
        }
    }
}
