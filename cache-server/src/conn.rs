//! One client connection: buffered reads, request parsing and execution, batched writes.
//!
//! Memory per connection is bounded: the input buffer holds at most one incomplete request
//! (the protocol limits cap line and value sizes) plus one read chunk, and the output buffer
//! stops growing past [`OUTPUT_HIGH_WATER`] because no further request is executed (and
//! nothing more read) until the client has drained it. A slow reader therefore holds back
//! only itself. Buffers shrink back after a large value has passed.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use protocol::{parse_request, ErrorKind};

use crate::exec::{execute, Outcome};
use crate::server::Shared;
use crate::stats::ThreadStats;

/// Bytes read per `read` call (grows for large values).
const READ_CHUNK: usize = 16 * 1024;
/// Largest single read.
const MAX_READ_CHUNK: usize = 1024 * 1024;
/// Stop executing requests while this much output waits to be written.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// Buffers larger than this are shrunk once empty.
const SHRINK_ABOVE: usize = 256 * 1024;

/// Whether the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    Keep,
    Close,
}

pub struct Conn {
    stream: TcpStream,
    id: u64,
    last_cmd: Arc<AtomicI64>,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Bytes of a rejected data block still to discard.
    swallow: usize,
    /// Close once the output is flushed (`quit`, fatal parse error, EOF).
    closing: bool,
}

impl Conn {
    pub fn new(
        mut stream: TcpStream,
        token: Token,
        registry: &Registry,
        sh: &Shared,
    ) -> io::Result<Self> {
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (id, last_cmd) = sh.register_conn(peer);
        Ok(Conn {
            stream,
            id,
            last_cmd,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
            swallow: 0,
            closing: false,
        })
    }

    pub fn close(mut self, registry: &Registry, sh: &Shared) {
        let _ = registry.deregister(&mut self.stream);
        sh.unregister_conn(self.id);
    }

    pub fn idle_for(&self, now: i64) -> i64 {
        now - self.last_cmd.load(Ordering::Relaxed)
    }

    pub fn has_pending_output(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    fn pending_output(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Make progress on everything the socket allows: read, execute, write. Edge-triggered:
    /// returns only when reading or writing would block (or the connection is done).
    pub fn drive(&mut self, sh: &Shared, ts: &ThreadStats) -> Drive {
        loop {
            // 1. Execute what is buffered (bounded by the output high-water mark).
            self.process(sh, ts);
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
                return Drive::Keep; // the client must read first
            }
            // 3. Read more.
            match self.read(ts) {
                Ok(true) => continue,
                Ok(false) if sh.shutdown.is_set() => {
                    // Draining: everything that had arrived is answered; close once flushed.
                    self.closing = true;
                    return if self.has_pending_output() {
                        Drive::Keep
                    } else {
                        Drive::Close
                    };
                }
                Ok(false) => return Drive::Keep, // would block
                Err(_) => {
                    // EOF or error: answer complete requests already received, then close.
                    self.process(sh, ts);
                    let _ = self.flush(ts);
                    return Drive::Close;
                }
            }
        }
    }

    /// Read once into the buffer. `Ok(true)`: got data; `Ok(false)`: would block;
    /// `Err`: EOF or socket error.
    fn read(&mut self, ts: &ThreadStats) -> io::Result<bool> {
        if self.rpos > 0 {
            if self.rpos == self.rbuf.len() {
                self.rbuf.clear();
                if self.rbuf.capacity() > SHRINK_ABOVE {
                    self.rbuf.shrink_to(READ_CHUNK);
                }
            } else {
                self.rbuf.drain(..self.rpos);
            }
            self.rpos = 0;
        }
        let len = self.rbuf.len();
        let chunk = len.clamp(READ_CHUNK, MAX_READ_CHUNK);
        self.rbuf.resize(len + chunk, 0);
        let r = loop {
            match self.stream.read(&mut self.rbuf[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match r {
            Ok(0) => {
                self.rbuf.truncate(len);
                Err(io::ErrorKind::UnexpectedEof.into())
            }
            Ok(n) => {
                self.rbuf.truncate(len + n);
                ThreadStats::add(&ts.bytes_read, n as u64);
                Ok(true)
            }
            Err(e) => {
                self.rbuf.truncate(len);
                if e.kind() == io::ErrorKind::WouldBlock {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Parse and execute every complete request in the input buffer.
    fn process(&mut self, sh: &Shared, ts: &ThreadStats) {
        let mut executed = false;
        while !self.closing && self.pending_output() < OUTPUT_HIGH_WATER {
            if self.swallow > 0 {
                let n = self.swallow.min(self.rbuf.len() - self.rpos);
                self.rpos += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    break;
                }
            }
            let buf = &self.rbuf[self.rpos..];
            if buf.is_empty() {
                break;
            }
            match parse_request(buf, &sh.limits) {
                Ok(Some((req, n))) => {
                    executed = true;
                    if execute(&req, sh, ts, &mut self.wbuf) == Outcome::Close {
                        self.closing = true;
                    }
                    self.rpos += n;
                }
                Ok(None) => break,
                Err(e) => {
                    executed = true;
                    if e.kind == ErrorKind::TooLarge {
                        forget_on_too_large_set(sh, &buf[..e.consumed]);
                        ThreadStats::incr(&ts.store_too_large);
                    }
                    if let Some(reply) = e.reply_line() {
                        self.wbuf.extend_from_slice(reply.as_bytes());
                    }
                    self.rpos += e.consumed;
                    self.swallow = e.swallow;
                    if e.close {
                        self.closing = true;
                    }
                }
            }
        }
        if executed {
            self.last_cmd
                .store(sh.engine.clock().unix_now(), Ordering::Relaxed);
        }
    }

    fn flush(&mut self, ts: &ThreadStats) -> io::Result<()> {
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
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf.shrink_to(READ_CHUNK);
        }
        Ok(())
    }
}

/// memcached drops the old value when a `set` is rejected as too large, so a failed update
/// never leaves stale data behind.
fn forget_on_too_large_set(sh: &Shared, line: &[u8]) {
    let mut toks = line
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .filter(|t| !t.is_empty());
    if toks.next() == Some(b"set") {
        if let Some(key) = toks.next() {
            sh.engine
                .delete(key, &crate::storage::DeleteOptions::default());
        }
    }
}
