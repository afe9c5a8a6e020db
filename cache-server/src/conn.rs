//! One client connection: buffered reads, request parsing and execution, batched writes.
//!
//! Memory per connection is bounded: the input buffer holds at most one incomplete request
//! (the protocol limits cap line and value sizes) plus one read chunk, and the output buffer
//! stops growing past [`OUTPUT_HIGH_WATER`] because no further request is executed (and
//! nothing more read) until the client has drained it. A slow reader therefore holds back
//! only itself. Buffers shrink back after a large value has passed.
//!
//! `lru_crawler metadump`/`mgdump` replies are not built whole: the connection keeps a
//! [`Dump`] cursor and refills its output buffer a stretch at a time whenever it drains
//! below the high-water mark, so a dump of millions of items needs no more memory than any
//! other reply. Requests pipelined behind a dump wait for it to end.

use std::io::{self, Read as _, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use protocol::{ErrorKind, Frame, Framer, LruCrawlerCommand, Request};

use crate::dump::{self, Dump, DumpKind};
use crate::exec::{execute, parse_error_reply, Outcome};
use crate::metrics::LatencyRecorder;
use crate::server::{ConnLive, ConnState, Shared};
use crate::stats::ThreadStats;
use crate::verbose;
use crate::watch::{self, CloseReason, Watcher};

/// With metrics on: the worker's latency recorder and when its event loop woke up.
pub type Timing<'a> = Option<(&'a LatencyRecorder, Instant)>;

/// Bytes read per `read` call (grows for large values).
const READ_CHUNK: usize = 16 * 1024;
/// Largest single read.
const MAX_READ_CHUNK: usize = 1024 * 1024;
/// Stop executing requests while this much output waits to be written.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// Buffers larger than this are shrunk once empty.
const SHRINK_ABOVE: usize = 256 * 1024;
/// Dump output produced in one [`Conn::drive`] call to a client that keeps up, before the
/// worker turns to its other connections ([`Drive::Yield`]).
const DUMP_BYTES_PER_DRIVE: usize = 4 * 1024 * 1024;

/// What one read did.
enum Read {
    /// Filled the space offered: there may be more.
    Data,
    /// Got less than offered: the socket is empty for now.
    Drained,
    WouldBlock,
}

/// Whether the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    /// Wait for the next readiness event.
    Keep,
    Close,
    /// More work is ready without any event coming (a dump to a client that keeps up):
    /// drive again after the worker's other connections had their turn.
    Yield,
    /// The connection became a `watch` log stream: give it to the watch thread
    /// ([`Conn::into_watcher`]).
    Watch,
}

pub struct Conn {
    stream: TcpStream,
    id: u64,
    /// Last command time and state, for `stats conns`.
    live: Arc<ConnLive>,
    /// The state last published to `live` (saves the store when it did not change).
    state: ConnState,
    /// A command ran on this connection (`conn_read` rather than `conn_new_cmd` when idle).
    had_cmd: bool,
    /// `process` stopped at a storage command whose data block is still arriving.
    awaiting_data: bool,
    /// Input buffer: `rbuf.len()` is its allocated size; bytes `rstart..rend` are unparsed.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Request framing: the rest of a rejected data block still to skip.
    framer: Framer,
    /// Close once the output is flushed (`quit`, fatal parse error, EOF).
    closing: bool,
    peer: SocketAddr,
    /// What `watch connevents` reports when this connection closes.
    pub close_reason: CloseReason,
    /// `watch` accepted: hand the socket to the watch thread ([`Drive::Watch`]).
    watcher: Option<Arc<Watcher>>,
    /// The client closed its side: answer what was received, then close.
    eof: bool,
    /// A `lru_crawler metadump`/`mgdump` being streamed.
    dump: Option<Dump>,
    /// Replies of this batch are queued that memcached would not have flushed yet: a dump
    /// requested now is refused ("cannot pipeline"). Cleared by get-type commands and `mn`
    /// (memcached writes out everything after them) and when the input runs dry.
    pipelined: bool,
    /// Dump bytes produced in the current `drive` call.
    dumped: usize,
    /// `process` stopped at the output high-water mark with input left to parse: once the
    /// output drains it must run again without waiting for a readable event (all the input
    /// may already be buffered, and then none comes).
    backlog: bool,
    /// `drive` stopped at the output high-water mark before a read came back short: the
    /// socket may hold input whose readable edge was already consumed. Once a batched send
    /// has written everything (no writable event will come), the connection must be driven
    /// again, or that input is never read.
    unread: bool,
    /// A readiness event said the peer shut down its write side (`EPOLLRDHUP`): a short
    /// read no longer means the socket is empty, as the end of input raises no new event.
    peer_closed: bool,
    /// Replies are not written here: the worker sends every connection's output of a round
    /// in one batch ([`crate::send_ring`]) and reports back through [`Conn::sent`].
    deferred: bool,
    /// In the worker's send batch of the current round.
    pub queued: bool,
}

/// What a batched send did to a connection ([`Conn::sent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// All output written. `resume`: more work waits without any event coming (input held
    /// back at the high-water mark, a dump to continue); `close`: the connection is done.
    All { resume: bool, close: bool },
    /// The socket is full: its writable event resumes the connection.
    Part,
    /// The socket failed: close.
    Failed,
}

impl Conn {
    pub fn new(
        mut stream: TcpStream,
        token: Token,
        registry: &Registry,
        sh: &Shared,
        deferred: bool,
    ) -> io::Result<Self> {
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (id, live) = sh.register_conn(peer);
        if verbose::tracing(sh.verbosity.load(Ordering::Relaxed)) {
            verbose::opened(stream.as_raw_fd());
        }
        sh.watch.conn_event(peer, stream.as_raw_fd(), None);
        Ok(Conn {
            stream,
            id,
            live,
            state: ConnState::NewCmd,
            had_cmd: false,
            awaiting_data: false,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            framer: Framer::new(),
            closing: false,
            peer,
            close_reason: CloseReason::Error,
            watcher: None,
            eof: false,
            dump: None,
            pipelined: false,
            dumped: 0,
            backlog: false,
            unread: false,
            peer_closed: false,
            deferred,
            queued: false,
        })
    }

    pub fn close(mut self, registry: &Registry, sh: &Shared) {
        let _ = registry.deregister(&mut self.stream);
        sh.unregister_conn(self.id);
        if verbose::tracing(sh.verbosity.load(Ordering::Relaxed)) {
            verbose::closed(self.stream.as_raw_fd());
        }
        let reason = if sh.shutdown.is_set() {
            CloseReason::Shutdown
        } else {
            self.close_reason
        };
        sh.watch
            .conn_event(self.peer, self.stream.as_raw_fd(), Some(reason));
    }

    /// After [`Drive::Watch`]: leave this worker; the watch thread owns the socket now (and
    /// unregisters the connection when it goes away). Unsent replies go out before `OK`.
    pub fn into_watcher(mut self, registry: &Registry, sh: &Shared) {
        let _ = registry.deregister(&mut self.stream);
        if let Some(w) = self.watcher.take() {
            sh.watch.hand_over(w, self.stream, self.id, self.peer);
        }
    }

    pub fn idle_for(&self, now: i64) -> i64 {
        now - self.live.last_cmd.load(Ordering::Relaxed)
    }

    /// Output waits to be written, or a dump has more to produce.
    pub fn has_pending_output(&self) -> bool {
        self.wpos < self.wbuf.len() || self.dump.is_some()
    }

    fn pending_output(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// The readiness event being handled said the peer closed its write side.
    pub fn note_peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Write directly from now on (the worker is draining for shutdown).
    pub fn write_directly(&mut self) {
        self.deferred = false;
    }

    /// Output for the worker's send batch, if any waits (deferred mode only).
    pub fn to_send(&self) -> Option<(RawFd, &[u8])> {
        (self.deferred && self.wpos < self.wbuf.len())
            .then(|| (self.stream.as_raw_fd(), &self.wbuf[self.wpos..]))
    }

    /// Account for the result of the batched send of [`Conn::to_send`]'s bytes: a byte
    /// count or `-errno`.
    pub fn sent(&mut self, res: i32, ts: &ThreadStats) -> Sent {
        self.queued = false;
        match res {
            n if n > 0 => {
                self.wpos += n as usize;
                ThreadStats::add(&ts.bytes_written, n as u64);
                if self.wpos < self.wbuf.len() {
                    return Sent::Part;
                }
                self.reset_output();
                self.publish_state();
                Sent::All {
                    resume: self.backlog || self.unread || self.dump.is_some(),
                    close: self.closing,
                }
            }
            n if n == -libc::EAGAIN || n == -libc::EINTR => Sent::Part,
            _ => Sent::Failed,
        }
    }

    fn reset_output(&mut self) {
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf.shrink_to(READ_CHUNK);
        }
    }

    /// Make progress on everything the socket allows: read, execute, write. Edge-triggered:
    /// returns only when reading or writing would block (or the connection is done), or
    /// with [`Drive::Yield`] when a dump could go on but others should have a turn.
    ///
    /// `timing` (with metrics on): this worker's latency recorder and when its event loop
    /// woke up for the readiness being handled.
    pub fn drive(&mut self, sh: &Shared, ts: &ThreadStats, timing: Timing<'_>) -> Drive {
        let d = self.drive_inner(sh, ts, timing);
        self.publish_state();
        d
    }

    /// What `stats conns` shows between events.
    fn publish_state(&mut self) {
        let s = if self.watcher.is_some() {
            ConnState::Watch
        } else if self.closing {
            ConnState::Closing
        } else if self.has_pending_output() {
            ConnState::Mwrite
        } else if self.framer.swallowing() > 0 {
            ConnState::Swallow
        } else if self.awaiting_data {
            ConnState::Nread
        } else if self.had_cmd {
            ConnState::Read
        } else {
            ConnState::NewCmd
        };
        publish(&mut self.state, &self.live, s);
    }

    fn drive_inner(&mut self, sh: &Shared, ts: &ThreadStats, timing: Timing<'_>) -> Drive {
        self.dumped = 0;
        self.unread = false;
        // The last read got less than it asked for: the socket is empty, and with
        // edge-triggered epoll any later arrival raises a new event.
        let mut socket_empty = false;
        loop {
            // 1. Execute what is buffered (bounded by the output high-water mark).
            self.process(sh, ts, timing);
            if self.watcher.is_some() {
                return Drive::Watch;
            }
            // 2. Write.
            match self.flush(ts) {
                Ok(()) => {}
                Err(_) => return Drive::Close,
            }
            if self.closing {
                return if self.has_pending_output() {
                    Drive::Keep // wait for writable, then close
                } else {
                    Drive::Close
                };
            }
            if self.pending_output() >= OUTPUT_HIGH_WATER {
                self.unread = !socket_empty;
                return Drive::Keep; // the client must read first
            }
            if self.backlog {
                continue; // buffered requests first
            }
            if self.dump.is_some() {
                if self.pending_output() > 0 {
                    // The socket is full: its writable event resumes the dump.
                    return Drive::Keep;
                }
                // The socket took everything: no event will come, produce more now.
                if self.dumped >= DUMP_BYTES_PER_DRIVE {
                    return Drive::Yield;
                }
                continue;
            }
            if self.eof {
                // Everything received has been answered.
                self.closing = true;
                return if self.has_pending_output() {
                    Drive::Keep
                } else {
                    Drive::Close
                };
            }
            // Everything buffered is answered (or waits for the client to read): a read
            // now would only say EAGAIN.
            if socket_empty && !sh.shutdown.is_set() {
                return Drive::Keep;
            }
            // 3. Read more.
            match self.read(ts) {
                Ok(Read::Data) => continue,
                // After the peer's FIN, read on to the end of input: no further event
                // would tell us about it.
                Ok(Read::Drained) => socket_empty = !self.peer_closed,
                Ok(Read::WouldBlock) if sh.shutdown.is_set() => {
                    // Draining: everything that had arrived is answered; close once flushed.
                    self.closing = true;
                    return if self.has_pending_output() {
                        Drive::Keep
                    } else {
                        Drive::Close
                    };
                }
                Ok(Read::WouldBlock) => return Drive::Keep,
                Err(e) => {
                    // EOF or error: answer complete requests already received, then close.
                    self.process(sh, ts, timing);
                    if e.kind() == io::ErrorKind::UnexpectedEof && self.dump.is_some() {
                        // Half-closed by a client still reading (`printf ... | nc -N`):
                        // the dump runs to its end first (memcached drops it).
                        self.eof = true;
                        continue;
                    }
                    if self.deferred && self.pending_output() > 0 {
                        // The replies go out with the worker's batch, then it closes.
                        self.closing = true;
                        return Drive::Keep;
                    }
                    let _ = self.flush(ts);
                    return Drive::Close;
                }
            }
        }
    }

    /// Read once into the buffer (no zeroing: the buffer stays allocated between reads).
    fn read(&mut self, ts: &ThreadStats) -> io::Result<Read> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
            if self.rbuf.len() > SHRINK_ABOVE {
                self.rbuf = Vec::new();
            }
        } else if self.rstart > 0
            && (self.rend == self.rbuf.len() || self.rstart > self.rbuf.len() / 2)
        {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rend == self.rbuf.len() {
            // Grow geometrically: a large value arrives in O(size) total work.
            let want = (self.rbuf.len() * 2).clamp(READ_CHUNK, self.rbuf.len() + MAX_READ_CHUNK);
            self.rbuf.resize(want, 0);
        }
        let space = self.rbuf.len() - self.rend;
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => {
                    self.close_reason = CloseReason::Normal;
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => {
                    self.rend += n;
                    ThreadStats::add(&ts.bytes_read, n as u64);
                    return Ok(if n < space { Read::Drained } else { Read::Data });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Read::WouldBlock),
                Err(e) => return Err(e),
            }
        }
    }

    /// Parse and execute every complete request in the input buffer (a dump in progress
    /// first). With metrics on, each request of the batch is counted with the time from
    /// the event loop's wake-up to the end of the batch (its replies leave together): one
    /// clock read per batch.
    fn process(&mut self, sh: &Shared, ts: &ThreadStats, timing: Timing<'_>) {
        self.awaiting_data = false;
        let mut requests = 0u64;
        let mut executed = false;
        let mut starved = false;
        // `-vv`: read per request, as `verbosity` may change it (a relaxed load of a
        // rarely written word).
        let trace = || verbose::tracing(sh.verbosity.load(Ordering::Relaxed));
        let fd = self.stream.as_raw_fd();
        while !self.closing && self.watcher.is_none() && self.pending_output() < OUTPUT_HIGH_WATER {
            if let Some(d) = self.dump.as_mut() {
                let before = self.wbuf.len();
                let more = d.fill(sh, &mut self.wbuf);
                self.dumped += self.wbuf.len() - before;
                if !more {
                    self.dump = None;
                }
                executed = true;
                continue;
            }
            let buf = &self.rbuf[self.rstart..self.rend];
            match self.framer.next(buf, &sh.limits) {
                Frame::Skip(n) => {
                    self.rstart += n;
                    if self.framer.swallowing() > 0 {
                        starved = true;
                        break;
                    }
                }
                Frame::Request(req, n) => {
                    executed = true;
                    requests += 1;
                    publish(&mut self.state, &self.live, ConnState::ParseCmd);
                    // The one relaxed load per request `watch` costs when nobody watches.
                    watch::set_current(sh.watch.flags(), fd);
                    let traced = trace();
                    if traced {
                        verbose::command(fd, &buf[..n]);
                    }
                    let before = self.wbuf.len();
                    match req {
                        Request::LruCrawler(
                            c @ (LruCrawlerCommand::Metadump(arg) | LruCrawlerCommand::Mgdump(arg)),
                        ) => {
                            let kind = if matches!(c, LruCrawlerCommand::Metadump(_)) {
                                DumpKind::Meta
                            } else {
                                DumpKind::Mg
                            };
                            self.dump = dump::start(sh, kind, arg, self.pipelined, &mut self.wbuf);
                            if self.dump.is_some() {
                                sh.crawler.starts.fetch_add(1, Ordering::Relaxed);
                            }
                            // A dump's output is all written before the next command runs.
                            self.pipelined = self.dump.is_none();
                            if traced && self.dump.is_none() {
                                verbose::one_line(fd, &self.wbuf[before..]);
                            }
                        }
                        Request::Watch { flags } => {
                            self.start_watch(sh, flags, before);
                            if traced {
                                verbose::one_line(fd, &self.wbuf[before..]);
                            }
                        }
                        _ if traced && req.noreply() => {
                            // memcached traces the reply `noreply` suppressed.
                            let outcome = execute(&req.with_reply(), sh, ts, &mut self.wbuf);
                            verbose::suppressed(fd, &self.wbuf[before..]);
                            self.wbuf.truncate(before);
                            if outcome == Outcome::Close {
                                self.closing = true;
                            }
                            self.pipelined = true;
                        }
                        _ => {
                            if execute(&req, sh, ts, &mut self.wbuf) == Outcome::Close {
                                self.closing = true;
                                self.close_reason = CloseReason::Normal;
                            }
                            if trace() {
                                verbose::reply(fd, &req, &self.wbuf[before..]);
                            }
                            // memcached writes out all queued replies after these.
                            self.pipelined =
                                !matches!(req, Request::Retrieval { .. } | Request::MetaNoop);
                        }
                    }
                    self.rstart += n;
                }
                Frame::More if self.framer.swallowing() > 0 => {
                    starved = true;
                    break;
                }
                Frame::More => {
                    self.pipelined = false;
                    starved = true;
                    // A whole command line that is not a request yet: its data block is
                    // still arriving.
                    self.awaiting_data = memchr::memchr(b'\n', buf).is_some();
                    break;
                }
                Frame::Error(e) => {
                    executed = true;
                    self.pipelined = true;
                    if e.kind == ErrorKind::TooLarge {
                        watch::set_current(sh.watch.flags(), fd);
                        forget_on_too_large_set(sh, &buf[..e.consumed], fd);
                        ThreadStats::incr(&ts.store_too_large);
                    }
                    let before = self.wbuf.len();
                    parse_error_reply(&e, sh, ts, &mut self.wbuf);
                    if trace() {
                        verbose::command(fd, &buf[..e.consumed]);
                        if e.noreply && self.wbuf.len() == before && e.kind != ErrorKind::Http {
                            // memcached traces the error `noreply` kept from the client.
                            let r = format!("{}\r\n", e.kind.reply());
                            verbose::suppressed(fd, r.as_bytes());
                        } else {
                            verbose::one_line(fd, &self.wbuf[before..]);
                        }
                    }
                    self.rstart += e.consumed;
                    if e.close {
                        self.closing = true;
                    }
                }
            }
        }
        self.backlog = !starved && !self.closing && self.rstart < self.rend;
        if let Some((lat, woke)) = timing {
            if requests > 0 {
                lat.record(woke.elapsed(), requests);
            }
        }
        if executed {
            self.had_cmd = true;
            self.live
                .last_cmd
                .store(sh.engine.clock().unix_now(), Ordering::Relaxed);
        }
    }

    /// `watch`: as memcached, refused behind replies it would not have written yet;
    /// otherwise the replies still buffered go to the watch thread with the connection.
    fn start_watch(&mut self, sh: &Shared, flags: u16, before: usize) {
        if self.pipelined {
            self.wbuf
                .extend_from_slice(b"ERROR cannot pipeline other commands before watch\r\n");
            return;
        }
        match sh.watch.attach(flags, &self.wbuf[self.wpos..before]) {
            Some(w) => {
                self.watcher = Some(w);
                self.reset_output();
            }
            None => self
                .wbuf
                .extend_from_slice(b"WATCHER_TOO_MANY log watcher limit reached\r\n"),
        }
    }

    fn flush(&mut self, ts: &ThreadStats) -> io::Result<()> {
        if self.deferred {
            return Ok(()); // the worker's batch sends it
        }
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    ThreadStats::add(&ts.bytes_written, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.reset_output();
        Ok(())
    }
}

/// Publish `s` to `stats conns` if it changed (`shown` caches the published state).
fn publish(shown: &mut ConnState, live: &ConnLive, s: ConnState) {
    if *shown != s {
        *shown = s;
        live.set_state(s);
    }
}

/// memcached drops the old value when a `set` is rejected as too large, so a failed update
/// never leaves stale data behind.
///
/// `watch mutations` sees the failed store (logged as memcached does, see
/// [`watch::Hub::alloc_failure`]), then the lookup of that drop.
fn forget_on_too_large_set(sh: &Shared, line: &[u8], fd: i32) {
    let mut toks = line
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .filter(|t| !t.is_empty());
    let (Some(cmd), Some(key)) = (toks.next(), toks.next()) else {
        return;
    };
    let mut kb = [0u8; 256];
    // (logged command, whether the old item goes, the key as stored)
    let (name, drop_old, key) = match cmd {
        b"set" => ("set", true, key),
        b"add" => ("add", false, key),
        b"replace" => ("replace", false, key),
        b"append" => ("append", false, key),
        b"prepend" => ("prepend", false, key),
        b"cas" => ("cas", false, key),
        // `ms <key> <datalen> <flags>*`: memcached drops the old item whatever the mode.
        b"ms" => {
            let flags = toks.skip(1);
            let name = match flags.clone().find(|f| f[0] == b'M').and_then(|f| f.get(1)) {
                Some(b'E' | b'e') => "add",
                Some(b'R' | b'r') => "replace",
                Some(b'A' | b'a') => "append",
                Some(b'P' | b'p') => "prepend",
                _ => "set",
            };
            let key = if flags.clone().any(|f| f == b"b") {
                match protocol::meta::decode_key(key, &mut kb) {
                    Ok(n) => &kb[..n],
                    Err(_) => return,
                }
            } else {
                key
            };
            (name, true, key)
        }
        _ => return,
    };
    if watch::current(watch::MUTATIONS).is_some() {
        sh.watch.alloc_failure(key, "too_large", name, fd);
    }
    if drop_old {
        sh.engine
            .delete(key, &crate::storage::DeleteOptions::default());
    }
}
