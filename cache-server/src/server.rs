//! The network server: one listener thread hands connections round-robin to worker threads,
//! each running a mio event loop over its connections; a maintenance thread runs the storage
//! engine's background work (LRU maintainer, crawler, page mover).
//!
//! ```text
//!  listener thread ──accept──> (over -c: "ERROR Too many open connections", close)
//!        │ round-robin over channels + mio::Waker
//!        v
//!  worker 1..t: mio::Poll ── Conn: read -> protocol::parse_request -> exec -> output buffer
//!                                 (one write for many pipelined replies; reading pauses
//!                                  while the output buffer is over its high-water mark)
//!              end of each round: every connection's output in one io_uring_enter
//!                                 (send_ring.rs; plain writes with -o no_io_uring or
//!                                  where io_uring is unavailable)
//!  maintenance thread: engine.lru_maintainer_tick / crawler_step / automove_tick
//!  watch thread: `watch` connections, handed over by their worker (watch.rs)
//!  Shutdown (SIGTERM, `shutdown`, or ServerHandle::shutdown): stop accepting, finish and
//!  flush what was received, close, join.
//! ```

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::{Condvar, Mutex};
use protocol::Limits;

use crate::config::Settings;
use crate::conn::{Conn, Drive, Sent, Timing};
use crate::metrics::{Labels, LatencyRecorder, LatencyRegistry};
use crate::send_ring::SendRing;
use crate::stats::{GlobalCounts, StatsRegistry, ThreadStats};
use crate::storage::{Engine, SystemClock};

/// Connection counters for `stats`.
#[derive(Debug, Default)]
pub struct ConnCounters {
    pub curr: AtomicUsize,
    pub total: AtomicU64,
    pub rejected: AtomicU64,
}

/// LRU crawler and maintainer switches and counters.
#[derive(Debug, Default)]
pub struct CrawlerState {
    pub enabled: AtomicBool,
    /// `lru_crawler crawl ...` asked for a full pass.
    pub requested: AtomicBool,
    pub sleep_us: AtomicU64,
    pub tocrawl: AtomicU64,
    pub starts: AtomicU64,
    pub juggles: AtomicU64,
    /// A `lru_crawler metadump`/`mgdump` is streaming (one at a time per server; the
    /// dump holds this and clears it when it ends or its connection closes).
    pub dump_active: Arc<AtomicBool>,
}

/// What `stats conns` shows of a connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub live: Arc<ConnLive>,
}

/// The parts of a connection's `stats conns` entry that change: kept by the connection,
/// read by `stats conns` on any thread.
#[derive(Debug)]
pub struct ConnLive {
    /// Unix time of the last command.
    pub last_cmd: AtomicI64,
    /// A [`ConnState`] as `u8`.
    pub state: std::sync::atomic::AtomicU8,
}

/// A connection's state as `stats conns` names it (memcached's `conn_states`, those a
/// connection here can be seen in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Connected, no command yet.
    NewCmd,
    /// Waiting for the next command.
    Read,
    /// Running commands (the connection asking for `stats conns` is).
    ParseCmd,
    /// A storage command waits for the rest of its data block.
    Nread,
    /// Skipping the data block of a rejected storage command.
    Swallow,
    /// Replies wait for the client to read (the socket is full).
    Mwrite,
    /// Closing once its last replies are out.
    Closing,
    /// A `watch` log stream.
    Watch,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::NewCmd => "conn_new_cmd",
            ConnState::Read => "conn_read",
            ConnState::ParseCmd => "conn_parse_cmd",
            ConnState::Nread => "conn_nread",
            ConnState::Swallow => "conn_swallow",
            ConnState::Mwrite => "conn_mwrite",
            ConnState::Closing => "conn_closing",
            ConnState::Watch => "conn_watch",
        }
    }

    fn from_u8(v: u8) -> ConnState {
        [
            ConnState::NewCmd,
            ConnState::Read,
            ConnState::ParseCmd,
            ConnState::Nread,
            ConnState::Swallow,
            ConnState::Mwrite,
            ConnState::Closing,
            ConnState::Watch,
        ]
        .get(usize::from(v))
        .copied()
        .unwrap_or(ConnState::Read)
    }
}

impl ConnLive {
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, s: ConnState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

/// Stop everything: set once, wakes every event loop.
#[derive(Default)]
pub struct Shutdown {
    flag: AtomicBool,
    wakers: Mutex<Vec<Arc<Waker>>>,
    cv: Condvar,
    cv_lock: Mutex<()>,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        for w in self.wakers.lock().iter() {
            let _ = w.wake();
        }
        let _g = self.cv_lock.lock();
        self.cv.notify_all();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn add_waker(&self, w: Arc<Waker>) {
        self.wakers.lock().push(w);
    }

    /// Sleep up to `d`, returning early on shutdown.
    pub(crate) fn sleep(&self, d: Duration) {
        let mut g = self.cv_lock.lock();
        if !self.is_set() {
            self.cv.wait_for(&mut g, d);
        }
    }
}

/// State shared by all threads of one server.
pub struct Shared {
    pub engine: Engine,
    pub settings: Settings,
    pub limits: Limits,
    pub stats: StatsRegistry,
    pub conns: ConnCounters,
    pub started_unix: i64,
    pub verbosity: AtomicU8,
    pub shutdown: Shutdown,
    pub crawler: CrawlerState,
    pub track_sizes: AtomicBool,
    pub conn_registry: Mutex<BTreeMap<u64, ConnInfo>>,
    pub listen_addr: SocketAddr,
    /// Per-worker request latency, for the metrics collector.
    pub latency: LatencyRegistry,
    /// Workers time their batches only once metrics are exported.
    pub metrics_on: AtomicBool,
    /// The bound `--metrics-listen` address.
    pub metrics_addr: Option<SocketAddr>,
    /// `stats detail`, `lru temp_ttl` state.
    pub admin: crate::admin::AdminState,
    /// `watch` log streams.
    pub watch: Arc<crate::watch::Hub>,
    next_conn_id: AtomicU64,
}

impl Shared {
    pub(crate) fn register_conn(&self, peer: SocketAddr) -> (u64, Arc<ConnLive>) {
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let live = Arc::new(ConnLive {
            last_cmd: AtomicI64::new(self.engine.clock().unix_now()),
            state: std::sync::atomic::AtomicU8::new(ConnState::NewCmd as u8),
        });
        self.conn_registry.lock().insert(
            id,
            ConnInfo {
                peer,
                live: live.clone(),
            },
        );
        (id, live)
    }

    /// The raw (never reset) server-wide counters behind `stats`.
    pub fn global_counts(&self) -> GlobalCounts {
        GlobalCounts {
            total_connections: self.conns.total.load(Ordering::Relaxed),
            rejected_connections: self.conns.rejected.load(Ordering::Relaxed),
            lru_crawler_starts: self.crawler.starts.load(Ordering::Relaxed),
            lru_maintainer_juggles: self.crawler.juggles.load(Ordering::Relaxed),
        }
    }

    /// `stats reset`: zero what memcached 1.6.18's `stats_reset()` zeroes (`struct stats`,
    /// every worker's counters, per-class command counters, `itemstats`). Done with
    /// baselines, so the raw counters the Prometheus exporter reads stay monotonic.
    pub fn reset_stats(&self) {
        self.admin.prefix.clear();
        self.stats.reset(self.global_counts());
        self.engine.reset_stats();
    }

    pub(crate) fn unregister_conn(&self, id: u64) {
        self.conn_registry.lock().remove(&id);
        self.conns.curr.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running server.
pub struct ServerHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound TCP address (with the real port when started with `-p 0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen_addr
    }

    /// Stop accepting, finish in-flight requests, close connections.
    pub fn shutdown(&self) {
        self.shared.shutdown.trigger();
    }

    /// A cloneable way to stop the server from another thread (e.g. a signal handler).
    pub fn shutdown_trigger(&self) -> impl Fn() + Send + Sync + 'static {
        let sh = self.shared.clone();
        move || sh.shutdown.trigger()
    }

    /// The bound metrics address (`--metrics-listen`), if metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.shared.metrics_addr
    }

    /// Export this server's metrics into the process-wide recorder, each series with
    /// `labels`, without a listener of its own: for an embedding process that serves
    /// them (the router's local tier labels each in-process server). Idempotent.
    pub fn export_metrics(&self, labels: Labels) -> io::Result<()> {
        start_metrics(&self.shared, labels)
    }

    /// The shared state (engine and counters), for tests and embedding.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Wait until every thread has stopped (after [`ServerHandle::shutdown`] or a `shutdown`
    /// command).
    pub fn join(self) -> io::Result<()> {
        for t in self.threads {
            t.join()
                .map_err(|_| io::Error::other("a server thread panicked"))?;
        }
        Ok(())
    }
}

/// Entry point.
pub struct Server;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

impl Server {
    /// Bind, spawn the threads and return. The address is known when this returns.
    /// With `settings.metrics_listen`, also serves Prometheus metrics there.
    pub fn start(settings: Settings) -> io::Result<ServerHandle> {
        settings
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let addr = (settings.listen.as_str(), settings.port)
            .to_socket_addrs()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("listen address {}:{}: {e}", settings.listen, settings.port),
                )
            })?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no address for {}", settings.listen),
                )
            })?;
        let std_listener = bind(addr, settings.backlog).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("failed to listen on TCP port {}: {e}", addr),
            )
        })?;
        let listen_addr = std_listener.local_addr()?;
        let metrics_addr = match &settings.metrics_listen {
            Some(a) => Some(crate::metrics::serve(a)?),
            None => None,
        };
        let clock = Arc::new(SystemClock::new());
        let engine = Engine::new(settings.engine_config(), clock)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let started_unix = engine.clock().process_started();
        engine.set_lru_segmented(settings.lru_segmented);
        let watch = Arc::new(crate::watch::Hub::default());
        engine.set_watch(watch.clone());
        let shared = Arc::new(Shared {
            engine,
            limits: settings.limits(),
            stats: StatsRegistry::default(),
            conns: ConnCounters::default(),
            started_unix,
            verbosity: AtomicU8::new(settings.verbosity),
            shutdown: Shutdown::default(),
            crawler: CrawlerState {
                enabled: AtomicBool::new(settings.lru_crawler),
                sleep_us: AtomicU64::new(settings.lru_crawler_sleep),
                tocrawl: AtomicU64::new(settings.lru_crawler_tocrawl),
                ..CrawlerState::default()
            },
            track_sizes: AtomicBool::new(settings.track_sizes),
            conn_registry: Mutex::new(BTreeMap::new()),
            listen_addr,
            latency: LatencyRegistry::default(),
            metrics_on: AtomicBool::new(false),
            metrics_addr,
            admin: crate::admin::AdminState::new(
                settings.prefix_delimiter,
                settings.temp_lru,
                settings.temporary_ttl,
            ),
            watch,
            next_conn_id: AtomicU64::new(1),
            settings,
        });

        let mut threads = Vec::new();
        let mut workers = Vec::new();
        for i in 0..shared.settings.threads {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            shared.shutdown.add_waker(waker.clone());
            let (tx, rx) = mpsc::channel::<TcpStream>();
            let sh = shared.clone();
            let stats = shared.stats.register();
            let lat = shared.latency.register();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker_loop(poll, rx, sh, stats, lat))?,
            );
            workers.push((tx, waker));
        }
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        shared.shutdown.add_waker(waker);
        let sh = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("listener".into())
                .spawn(move || accept_loop(poll, listener, workers, sh))?,
        );
        let (watch_poll, watch_waker) = crate::watch::prepare(&shared)?;
        shared.shutdown.add_waker(watch_waker);
        let sh = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("watch".into())
                .spawn(move || crate::watch::run(watch_poll, sh))?,
        );
        let sh = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("maintenance".into())
                .spawn(move || maintenance_loop(sh))?,
        );
        if shared.metrics_addr.is_some() {
            start_metrics(&shared, Labels::new())?;
        }
        if shared.settings.udp_port != 0 {
            let udp_addr = SocketAddr::new(listen_addr.ip(), shared.settings.udp_port);
            let sock = std::net::UdpSocket::bind(udp_addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("failed to listen on UDP port {udp_addr}: {e}"),
                )
            })?;
            sock.set_read_timeout(Some(UDP_POLL))?;
            let sh = shared.clone();
            let stats = shared.stats.register();
            threads.push(
                std::thread::Builder::new()
                    .name("udp".into())
                    .spawn(move || crate::udp::serve(sock, sh, stats))?,
            );
        }
        Ok(ServerHandle { shared, threads })
    }
}

/// Turn on batch timing and start the collector (once).
fn start_metrics(sh: &Arc<Shared>, labels: Labels) -> io::Result<()> {
    if sh.metrics_on.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    crate::metrics::spawn_collector(sh.clone(), labels)
}

fn bind(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

fn accept_loop(
    mut poll: Poll,
    listener: TcpListener,
    workers: Vec<(mpsc::Sender<TcpStream>, Arc<Waker>)>,
    sh: Arc<Shared>,
) {
    let mut events = Events::with_capacity(64);
    let mut next = 0usize;
    'outer: loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!("listener poll failed: {e}");
            break;
        }
        if sh.shutdown.is_set() {
            break;
        }
        loop {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if sh.conns.curr.load(Ordering::Relaxed) >= sh.settings.max_conns {
                        sh.conns.rejected.fetch_add(1, Ordering::Relaxed);
                        use std::io::Write;
                        let _ = stream.write(b"ERROR Too many open connections\r\n");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    sh.conns.curr.fetch_add(1, Ordering::Relaxed);
                    sh.conns.total.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("new connection from {peer}");
                    let (tx, waker) = &workers[next % workers.len()];
                    next = next.wrapping_add(1);
                    if tx.send(stream).is_err() {
                        break 'outer;
                    }
                    let _ = waker.wake();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and retry on the next readiness event.
                    tracing::warn!("accept failed: {e}");
                    break;
                }
            }
        }
    }
    // Dropping the listener stops accepting; workers drain on their own wake-up.
}

/// How often the UDP thread checks for shutdown while idle.
const UDP_POLL: Duration = Duration::from_millis(100);

/// How a worker waits for events: under load it yields the CPU before it sleeps.
///
/// Going to sleep in `epoll_wait` and being woken costs a worker two context switches and,
/// when the CPU went idle meanwhile, an inter-processor interrupt to wake it; on a loaded
/// machine (and more so in a VM) that is the largest single cost per request after the
/// TCP stack itself. So while waits for events have lately been shorter than
/// `worker_spin_us` (see `credit`), the worker first calls `sched_yield` and polls without
/// blocking, for up to `worker_spin_us`: other runnable threads (often the clients) run meanwhile,
/// and the worker picks their requests up without sleeping. When nothing comes, or after a
/// long wait (light load), it sleeps in `epoll_wait` as usual, so an idle server burns
/// nothing. Measured with `cache-server/bench/cpu_vs_memcached.sh` (`-o worker_spin_us=0`
/// turns it off).
struct Wait {
    spin: Duration,
    /// Whether yielding has been paying off lately: up one for each wake-up a yield-poll
    /// caught (or would have caught: a sleep shorter than the spin window), down
    /// [`SPIN_MISS_COST`] for each yield-poll that found nothing and one for each longer
    /// sleep. The worker yield-polls only while it is positive, so below the request rate
    /// where most spins find work it sleeps as usual and spins almost never.
    credit: i32,
}

const SPIN_CREDIT_MAX: i32 = 8;
const SPIN_MISS_COST: i32 = 8;

impl Wait {
    fn new(spin_us: u32) -> Self {
        Wait {
            spin: Duration::from_micros(u64::from(spin_us)),
            credit: 0,
        }
    }

    fn wait(
        &mut self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) || self.spin.is_zero() {
            return poll.poll(events, timeout);
        }
        if self.credit > 0 {
            let start = Instant::now();
            loop {
                std::thread::yield_now();
                poll.poll(events, Some(Duration::ZERO))?;
                if !events.is_empty() {
                    self.after_spin(true);
                    return Ok(());
                }
                if start.elapsed() >= self.spin {
                    break;
                }
            }
            self.after_spin(false);
        }
        let start = Instant::now();
        let r = poll.poll(events, timeout);
        self.after_sleep(start.elapsed());
        r
    }

    fn after_spin(&mut self, found: bool) {
        self.credit = if found {
            (self.credit + 1).min(SPIN_CREDIT_MAX)
        } else {
            self.credit - SPIN_MISS_COST
        };
    }

    fn after_sleep(&mut self, slept: Duration) {
        self.credit = if slept < self.spin {
            (self.credit + 1).min(SPIN_CREDIT_MAX)
        } else {
            (self.credit - 1).max(-SPIN_CREDIT_MAX)
        };
    }
}

/// Most time a worker spends flushing replies to slow clients at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

fn worker_loop(
    mut poll: Poll,
    rx: mpsc::Receiver<TcpStream>,
    sh: Arc<Shared>,
    ts: Arc<ThreadStats>,
    lat: Arc<LatencyRecorder>,
) {
    let lat = &*lat;
    let mut events = Events::with_capacity(256);
    let name = std::thread::current()
        .name()
        .unwrap_or("worker")
        .to_string();
    let mut ring = if sh.settings.io_uring {
        match SendRing::new() {
            Ok(r) => {
                tracing::info!("{name}: replies sent in batches through io_uring");
                Some(r)
            }
            Err(e) => {
                tracing::info!("{name}: io_uring unavailable ({e}): one send per connection");
                None
            }
        }
    } else {
        tracing::info!("{name}: one send per connection (no_io_uring)");
        None
    };
    let mut slots = Slots {
        conns: Vec::new(),
        free: Vec::new(),
        again: Vec::new(),
        sendq: Vec::new(),
    };
    let idle = sh.settings.idle_timeout;
    let timeout = (idle > 0).then(|| Duration::from_secs(1));
    let mut drain_deadline: Option<Instant> = None;
    let mut wait = Wait::new(sh.settings.worker_spin_us);
    loop {
        let t = if !slots.again.is_empty() {
            Some(Duration::ZERO)
        } else if drain_deadline.is_some() {
            Some(Duration::from_millis(20))
        } else {
            timeout
        };
        if let Err(e) = wait.wait(&mut poll, &mut events, t) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!("worker poll failed: {e}");
                break;
            }
        }
        // One clock read per wake-up: request latency counts from here (see conn.rs).
        let timing: Timing<'_> = sh
            .metrics_on
            .load(Ordering::Relaxed)
            .then(|| (lat, Instant::now()));
        let retry = std::mem::take(&mut slots.again);
        for ev in events.iter() {
            if ev.token() == WAKER {
                while let Ok(stream) = rx.try_recv() {
                    let idx = slots.free.pop().unwrap_or_else(|| {
                        slots.conns.push(None);
                        slots.conns.len() - 1
                    });
                    let deferred = ring.is_some() && !sh.shutdown.is_set();
                    match Conn::new(stream, Token(idx + 2), poll.registry(), &sh, deferred) {
                        Ok(c) => {
                            slots.conns[idx] = Some(c);
                            // Data may already be waiting (edge-triggered registration).
                            slots.drive(idx, &poll, &sh, &ts, timing);
                        }
                        Err(e) => {
                            tracing::warn!("registering a connection failed: {e}");
                            sh.conns.curr.fetch_sub(1, Ordering::Relaxed);
                            slots.free.push(idx);
                        }
                    }
                }
                continue;
            }
            let idx = ev.token().0 - 2;
            if ev.is_read_closed() || ev.is_error() {
                if let Some(c) = slots.conns.get_mut(idx).and_then(Option::as_mut) {
                    c.note_peer_closed();
                }
            }
            slots.drive(idx, &poll, &sh, &ts, timing);
        }
        for idx in retry {
            // A slot closed and reused since is driven once for nothing: harmless.
            if !slots.again.contains(&idx) {
                slots.drive(idx, &poll, &sh, &ts, timing);
            }
        }
        if let Some(ring) = ring.as_mut() {
            slots.send_batch(ring, &poll, &sh, &ts);
        }
        if idle > 0 {
            let now = sh.engine.clock().unix_now();
            for idx in 0..slots.conns.len() {
                if slots.conns[idx]
                    .as_ref()
                    .is_some_and(|c| c.idle_for(now) > idle as i64)
                {
                    if let Some(c) = slots.conns[idx].as_mut() {
                        c.close_reason = crate::watch::CloseReason::IdleTimeout;
                    }
                    slots.close(idx, &poll, &sh);
                }
            }
        }
        if sh.shutdown.is_set() {
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
            // New connections that raced with the shutdown are closed unanswered.
            while let Ok(stream) = rx.try_recv() {
                drop(stream);
                sh.conns.curr.fetch_sub(1, Ordering::Relaxed);
            }
            slots.again.clear();
            for idx in 0..slots.conns.len() {
                let done = match slots.conns[idx].as_mut() {
                    Some(c) => {
                        // Draining is rare and short: plain writes.
                        c.write_directly();
                        c.drive(&sh, &ts, timing) == Drive::Close || !c.has_pending_output()
                    }
                    None => false,
                };
                if done || (slots.conns[idx].is_some() && Instant::now() >= deadline) {
                    slots.close(idx, &poll, &sh);
                }
            }
            if slots.conns.iter().all(Option::is_none) {
                break;
            }
        }
    }
}

/// A worker's connections.
struct Slots {
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Connections to drive again after this round without waiting for an event
    /// (`Drive::Yield`, or a batched send that freed a connection holding back input).
    again: Vec<usize>,
    /// Connections with replies for this round's send batch.
    sendq: Vec<usize>,
}

impl Slots {
    /// Drive connection `idx` (if still open) and act on the outcome.
    fn drive(
        &mut self,
        idx: usize,
        poll: &Poll,
        sh: &Shared,
        ts: &ThreadStats,
        timing: Timing<'_>,
    ) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        match c.drive(sh, ts, timing) {
            Drive::Keep => {}
            Drive::Yield => {
                if !self.again.contains(&idx) {
                    self.again.push(idx);
                }
            }
            Drive::Close => return self.close(idx, poll, sh),
            Drive::Watch => {
                if let Some(c) = self.conns[idx].take() {
                    c.into_watcher(poll.registry(), sh);
                    self.free.push(idx);
                }
                return;
            }
        }
        if !c.queued && c.to_send().is_some() {
            c.queued = true;
            self.sendq.push(idx);
        }
    }

    fn close(&mut self, idx: usize, poll: &Poll, sh: &Shared) {
        if let Some(c) = self.conns[idx].take() {
            c.close(poll.registry(), sh);
            self.free.push(idx);
        }
    }

    /// Send every queued connection's output in one batch and act on the results.
    fn send_batch(&mut self, ring: &mut SendRing, poll: &Poll, sh: &Shared, ts: &ThreadStats) {
        if self.sendq.is_empty() {
            return;
        }
        let conns = &self.conns;
        let results = ring.send_all(self.sendq.iter().filter_map(|&idx| {
            let c = conns[idx].as_ref()?;
            let (fd, bytes) = c.to_send()?;
            Some((idx, fd, bytes))
        }));
        for &(idx, res) in results {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            match c.sent(res, ts) {
                Sent::All { close: true, .. } | Sent::Failed => self.close(idx, poll, sh),
                Sent::All { resume: true, .. } => {
                    if !self.again.contains(&idx) {
                        self.again.push(idx);
                    }
                }
                Sent::All { .. } | Sent::Part => {}
            }
        }
        for idx in self.sendq.drain(..) {
            if let Some(c) = self.conns[idx].as_mut() {
                c.queued = false;
            }
        }
    }
}

/// How often the maintenance thread runs the LRU maintainer.
const MAINTAINER_INTERVAL: Duration = Duration::from_millis(100);
/// Items the crawler examines per tick when not told otherwise.
const CRAWL_BUDGET: usize = 2_000;

fn maintenance_loop(sh: Arc<Shared>) {
    let mut last_automove = Instant::now();
    while !sh.shutdown.is_set() {
        if sh.settings.lru_maintainer {
            sh.engine.lru_maintainer_tick();
            sh.crawler.juggles.fetch_add(1, Ordering::Relaxed);
        }
        if sh.crawler.enabled.load(Ordering::Relaxed) {
            if sh.crawler.requested.swap(false, Ordering::Relaxed) {
                sh.crawler.starts.fetch_add(1, Ordering::Relaxed);
            }
            let budget = match sh.crawler.tocrawl.load(Ordering::Relaxed) {
                0 => CRAWL_BUDGET,
                n => n as usize,
            };
            sh.engine.crawler_step(budget);
        }
        if last_automove.elapsed() >= Duration::from_secs(1) {
            sh.engine.automove_tick();
            last_automove = Instant::now();
        }
        sh.shutdown.sleep(MAINTAINER_INTERVAL);
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn yields_only_while_spins_keep_finding_work() {
        let mut w = Wait::new(20);
        // Light load: every sleep is long, so the worker never spins.
        for _ in 0..100 {
            w.after_sleep(500 * US);
            assert!(w.credit <= 0);
        }
        // Heavy load: short sleeps switch spinning on within a few wake-ups...
        let mut n = 0;
        while w.credit <= 0 {
            w.after_sleep(5 * US);
            n += 1;
        }
        assert!(n <= SPIN_CREDIT_MAX as usize + 1, "{n} wake-ups");
        // ... it stays on while spins find work ...
        for _ in 0..100 {
            w.after_spin(true);
            assert!(w.credit > 0);
        }
        // ... and one spin that finds nothing turns it off again.
        w.after_spin(false);
        assert!(w.credit <= 0);
        // A mix where most spins miss (a rate just below the spin window) keeps it off
        // most of the time: at most one spin in SPIN_MISS_COST + 1 wake-ups.
        let mut w = Wait::new(20);
        let mut spins = 0;
        for i in 0..900 {
            if w.credit > 0 {
                spins += 1;
                w.after_spin(i % 5 == 0);
            }
            w.after_sleep(if i % 5 == 0 { 5 * US } else { 50 * US });
        }
        assert!(spins < 900 / (SPIN_MISS_COST as usize + 1), "{spins} spins");
    }

    #[test]
    fn zero_turns_it_off() {
        let mut w = Wait::new(0);
        w.after_sleep(Duration::ZERO);
        // With no spin window every sleep counts as long.
        assert!(w.credit <= 0);
    }
}
