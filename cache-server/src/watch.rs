//! `watch`: memcached's logger stream. A connection that sends `watch [types]` gets `OK`
//! and from then on only log lines (its input is ignored):
//!
//! ```text
//! ts=1796632167.439806 gid=16 type=item_get key=foo status=not_found clsid=0 cfd=25 size=0
//! ts=1796632167.439865 gid=17 type=item_store key=foo status=stored cmd=set ttl=0 clsid=1 cfd=25 size=3
//! ts=1796632336.843124 gid=1186 type=eviction key=k fetch=no ttl=1000 la=0 clsid=12 size=1000
//! ts=1796632336.526389 gid=2 type=conn_new rip=127.0.0.1 rport=47770 transport=tcp cfd=25
//! ts=1796632337.643706 gid=1188 type=conn_close rip=127.0.0.1 rport=47770 transport=tcp reason=normal cfd=25
//! ```
//!
//! (`ts` is `%lld.%d`: microseconds not zero padded; keys are URI-encoded; `gid` counts every
//! logged event of the server; `cfd` is the requesting connection's fd.)
//!
//! ```text
//!  worker (request) ── watch::set_current(flags, fd) ── storage (find_live, store, evict)
//!        │                 one relaxed load of Hub::flags      │ only when the type is on
//!        v                                                      v
//!  Hub::emit: format once, offer to each matching Watcher's bounded buffer (256 KiB,
//!             full: the line is skipped and counted, `skipped=N` precedes the next one)
//!        │ mio::Waker when a buffer becomes non-empty
//!        v
//!  watch thread: owns the watcher sockets (handed over by their worker), writes the
//!                buffers out, notices disconnects (then unregisters and logs conn_close)
//! ```
//!
//! When nobody watches, the hot path costs the one relaxed load per request in conn.rs
//! (and a thread-local write); the storage hooks read the thread-local only.

use std::cell::Cell;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::{Mutex, RwLock};
pub use protocol::watch::*;

use crate::server::Shared;

/// memcached's `WATCHER_LIMIT`.
pub const WATCHER_LIMIT: usize = 20;
/// memcached's default `watcher_logbuf_size` (256 KiB).
pub const WATCHER_BUF: usize = 256 * 1024;
/// memcached keeps this much room beyond a line for the `skipped=N` notice.
const SKIP_ROOM: usize = 128;
/// How often the watch thread looks for shutdown while idle.
const IDLE_POLL: Duration = Duration::from_millis(200);

thread_local! {
    /// (types some watcher wants, fd of the connection whose request runs): set per request.
    static CURRENT: Cell<(u16, i32)> = const { Cell::new((0, -1)) };
}

/// Note the request about to run on this thread (`flags` from [`Hub::flags`]).
#[inline]
pub fn set_current(flags: u16, fd: i32) {
    CURRENT.with(|c| c.set((flags, fd)));
}

/// The fd of the current request's connection if log type `flag` is being watched.
#[inline]
pub fn current(flag: u16) -> Option<i32> {
    let (f, fd) = CURRENT.with(Cell::get);
    (f & flag != 0).then_some(fd)
}

/// Run `f` without logging (an internal lookup memcached does not make).
pub fn quiet<R>(f: impl FnOnce() -> R) -> R {
    let saved = CURRENT.with(|c| c.replace((0, -1)));
    let r = f();
    CURRENT.with(|c| c.set(saved));
    r
}

/// `item_get` statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    NotFound,
    Found,
    Flushed,
    Expired,
}

impl GetStatus {
    fn word(self) -> &'static str {
        match self {
            GetStatus::NotFound => "not_found",
            GetStatus::Found => "found",
            GetStatus::Flushed => "flushed",
            GetStatus::Expired => "expired",
        }
    }
}

/// Why a connection closed (`conn_close reason=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Error,
    Normal,
    IdleTimeout,
    Shutdown,
}

impl CloseReason {
    fn word(self) -> &'static str {
        match self {
            CloseReason::Error => "error",
            CloseReason::Normal => "normal",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

// ------------------------------------------------------------------ line formatting

/// memcached's `uriencode`: all but ASCII letters, digits and `-._~` become `%XX`.
pub fn uriencode(key: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// `ts=<secs>.<usecs> gid=<gid> ` (`%lld.%d`: the microseconds are not zero padded).
pub fn push_prefix(out: &mut Vec<u8>, secs: u64, usecs: u32, gid: u64) {
    let _ = write!(out, "ts={secs}.{usecs} gid={gid} ");
}

/// `type=item_get ...` (`size`: value bytes, 0 when not found).
pub fn push_item_get(
    out: &mut Vec<u8>,
    key: &[u8],
    status: GetStatus,
    clsid: u8,
    cfd: i32,
    size: usize,
) {
    out.extend_from_slice(b"type=item_get key=");
    uriencode(key, out);
    let _ = write!(
        out,
        " status={} clsid={clsid} cfd={cfd} size={size}",
        status.word()
    );
}

/// The `status=` word of a store outcome.
pub fn store_status_word(s: crate::storage::StoreStatus) -> &'static str {
    use crate::storage::StoreStatus::*;
    match s {
        NotStored => "not_stored",
        Stored => "stored",
        Exists => "exists",
        NotFound => "not_found",
        TooLarge => "too_large",
        OutOfMemory => "no_memory",
    }
}

/// `type=item_store ...`: `ttl` is memcached's unsigned `exptime - current_time` (0 for
/// none), `cmd` one of set/add/replace/append/prepend/cas.
#[allow(clippy::too_many_arguments)]
pub fn push_item_store(
    out: &mut Vec<u8>,
    key: &[u8],
    status: &str,
    cmd: &str,
    ttl: u32,
    clsid: u32,
    cfd: i32,
    size: usize,
) {
    out.extend_from_slice(b"type=item_store key=");
    uriencode(key, out);
    let _ = write!(
        out,
        " status={status} cmd={cmd} ttl={ttl} clsid={clsid} cfd={cfd} size={size}"
    );
}

/// `type=eviction ...`: `ttl` seconds left or -1, `la` seconds since last access.
pub fn push_eviction(
    out: &mut Vec<u8>,
    key: &[u8],
    fetched: bool,
    ttl: i64,
    la: i32,
    clsid: u8,
    size: usize,
) {
    out.extend_from_slice(b"type=eviction key=");
    uriencode(key, out);
    let _ = write!(
        out,
        " fetch={} ttl={ttl} la={la} clsid={clsid} size={size}",
        if fetched { "yes" } else { "no" }
    );
}

/// `type=conn_new ...` / `type=conn_close ...` (`reason` only for a close).
pub fn push_conn_event(
    out: &mut Vec<u8>,
    peer: SocketAddr,
    transport: &str,
    reason: Option<CloseReason>,
    cfd: i32,
) {
    let kind = if reason.is_some() {
        "conn_close"
    } else {
        "conn_new"
    };
    let _ = write!(
        out,
        "type={kind} rip={} rport={} transport={transport}",
        peer.ip(),
        peer.port()
    );
    if let Some(r) = reason {
        let _ = write!(out, " reason={}", r.word());
    }
    let _ = write!(out, " cfd={cfd}");
}

// ------------------------------------------------------------------------- the hub

/// One watcher's pending output.
struct WatchBuf {
    data: Vec<u8>,
    pos: usize,
    /// Lines dropped since the last one that fitted.
    skipped: u64,
}

/// A watching connection, as the emitting workers see it.
pub struct Watcher {
    flags: u16,
    /// Events before the watcher attached are not its business.
    min_gid: u64,
    buf: Mutex<WatchBuf>,
}

impl WatchBuf {
    /// After a write: drop what was sent, so the buffer holds at most the unsent bytes
    /// (bounded by [`WATCHER_BUF`]) even for a watcher that never quite catches up.
    fn compact(&mut self) {
        if self.pos == self.data.len() {
            self.data.clear();
        } else if self.pos > 0 {
            self.data.drain(..self.pos);
        }
        self.pos = 0;
        if self.data.capacity() > 2 * WATCHER_BUF {
            self.data.shrink_to(WATCHER_BUF);
        }
    }
}

impl Watcher {
    /// Append `line`, or count it skipped when the buffer is full. Returns whether the
    /// buffer was empty (the watch thread must be woken).
    fn offer(&self, line: &[u8], hub: &Hub) -> bool {
        let mut b = self.buf.lock();
        let used = b.data.len() - b.pos;
        if used + line.len() + SKIP_ROOM > WATCHER_BUF {
            b.skipped += 1;
            hub.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if b.pos > 0 && b.pos == b.data.len() {
            b.data.clear();
            b.pos = 0;
        }
        if b.skipped > 0 {
            let n = b.skipped;
            let _ = writeln!(b.data, "skipped={n}");
            b.skipped = 0;
        }
        b.data.extend_from_slice(line);
        hub.sent.fetch_add(1, Ordering::Relaxed);
        used == 0
    }
}

/// A watcher's socket on its way from its worker to the watch thread.
struct Handoff {
    watcher: Arc<Watcher>,
    stream: TcpStream,
    conn_id: u64,
    peer: SocketAddr,
}

/// The log hub of one server.
pub struct Hub {
    /// The union of the watchers' types: what is worth logging.
    flags: AtomicU16,
    gid: AtomicU64,
    watchers: RwLock<Vec<Arc<Watcher>>>,
    handoff: Mutex<Vec<Handoff>>,
    waker: OnceLock<Arc<Waker>>,
    /// `stats`: log_worker_written, log_watcher_skipped, log_watcher_sent, log_watchers.
    written: AtomicU64,
    skipped: AtomicU64,
    sent: AtomicU64,
    count: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            flags: AtomicU16::new(0),
            gid: AtomicU64::new(0),
            watchers: RwLock::new(Vec::new()),
            handoff: Mutex::new(Vec::new()),
            waker: OnceLock::new(),
            written: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            count: AtomicUsize::new(0),
        }
    }
}

/// The `log_*` lines of `stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogStats {
    pub worker_written: u64,
    pub watcher_skipped: u64,
    pub watcher_sent: u64,
    pub watchers: usize,
}

impl Hub {
    /// The log types some watcher wants (one relaxed load: the per-request check).
    #[inline]
    pub fn flags(&self) -> u16 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            worker_written: self.written.load(Ordering::Relaxed),
            watcher_skipped: self.skipped.load(Ordering::Relaxed),
            watcher_sent: self.sent.load(Ordering::Relaxed),
            watchers: self.count.load(Ordering::Relaxed),
        }
    }

    fn recompute_flags(&self, ws: &[Arc<Watcher>]) {
        let f = ws.iter().fold(0, |f, w| f | w.flags);
        self.flags.store(f, Ordering::Relaxed);
    }

    /// Log one event of type `flag`: `body` writes the part after `gid=N `.
    pub fn emit(&self, flag: u16, body: impl FnOnce(&mut Vec<u8>)) {
        let gid = self.gid.fetch_add(1, Ordering::Relaxed) + 1;
        self.written.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = Vec::with_capacity(192);
        push_prefix(&mut line, now.as_secs(), now.subsec_micros(), gid);
        body(&mut line);
        line.push(b'\n');
        let mut wake = false;
        for w in self.watchers.read().iter() {
            if w.flags & flag != 0 && gid >= w.min_gid {
                wake |= w.offer(&line, self);
            }
        }
        if wake {
            if let Some(wk) = self.waker.get() {
                let _ = wk.wake();
            }
        }
    }

    /// `conn_new` / `conn_close` of a TCP connection, if anyone watches connevents.
    pub fn conn_event(&self, peer: SocketAddr, fd: i32, reason: Option<CloseReason>) {
        if self.flags() & CONNEVENTS != 0 {
            self.emit(CONNEVENTS, |o| push_conn_event(o, peer, "tcp", reason, fd));
        }
    }

    /// A store that failed to allocate (too large, out of memory). memcached 1.6.18 logs
    /// these with arguments shifted by one: the fd lands in `clsid` (as a byte) and `cfd`
    /// is whatever followed on the stack; we print 0 there.
    pub fn alloc_failure(&self, key: &[u8], status: &str, cmd: &str, cfd: i32) {
        self.emit(MUTATIONS, |o| {
            push_item_store(o, key, status, cmd, 0, (cfd as u32) & 0xff, 0, 0)
        });
    }

    /// Attach a watcher for `flags` whose stream follows with [`Hub::hand_over`]. `pending`
    /// (replies not yet written) goes out before the `OK`. `None`: the limit is reached.
    pub fn attach(&self, flags: u16, pending: &[u8]) -> Option<Arc<Watcher>> {
        let mut ws = self.watchers.write();
        if ws.len() >= WATCHER_LIMIT {
            return None;
        }
        let mut data = Vec::with_capacity(pending.len() + 4);
        data.extend_from_slice(pending);
        data.extend_from_slice(b"OK\r\n");
        let w = Arc::new(Watcher {
            flags,
            min_gid: self.gid.fetch_add(1, Ordering::Relaxed) + 1,
            buf: Mutex::new(WatchBuf {
                data,
                pos: 0,
                skipped: 0,
            }),
        });
        ws.push(w.clone());
        self.count.store(ws.len(), Ordering::Relaxed);
        self.recompute_flags(&ws);
        Some(w)
    }

    /// Give the watcher's socket (deregistered from its worker) to the watch thread.
    pub fn hand_over(
        &self,
        watcher: Arc<Watcher>,
        stream: TcpStream,
        conn_id: u64,
        peer: SocketAddr,
    ) {
        self.handoff.lock().push(Handoff {
            watcher,
            stream,
            conn_id,
            peer,
        });
        if let Some(wk) = self.waker.get() {
            let _ = wk.wake();
        }
    }

    fn detach(&self, w: &Arc<Watcher>) {
        let mut ws = self.watchers.write();
        ws.retain(|x| !Arc::ptr_eq(x, w));
        self.count.store(ws.len(), Ordering::Relaxed);
        self.recompute_flags(&ws);
    }
}

// ------------------------------------------------------------------ the watch thread

const WAKER: Token = Token(usize::MAX);

struct Held {
    h: Handoff,
    fd: i32,
}

/// Create the watch thread's poll and register its waker with the hub (and shutdown).
pub(crate) fn prepare(sh: &Shared) -> io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let _ = sh.watch.waker.set(waker.clone());
    Ok((poll, waker))
}

/// The watch thread: writes watcher buffers to their sockets until shutdown.
pub(crate) fn run(mut poll: Poll, sh: Arc<Shared>) {
    let hub = &sh.watch;
    let mut events = Events::with_capacity(64);
    let mut held: Vec<Option<Held>> = Vec::new();
    let mut scratch = vec![0u8; 4096];
    loop {
        if let Err(e) = poll.poll(&mut events, Some(IDLE_POLL)) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!("watch thread poll failed: {e}");
                break;
            }
        }
        let shutdown = sh.shutdown.is_set();
        let mut dead: Vec<usize> = Vec::new();
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.token() == WAKER {
                continue;
            }
            // Input is ignored; reading tells a disconnect apart.
            if let Some(Some(x)) = held.get_mut(i) {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    loop {
                        match x.h.stream.read(&mut scratch) {
                            Ok(0) => {
                                dead.push(i);
                                break;
                            }
                            Ok(_) => continue,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => {
                                dead.push(i);
                                break;
                            }
                        }
                    }
                }
            }
        }
        for h in std::mem::take(&mut *hub.handoff.lock()) {
            let i = held.iter().position(Option::is_none).unwrap_or_else(|| {
                held.push(None);
                held.len() - 1
            });
            let mut h = h;
            let fd = h.stream.as_raw_fd();
            if poll
                .registry()
                .register(
                    &mut h.stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                close(&sh, Held { h, fd });
                continue;
            }
            held[i] = Some(Held { h, fd });
        }
        for (i, slot) in held.iter_mut().enumerate() {
            let Some(x) = slot else { continue };
            if dead.contains(&i) {
                continue;
            }
            let mut b = x.h.watcher.buf.lock();
            while b.pos < b.data.len() {
                match x.h.stream.write(&b.data[b.pos..]) {
                    Ok(0) => {
                        dead.push(i);
                        break;
                    }
                    Ok(n) => b.pos += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        dead.push(i);
                        break;
                    }
                }
            }
            b.compact();
        }
        for i in dead {
            if let Some(mut x) = held[i].take() {
                let _ = poll.registry().deregister(&mut x.h.stream);
                close(&sh, x);
            }
        }
        if shutdown {
            for x in held.iter_mut().filter_map(Option::take) {
                hub.detach(&x.h.watcher);
                sh.unregister_conn(x.h.conn_id);
            }
            for h in std::mem::take(&mut *hub.handoff.lock()) {
                hub.detach(&h.watcher);
                sh.unregister_conn(h.conn_id);
            }
            break;
        }
    }
}

/// A watcher went away: forget it, free its connection slot, tell the others.
fn close(sh: &Shared, x: Held) {
    sh.watch.detach(&x.h.watcher);
    sh.unregister_conn(x.h.conn_id);
    // memcached closes watchers from its logger thread with the default reason.
    sh.watch
        .conn_event(x.h.peer, x.fd, Some(CloseReason::Error));
    drop(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn uriencode_keeps_unreserved_only() {
        let mut o = Vec::new();
        uriencode(b"k~-._*%a=b&c", &mut o);
        assert_eq!(s(&o), "k~-._%2A%25a%3Db%26c");
        o.clear();
        uriencode(&[0, 1, 2, 0xff, 0xc3, 0xa9], &mut o);
        assert_eq!(s(&o), "%00%01%02%FF%C3%A9");
    }

    #[test]
    fn prefix_microseconds_are_not_padded() {
        let mut o = Vec::new();
        push_prefix(&mut o, 1796632059, 25234, 14);
        assert_eq!(s(&o), "ts=1796632059.25234 gid=14 ");
    }

    #[test]
    fn item_lines() {
        let mut o = Vec::new();
        push_item_get(&mut o, b"foo", GetStatus::NotFound, 0, 17, 0);
        assert_eq!(
            s(&o),
            "type=item_get key=foo status=not_found clsid=0 cfd=17 size=0"
        );
        o.clear();
        push_item_store(&mut o, b"foo", "stored", "set", 0, 1, 17, 3);
        assert_eq!(
            s(&o),
            "type=item_store key=foo status=stored cmd=set ttl=0 clsid=1 cfd=17 size=3"
        );
        o.clear();
        push_eviction(&mut o, b"k 1", true, -1, 3, 12, 1000);
        assert_eq!(
            s(&o),
            "type=eviction key=k%201 fetch=yes ttl=-1 la=3 clsid=12 size=1000"
        );
    }

    #[test]
    fn conn_lines() {
        let peer: SocketAddr = "127.0.0.1:47770".parse().unwrap();
        let mut o = Vec::new();
        push_conn_event(&mut o, peer, "tcp", None, 25);
        assert_eq!(
            s(&o),
            "type=conn_new rip=127.0.0.1 rport=47770 transport=tcp cfd=25"
        );
        o.clear();
        push_conn_event(&mut o, peer, "tcp", Some(CloseReason::Normal), 25);
        assert_eq!(
            s(&o),
            "type=conn_close rip=127.0.0.1 rport=47770 transport=tcp reason=normal cfd=25"
        );
    }

    #[test]
    fn full_buffer_skips_and_reports() {
        let hub = Hub::default();
        let w = hub.attach(FETCHERS, b"").unwrap();
        let line = vec![b'x'; 1000];
        let mut n = 0;
        while hub.stats().watcher_skipped == 0 {
            hub.emit(FETCHERS, |o| o.extend_from_slice(&line));
            n += 1;
        }
        assert!(n > 200, "{n}");
        hub.emit(FETCHERS, |o| o.extend_from_slice(&line));
        assert_eq!(hub.stats().watcher_skipped, 2);
        // The writer drains; the next line fits, after the skipped count.
        {
            let mut b = w.buf.lock();
            b.pos = b.data.len();
        }
        hub.emit(FETCHERS, |o| o.extend_from_slice(b"last"));
        let b = w.buf.lock();
        let text = s(&b.data[b.pos..]);
        assert!(text.starts_with("skipped=2\nts="), "{text}");
        assert!(text.ends_with(" last\n"), "{text}");
        assert_eq!(hub.stats().watchers, 1);
    }

    #[test]
    fn a_watcher_that_never_quite_catches_up_stays_bounded() {
        let hub = Hub::default();
        let w = hub.attach(FETCHERS, b"").unwrap();
        let line = vec![b'x'; 500];
        for _ in 0..20_000 {
            // Lines arrive faster than the writer sends: each pass sends all but 1 KiB.
            for _ in 0..4 {
                hub.emit(FETCHERS, |o| o.extend_from_slice(&line));
            }
            let mut b = w.buf.lock();
            b.pos = b.data.len().saturating_sub(1024);
            b.compact();
            assert!(b.data.len() <= WATCHER_BUF, "{} bytes held", b.data.len());
            assert!(
                b.data.capacity() <= 2 * WATCHER_BUF,
                "{}",
                b.data.capacity()
            );
        }
        // 40 MB went through; what is held is the unsent tail, in order.
        let b = w.buf.lock();
        assert_eq!(b.pos, 0);
        assert!(b.data.ends_with(b"x\n"));
    }

    #[test]
    fn events_of_other_types_and_earlier_gids_are_not_delivered() {
        let hub = Hub::default();
        hub.emit(FETCHERS, |o| o.extend_from_slice(b"before"));
        let w = hub.attach(MUTATIONS, b"pending\r\n").unwrap();
        assert_eq!(hub.flags(), MUTATIONS);
        hub.emit(FETCHERS, |o| o.extend_from_slice(b"get"));
        hub.emit(MUTATIONS, |o| o.extend_from_slice(b"store"));
        let b = w.buf.lock();
        let text = s(&b.data);
        assert!(text.starts_with("pending\r\nOK\r\nts="), "{text}");
        assert!(text.ends_with(" gid=4 store\n"), "{text}");
        drop(b);
        hub.detach(&w);
        assert_eq!(hub.flags(), 0);
    }

    #[test]
    fn watcher_limit() {
        let hub = Hub::default();
        for _ in 0..WATCHER_LIMIT {
            assert!(hub.attach(FETCHERS, b"").is_some());
        }
        assert!(hub.attach(FETCHERS, b"").is_none());
    }
}
