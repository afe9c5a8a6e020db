//! Worker threads and client connections: the router's hot path.
//!
//! Each worker is one thread running a current-thread tokio runtime. It owns the client
//! connections handed to it by the acceptor and its own connections to every destination,
//! so nothing on the request path is shared between threads except the (immutable) route
//! tree and relaxed counters.
//!
//! A client task reads as much as the socket has, parses every complete request in the
//! buffer (requests are zero-copy slices of it), starts routing each one at once (so a
//! pipelined batch reaches the destinations as one write per server), and writes the
//! replies in request order, batched into as few writes as possible. At most
//! `max_client_outstanding` requests are in flight per client; beyond that it stops
//! reading (backpressure).
//!
//! With io_uring (the default; `--no-io-uring` turns it off), a worker's writes of one
//! scheduler round, client replies and destination requests alike, leave in a single
//! `io_uring_enter` ([`crate::send_batch`]); a write the socket does not take whole
//! finishes with a normal readiness-driven write.
//!
//! Under load a worker yields the CPU once before it sleeps in `epoll_wait` (see
//! [`park_yield`]; `--no-park-yield` turns it off).

use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, Stream, StreamExt};
use futures_util::FutureExt;
use protocol::{Frame, Framer, Limits, Request};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::admin;
use crate::destination::{ReplyEnd, WorkerDests};
use crate::reply::{quiet_suppressed, value_units, ErrorClass, Reply, ReplyKind};
use crate::request::{Classified, LocalCmd, Op, Req, StatsGroup};
use crate::route::{all_destinations, join_all, ready, worst, Ctx, RouteFuture, RouteRef};
use crate::send_batch::{self, SendBatcher};
use crate::server::Shared;
use crate::stats::Stats;

/// Run a worker: accept connections from `rx` until it closes.
pub fn run_worker(
    shared: Arc<Shared>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, crate::server::Listener)>,
) {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if shared.opts.park_yield {
        builder
            .on_thread_park(park_yield::before_park)
            .on_thread_unpark(park_yield::after_unpark);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a worker runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    // Created on this thread: the ring is single-issuer.
    let sends = if shared.opts.io_uring {
        match SendBatcher::new() {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::info!(error = %e, "io_uring unavailable; writing directly");
                None
            }
        }
    } else {
        None
    };
    let ctx = Rc::new(Ctx {
        dests: WorkerDests::with_sends(shared.opts.dest, sends.clone()),
        coalesce: Default::default(),
        asynclog: shared.asynclog.clone(),
    });
    local.block_on(&rt, async move {
        if let Some(b) = sends {
            tokio::task::spawn_local(b.run_flusher());
        }
        while let Some((std_stream, kind)) = rx.recv().await {
            let _ = std_stream.set_nonblocking(true);
            let _ = std_stream.set_nodelay(true);
            match TcpStream::from_std(std_stream) {
                Ok(s) => match kind {
                    crate::server::Listener::Client => {
                        tokio::task::spawn_local(client(s, shared.clone(), ctx.clone()));
                    }
                    crate::server::Listener::Intake => {
                        tokio::task::spawn_local(crate::intake::client(
                            s,
                            shared.clone(),
                            ctx.clone(),
                        ));
                    }
                },
                Err(e) => {
                    if kind == crate::server::Listener::Client {
                        shared
                            .stats
                            .curr_connections
                            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    tracing::warn!(error = %e, "cannot register a client connection")
                }
            }
        }
    });
}

/// Yield before parking: when a worker runs out of work it calls `sched_yield` once
/// before sleeping in `epoll_wait`, while doing so keeps paying off.
///
/// On a busy machine the peers the worker just wrote to (backends, clients) are often
/// runnable on its own CPU. Letting them run first means their answers are usually
/// there when the worker polls, so it does not sleep and get woken for each one: fewer
/// context switches and wake-ups per request, and larger rounds (more requests per
/// backend write and per io_uring submission). Measured with
/// `mcrouter/examples/bench/compare_twemproxy.sh`: about 10% less CPU per request.
///
/// The rule that keeps it from costing anything when it does not pay is the one of
/// cache-server's worker spin: a park that returns within [`CAUGHT`] (work was waiting)
/// earns a credit, a longer sleep after a yield costs [`MISS_COST`], a longer one
/// without costs one; the worker yields only while its credit is positive. At light
/// load, where the worker sleeps between requests, it never yields.
mod park_yield {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    /// A park shorter than this found work waiting.
    pub const CAUGHT: Duration = Duration::from_micros(50);
    pub const MISS_COST: i32 = 2;
    pub const CREDIT_MAX: i32 = 8;

    #[derive(Clone, Copy)]
    pub struct State {
        pub credit: i32,
        yielded: bool,
        parked_at: Option<Instant>,
    }

    impl State {
        pub const fn new() -> Self {
            State {
                credit: 0,
                yielded: false,
                parked_at: None,
            }
        }

        /// Whether to yield now; records the park's start.
        pub fn park(&mut self, now: Instant) -> bool {
            self.yielded = self.credit > 0;
            self.parked_at = Some(now);
            self.yielded
        }

        /// After the park: how long it lasted decides the credit.
        pub fn unpark(&mut self, now: Instant) {
            let Some(at) = self.parked_at.take() else {
                return;
            };
            let delta = if now.saturating_duration_since(at) < CAUGHT {
                1
            } else if self.yielded {
                -MISS_COST
            } else {
                -1
            };
            self.credit = (self.credit + delta).clamp(-CREDIT_MAX, CREDIT_MAX);
        }
    }

    thread_local! {
        static STATE: Cell<State> = const { Cell::new(State::new()) };
    }

    pub fn before_park() {
        let mut s = STATE.get();
        let yield_now = s.park(Instant::now());
        STATE.set(s);
        if yield_now {
            std::thread::yield_now();
            // The park starts after the yield: only waiting work should count as caught.
            let mut s = STATE.get();
            s.parked_at = Some(Instant::now());
            STATE.set(s);
        }
    }

    pub fn after_unpark() {
        let mut s = STATE.get();
        s.unpark(Instant::now());
        STATE.set(s);
    }
}

/// Buffers larger than this are checked for a complete request before being split.
const PARTIAL_CHECK_BYTES: usize = 8 * 1024;

/// Serve one client connection (the acceptor counted it in `curr_connections`).
pub async fn client(mut stream: TcpStream, shared: Arc<Shared>, ctx: Rc<Ctx>) {
    if let Err(e) = serve_client(&mut stream, &shared, &ctx).await {
        tracing::debug!(error = %e, "client connection ended");
    }
    shared
        .stats
        .curr_connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

async fn serve_client(
    stream: &mut TcpStream,
    shared: &Arc<Shared>,
    ctx: &Rc<Ctx>,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.split();
    let limits = match shared.opts.big_value {
        Some(_) => Limits::with_max_value_size(crate::route::big_value::MAX_BIG_VALUE),
        None => Limits::default(),
    };
    let cap = shared.opts.max_client_outstanding.max(1);
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let sends = ctx.dests.sends().map(|b| &**b);
    let mut inflight = Inflight::default();
    let mut framer = Framer::new();
    let mut closing = false;
    let mut eof = false;
    let mut gauge = InFlightGauge {
        counter: &shared.stats.in_flight,
        reported: 0,
    };
    loop {
        gauge.set(inflight.len());
        // Parse and start every complete request we have (up to the in-flight cap). A large
        // buffer holding only part of a request (a big value still arriving) is left alone
        // rather than split and copied back on every read.
        let partial = rbuf.len() > PARTIAL_CHECK_BYTES
            && framer.swallowing() == 0
            && matches!(protocol::parse_request(&rbuf, &limits), Ok(None));
        if !rbuf.is_empty() && !closing && !partial {
            let chunk = rbuf.split().freeze();
            let mut off = 0usize;
            while off < chunk.len() && inflight.len() < cap && !closing {
                match framer.next(&chunk[off..], &limits) {
                    Frame::Skip(n) => off += n,
                    Frame::More => break,
                    Frame::Request(parsed, consumed) => {
                        let reply =
                            dispatch(&parsed, &chunk, off, consumed, shared, ctx, &mut closing);
                        off += consumed;
                        match reply {
                            Item::Now(bytes) if inflight.is_empty() => {
                                wbuf.extend_from_slice(&bytes)
                            }
                            Item::Now(bytes) => inflight.push_back(ready(Reply {
                                kind: ReplyKind::Ok,
                                bytes,
                            })),
                            Item::Later(f) => inflight.push_back(f),
                        }
                    }
                    Frame::Error(e) => {
                        if let Some(line) = e.reply_line() {
                            let bytes = Bytes::from(line.into_bytes());
                            if inflight.is_empty() {
                                wbuf.extend_from_slice(&bytes);
                            } else {
                                inflight.push_back(ready(Reply {
                                    kind: ReplyKind::Error(ErrorClass::LocalError),
                                    bytes,
                                }));
                            }
                        }
                        off += e.consumed;
                        if e.close {
                            closing = true;
                        }
                    }
                }
            }
            if off < chunk.len() && !closing {
                rbuf.extend_from_slice(&chunk[off..]);
            }
        }
        if inflight.is_empty() {
            if !wbuf.is_empty() {
                send_batch::write_all(sends, &mut wr, &mut wbuf).await?;
            }
            if closing || eof {
                return Ok(());
            }
        }
        let can_read = !closing && !eof && inflight.len() < cap;
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        tokio::select! {
            biased;
            Some(r) = inflight.next(), if !inflight.is_empty() => {
                count_error(&r, shared);
                wbuf.extend_from_slice(&r.bytes);
                while let Some(Some(r)) = inflight.next().now_or_never() {
                    count_error(&r, shared);
                    wbuf.extend_from_slice(&r.bytes);
                }
                if !wbuf.is_empty() {
                    send_batch::write_all(sends, &mut wr, &mut wbuf).await?;
                }
            }
            n = rd.read_buf(&mut rbuf), if can_read => {
                if n? == 0 {
                    eof = true;
                }
            }
        }
    }
}

/// A client's routed requests, replies taken in request order.
///
/// Most clients have one request in flight at a time: that one is polled directly, and
/// only a second one moves both into a `FuturesOrdered` (which allocates a node per
/// request and wakes through its own wakers).
#[derive(Default)]
struct Inflight {
    /// The only request in flight (`many` is then empty).
    one: Option<RouteFuture>,
    many: FuturesOrdered<RouteFuture>,
}

impl Inflight {
    fn len(&self) -> usize {
        usize::from(self.one.is_some()) + self.many.len()
    }

    fn is_empty(&self) -> bool {
        self.one.is_none() && self.many.is_empty()
    }

    fn push_back(&mut self, f: RouteFuture) {
        if self.is_empty() {
            self.one = Some(f);
            return;
        }
        if let Some(first) = self.one.take() {
            self.many.push_back(first);
        }
        self.many.push_back(f);
    }
}

impl Stream for Inflight {
    type Item = Reply;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Reply>> {
        let this = &mut *self;
        match &mut this.one {
            Some(f) => f.as_mut().poll(cx).map(|r| {
                this.one = None;
                Some(r)
            }),
            // Skip an empty `FuturesOrdered`: polling it registers the waker every time.
            None if this.many.is_empty() => std::task::Poll::Ready(None),
            None => this.many.poll_next_unpin(cx),
        }
    }
}

/// Keeps `stats.in_flight` in step with a client's queue (and zeroes its share on drop).
struct InFlightGauge<'a> {
    counter: &'a std::sync::atomic::AtomicI64,
    reported: usize,
}

impl InFlightGauge<'_> {
    fn set(&mut self, n: usize) {
        if n != self.reported {
            self.counter.fetch_add(
                n as i64 - self.reported as i64,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.reported = n;
        }
    }
}

impl Drop for InFlightGauge<'_> {
    fn drop(&mut self) {
        self.set(0);
    }
}

fn count_error(r: &Reply, shared: &Shared) {
    if r.is_error() {
        Stats::inc(&shared.stats.errors);
    }
}

/// What a parsed request turns into.
enum Item {
    /// Answered at once (`version`, `stats`, admin keys, ...); empty for no reply.
    Now(Bytes),
    /// Routed; the reply comes later (empty bytes for no reply).
    Later(RouteFuture),
}

fn dispatch(
    parsed: &Request<'_>,
    chunk: &Bytes,
    off: usize,
    consumed: usize,
    shared: &Arc<Shared>,
    ctx: &Rc<Ctx>,
    closing: &mut bool,
) -> Item {
    let stats = &shared.stats;
    let classified = Req::classify(parsed, &chunk[off..off + consumed], consumed, || {
        chunk.slice(off..off + consumed)
    });
    let req = match classified {
        Classified::Local(cmd) => {
            Stats::inc(&stats.cmd_other);
            return Item::Now(local(cmd, shared, closing));
        }
        Classified::FlushAll(req) => {
            Stats::inc(&stats.cmd_other);
            return Item::Later(flush_all(req, shared, ctx));
        }
        Classified::Routed(req) => req,
    };
    Stats::inc(&stats.requests);
    let op = req.op();
    if op.reply_until_end() {
        let n = req.key_count();
        stats
            .cmd_get
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        // Admin keys are answered by the router for `get` only (mcrouter's
        // `processGetServiceInfoRequest` takes `McGetRequest`s); `gets`/`gat` of such a
        // key is routed like any other.
        if n == 1 && op == Op::Get && req.key().starts_with(admin::ADMIN_PREFIX) {
            return Item::Now(Bytes::from(admin::reply(req.key(), shared)));
        }
        if n > 1 {
            let root: RouteRef = shared.config.load().top.clone();
            let name = op.name();
            return Item::Later(timed(name, multi_get(req, &root, ctx, shared)));
        }
    } else if op == Op::LeaseGet {
        Stats::inc(&stats.cmd_get);
    } else if op.is_update() {
        Stats::inc(&stats.cmd_set);
    } else if op.is_delete() {
        Stats::inc(&stats.cmd_delete);
    } else {
        Stats::inc(&stats.cmd_other);
    }
    let noreply = req.noreply();
    let quiet = req.quiet();
    let mut fut = timed(op.name(), shared.config.load().top.route(req, ctx));
    if shared.opts.miss_on_get_errors && op.is_get() {
        fut = Box::pin(async move {
            let r = fut.await;
            if r.is_error() {
                Reply::default_for_op(op)
            } else {
                r
            }
        });
    }
    if noreply || quiet {
        return Item::Later(Box::pin(async move {
            let r = fut.await;
            if noreply || quiet_suppressed(op, &r) {
                Reply {
                    kind: r.kind,
                    bytes: Bytes::new(),
                }
            } else {
                r
            }
        }));
    }
    Item::Later(fut)
}

/// Wrap a routed request in the end-to-end timer when metrics are exported (no extra
/// future otherwise).
fn timed(op: &'static str, fut: RouteFuture) -> RouteFuture {
    let timer = crate::metrics::RequestTimer::start();
    if !timer.active() {
        return fut;
    }
    Box::pin(async move {
        let r = fut.await;
        timer.finish(op, &r.kind);
        r
    })
}

fn local(cmd: LocalCmd, shared: &Arc<Shared>, closing: &mut bool) -> Bytes {
    match cmd {
        LocalCmd::Version => Bytes::from(format!("VERSION {}\r\n", crate::stats::VERSION)),
        LocalCmd::Verbosity { noreply: true } => Bytes::new(),
        LocalCmd::Verbosity { noreply: false } => Bytes::from_static(b"OK\r\n"),
        LocalCmd::MetaNoop => Bytes::from_static(b"MN\r\n"),
        LocalCmd::Quit => {
            *closing = true;
            Bytes::new()
        }
        LocalCmd::Stats(StatsGroup::General) => Bytes::from(shared.stats_reply()),
        LocalCmd::Stats(StatsGroup::Servers) => Bytes::from(shared.servers_reply()),
        LocalCmd::Stats(StatsGroup::Unknown) => Bytes::from_static(b"ERROR\r\n"),
        LocalCmd::Unsupported => {
            Bytes::from_static(b"SERVER_ERROR Command not supported by mcrouter\r\n")
        }
    }
}

/// `flush_all`: to every destination of the routed pools; the worst reply wins.
fn flush_all(req: Req, shared: &Arc<Shared>, ctx: &Rc<Ctx>) -> RouteFuture {
    let root: RouteRef = shared.config.load().root.clone();
    let noreply = req.noreply();
    let futs: Vec<RouteFuture> = all_destinations(&root)
        .iter()
        .map(|d| Box::pin(ctx.dests.send(d, req.raw(), ReplyEnd::One)) as RouteFuture)
        .collect();
    Box::pin(async move {
        let r = worst(join_all(futs).await).unwrap_or(Reply {
            kind: ReplyKind::Ok,
            bytes: Bytes::from_static(b"OK\r\n"),
        });
        if noreply {
            Reply {
                kind: r.kind,
                bytes: Bytes::new(),
            }
        } else {
            r
        }
    })
}

/// A multi-key get: one `get k1 k2 ...` per destination for keys whose route is a plain
/// destination, one routed single-key get for each of the others, admin keys (`get`
/// only) answered by the router in place; the client gets the
/// values in its own key order, or, if any part failed, that part's error line alone
/// (mcrouter's `MultiOpParent`).
pub fn multi_get(req: Req, root: &RouteRef, ctx: &Rc<Ctx>, shared: &Arc<Shared>) -> RouteFuture {
    let op = req.op();
    let prefix = req.command_prefix();
    // (destination id, request line) per destination, in first-seen order.
    let mut groups: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut group_dest = Vec::new();
    // Per key: which part answers it (groups first, then single routed gets).
    let mut assign: Vec<usize> = Vec::new();
    let mut singles: Vec<RouteFuture> = Vec::new();
    let keys: Vec<&[u8]> = req.keys().collect();
    let mut single_idx: Vec<usize> = Vec::new();
    for key in &keys {
        // mcrouter splits a multi-get into one get per key, so an admin key among them
        // is answered in place (`get a __mcrouter__.version b`).
        if op == Op::Get && key.starts_with(admin::ADMIN_PREFIX) {
            let bytes = Bytes::from(admin::reply(key, shared));
            let kind = if bytes.starts_with(b"VALUE ") {
                ReplyKind::Hit
            } else {
                ReplyKind::Miss
            };
            single_idx.push(singles.len());
            singles.push(ready(Reply { kind, bytes }));
            assign.push(usize::MAX);
            continue;
        }
        match root.plain_destination(op, key) {
            Some(d) => {
                let gi = match groups.iter().position(|(id, _)| *id == d.id) {
                    Some(gi) => gi,
                    None => {
                        let mut line = Vec::with_capacity(prefix.len() + 64);
                        line.extend_from_slice(prefix);
                        groups.push((d.id, line));
                        group_dest.push(d.clone());
                        groups.len() - 1
                    }
                };
                let line = &mut groups[gi].1;
                if line.len() > prefix.len() {
                    line.push(b' ');
                }
                line.extend_from_slice(key);
                assign.push(gi);
                single_idx.push(usize::MAX);
            }
            None => {
                single_idx.push(singles.len());
                singles.push(root.route(req.single_get(key), ctx));
                assign.push(usize::MAX);
            }
        }
    }
    let ngroups = groups.len();
    let mut parts: Vec<RouteFuture> = Vec::with_capacity(ngroups + singles.len());
    for ((_, mut line), d) in groups.into_iter().zip(&group_dest) {
        line.extend_from_slice(b"\r\n");
        parts.push(Box::pin(ctx.dests.send(d, &line, ReplyEnd::Values)));
    }
    shared
        .stats
        .multiget_backend_requests
        .fetch_add(ngroups as u64, std::sync::atomic::Ordering::Relaxed);
    parts.extend(singles);
    for (i, a) in assign.iter_mut().enumerate() {
        if *a == usize::MAX {
            *a = ngroups + single_idx[i];
        }
    }
    let key_ranges: Vec<(usize, usize)> = keys
        .iter()
        .map(|k| {
            let s = k.as_ptr() as usize - req.raw().as_ptr() as usize;
            (s, s + k.len())
        })
        .collect();
    let miss_on_errors = shared.opts.miss_on_get_errors;
    Box::pin(async move {
        let replies = join_all(parts).await;
        assemble(&req, &key_ranges, &assign, replies, miss_on_errors)
    })
}

/// The error line of a failed part reply (a backend may have sent values before it).
fn error_only(reply: &Reply) -> Reply {
    let skip = value_units(&reply.bytes)
        .last()
        .map_or(0, |(_, unit)| unit.end);
    Reply {
        kind: reply.kind,
        bytes: reply.bytes.slice(skip..),
    }
}

/// `miss_on_errors` (`--miss-on-get-errors`): a failed part's keys are misses (the
/// values it sent before failing still count).
fn assemble(
    req: &Req,
    key_ranges: &[(usize, usize)],
    assign: &[usize],
    replies: Vec<Reply>,
    miss_on_errors: bool,
) -> Reply {
    // mcrouter (MultiOpParent): when any part of a multi-key get fails, the whole reply
    // is that error alone, no values and no END, so a failed key never looks like a miss.
    // With miss_on_get_errors mcrouter's RootRoute has made each failed key a miss first.
    if let Some(err) = replies.iter().find(|r| r.is_error()) {
        if !miss_on_errors {
            return error_only(err);
        }
    }
    let values: Vec<_> = replies.iter().map(|r| value_units(&r.bytes)).collect();
    let mut cursor = vec![0usize; replies.len()];
    let total: usize = replies.iter().map(|r| r.bytes.len()).sum();
    let mut out = Vec::with_capacity(total + 8);
    let mut hit = false;
    for (i, &(ks, ke)) in key_ranges.iter().enumerate() {
        let p = assign[i];
        let key = &req.raw()[ks..ke];
        if let Some((kr, unit)) = values[p].get(cursor[p]) {
            if &replies[p].bytes[kr.clone()] == key {
                out.extend_from_slice(&replies[p].bytes[unit.clone()]);
                cursor[p] += 1;
                hit = true;
            }
        }
    }
    out.extend_from_slice(b"END\r\n");
    Reply {
        kind: if hit { ReplyKind::Hit } else { ReplyKind::Miss },
        bytes: Bytes::from(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_replies_come_in_request_order() {
        let reply = |s: &'static str| Reply {
            kind: ReplyKind::Ok,
            bytes: Bytes::from_static(s.as_bytes()),
        };
        let pending = || {
            let (tx, rx) = tokio::sync::oneshot::channel::<Reply>();
            let f: RouteFuture = Box::pin(async move { rx.await.unwrap() });
            (tx, f)
        };
        let next = |q: &mut Inflight| q.next().now_or_never().map(|r| r.map(|r| r.bytes));
        let mut q = Inflight::default();
        assert!(q.is_empty());
        assert_eq!(next(&mut q), Some(None));
        // One request: held alone, answered when ready.
        let (t1, f1) = pending();
        q.push_back(f1);
        assert!(q.one.is_some() && q.len() == 1);
        assert_eq!(next(&mut q), None);
        t1.send(reply("1")).ok();
        assert_eq!(next(&mut q), Some(Some(Bytes::from_static(b"1"))));
        assert!(q.is_empty());
        // A second one while the first waits: both move to the ordered queue, and a
        // later reply that is ready first still waits for the earlier one.
        let (t2, f2) = pending();
        let (t3, f3) = pending();
        let (t4, f4) = pending();
        q.push_back(f2);
        q.push_back(f3);
        q.push_back(f4);
        assert!(q.one.is_none() && q.len() == 3);
        t4.send(reply("4")).ok();
        t3.send(reply("3")).ok();
        assert_eq!(next(&mut q), None);
        t2.send(reply("2")).ok();
        for want in ["2", "3", "4"] {
            assert_eq!(
                next(&mut q),
                Some(Some(Bytes::from_static(want.as_bytes())))
            );
        }
        assert!(q.is_empty());
        // Drained: the next one is held alone again.
        q.push_back(ready(reply("5")));
        assert!(q.one.is_some());
        assert_eq!(next(&mut q), Some(Some(Bytes::from_static(b"5"))));
        assert_eq!(next(&mut q), Some(None));
    }

    #[test]
    fn park_yield_only_while_it_pays() {
        use park_yield::{State, CAUGHT, CREDIT_MAX, MISS_COST};
        use std::time::{Duration, Instant};
        let t = Instant::now();
        let long = CAUGHT * 10;
        let short = CAUGHT / 4;
        let mut s = State::new();
        // Light load: every park sleeps long; the worker never yields.
        for i in 0..50 {
            assert!(!s.park(t), "yielded at light load (park {i})");
            s.unpark(t + long);
        }
        assert_eq!(s.credit, -CREDIT_MAX);
        // Heavy load: parks return at once; credit builds up and the worker yields.
        let mut yields = 0;
        for _ in 0..(2 * CREDIT_MAX + 4) {
            yields += s.park(t) as u32;
            s.unpark(t + short);
        }
        assert_eq!(s.credit, CREDIT_MAX);
        assert!(yields >= 3, "never yielded under load");
        // When load drops, yields that are followed by long sleeps stop within a few
        // parks; short parks (load again) start them again.
        let mut parks = 0;
        while s.park(t) {
            s.unpark(t + long);
            parks += 1;
            assert!(
                parks <= CREDIT_MAX / MISS_COST + 1,
                "kept yielding at light load"
            );
        }
        assert!(parks >= 1, "stopped yielding under load");
        s.unpark(t + long);
        while !s.park(t) {
            s.unpark(t + Duration::from_micros(1));
        }
        assert_eq!(s.credit, 1);
    }

    /// Where each key of `req` lies in its raw bytes.
    fn key_ranges(req: &Req) -> Vec<(usize, usize)> {
        req.keys()
            .map(|k| {
                let s = k.as_ptr() as usize - req.raw().as_ptr() as usize;
                (s, s + k.len())
            })
            .collect()
    }

    #[test]
    fn assemble_keeps_client_order_and_skips_misses() {
        let req = Req::from_wire(b"get a b c a\r\n").unwrap();
        let ranges = key_ranges(&req);
        let p0 = Reply {
            kind: ReplyKind::Hit,
            bytes: Bytes::from_static(b"VALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nEND\r\n"),
        };
        let p1 = Reply {
            kind: ReplyKind::Hit,
            bytes: Bytes::from_static(b"VALUE c 0 1\r\n3\r\nEND\r\n"),
        };
        let r = assemble(&req, &ranges, &[0, 1, 1, 0], vec![p0, p1], false);
        assert_eq!(
            &r.bytes[..],
            b"VALUE a 0 1\r\n1\r\nVALUE c 0 1\r\n3\r\nVALUE a 0 1\r\n1\r\nEND\r\n"
        );
    }

    #[test]
    fn a_failed_part_fails_the_whole_multiget() {
        let req = Req::from_wire(b"get a b c\r\n").unwrap();
        let ranges = key_ranges(&req);
        let hit = Reply {
            kind: ReplyKind::Hit,
            bytes: Bytes::from_static(b"VALUE a 0 1\r\n1\r\nEND\r\n"),
        };
        let dead = Reply::error(ErrorClass::ConnectError, "mcrouter: connect error");
        let r = assemble(
            &req,
            &ranges,
            &[0, 1, 1],
            vec![hit.clone(), dead.clone()],
            false,
        );
        assert_eq!(&r.bytes[..], b"SERVER_ERROR mcrouter: connect error\r\n");
        assert_eq!(r.error_class(), Some(ErrorClass::ConnectError));
        // A backend that sent values before failing: only its error line.
        let partial = Reply {
            kind: ReplyKind::Error(ErrorClass::RemoteError),
            bytes: Bytes::from_static(b"VALUE b 0 1\r\n2\r\nSERVER_ERROR out of memory\r\n"),
        };
        let r = assemble(
            &req,
            &ranges,
            &[0, 1, 1],
            vec![hit.clone(), partial.clone()],
            false,
        );
        assert_eq!(&r.bytes[..], b"SERVER_ERROR out of memory\r\n");
        // --miss-on-get-errors: the failed keys are misses, values sent before count.
        let r = assemble(&req, &ranges, &[0, 1, 1], vec![hit.clone(), dead], true);
        assert_eq!(&r.bytes[..], b"VALUE a 0 1\r\n1\r\nEND\r\n");
        let r = assemble(&req, &ranges, &[0, 1, 1], vec![hit, partial], true);
        assert_eq!(
            &r.bytes[..],
            b"VALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n"
        );
    }
}
