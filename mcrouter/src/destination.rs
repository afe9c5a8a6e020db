//! Destinations: one backend server, its health (TKO), and per worker a few persistent
//! connections on which many client requests are pipelined.
//!
//! ```text
//!  route (PoolRoute, ...) ── WorkerDests::send(dest, bytes) ──> Conn (per worker, per server)
//!        append to `out`, push a Pending (oneshot + sequence no.)    │ one task per connection:
//!        ──> ReplyFuture (resolves when the reply is parsed)         │  select { read replies,
//!                                                                     │   write all queued bytes
//!                                                                     │   in one write, timer }
//! ```
//!
//! Requests queued while the connection task is busy, or while an earlier write on the
//! connection still waits for replies ([`Unanswered`]), are written together (one `write`
//! for many requests; with the worker's [`SendBatcher`], one send in the round's io_uring
//! batch, the rest written directly if the socket was full), and replies are parsed in
//! order and handed back as zero-copy slices of the read buffer.
//!
//! Single-key `get`s queued one after another in the same round are joined into one
//! multi-key `get` line (at most [`JOIN_MAX_KEYS`] keys, [`JOIN_MAX_LINE`] bytes), and its
//! reply is split back into one `VALUE ... END` (or `END`) per request; `gets` likewise,
//! into a `gets` line (each value keeps its own CAS). memcached answers
//! each pipelined `get` with a send of its own but a multi-key `get` with one, so this
//! saves the server a system call per key and the router a TCP segment to receive.
//!
//! A connection that times out, errors or returns garbage is closed and every request
//! pending on it fails with `SERVER_ERROR` (a late reply could otherwise be matched to the
//! wrong request); the next request reconnects.
//!
//! Health is shared by all workers ([`DestShared`]): after `tko_threshold` consecutive
//! failures, or at once on a refused connect, the destination is TKO ("technical knock
//! out"): requests fail fast without touching the network while one probe task sends
//! `version` with exponential backoff until the server answers.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::local_oneshot as oneshot;
use crate::reply::{classify, ErrorClass, Reply, ReplyKind};
use crate::send_batch::{SendBatcher, Ticket};

/// Options for destinations (from the command line).
#[derive(Debug, Clone, Copy)]
pub struct DestOptions {
    /// Reply timeout for a request (and connect timeout).
    pub server_timeout: Duration,
    /// Consecutive failures that mark a destination TKO.
    pub tko_threshold: u32,
    /// Most requests in flight on one connection; more are shed with `SERVER_ERROR busy`.
    pub max_inflight: usize,
    /// Connections per server per worker.
    pub conns_per_server: usize,
    /// Writes on one connection still waiting for some of their replies before the next
    /// write waits too (0: no limit). See [`Unanswered`].
    pub max_inflight_batches: usize,
    /// First probe delay while TKO (doubles up to `probe_max`).
    pub probe_min: Duration,
    pub probe_max: Duration,
}

impl DestOptions {
    pub const DEFAULT_SERVER_TIMEOUT_MS: u64 = 1000;
    pub const DEFAULT_TKO_THRESHOLD: u32 = 3;
    pub const DEFAULT_MAX_INFLIGHT: usize = 16 * 1024;
    pub const DEFAULT_CONNS_PER_SERVER: usize = 1;
    pub const DEFAULT_MAX_INFLIGHT_BATCHES: usize = 1;
}

impl Default for DestOptions {
    fn default() -> Self {
        DestOptions {
            server_timeout: Duration::from_millis(Self::DEFAULT_SERVER_TIMEOUT_MS),
            tko_threshold: Self::DEFAULT_TKO_THRESHOLD,
            max_inflight: Self::DEFAULT_MAX_INFLIGHT,
            conns_per_server: Self::DEFAULT_CONNS_PER_SERVER,
            max_inflight_batches: Self::DEFAULT_MAX_INFLIGHT_BATCHES,
            probe_min: Duration::from_millis(10),
            probe_max: Duration::from_secs(1),
        }
    }
}

/// Health of one destination, shared by all workers.
#[derive(Debug, Default)]
pub struct Health {
    failures: AtomicU32,
    tko: AtomicBool,
    probing: AtomicBool,
    /// Counters for `stats` and admin.
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Write system calls (a pipelined batch is one).
    pub writes: AtomicU64,
    /// Single-key gets sent joined to another's `get` line (counted in `requests` too).
    pub joined: AtomicU64,
}

impl Health {
    pub fn is_tko(&self) -> bool {
        self.tko.load(Ordering::Relaxed)
    }

    fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Record a failure; true when this made the destination TKO and the caller must
    /// start the probe.
    fn failure(&self, hard: bool, threshold: u32) -> bool {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if hard || n >= threshold {
            self.tko.store(true, Ordering::Relaxed);
            return !self.probing.swap(true, Ordering::AcqRel);
        }
        false
    }

    fn recovered(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.tko.store(false, Ordering::Relaxed);
        self.probing.store(false, Ordering::Release);
    }
}

/// A backend server as the route trees know it. The same address always maps to the same
/// `DestShared` (see [`Registry`]), so a reloaded config keeps its connections.
#[derive(Debug)]
pub struct DestShared {
    /// Index in the registry (and in each worker's connection table).
    pub id: usize,
    /// `host:port` as written in the config (protocol suffix removed).
    pub addr: String,
    pub health: Health,
}

/// Destinations by address, and in id order.
type RegistryInner = (HashMap<String, Arc<DestShared>>, Vec<Arc<DestShared>>);

/// All destinations ever configured, by address. Append-only.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<RegistryInner>,
}

impl Registry {
    pub fn get_or_insert(&self, addr: &str) -> Arc<DestShared> {
        let mut g = self.inner.lock();
        if let Some(d) = g.0.get(addr) {
            return d.clone();
        }
        let d = Arc::new(DestShared {
            id: g.1.len(),
            addr: addr.to_string(),
            health: Health::default(),
        });
        g.0.insert(addr.to_string(), d.clone());
        g.1.push(d.clone());
        d
    }

    pub fn all(&self) -> Vec<Arc<DestShared>> {
        self.inner.lock().1.clone()
    }
}

/// The reply to a request sent to a destination.
pub enum ReplyFuture {
    Ready(Option<Reply>),
    Wait(oneshot::Receiver<Reply>),
}

impl Future for ReplyFuture {
    type Output = Reply;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        match self.get_mut() {
            ReplyFuture::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| {
                Reply::error_static(ErrorClass::LocalError, b"SERVER_ERROR polled twice\r\n")
            })),
            ReplyFuture::Wait(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.unwrap_or_else(|_| {
                    Reply::error_static(
                        ErrorClass::LocalError,
                        b"SERVER_ERROR mcrouter: request dropped\r\n",
                    )
                })
            }),
        }
    }
}

/// Most keys joined into one `get` line.
pub const JOIN_MAX_KEYS: usize = 32;
/// Longest joined `get` line (memcached reads longer `get` lines too, but other servers
/// may not).
pub const JOIN_MAX_LINE: usize = 2048;

/// Where a request's reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyEnd {
    /// One reply line (with its data block, for `VALUE`-less replies such as `VA`).
    One,
    /// A `VALUE`* `END` sequence (get, gets, gat, gats).
    Values,
    /// Everything up to an `MN` (a quiet meta request sent with `mn` after it, which
    /// may have no reply of its own); the `MN` is not part of the reply.
    Mn,
}

struct Pending {
    tx: oneshot::Sender<Reply>,
    end: ReplyEnd,
    /// Sequence number on this connection: the timeout check watches the oldest one.
    seq: u64,
    /// When it was queued (only with metrics on).
    sent: Option<Instant>,
    /// Other single-key gets joined to this one's line (see the module docs).
    joined: Option<Box<Joined>>,
}

/// The requests of a joined `get` line: every key in line order (the first request's
/// included), and the reply channel of each request after the first.
struct Joined {
    keys: Vec<u8>,
    /// End of each key in `keys`.
    ends: Vec<usize>,
    txs: Vec<(oneshot::Sender<Reply>, Option<Instant>)>,
}

#[derive(Default)]
struct ConnState {
    out: Vec<u8>,
    pending: VecDeque<Pending>,
    running: bool,
    next_seq: u64,
    /// `out` ends with a `get` (or `gets`) line that starts here and belongs to the last
    /// pending request: a single-key `get` (`gets`) queued now can join it. The command's
    /// length with its space (4 or 5) tells which.
    open_get: Option<(usize, usize)>,
    /// Requests joined to another's line (they count against `max_inflight` too).
    joined: usize,
}

/// The length of the command with its space (4 for `get `, 5 for `gets `) and the key, when
/// `raw` is exactly one single-key `get` or `gets` line.
fn single_get_key(raw: &[u8]) -> Option<(usize, &[u8])> {
    let (cmd, rest) = if let Some(rest) = raw.strip_prefix(b"get ") {
        (4, rest)
    } else {
        (5, raw.strip_prefix(b"gets ")?)
    };
    let key = rest.strip_suffix(b"\r\n")?;
    // memcached splits a command line at spaces only (a NUL ends it); the parser let
    // nothing else through that could split a key.
    let one_token = key.iter().all(|&b| !matches!(b, b' ' | b'\r' | b'\n' | 0));
    (!key.is_empty() && one_token).then_some((cmd, key))
}

impl ConnState {
    /// Queue `raw`: joined to the open `get` line (`None`), or as a request of its own
    /// (`Some(whether out was empty)`).
    fn queue(
        &mut self,
        health: &Health,
        raw: &[u8],
        end: ReplyEnd,
        tx: oneshot::Sender<Reply>,
        sent: Option<Instant>,
    ) -> Option<bool> {
        let get_key = if end == ReplyEnd::Values {
            single_get_key(raw)
        } else {
            None
        };
        let tx = match get_key {
            Some((cmd, key)) => match self.join(health, cmd, key, tx, sent) {
                Ok(()) => return None,
                Err(tx) => tx,
            },
            None => tx,
        };
        let was_empty = self.out.is_empty();
        self.open_get = get_key.map(|(cmd, _)| (self.out.len(), cmd));
        self.out.extend_from_slice(raw);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            tx,
            end,
            seq,
            sent,
            joined: None,
        });
        Some(was_empty)
    }

    /// Join `key`'s single-key get to the open line of the same command (`cmd` as in
    /// [`single_get_key`]), if there is one with room. Returns the channel back when it
    /// cannot.
    fn join(
        &mut self,
        health: &Health,
        cmd: usize,
        key: &[u8],
        tx: oneshot::Sender<Reply>,
        sent: Option<Instant>,
    ) -> Result<(), oneshot::Sender<Reply>> {
        let (Some((start, open_cmd)), Some(p)) = (self.open_get, self.pending.back_mut()) else {
            return Err(tx);
        };
        if open_cmd != cmd {
            return Err(tx);
        }
        let n = self.out.len();
        debug_assert!(start + cmd + 2 < n && self.out[start..].starts_with(b"get"));
        let keys = p.joined.as_ref().map_or(1, |j| j.ends.len());
        if keys >= JOIN_MAX_KEYS || n - start + 1 + key.len() > JOIN_MAX_LINE {
            return Err(tx);
        }
        let j = p.joined.get_or_insert_with(|| {
            let first = &self.out[start + cmd..n - 2];
            Box::new(Joined {
                keys: first.to_vec(),
                ends: vec![first.len()],
                txs: Vec::new(),
            })
        });
        j.keys.extend_from_slice(key);
        j.ends.push(j.keys.len());
        j.txs.push((tx, sent));
        self.out.truncate(n - 2);
        self.out.push(b' ');
        self.out.extend_from_slice(key);
        self.out.extend_from_slice(b"\r\n");
        self.joined += 1;
        health.joined.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Split the reply to a joined `get` line into one reply per request, in line order:
/// its `VALUE` unit and `END` when the server returned one for its key, `END` alone when
/// not; an error reply goes to every request (without any values before it). `None`
/// when a value is left over (not in the requested keys' order, or for a key not asked).
fn split_joined(j: &Joined, kind: ReplyKind, bytes: &bytes::Bytes) -> Option<Vec<Reply>> {
    let units = crate::reply::value_units(bytes);
    let pos = units.last().map_or(0, |(_, unit)| unit.end);
    let count = j.ends.len();
    if let ReplyKind::Error(_) = kind {
        let rest = bytes.slice(pos..);
        return Some(
            (0..count)
                .map(|_| Reply {
                    kind,
                    bytes: rest.clone(),
                })
                .collect(),
        );
    }
    let mut next = units.iter().peekable();
    let mut start = 0;
    let mut out = Vec::with_capacity(count);
    for &end in &j.ends {
        let key = &j.keys[start..end];
        start = end;
        match next.peek() {
            Some((k, unit)) if &bytes[k.clone()] == key => {
                let mut b = BytesMut::with_capacity(unit.len() + 5);
                b.extend_from_slice(&bytes[unit.clone()]);
                b.extend_from_slice(b"END\r\n");
                out.push(Reply {
                    kind: ReplyKind::Hit,
                    bytes: b.freeze(),
                });
                next.next();
            }
            _ => out.push(Reply {
                kind: ReplyKind::Miss,
                bytes: bytes::Bytes::from_static(b"END\r\n"),
            }),
        }
    }
    next.peek().is_none().then_some(out)
}

/// The writes on one connection whose replies have not all come back.
///
/// While `max_inflight_batches` of them are unanswered, new requests stay queued (and
/// single-key gets keep joining the open `get` line); they leave together, in one write,
/// once the oldest of those writes is fully answered. Under load this makes the batches
/// larger: fewer writes to the server and fewer sends back from it, each of which costs
/// the router a system call and a TCP round of its own (about 5% less router CPU per
/// request under `mcrouter/examples/bench/ab_routers.sh`'s load). The server answers a
/// connection's requests in order anyway, so a request held back waits behind replies it
/// would have waited for in the server's queue; at light load nothing is unanswered and
/// nothing waits.
#[derive(Debug, Default)]
struct Unanswered {
    /// Sequence number of the last request of each write, oldest first.
    last: VecDeque<u64>,
}

impl Unanswered {
    /// Whether a new write may leave now, `oldest` being the sequence number of the oldest
    /// request still waiting for its reply (writes before it are all answered).
    fn may_write(&mut self, oldest: Option<u64>, limit: usize) -> bool {
        let oldest = oldest.unwrap_or(u64::MAX);
        while self.last.front().is_some_and(|&last| last < oldest) {
            self.last.pop_front();
        }
        limit == 0 || self.last.len() < limit
    }

    /// A write left whose last request has sequence number `last`.
    fn wrote(&mut self, last: u64) {
        self.last.push_back(last);
    }
}

/// One connection to a destination, owned by a worker.
struct Conn {
    shared: Arc<DestShared>,
    opts: DestOptions,
    st: RefCell<ConnState>,
    notify: Notify,
    metrics: crate::metrics::DestMetrics,
    /// The worker's send batcher (`None`: write directly).
    sends: Option<Rc<SendBatcher>>,
}

/// Progress through a multi-part reply (a get's `VALUE`s before `END`).
#[derive(Default)]
struct Scan {
    pos: usize,
    hit: bool,
    /// [`ReplyEnd::Mn`]: the kind of the reply before the `MN`, if there was one.
    first: Option<ReplyKind>,
}

impl Conn {
    fn send(self: &Rc<Self>, raw: &[u8], end: ReplyEnd) -> ReplyFuture {
        if self.shared.health.is_tko() {
            return ReplyFuture::Ready(Some(Reply::error(
                ErrorClass::Tko,
                &format!("mcrouter: {} is TKO (marked down)", self.shared.addr),
            )));
        }
        let mut st = self.st.borrow_mut();
        if st.pending.len() + st.joined >= self.opts.max_inflight {
            return ReplyFuture::Ready(Some(Reply::error_static(
                ErrorClass::Busy,
                b"SERVER_ERROR mcrouter: busy (too many requests in flight to the server)\r\n",
            )));
        }
        self.shared.health.requests.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let sent = self.metrics.start();
        let Some(was_empty) = st.queue(&self.shared.health, raw, end, tx, sent) else {
            // Joined to a line already queued: the connection task will send it.
            return ReplyFuture::Wait(rx);
        };
        if !st.running {
            st.running = true;
            drop(st);
            tokio::task::spawn_local(self.clone().run());
        } else if was_empty {
            drop(st);
            self.notify.notify_one();
        }
        ReplyFuture::Wait(rx)
    }

    fn fail_all(&self, class: ErrorClass, msg: &str) {
        let pending = {
            let mut st = self.st.borrow_mut();
            st.out.clear();
            st.open_get = None;
            st.joined = 0;
            std::mem::take(&mut st.pending)
        };
        if pending.is_empty() {
            return;
        }
        let reply = Reply::error(class, msg);
        for p in pending {
            let _ = p.tx.send(reply.clone());
            for (tx, _) in p.joined.into_iter().flat_map(|j| j.txs) {
                let _ = tx.send(reply.clone());
            }
        }
    }

    fn has_work(&self) -> bool {
        !self.st.borrow().pending.is_empty()
    }

    /// Count a failure; start the probe if this made the destination TKO.
    fn failed(&self, hard: bool) {
        if self
            .shared
            .health
            .failure(hard, self.opts.tko_threshold.max(1))
        {
            tracing::warn!(server = %self.shared.addr, "destination marked TKO");
            tokio::task::spawn_local(probe(self.shared.clone(), self.opts));
        }
    }

    async fn run(self: Rc<Self>) {
        let mut rbuf = BytesMut::with_capacity(16 * 1024);
        loop {
            while !self.has_work() {
                self.notify.notified().await;
            }
            let addr = self.shared.addr.clone();
            let stream =
                match tokio::time::timeout(self.opts.server_timeout, TcpStream::connect(&*addr))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(server = %addr, error = %e, "connect failed");
                        self.fail_all(
                            ErrorClass::ConnectError,
                            &format!("mcrouter: connect error to {addr}: {e}"),
                        );
                        self.failed(e.kind() == std::io::ErrorKind::ConnectionRefused);
                        continue;
                    }
                    Err(_) => {
                        self.fail_all(
                            ErrorClass::ConnectTimeout,
                            &format!("mcrouter: connect timeout to {addr}"),
                        );
                        self.failed(false);
                        continue;
                    }
                };
            let _ = stream.set_nodelay(true);
            rbuf.clear();
            let (class, msg) = self.serve(stream, &mut rbuf).await;
            tracing::debug!(server = %addr, %msg, "connection closed");
            let had_pending = self.has_work();
            self.fail_all(class, &format!("mcrouter: {msg} ({addr})"));
            if class == ErrorClass::Timeout {
                self.metrics.timed_out();
            }
            if had_pending || class == ErrorClass::Timeout {
                self.failed(false);
            }
        }
    }

    async fn serve(&self, mut stream: TcpStream, rbuf: &mut BytesMut) -> (ErrorClass, String) {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let (mut rd, mut wr) = stream.split();
        let mut wbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut wpos = 0usize;
        // A batched send of `wbuf` in progress (the batcher holds the buffer meanwhile).
        // Declared after `stream`, so it is dropped (withdrawn) before the socket closes.
        let mut ticket: Option<Ticket> = None;
        let period = (self.opts.server_timeout / 8)
            .clamp(Duration::from_millis(2), Duration::from_millis(100));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut scan = Scan::default();
        // (sequence number of the oldest pending request, when it became the oldest)
        let mut watched = (u64::MAX, Instant::now());
        let mut unanswered = Unanswered::default();
        loop {
            if ticket.is_none() && wpos == wbuf.len() {
                wbuf.clear();
                wpos = 0;
                let mut st = self.st.borrow_mut();
                let oldest = st.pending.front().map(|p| p.seq);
                if !st.out.is_empty()
                    && unanswered.may_write(oldest, self.opts.max_inflight_batches)
                {
                    // Every queued byte belongs to a pending request, the last one last.
                    unanswered.wrote(st.next_seq.wrapping_sub(1));
                    std::mem::swap(&mut wbuf, &mut st.out);
                    // What was queued is on its way: nothing more joins it.
                    st.open_get = None;
                }
                drop(st);
                if let (Some(b), false) = (&self.sends, wbuf.is_empty()) {
                    ticket = Some(b.submit(fd, std::mem::take(&mut wbuf)));
                }
            }
            // With a batched send in progress, the rest of `wbuf` (if the socket was
            // full) is written directly once it is back.
            let want_write = ticket.is_none() && wpos < wbuf.len();
            if rbuf.capacity() - rbuf.len() < 4096 {
                rbuf.reserve(64 * 1024);
            }
            tokio::select! {
                biased;
                r = rd.read_buf(rbuf) => match r {
                    Ok(0) => return (ErrorClass::LocalError, "connection closed by server".into()),
                    Ok(_) => {
                        if let Err(e) = self.process(rbuf, &mut scan) {
                            return e;
                        }
                    }
                    Err(e) => return (ErrorClass::LocalError, format!("read error: {e}")),
                },
                (back, r) = std::future::poll_fn(|cx| match ticket.as_mut() {
                    Some(t) => t.poll_done(cx),
                    None => Poll::Pending,
                }), if ticket.is_some() => {
                    ticket = None;
                    wbuf = back;
                    match r {
                        Ok(n) => {
                            wpos = n;
                            self.shared.health.writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return (ErrorClass::LocalError, format!("write error: {e}")),
                    }
                },
                w = wr.write(&wbuf[wpos..]), if want_write => match w {
                    Ok(0) => return (ErrorClass::LocalError, "write returned 0".into()),
                    Ok(n) => {
                        wpos += n;
                        self.shared.health.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return (ErrorClass::LocalError, format!("write error: {e}")),
                },
                _ = self.notify.notified(), if !want_write && ticket.is_none() => {}
                _ = tick.tick() => {
                    // No clock read per request: a request times out once it has been the
                    // oldest one for a whole server timeout (within 1-1.25x, checked every
                    // `period`).
                    let st = self.st.borrow();
                    match st.pending.front() {
                        Some(front) if front.seq == watched.0 => {
                            if watched.1.elapsed() >= self.opts.server_timeout {
                                return (ErrorClass::Timeout, "timeout".into());
                            }
                        }
                        Some(front) => watched = (front.seq, Instant::now()),
                        None => watched = (u64::MAX, Instant::now()),
                    }
                }
            }
        }
    }

    /// Hand every complete reply in `rbuf` to its pending request.
    fn process(&self, rbuf: &mut BytesMut, scan: &mut Scan) -> Result<(), (ErrorClass, String)> {
        loop {
            if rbuf.len() <= scan.pos {
                return Ok(());
            }
            let reply_end = match self.st.borrow().pending.front() {
                Some(p) => p.end,
                None => return Err((ErrorClass::LocalError, "unexpected data from server".into())),
            };
            let until_end = reply_end == ReplyEnd::Values;
            let mut mn_len = 0;
            let (kind, end) = match protocol::parse_response(&rbuf[scan.pos..]) {
                Ok(None) => return Ok(()),
                Err(e) => return Err((ErrorClass::LocalError, format!("bad reply: {e}"))),
                Ok(Some((resp, n))) => {
                    let kind = classify(&resp);
                    let end = scan.pos + n;
                    if reply_end == ReplyEnd::Mn {
                        let mn = matches!(
                            resp,
                            protocol::Response::Meta {
                                code: protocol::MetaCode::Mn,
                                ..
                            }
                        );
                        if !mn {
                            scan.first.get_or_insert(kind);
                            scan.pos = end;
                            continue;
                        }
                        mn_len = n;
                        (scan.first.unwrap_or(ReplyKind::Ok), end)
                    } else {
                        if until_end && kind == ReplyKind::Hit {
                            scan.hit = true;
                            scan.pos = end;
                            continue;
                        }
                        let kind = if kind == ReplyKind::Miss && scan.hit {
                            ReplyKind::Hit
                        } else {
                            kind
                        };
                        (kind, end)
                    }
                }
            };
            *scan = Scan::default();
            let mut bytes = rbuf.split_to(end).freeze();
            // The `MN` only marked the end.
            bytes.truncate(bytes.len() - mn_len);
            let p = {
                let mut st = self.st.borrow_mut();
                let p = st.pending.pop_front();
                if let Some(j) = p.as_ref().and_then(|p| p.joined.as_ref()) {
                    st.joined -= j.txs.len();
                }
                p
            };
            self.shared.health.success();
            if let Some(p) = p {
                self.metrics.replied(p.sent);
                match p.joined {
                    None => {
                        let _ = p.tx.send(Reply { kind, bytes });
                    }
                    Some(j) => {
                        let Some(replies) = split_joined(&j, kind, &bytes) else {
                            // Like any reply that cannot be matched to its requests: fail
                            // them and close the connection.
                            let msg = "bad reply: values out of the requested keys' order";
                            let err = Reply::error(
                                ErrorClass::LocalError,
                                &format!("mcrouter: {msg} ({})", self.shared.addr),
                            );
                            let _ = p.tx.send(err.clone());
                            for (tx, _) in j.txs {
                                let _ = tx.send(err.clone());
                            }
                            return Err((ErrorClass::LocalError, msg.into()));
                        };
                        let mut replies = replies.into_iter();
                        if let Some(r) = replies.next() {
                            let _ = p.tx.send(r);
                        }
                        for ((tx, sent), r) in j.txs.into_iter().zip(replies) {
                            self.metrics.replied(sent);
                            let _ = tx.send(r);
                        }
                    }
                }
            }
        }
    }
}

/// While a destination is TKO, try `version` with backoff until it answers.
async fn probe(shared: Arc<DestShared>, opts: DestOptions) {
    let mut delay = opts.probe_min;
    loop {
        tokio::time::sleep(delay).await;
        let ok = tokio::time::timeout(opts.server_timeout, probe_once(&shared.addr))
            .await
            .unwrap_or(false);
        if ok {
            tracing::info!(server = %shared.addr, "destination recovered from TKO");
            shared.health.recovered();
            return;
        }
        delay = (delay * 2).min(opts.probe_max);
    }
}

async fn probe_once(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    if s.write_all(b"version\r\n").await.is_err() {
        return false;
    }
    let mut line = String::new();
    let mut r = BufReader::new(&mut s);
    matches!(r.read_line(&mut line).await, Ok(n) if n > 0) && line.starts_with("VERSION")
}

/// A worker's connections, indexed by destination id.
pub struct WorkerDests {
    opts: DestOptions,
    sends: Option<Rc<SendBatcher>>,
    table: RefCell<Vec<Option<Rc<ConnSet>>>>,
}

struct ConnSet {
    conns: Vec<Rc<Conn>>,
    next: Cell<usize>,
}

impl WorkerDests {
    pub fn new(opts: DestOptions) -> Self {
        Self::with_sends(opts, None)
    }

    /// Connections that write through the worker's send batcher (when `Some`).
    pub fn with_sends(opts: DestOptions, sends: Option<Rc<SendBatcher>>) -> Self {
        WorkerDests {
            opts,
            sends,
            table: RefCell::new(Vec::new()),
        }
    }

    /// The worker's send batcher, if it has one.
    pub fn sends(&self) -> Option<&Rc<SendBatcher>> {
        self.sends.as_ref()
    }

    pub fn options(&self) -> &DestOptions {
        &self.opts
    }

    fn conn(&self, d: &Arc<DestShared>) -> Rc<Conn> {
        let mut t = self.table.borrow_mut();
        if t.len() <= d.id {
            t.resize(d.id + 1, None);
        }
        let set = t[d.id].get_or_insert_with(|| {
            Rc::new(ConnSet {
                conns: (0..self.opts.conns_per_server.max(1))
                    .map(|_| {
                        Rc::new(Conn {
                            shared: d.clone(),
                            opts: self.opts,
                            st: RefCell::new(ConnState::default()),
                            notify: Notify::new(),
                            metrics: crate::metrics::DestMetrics::new(&d.addr),
                            sends: self.sends.clone(),
                        })
                    })
                    .collect(),
                next: Cell::new(0),
            })
        });
        let i = set.next.get();
        set.next.set((i + 1) % set.conns.len());
        set.conns[i].clone()
    }

    /// Queue `raw` (one or more complete requests answered as `end` says) on a connection
    /// to `d`.
    pub fn send(&self, d: &Arc<DestShared>, raw: &[u8], end: ReplyEnd) -> ReplyFuture {
        self.conn(d).send(raw, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(st: &mut ConnState, raw: &[u8]) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let end = if raw.starts_with(b"get") {
            ReplyEnd::Values
        } else {
            ReplyEnd::One
        };
        st.queue(&Health::default(), raw, end, tx, None);
        rx
    }

    #[test]
    fn only_plain_single_key_gets_join() {
        assert_eq!(single_get_key(b"get k\r\n"), Some((4, &b"k"[..])));
        assert_eq!(single_get_key(b"gets k\r\n"), Some((5, &b"k"[..])));
        assert_eq!(
            single_get_key(b"get \x10ctl\r\n"),
            Some((4, &b"\x10ctl"[..]))
        );
        for raw in [
            &b"get a b\r\n"[..],
            b"gets a b\r\n",
            b"gets \r\n",
            b"getss k\r\n",
            b"get \r\n",
            b"get k\n",
            b"gat 0 k\r\n",
            b"lease-get k\r\n",
            b"mg k v\r\n",
        ] {
            assert_eq!(
                single_get_key(raw),
                None,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn consecutive_gets_share_a_line_until_something_else_comes() {
        let mut st = ConnState::default();
        let _a = queue(&mut st, b"get a\r\n");
        let _b = queue(&mut st, b"get b\r\n");
        let _a2 = queue(&mut st, b"get a\r\n");
        let _s = queue(&mut st, b"set x 0 0 1\r\n1\r\n");
        let _c = queue(&mut st, b"get c\r\n");
        let _d = queue(&mut st, b"get d\r\n");
        assert_eq!(
            String::from_utf8_lossy(&st.out),
            "get a b a\r\nset x 0 0 1\r\n1\r\nget c d\r\n"
        );
        assert_eq!(st.pending.len(), 3);
        assert_eq!(st.joined, 3);
        // Once the connection task took `out`, nothing joins what was sent.
        st.out.clear();
        st.open_get = None;
        let _e = queue(&mut st, b"get e\r\n");
        assert_eq!(String::from_utf8_lossy(&st.out), "get e\r\n");
        assert_eq!(st.pending.len(), 4);
    }

    #[test]
    fn gets_join_gets_and_gets_join_gets_only() {
        let mut st = ConnState::default();
        let _rx: Vec<_> = [
            "gets a\r\n",
            "gets b\r\n",
            "get c\r\n",
            "get d\r\n",
            "gets e\r\n",
        ]
        .iter()
        .map(|raw| queue(&mut st, raw.as_bytes()))
        .collect();
        assert_eq!(
            String::from_utf8_lossy(&st.out),
            "gets a b\r\nget c d\r\ngets e\r\n"
        );
        assert_eq!((st.pending.len(), st.joined), (3, 2));
    }

    #[test]
    fn joined_lines_stay_within_the_key_and_length_limits() {
        let mut st = ConnState::default();
        let _rx: Vec<_> = (0..JOIN_MAX_KEYS + 1)
            .map(|i| queue(&mut st, format!("get k{i}\r\n").as_bytes()))
            .collect();
        assert_eq!(
            st.pending.len(),
            2,
            "{} keys start a second line",
            JOIN_MAX_KEYS + 1
        );
        let mut st = ConnState::default();
        let long = "x".repeat(250);
        let _rx: Vec<_> = (0..20)
            .map(|i| queue(&mut st, format!("get {long}{i}\r\n").as_bytes()))
            .collect();
        let lines: Vec<&[u8]> = st.out.split(|&b| b == b'\n').collect();
        assert!(lines.len() > 2, "long keys split over several lines");
        assert!(lines.iter().all(|l| l.len() < JOIN_MAX_LINE));
    }

    fn joined(keys: &[&str]) -> Joined {
        let mut j = Joined {
            keys: Vec::new(),
            ends: Vec::new(),
            txs: Vec::new(),
        };
        for k in keys {
            j.keys.extend_from_slice(k.as_bytes());
            j.ends.push(j.keys.len());
        }
        j
    }

    fn texts(r: &[Reply]) -> Vec<String> {
        r.iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect()
    }

    #[test]
    fn a_joined_reply_splits_back_per_request() {
        // a hit, b missing, a again (hit again), c whose value looks like a reply.
        let j = joined(&["a", "b", "a", "c"]);
        let bytes = bytes::Bytes::from_static(
            b"VALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nVALUE c 5 10\r\nEND\r\nVALUE\r\nEND\r\n",
        );
        let r = split_joined(&j, ReplyKind::Hit, &bytes).unwrap();
        assert_eq!(
            texts(&r),
            [
                "VALUE a 0 1\r\n1\r\nEND\r\n",
                "END\r\n",
                "VALUE a 0 1\r\n1\r\nEND\r\n",
                "VALUE c 5 10\r\nEND\r\nVALUE\r\nEND\r\n",
            ]
        );
        let kinds: Vec<ReplyKind> = r.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                ReplyKind::Hit,
                ReplyKind::Miss,
                ReplyKind::Hit,
                ReplyKind::Hit
            ]
        );
        let r = split_joined(&j, ReplyKind::Miss, &bytes::Bytes::from_static(b"END\r\n"));
        assert_eq!(texts(&r.unwrap()), ["END\r\n"; 4]);
        // Values in another order than asked (or for keys not asked) are not guessed at.
        let swapped = bytes::Bytes::from_static(b"VALUE c 0 1\r\n3\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
        assert!(split_joined(&j, ReplyKind::Hit, &swapped).is_none());
        let stranger = bytes::Bytes::from_static(b"VALUE z 0 1\r\n3\r\nEND\r\n");
        assert!(split_joined(&j, ReplyKind::Hit, &stranger).is_none());
        // A `gets` reply: each value keeps its CAS.
        let j = joined(&["a", "b", "c"]);
        let bytes =
            bytes::Bytes::from_static(b"VALUE a 0 1 17\r\n1\r\nVALUE c 3 2 9\r\n33\r\nEND\r\n");
        let r = split_joined(&j, ReplyKind::Hit, &bytes).unwrap();
        assert_eq!(
            texts(&r),
            [
                "VALUE a 0 1 17\r\n1\r\nEND\r\n",
                "END\r\n",
                "VALUE c 3 2 9\r\n33\r\nEND\r\n",
            ]
        );
    }

    #[test]
    fn an_error_reply_goes_to_every_joined_request() {
        let j = joined(&["a", "b"]);
        let bytes =
            bytes::Bytes::from_static(b"VALUE a 0 1\r\n1\r\nSERVER_ERROR out of memory\r\n");
        let r = split_joined(&j, ReplyKind::Error(ErrorClass::RemoteError), &bytes).unwrap();
        assert_eq!(texts(&r), ["SERVER_ERROR out of memory\r\n"; 2]);
        assert!(r.iter().all(|r| r.is_error()));
    }

    #[test]
    fn a_write_waits_while_the_limit_of_unanswered_writes_is_reached() {
        let mut u = Unanswered::default();
        // Nothing written yet: any limit lets a write go.
        assert!(u.may_write(None, 1));
        u.wrote(2); // requests 0..=2
        assert!(!u.may_write(Some(0), 1));
        assert!(!u.may_write(Some(2), 1), "request 2 is still unanswered");
        assert!(
            u.may_write(Some(2), 2),
            "a limit of 2 lets a second write go"
        );
        u.wrote(4); // requests 3..=4
        assert!(!u.may_write(Some(2), 2));
        assert!(!u.may_write(Some(3), 1), "the second write is unanswered");
        assert!(u.may_write(Some(3), 2), "the first is answered");
        u.wrote(7);
        assert!(u.may_write(None, 1), "everything answered");
        for n in 0..10 {
            u.wrote(100 + n);
            assert!(u.may_write(Some(100), 0), "0 is no limit");
        }
    }
}
