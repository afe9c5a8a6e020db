//! One driver thread: an event loop over many connections.
//!
//! ```text
//!  arrivals (open loop: a timer at the next intended send time; closed loop: a reply frees a slot)
//!      │
//!      ▼
//!  pick a socket with a free pipeline slot ─> Gen: op, key(s), value ─> protocol::Request::encode
//!      │                                                     into the socket's write buffer
//!      ▼
//!  io_uring: one io_uring_enter per round submits every socket's Send and waits; multishot
//!            receives deliver replies into provided buffers, copied into the socket's buffer
//!  epoll (fallback): epoll_wait, then recv()/send() per ready socket
//!      │
//!      ▼
//!  protocol::parse_response ─> match the oldest Pending ─> latency = now - intended send time
//!      ─> per-thread HdrHistogram
//! ```
//!
//! The io_uring path needs Linux 6.1+ and io_uring allowed (see [`crate::uring`]); otherwise,
//! or with `--no-io-uring`, the mio/epoll loop runs. The loop's timer (open-loop send times,
//! herd timers, progress, end of run) is an io_uring `Timeout` request there, a `timerfd`
//! plus the `epoll_wait` timeout under epoll.
//!
//! Nothing is allocated per request once the buffers have grown to their working size.
//! With several servers, every logical connection has one socket per server and keys are
//! drawn until one hashes (mcrouter's hash) to the socket's server.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use protocol::{Keys, Request, Response, RetrievalKind, StorageKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};

use crate::run::{Arrival, ConnOrder, MetaTemplates, RunConfig, Shared, Stop};
use crate::stats::{Second, ThreadStats, MAX_LATENCY_US};
use crate::uring::{Completion, Op, Uring};
use crate::verify::{self, Check};
use crate::workload::{parse_key, write_key, KeyDist, Proto};
use crate::RunError;

const TIMER_TOKEN: Token = Token(usize::MAX - 1);
const READ_CHUNK: usize = 64 * 1024;
/// How long to wait for replies still in flight when the run ends.
const DRAIN: Duration = Duration::from_millis(1000);
/// Open loop: wake this much before an intended send time and busy-poll the rest: twice
/// times the (smoothed) lateness of timer wake-ups, within these bounds and at most a
/// quarter of the time between arrivals.
const MIN_EARLY: Duration = Duration::from_micros(30);
const MAX_EARLY: Duration = Duration::from_micros(150);
/// Open loop: per-thread arrival gaps below this use a periodic tick instead.
const PRECISE_BELOW: Duration = Duration::from_micros(100);
/// Period of that tick: the most a request waits behind its intended time for the timer.
const TICK: Duration = Duration::from_micros(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    Get,
    /// Herd: write-back after a backing-store fetch (`set` or `lease-set`).
    Fill,
    /// Herd: invalidation, not measured.
    Delete,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    t0: Instant,
    kind: Kind,
    nkeys: u16,
    /// Replies still expected (meta multi-get sends one `mg` per key).
    remaining: u16,
    hits: u16,
    bytes_out: u32,
    /// Lease token from an `LVALUE` (herd).
    token: u64,
    got_lvalue: bool,
}

struct Sock {
    stream: TcpStream,
    server: usize,
    /// Logical connection (thread-local index).
    conn: usize,
    /// Requests encoded and not yet handed to the kernel.
    wbuf: Vec<u8>,
    /// epoll: bytes of `wbuf` already written. io_uring: bytes of `sbuf` already sent.
    wpos: usize,
    /// io_uring: the bytes of the send in flight (swapped with `wbuf` when a send starts,
    /// so new requests never touch memory the kernel is reading).
    sbuf: Vec<u8>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    pending: VecDeque<Pending>,
    /// Key indices of the outstanding requests, in order, each with the version the reply
    /// must carry in verify mode: the last one written on this connection *before* the
    /// request was sent (the server answers a connection in order, so with pipelining a set
    /// sent later must not be expected yet).
    keys: VecDeque<(u64, u32)>,
    /// Slots held by herd fills waiting on the backing store.
    held: usize,
    /// io_uring: a send of `sbuf[wpos..]` is with the kernel.
    in_flight: bool,
    /// io_uring: the multishot receive is armed.
    recv_armed: bool,
    in_ready: bool,
    dead: bool,
}

impl Sock {
    fn outstanding(&self) -> usize {
        self.pending.len() + self.held
    }

    /// Make room for at least `n` more bytes at `rbuf[rend..]`.
    fn read_room(&mut self, n: usize) {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        if self.rbuf.len() - self.rend >= n {
            return;
        }
        if self.rstart > 0 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rbuf.len() - self.rend < n {
            let len = (self.rbuf.len() * 2).max(self.rend + n);
            self.rbuf.resize(len, 0);
        }
    }
}

/// Request generation state (separate from the sockets so both can be borrowed).
struct Gen {
    rng: SmallRng,
    keys: KeyDist,
    prefix: Vec<u8>,
    keybuf: Vec<u8>,
    valbuf: Vec<u8>,
    filler: Vec<u8>,
    p_set: f64,
    /// Per logical connection: last version written per owned key (verify mode).
    versions: Vec<Vec<u32>>,
    /// Global index of this thread's first logical connection, total connections.
    conn_base: u64,
    conn_total: u64,
    /// Scratch key buffer (sharding, verify).
    scratch: Vec<u8>,
}

/// Herd timers: (due, socket, key index, lease token, is_retry).
type Timer = Reverse<(Instant, usize, u64, u64, bool)>;

pub(crate) struct Driver<'a> {
    cfg: &'a RunConfig,
    shared: &'a Shared,
    thread: usize,
    poll: Poll,
    socks: Vec<Sock>,
    ready: VecDeque<usize>,
    gen: Gen,
    stats: ThreadStats,
    measure_start: Instant,
    measuring: bool,
    stopping: bool,
    budget: Option<u64>,
    timerfd: Option<RawFd>,
    /// Sends and receives through io_uring, one system call per event-loop round (unless
    /// `--no-io-uring` or io_uring is unavailable: then epoll and send()/recv()).
    uring: Option<Uring>,
    /// Reaped io_uring completions (reused).
    cqes: Vec<Completion>,
    timer_armed_for: Option<Instant>,
    /// When the one-shot timerfd (epoll) or the Timeout request (io_uring) for an arrival is
    /// due, to measure how late wake-ups are.
    timer_fires_at: Option<Instant>,
    /// Smoothed lateness of timer wake-ups.
    wake_late: Duration,
    backlog: VecDeque<Instant>,
    next_arrival: Instant,
    exp: Option<Exp<f64>>,
    interval: Duration,
    herd_timers: BinaryHeap<Timer>,
    next_invalidation: Option<Instant>,
    /// Completions since the last publish to the progress counters.
    unpublished: u64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl<'a> Driver<'a> {
    pub(crate) fn new(
        cfg: &'a RunConfig,
        shared: &'a Shared,
        thread: usize,
    ) -> Result<Self, RunError> {
        let start = Instant::now();
        if cfg.sched_batch && cfg.rate.is_none() {
            // Closed loop: a reply that wakes this thread does not preempt the server's thread
            // on the same CPU in the middle of its batch; the thread runs when that one blocks
            // (or at the next tick) and then finds several replies instead of one. About half
            // the context switches per request on a machine shared with the server. Open loop
            // keeps prompt wake-ups for its send times.
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: plain syscall; affects only the calling (driver) thread.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        }
        let poll = Poll::new().map_err(|e| RunError::Io {
            what: "create epoll".into(),
            source: e,
        })?;
        let w = &cfg.workload;
        let nconn = cfg.connections;
        let uring = if cfg.io_uring {
            // Where io_uring is unavailable (old kernel, seccomp, io_uring_disabled) the
            // driver falls back to epoll and one send()/recv() per request.
            Uring::new(nconn * cfg.servers.len()).ok()
        } else {
            None
        };
        let mut socks = Vec::with_capacity(nconn * cfg.servers.len());
        let abort_guard = shared.turns.abort_on_drop();
        for conn in 0..nconn {
            let turn = match cfg.conn_order {
                ConnOrder::Interleave => conn * cfg.threads + thread,
                ConnOrder::Block => thread * nconn + conn,
            };
            if !shared.turns.wait(turn as u64) {
                return Err(RunError::Thread(
                    "another driver thread could not connect".into(),
                ));
            }
            for (server, addr) in cfg.servers.iter().enumerate() {
                let std = std::net::TcpStream::connect(addr).map_err(|e| RunError::Connect {
                    addr: addr.to_string(),
                    source: e,
                })?;
                let _ = std.set_nodelay(true);
                std.set_nonblocking(true).map_err(|e| RunError::Io {
                    what: format!("set_nonblocking {addr}"),
                    source: e,
                })?;
                let mut stream = TcpStream::from_std(std);
                let id = socks.len();
                if uring.is_none() {
                    poll.registry()
                        .register(
                            &mut stream,
                            Token(id),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .map_err(|e| RunError::Io {
                            what: format!("register {addr}"),
                            source: e,
                        })?;
                }
                socks.push(Sock {
                    stream,
                    server,
                    conn,
                    wbuf: Vec::with_capacity(16 * 1024),
                    wpos: 0,
                    sbuf: Vec::with_capacity(if uring.is_some() { 16 * 1024 } else { 0 }),
                    rbuf: vec![0; READ_CHUNK],
                    rstart: 0,
                    rend: 0,
                    pending: VecDeque::with_capacity(cfg.pipeline.max(1) * 2),
                    keys: VecDeque::with_capacity(cfg.pipeline.max(1) * w.multiget as usize * 2),
                    held: 0,
                    in_flight: false,
                    recv_armed: false,
                    in_ready: false,
                    dead: false,
                });
            }
            shared.turns.advance();
        }
        abort_guard.disarm();
        let conn_total = (cfg.threads * nconn) as u64;
        let conn_base = (thread * nconn) as u64;
        let seed = cfg.seed ^ (thread as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rng = SmallRng::seed_from_u64(seed);
        let start_key = w.key_space / cfg.threads as u64 * thread as u64;
        let keys = KeyDist::new(w.pattern, w.key_space, start_key)?;
        let mut filler = vec![0u8; w.value_size.max as usize];
        for b in filler.iter_mut() {
            *b = b'a' + rng.random_range(0..26u8);
        }
        let versions = if cfg.verify {
            let per = (w.key_space / conn_total + 1) as usize;
            (0..nconn).map(|_| vec![0u32; per]).collect()
        } else {
            Vec::new()
        };
        let p_set = w.ratio.sets as f64 / (w.ratio.sets + w.ratio.gets) as f64;
        let (timerfd, exp, interval) = match cfg.rate {
            Some(rate) => {
                let per_thread = rate / cfg.threads as f64;
                // Timer slack (50 us by default) would delay every intended send time.
                // SAFETY: prctl(PR_SET_TIMERSLACK) affects only the calling thread.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
                let fd = if uring.is_some() {
                    // io_uring waits take a nanosecond timeout: no timer fd needed.
                    None
                } else {
                    // SAFETY: plain syscall; the fd is owned by this driver and closed on drop.
                    let fd = unsafe {
                        libc::timerfd_create(
                            libc::CLOCK_MONOTONIC,
                            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                        )
                    };
                    if fd < 0 {
                        return Err(RunError::Io {
                            what: "timerfd_create".into(),
                            source: io::Error::last_os_error(),
                        });
                    }
                    poll.registry()
                        .register(&mut SourceFd(&fd), TIMER_TOKEN, Interest::READABLE)
                        .map_err(|e| RunError::Io {
                            what: "register timerfd".into(),
                            source: e,
                        })?;
                    Some(fd)
                };
                let exp = match cfg.arrival {
                    Arrival::Poisson => Exp::new(per_thread).ok(),
                    Arrival::Fixed => None,
                };
                (fd, exp, Duration::from_secs_f64(1.0 / per_thread))
            }
            None => (None, None, Duration::ZERO),
        };
        let budget = match cfg.stop {
            Stop::Requests(n) => {
                let per =
                    n / cfg.threads as u64 + u64::from((thread as u64) < n % cfg.threads as u64);
                Some(per)
            }
            Stop::Duration(_) => None,
        };
        Ok(Driver {
            cfg,
            shared,
            thread,
            poll,
            socks,
            ready: VecDeque::new(),
            gen: Gen {
                rng,
                keys,
                prefix: w.key_prefix.as_bytes().to_vec(),
                keybuf: Vec::with_capacity(256 * w.multiget as usize),
                valbuf: Vec::with_capacity(w.value_size.max as usize + 64),
                filler,
                p_set,
                versions,
                conn_base,
                conn_total,
                scratch: Vec::with_capacity(256),
            },
            stats: ThreadStats::default(),
            measure_start: start + cfg.warmup,
            measuring: cfg.warmup.is_zero(),
            stopping: false,
            budget,
            timerfd,
            uring,
            cqes: Vec::with_capacity(256),
            timer_armed_for: None,
            timer_fires_at: None,
            wake_late: Duration::from_micros(20),
            backlog: VecDeque::new(),
            next_arrival: start,
            exp,
            interval,
            herd_timers: BinaryHeap::new(),
            next_invalidation: None,
            unpublished: 0,
        })
    }

    /// Run until the stop condition; returns what was measured and the measured seconds.
    pub(crate) fn run(mut self, start: Instant) -> Result<(ThreadStats, f64), RunError> {
        self.measure_start = start + self.cfg.warmup;
        // Stagger the first arrival of each thread over one interval.
        self.next_arrival = start
            + self
                .interval
                .mul_f64((self.thread as f64 + 0.5) / self.cfg.threads as f64);
        let mut events = Events::with_capacity(1024);
        let end = match self.cfg.stop {
            Stop::Duration(d) => Some(self.measure_start + d),
            Stop::Requests(_) => None,
        };
        if self.cfg.herd.is_some() && self.thread == 0 {
            self.next_invalidation = Some(Instant::now());
        }
        let mut stop_at = None;
        let mut drain_deadline = None;
        for s in 0..self.socks.len() {
            self.mark_ready(s);
            self.arm_recv(s);
        }
        loop {
            let now = Instant::now();
            if !self.measuring && now >= self.measure_start {
                self.measuring = true;
                let verify = self.stats.verify;
                self.stats = ThreadStats::default();
                // Verification findings during warm-up still count.
                self.stats.verify = verify;
            }
            if !self.stopping {
                let done = match end {
                    Some(e) => now >= e,
                    None => self.budget == Some(0),
                };
                if done || self.shared.cancel.load(Ordering::Relaxed) {
                    self.stopping = true;
                    stop_at = Some(now);
                    drain_deadline = Some(now + DRAIN);
                    self.stats.unsent += self.backlog.len() as u64;
                    self.backlog.clear();
                    for t in self.herd_timers.drain() {
                        self.socks[t.0 .1].held -= 1;
                    }
                }
            }
            if self.stopping {
                let idle = self.socks.iter().all(|s| s.pending.is_empty() || s.dead);
                if idle || drain_deadline.is_some_and(|d| now >= d) {
                    break;
                }
            } else {
                if self.cfg.rate.is_some() {
                    self.arrivals(now);
                }
                if self.cfg.herd.is_some() {
                    self.herd_tick(now);
                }
                self.dispatch(now);
            }
            self.publish();
            let timeout = self.next_wakeup(now, end, drain_deadline);
            if self.uring.is_some() {
                self.uring_round(now + timeout)?;
                continue;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RunError::Io {
                    what: "epoll_wait".into(),
                    source: e,
                });
            }
            for ev in events.iter() {
                if ev.token() == TIMER_TOKEN {
                    if let Some(fd) = self.timerfd {
                        let mut b = [0u8; 8];
                        // SAFETY: reading 8 bytes into an 8-byte buffer from our timerfd.
                        unsafe { libc::read(fd, b.as_mut_ptr().cast(), 8) };
                    }
                    if let Some(target) = self.timer_fires_at.take() {
                        // How late this machine wakes us: the early-wake margin follows it.
                        let late = Instant::now().saturating_duration_since(target);
                        self.wake_late = (self.wake_late * 7 + late) / 8;
                    }
                    continue;
                }
                let s = ev.token().0;
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(s);
                }
                if ev.is_writable() {
                    self.flush(s);
                }
            }
        }
        self.publish();
        self.stats.io_uring = self.uring.is_some();
        let finished = Instant::now();
        let measured = match (self.cfg.stop, stop_at) {
            (Stop::Duration(_), Some(t)) => t.saturating_duration_since(self.measure_start),
            _ => finished.saturating_duration_since(self.measure_start),
        };
        Ok((std::mem::take(&mut self.stats), measured.as_secs_f64()))
    }

    fn publish(&mut self) {
        if self.unpublished > 0 {
            self.shared
                .ops
                .fetch_add(self.unpublished, Ordering::Relaxed);
            self.unpublished = 0;
        }
    }

    /// io_uring: submit the round's sends and wait (one `io_uring_enter`), then handle every
    /// completion.
    fn uring_round(&mut self, deadline: Instant) -> Result<(), RunError> {
        let Some(u) = self.uring.as_mut() else {
            return Ok(());
        };
        u.submit_and_wait(deadline).map_err(|e| RunError::Io {
            what: "io_uring_enter".into(),
            source: e,
        })?;
        let mut cqes = std::mem::take(&mut self.cqes);
        u.reap(&mut cqes);
        let now = Instant::now();
        if let Some(target) = self.timer_fires_at.take() {
            if now >= target {
                // How late this machine wakes us: the early-wake margin follows it.
                self.wake_late = (self.wake_late * 7 + (now - target)) / 8;
            }
        }
        for c in cqes.drain(..) {
            match c.op {
                Op::Send => self.on_sent(c),
                Op::Recv => self.on_recv(c, now),
                Op::Cancel | Op::Timer | Op::TimerUpdate => {}
            }
        }
        self.cqes = cqes;
        Ok(())
    }

    /// io_uring: arm the socket's multishot receive (once; again only when it ends).
    fn arm_recv(&mut self, s: usize) {
        let sock = &mut self.socks[s];
        let Some(u) = self.uring.as_mut() else {
            return;
        };
        if sock.dead || sock.recv_armed {
            return;
        }
        match u.arm_recv(sock.stream.as_raw_fd(), s) {
            Ok(()) => sock.recv_armed = true,
            Err(_) => self.fail(s),
        }
    }

    /// io_uring: a receive completion (data, end of stream, or the receive ended).
    fn on_recv(&mut self, c: Completion, now: Instant) {
        let s = c.sock;
        let (Some(u), Some(sock)) = (self.uring.as_mut(), self.socks.get_mut(s)) else {
            return;
        };
        if !c.more() {
            sock.recv_armed = false;
        }
        if let Some(bid) = c.buffer() {
            if c.res > 0 && !sock.dead {
                let n = c.res as usize;
                sock.read_room(n);
                // SAFETY: the completion just handed buffer `bid` to us and it goes back to
                // the kernel only below, after the copy.
                let data = unsafe { u.data(bid, n) };
                sock.rbuf[sock.rend..sock.rend + n].copy_from_slice(data);
                sock.rend += n;
            }
            u.recycle(bid);
        }
        if sock.dead {
            return;
        }
        match c.res {
            n if n > 0 => {
                self.parse(s, now);
                if self.socks[s].dead {
                    // A malformed or unexpected reply (counted by `parse`): stop receiving.
                    self.stop_io(s);
                    return;
                }
                if !self.stopping {
                    self.mark_ready(s);
                }
                if !c.more() {
                    // The kernel ended the multishot receive (e.g. completion queue full).
                    self.arm_recv(s);
                }
            }
            // Every provided buffer is waiting to be copied out: they are back now.
            e if e == -libc::ENOBUFS => self.arm_recv(s),
            0 => {
                if !sock.pending.is_empty() {
                    self.stats.conn_errors += 1;
                }
                self.kill(s);
            }
            _ => self.fail(s),
        }
    }

    /// io_uring: a send completion.
    fn on_sent(&mut self, c: Completion) {
        let Some(sock) = self.socks.get_mut(c.sock) else {
            return;
        };
        sock.in_flight = false;
        if sock.dead {
            return;
        }
        let left = sock.sbuf.len() - sock.wpos;
        match c.res {
            n if n > 0 || (n == 0 && left == 0) => {
                sock.wpos += n as usize;
                if sock.wpos >= sock.sbuf.len() {
                    sock.sbuf.clear();
                    sock.wpos = 0;
                }
                // The rest of a short send, or what was encoded meanwhile.
                self.queue_send(c.sock);
            }
            e if e == -libc::EAGAIN || e == -libc::EINTR => self.queue_send(c.sock),
            _ => self.fail(c.sock),
        }
    }

    /// A connection error: count it and drop the connection.
    fn fail(&mut self, s: usize) {
        if !self.socks[s].dead {
            self.stats.conn_errors += 1;
            self.kill(s);
        }
    }

    fn next_wakeup(
        &mut self,
        now: Instant,
        end: Option<Instant>,
        drain: Option<Instant>,
    ) -> Duration {
        let mut wake = drain.or(end).unwrap_or(now + Duration::from_millis(100));
        if !self.measuring {
            wake = wake.min(self.measure_start);
        }
        if let Some(t) = self.herd_timers.peek() {
            wake = wake.min(t.0 .0);
        }
        if let Some(t) = self.next_invalidation {
            wake = wake.min(t);
        }
        // Progress: wake at least every 100 ms to publish counters.
        wake = wake.min(now + Duration::from_millis(100));
        if self.cfg.rate.is_none() || self.stopping {
            return wake.saturating_duration_since(now);
        }
        let timerfd = self.timerfd;
        if self.interval < PRECISE_BELOW {
            // High rate: a tick every TICK sends whatever is due; waking up for every
            // arrival would cost more than the requests.
            match timerfd {
                // epoll: a periodic timerfd, armed once.
                Some(fd) if self.timer_armed_for.is_none() => {
                    self.timer_armed_for = Some(now);
                    arm_timer(fd, TICK, TICK);
                }
                Some(_) => {}
                // io_uring: the Timeout request (moved earlier only when needed).
                None => wake = wake.min(self.next_arrival.max(now + TICK)),
            }
            return wake.saturating_duration_since(now);
        }
        // Low rate: wake just before each intended send time and busy-poll the rest
        // (at most a quarter of the time between arrivals).
        let spin = (self.wake_late * 2)
            .clamp(MIN_EARLY, MAX_EARLY)
            .min(self.interval / 4);
        if self.next_arrival <= now + spin {
            // The next send is imminent: poll without sleeping (replies are still
            // processed) so the wake-up delay is not charged to the server.
            return Duration::ZERO;
        }
        let d = self
            .next_arrival
            .saturating_duration_since(now + spin)
            .max(Duration::from_nanos(1));
        match timerfd {
            // Sub-millisecond precision for the next intended send time (re-armed only when
            // that time moved: one timerfd_settime per arrival, not per loop).
            Some(fd) => {
                if self.timer_armed_for != Some(self.next_arrival) {
                    self.timer_armed_for = Some(self.next_arrival);
                    self.timer_fires_at = Some(now + d);
                    arm_timer(fd, d, Duration::ZERO);
                }
            }
            // io_uring: the Timeout request (nanosecond resolution).
            None => {
                if now + d < wake {
                    wake = now + d;
                    self.timer_fires_at = Some(wake);
                }
            }
        }
        wake.saturating_duration_since(now)
    }

    fn arrivals(&mut self, now: Instant) {
        while self.next_arrival <= now {
            if let Some(b) = self.budget.as_mut() {
                if *b == 0 {
                    break;
                }
                if self.measuring {
                    *b -= 1;
                }
            }
            self.backlog.push_back(self.next_arrival);
            let gap = match &self.exp {
                Some(e) => Duration::from_secs_f64(e.sample(&mut self.gen.rng)),
                None => self.interval,
            };
            self.next_arrival += gap;
        }
    }

    fn mark_ready(&mut self, s: usize) {
        let sock = &mut self.socks[s];
        if !sock.in_ready && !sock.dead && sock.outstanding() < self.cfg.pipeline {
            sock.in_ready = true;
            self.ready.push_back(s);
        }
    }

    /// Fill free pipeline slots: closed loop sends right away, open loop takes intended
    /// send times from the backlog.
    fn dispatch(&mut self, now: Instant) {
        let open = self.cfg.rate.is_some();
        while let Some(&s) = self.ready.front() {
            if open && self.backlog.is_empty() {
                break;
            }
            if !open && self.budget == Some(0) {
                break;
            }
            self.ready.pop_front();
            self.socks[s].in_ready = false;
            if self.socks[s].dead {
                continue;
            }
            let mut sent = false;
            while self.socks[s].outstanding() < self.cfg.pipeline {
                let t0 = if open {
                    match self.backlog.pop_front() {
                        Some(t) => t,
                        None => break,
                    }
                } else {
                    if let Some(b) = self.budget.as_mut() {
                        if *b == 0 {
                            break;
                        }
                        if self.measuring {
                            *b -= 1;
                        }
                    }
                    now
                };
                if open && self.measuring {
                    let lag = micros(Instant::now().saturating_duration_since(t0));
                    self.stats
                        .send_lag
                        .saturating_record(lag.clamp(1, MAX_LATENCY_US));
                }
                self.send_one(s, t0);
                sent = true;
            }
            if sent {
                self.flush(s);
            }
            if self.socks[s].outstanding() < self.cfg.pipeline {
                // Still room (backlog empty): stay ready.
                self.mark_ready(s);
                if open {
                    break;
                }
            }
        }
    }

    fn send_one(&mut self, s: usize, t0: Instant) {
        let herd = self.cfg.herd.is_some();
        let sock = &mut self.socks[s];
        let g = &mut self.gen;
        let w = &self.cfg.workload;
        let is_set = !herd && g.p_set > 0.0 && (g.p_set >= 1.0 || g.rng.random_bool(g.p_set));
        let start = sock.wbuf.len();
        if is_set {
            let k = pick_key(g, self.cfg, sock.server, sock.conn);
            sock.keys.push_back((k, 0));
            g.keybuf.clear();
            write_key(&mut g.keybuf, &g.prefix, k);
            let len = w.value_size.sample(&mut g.rng) as usize;
            let ttl = w.expiry.sample(&mut g.rng) as i64;
            let data: &[u8] = if self.cfg.verify {
                let v = &mut g.versions[sock.conn][(k / g.conn_total) as usize];
                *v = v.wrapping_add(1).max(1);
                g.valbuf.clear();
                verify::write_value(&mut g.valbuf, &g.keybuf, *v, len);
                &g.valbuf
            } else {
                &g.filler[..len]
            };
            encode_set(&mut sock.wbuf, w.protocol, g, ttl, data, &self.cfg.meta);
            let bytes = (sock.wbuf.len() - start) as u32;
            sock.pending.push_back(Pending {
                t0,
                kind: Kind::Set,
                nkeys: 1,
                remaining: 1,
                hits: 0,
                bytes_out: bytes,
                token: 0,
                got_lvalue: false,
            });
        } else {
            let n = if herd { 1 } else { w.multiget as usize };
            g.keybuf.clear();
            for i in 0..n {
                let k = pick_key(g, self.cfg, sock.server, sock.conn);
                let expect = if self.cfg.verify {
                    expected_version(g, sock.conn, k)
                } else {
                    0
                };
                sock.keys.push_back((k, expect));
                if i > 0 {
                    g.keybuf.push(b' ');
                }
                write_key(&mut g.keybuf, &g.prefix, k);
            }
            let replies = if herd {
                encode_herd_get(&mut sock.wbuf, &g.keybuf, self.cfg);
                1
            } else {
                encode_get(&mut sock.wbuf, w.protocol, g, n, &self.cfg.meta)
            };
            let bytes = (sock.wbuf.len() - start) as u32;
            sock.pending.push_back(Pending {
                t0,
                kind: Kind::Get,
                nkeys: n as u16,
                remaining: replies as u16,
                hits: 0,
                bytes_out: bytes,
                token: 0,
                got_lvalue: false,
            });
        }
    }

    fn flush(&mut self, s: usize) {
        if self.uring.is_some() {
            self.queue_send(s);
            return;
        }
        let sock = &mut self.socks[s];
        while sock.wpos < sock.wbuf.len() && !sock.dead {
            match sock.stream.write(&sock.wbuf[sock.wpos..]) {
                Ok(0) => {
                    sock.dead = true;
                }
                Ok(n) => {
                    sock.wpos += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    sock.dead = true;
                    self.stats.conn_errors += 1;
                }
            }
        }
        if sock.wpos >= sock.wbuf.len() {
            sock.wbuf.clear();
            sock.wpos = 0;
        }
    }

    /// io_uring: queue a send of what `s` has encoded, unless one is in flight (its
    /// completion queues the next). Submitted with the round's wait.
    fn queue_send(&mut self, s: usize) {
        let sock = &mut self.socks[s];
        let Some(u) = self.uring.as_mut() else {
            return;
        };
        if sock.in_flight || sock.dead {
            return;
        }
        if sock.wpos >= sock.sbuf.len() {
            sock.sbuf.clear();
            sock.wpos = 0;
            if sock.wbuf.is_empty() {
                return;
            }
            std::mem::swap(&mut sock.sbuf, &mut sock.wbuf);
        }
        let pending = &sock.sbuf[sock.wpos..];
        // SAFETY: `sbuf` is not written, moved or freed while `in_flight` is set: requests are
        // encoded into `wbuf`, `sbuf` is only swapped or cleared here and in `on_sent` when
        // `in_flight` is clear, and `in_flight` is cleared only when this send's completion is
        // reaped. On drop the driver cancels and reaps every request first and leaks the
        // sockets if that fails.
        match unsafe { u.send(sock.stream.as_raw_fd(), pending.as_ptr(), pending.len(), s) } {
            Ok(()) => sock.in_flight = true,
            Err(_) => self.fail(s),
        }
    }

    fn on_readable(&mut self, s: usize) {
        loop {
            let sock = &mut self.socks[s];
            if sock.dead {
                return;
            }
            if sock.rstart == sock.rend {
                sock.rstart = 0;
                sock.rend = 0;
            } else if sock.rend == sock.rbuf.len() {
                if sock.rstart > 0 {
                    sock.rbuf.copy_within(sock.rstart..sock.rend, 0);
                    sock.rend -= sock.rstart;
                    sock.rstart = 0;
                } else {
                    let n = sock.rbuf.len() * 2;
                    sock.rbuf.resize(n, 0);
                }
            }
            let room = sock.rbuf.len() - sock.rend;
            let n = match sock.stream.read(&mut sock.rbuf[sock.rend..]) {
                Ok(0) => {
                    if !sock.pending.is_empty() {
                        self.stats.conn_errors += 1;
                    }
                    self.kill(s);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.stats.conn_errors += 1;
                    self.kill(s);
                    return;
                }
            };
            sock.rend += n;
            let now = Instant::now();
            self.parse(s, now);
            if n < room {
                // Short read: the socket buffer is drained (edge-triggered is satisfied).
                break;
            }
        }
        if !self.stopping {
            // Refilled after every event of this epoll round is read: the requests then go
            // out in one burst, which wakes the server's threads once instead of per reply.
            self.mark_ready(s);
        }
    }

    fn kill(&mut self, s: usize) {
        self.socks[s].dead = true;
        self.stop_io(s);
        let sock = &mut self.socks[s];
        self.stats.unsent += sock.pending.len() as u64;
        sock.pending.clear();
        sock.keys.clear();
    }

    /// A dead socket: no more events from epoll; its io_uring requests cancelled.
    fn stop_io(&mut self, s: usize) {
        let sock = &mut self.socks[s];
        match self.uring.as_mut() {
            Some(u) => {
                if sock.recv_armed || sock.in_flight {
                    // Their final completions still arrive (and are ignored).
                    let _ = u.cancel_fd(sock.stream.as_raw_fd(), s);
                }
            }
            None => {
                let _ = self.poll.registry().deregister(&mut sock.stream);
            }
        }
    }

    fn parse(&mut self, s: usize, now: Instant) {
        let Driver {
            socks,
            gen,
            stats,
            cfg,
            measuring,
            measure_start,
            unpublished,
            herd_timers,
            shared,
            ..
        } = self;
        let sock = &mut socks[s];
        loop {
            let buf = &sock.rbuf[sock.rstart..sock.rend];
            let (resp, used) = match protocol::parse_response(buf) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => {
                    stats.conn_errors += 1;
                    sock.dead = true;
                    return;
                }
            };
            let Some(p) = sock.pending.front_mut() else {
                // A reply nobody asked for.
                stats.conn_errors += 1;
                sock.dead = true;
                return;
            };
            if *measuring {
                match p.kind {
                    Kind::Set | Kind::Fill => stats.sets.bytes_in += used as u64,
                    Kind::Get => stats.gets.bytes_in += used as u64,
                    Kind::Delete => {}
                }
            }
            let mut done = true;
            let mut error = false;
            let nkeys = p.nkeys as usize;
            match (p.kind, resp) {
                (Kind::Get, Response::Value { key, data, .. }) => {
                    p.hits += 1;
                    done = false;
                    if cfg.verify {
                        let req = sock.keys.iter().take(nkeys).copied();
                        verify_hit(gen, &mut stats.verify, key, data, req);
                    }
                }
                (Kind::Get, Response::LeaseValue { token, .. }) => {
                    p.got_lvalue = true;
                    p.token = token;
                    done = false;
                }
                (Kind::Get, Response::Meta { code, data, .. }) => {
                    let pos = nkeys - p.remaining as usize;
                    let k = sock.keys.get(pos).copied();
                    match (code, data) {
                        (protocol::MetaCode::Va, Some(d)) => {
                            p.hits += 1;
                            if let (true, Some(k)) = (cfg.verify, k) {
                                gen.scratch.clear();
                                match resp.meta_flag(b'k') {
                                    Some(rk) => gen.scratch.extend_from_slice(rk),
                                    None => write_key(&mut gen.scratch, &gen.prefix, k.0),
                                }
                                let rk = std::mem::take(&mut gen.scratch);
                                verify_hit(gen, &mut stats.verify, &rk, d, std::iter::once(k));
                                gen.scratch = rk;
                            }
                        }
                        (protocol::MetaCode::En, _) => {
                            if let (true, Some((_, expect))) = (cfg.verify, k) {
                                if expect != 0 {
                                    stats.verify.unexpected_misses += 1;
                                }
                            }
                        }
                        _ => error = true,
                    }
                    p.remaining = p.remaining.saturating_sub(1);
                    done = p.remaining == 0;
                }
                (Kind::Get, Response::End) => {
                    if cfg.verify && p.hits == 0 && nkeys == 1 {
                        if let Some(&(_, expect)) = sock.keys.front() {
                            if expect != 0 {
                                stats.verify.unexpected_misses += 1;
                            }
                        }
                    }
                }
                (Kind::Set | Kind::Fill, Response::Stored)
                | (
                    Kind::Set | Kind::Fill,
                    Response::Meta {
                        code: protocol::MetaCode::Hd,
                        ..
                    },
                ) => {}
                (Kind::Fill, Response::StaleStored | Response::NotStored) => {
                    stats.herd.rejected_fills += 1;
                }
                (Kind::Delete, Response::Deleted | Response::NotFound) => {}
                _ => error = true,
            }
            if error {
                match p.kind {
                    Kind::Set | Kind::Fill => stats.sets.errors += 1,
                    _ => stats.gets.errors += 1,
                }
            }
            sock.rstart += used;
            if !done {
                continue;
            }
            let p = sock.pending.pop_front().expect("front exists");
            let first_key = sock.keys.front().map_or(0, |&(k, _)| k);
            for _ in 0..p.nkeys {
                sock.keys.pop_front();
            }
            if *measuring && p.kind != Kind::Delete {
                let lat = micros(now.saturating_duration_since(p.t0));
                let sec = now.saturating_duration_since(*measure_start).as_secs() as usize;
                if sec >= stats.seconds.len() {
                    if let Some(prev) = stats.seconds.last() {
                        shared
                            .p99_us
                            .store(prev.hist.value_at_quantile(0.99), Ordering::Relaxed);
                    }
                    stats.seconds.resize_with(sec + 1, Second::default);
                }
                let secb = &mut stats.seconds[sec];
                if p.kind == Kind::Get {
                    stats.gets.record(lat);
                    let misses = (p.nkeys - p.hits.min(p.nkeys)) as u64;
                    stats.gets.hits += p.hits as u64;
                    stats.gets.misses += misses;
                    stats.gets.bytes_out += p.bytes_out as u64;
                    secb.hits += p.hits as u64;
                    secb.misses += misses;
                } else {
                    stats.sets.record(lat);
                    stats.sets.bytes_out += p.bytes_out as u64;
                }
                secb.ops += 1;
                secb.hist
                    .saturating_record(lat.clamp(1, crate::stats::MAX_LATENCY_US));
                *unpublished += 1;
            }
            if let (Some(h), Kind::Get, false) = (&cfg.herd, p.kind, error) {
                if p.hits == 0 {
                    let hot_miss = h.leases && p.got_lvalue && p.token <= 1;
                    sock.held += 1;
                    if hot_miss {
                        stats.herd.hot_misses += 1;
                        herd_timers.push(Reverse((now + h.retry, s, first_key, 0, true)));
                    } else {
                        stats.herd.fills += 1;
                        let token = if p.got_lvalue { p.token } else { 0 };
                        herd_timers.push(Reverse((
                            now + h.backing_latency,
                            s,
                            first_key,
                            token,
                            false,
                        )));
                    }
                }
            }
        }
        if sock.rstart == sock.rend {
            sock.rstart = 0;
            sock.rend = 0;
        }
    }

    /// Herd: fills whose backing-store fetch is done, lease retries, invalidations.
    fn herd_tick(&mut self, now: Instant) {
        let Some(h) = self.cfg.herd.clone() else {
            return;
        };
        while let Some(Reverse((due, s, k, token, retry))) = self.herd_timers.peek().copied() {
            if due > now {
                break;
            }
            self.herd_timers.pop();
            let sock = &mut self.socks[s];
            sock.held -= 1;
            if sock.dead {
                continue;
            }
            let g = &mut self.gen;
            g.keybuf.clear();
            write_key(&mut g.keybuf, &g.prefix, k);
            let start = sock.wbuf.len();
            let kind = if retry {
                encode_herd_get(&mut sock.wbuf, &g.keybuf, self.cfg);
                Kind::Get
            } else {
                let len = self.cfg.workload.value_size.sample(&mut g.rng) as usize;
                let data = &g.filler[..len];
                if h.leases && token > 1 {
                    Request::LeaseSet {
                        key: &g.keybuf,
                        token,
                        flags: 0,
                        exptime: 0,
                        data,
                        noreply: false,
                    }
                    .encode(&mut sock.wbuf);
                } else {
                    storage_set(&g.keybuf, 0, data).encode(&mut sock.wbuf);
                }
                Kind::Fill
            };
            sock.keys.push_back((k, 0));
            sock.pending.push_back(Pending {
                t0: now,
                kind,
                nkeys: 1,
                remaining: 1,
                hits: 0,
                bytes_out: (sock.wbuf.len() - start) as u32,
                token: 0,
                got_lvalue: false,
            });
            self.flush(s);
        }
        if let Some(at) = self.next_invalidation {
            if now >= at {
                self.next_invalidation = Some(at + h.invalidate_every);
                self.stats.herd.invalidations += 1;
                let nservers = self.cfg.servers.len();
                for k in 0..self.cfg.workload.key_space {
                    let g = &mut self.gen;
                    g.keybuf.clear();
                    write_key(&mut g.keybuf, &g.prefix, k);
                    let server = match &self.cfg.selector {
                        Some(sel) if nservers > 1 => sel.select(&g.keybuf),
                        _ => 0,
                    };
                    // Logical connection 0 has one socket per server, in server order.
                    let s = server;
                    let sock = &mut self.socks[s];
                    if sock.dead {
                        continue;
                    }
                    Request::Delete {
                        key: &g.keybuf,
                        noreply: false,
                    }
                    .encode(&mut sock.wbuf);
                    sock.keys.push_back((k, 0));
                    sock.pending.push_back(Pending {
                        t0: now,
                        kind: Kind::Delete,
                        nkeys: 1,
                        remaining: 1,
                        hits: 0,
                        bytes_out: 0,
                        token: 0,
                        got_lvalue: false,
                    });
                }
                for s in 0..nservers {
                    self.flush(s);
                }
            }
        }
    }
}

fn storage_set<'b>(key: &'b [u8], ttl: i64, data: &'b [u8]) -> Request<'b> {
    Request::Storage {
        kind: StorageKind::Set,
        key,
        flags: 0,
        exptime: ttl,
        data,
        cas: 0,
        noreply: false,
    }
}

fn encode_set(
    out: &mut Vec<u8>,
    proto: Proto,
    g: &Gen,
    ttl: i64,
    data: &[u8],
    meta: &MetaTemplates,
) {
    match proto {
        Proto::Text => storage_set(&g.keybuf, ttl, data).encode(out),
        Proto::Meta => Request::MetaSet {
            key: &g.keybuf,
            flags: meta.ms_for(ttl),
            data,
        }
        .encode(out),
    }
}

/// Encode a get of the space-separated keys in `g.keybuf`; returns how many replies close it.
fn encode_get(out: &mut Vec<u8>, proto: Proto, g: &Gen, n: usize, meta: &MetaTemplates) -> usize {
    match proto {
        Proto::Text => {
            Request::Retrieval {
                kind: RetrievalKind::Get,
                exptime: None,
                keys: Keys::from_raw(&g.keybuf),
            }
            .encode(out);
            1
        }
        Proto::Meta => {
            for key in g.keybuf.split(|&b| b == b' ') {
                Request::MetaGet {
                    key,
                    flags: meta.mg,
                }
                .encode(out);
            }
            n
        }
    }
}

fn encode_herd_get(out: &mut Vec<u8>, key: &[u8], cfg: &RunConfig) {
    if cfg.herd.as_ref().is_some_and(|h| h.leases) {
        Request::LeaseGet { key }.encode(out);
    } else {
        Request::Retrieval {
            kind: RetrievalKind::Get,
            exptime: None,
            keys: Keys::from_raw(key),
        }
        .encode(out);
    }
}

/// Draw a key for a socket: owned by its logical connection in verify mode, and hashing to
/// its server when there are several.
fn pick_key(g: &mut Gen, cfg: &RunConfig, server: usize, conn: usize) -> u64 {
    let n = cfg.workload.key_space;
    for _ in 0..100_000 {
        let mut k = g.keys.sample(&mut g.rng);
        if cfg.verify {
            let c = g.conn_total;
            let owner = g.conn_base + conn as u64;
            k = k - k % c + owner;
            if k >= n {
                k -= c;
            }
        }
        match &cfg.selector {
            Some(sel) if cfg.servers.len() > 1 => {
                g.scratch.clear();
                write_key(&mut g.scratch, &g.prefix, k);
                if sel.select(&g.scratch) == server {
                    return k;
                }
            }
            _ => return k,
        }
    }
    // No key of this distribution maps to this server: send one anyway (it will miss).
    g.keys.sample(&mut g.rng)
}

fn verify_hit(
    g: &Gen,
    v: &mut crate::verify::VerifyStats,
    rkey: &[u8],
    data: &[u8],
    mut requested: impl Iterator<Item = (u64, u32)>,
) {
    let Some(idx) = parse_key(rkey, &g.prefix) else {
        v.wrong_key += 1;
        return;
    };
    let Some((_, expect)) = requested.find(|&(k, _)| k == idx) else {
        v.wrong_key += 1;
        return;
    };
    if expect == 0 {
        // Not written by this run (e.g. left over from an earlier one): nothing to compare.
        v.unverifiable += 1;
        return;
    }
    v.checked += 1;
    match verify::check_value(rkey, data) {
        Check::Corrupt => v.corrupt += 1,
        Check::WrongKey => v.wrong_key += 1,
        Check::Ok { version } if version != expect => v.stale += 1,
        Check::Ok { .. } => {}
    }
}

/// Arm `fd` to fire after `d`, then every `every` (zero: once).
fn arm_timer(fd: RawFd, d: Duration, every: Duration) {
    let ts = |d: Duration| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: ts(every),
        it_value: ts(d),
    };
    // SAFETY: valid fd owned by the driver; spec is a valid itimerspec.
    unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
}

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        if let Some(u) = self.uring.as_mut() {
            if !u.cancel_all() {
                // The kernel may still read a send buffer: leak the sockets' buffers rather
                // than free memory it could use (the ring leaks its own buffers likewise).
                std::mem::forget(std::mem::take(&mut self.socks));
            }
        }
        if let Some(fd) = self.timerfd.take() {
            // SAFETY: closing the timerfd we created.
            unsafe { libc::close(fd) };
        }
    }
}

fn expected_version(g: &Gen, conn: usize, k: u64) -> u32 {
    g.versions
        .get(conn)
        .and_then(|v| v.get((k / g.conn_total) as usize))
        .copied()
        .unwrap_or(0)
}
