//! Batched sends: a worker hands every socket's output of one scheduler round (client
//! replies and destination requests alike) to the kernel in one `io_uring_enter`, instead
//! of one `send` per socket.
//!
//! ```text
//!  client / destination task: submit(fd, buffer) ─> Ticket ─┐ (await)
//!                             first submit of a round wakes │
//!  flusher task: yield until a pass over the run queue adds no submission,
//!                SendRing::send_all(every queued buffer) ─> each Ticket: bytes sent | error
//!  task: all sent ─> done; part sent / EAGAIN ─> writes the rest with tokio (readiness)
//! ```
//!
//! Why it pays: a send usually wakes its peer, and a woken peer preempts the sender when
//! the sender returns to user space; with one system call for the whole round the peers
//! find all their data at once. The ring is cache-server's [`SendRing`] (MSG_DONTWAIT, so
//! every send completes inside the submission, and `send_all` waits for all completions).
//!
//! The batcher owns each buffer while it is queued (a submission cannot be invalidated by
//! its task being cancelled) and hands it back with the result. A socket must not be
//! closed while a ticket for it is alive: dropping the [`Ticket`] withdraws a send not yet
//! made, so keeping the ticket next to the socket (dropped in the same step) is enough.
//! Where io_uring is unavailable (or `--no-io-uring`), there is no batcher and tasks write
//! directly.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use cache_server::send_ring::SendRing;

/// `io_uring_enter` calls made by all workers' batchers (for tests and admin).
pub static FLUSHES: AtomicU64 = AtomicU64::new(0);
/// Buffers sent through them.
pub static SENDS: AtomicU64 = AtomicU64::new(0);
/// Of those, the ones the socket did not take whole (the rest went the direct way).
pub static SHORT: AtomicU64 = AtomicU64::new(0);

/// One worker's send batcher (single-threaded; lives in the worker's `Rc`s).
pub struct SendBatcher {
    inner: RefCell<Inner>,
    /// `send_all` calls and buffers sent by this batcher.
    flushes: Cell<u64>,
    sends: Cell<u64>,
}

struct Inner {
    ring: SendRing,
    queue: Vec<Entry>,
    /// The flusher's waker while it waits for the first submission of a round.
    flusher: Option<Waker>,
}

struct Entry {
    fd: RawFd,
    buf: Vec<u8>,
    slot: Rc<RefCell<Slot>>,
}

#[derive(Default)]
struct Slot {
    /// The ticket was dropped before the send was made: skip it.
    cancelled: bool,
    /// The buffer back, with bytes sent or `-errno`.
    done: Option<(Vec<u8>, i32)>,
    waker: Option<Waker>,
}

impl SendBatcher {
    /// A batcher with its own ring, created on the worker thread that uses it (the ring
    /// is single-issuer). Fails where io_uring is unavailable. The caller spawns
    /// [`SendBatcher::run_flusher`] on the same thread.
    pub fn new() -> io::Result<Rc<Self>> {
        Ok(Rc::new(SendBatcher {
            inner: RefCell::new(Inner {
                ring: SendRing::new()?,
                queue: Vec::with_capacity(64),
                flusher: None,
            }),
            flushes: Cell::new(0),
            sends: Cell::new(0),
        }))
    }

    /// Queue `buf` for `fd` in this round's batch. The ticket resolves once it was sent
    /// (wholly, partly, or not at all on a full socket).
    pub fn submit(&self, fd: RawFd, buf: Vec<u8>) -> Ticket {
        let slot = Rc::new(RefCell::new(Slot::default()));
        let flusher = {
            let mut inner = self.inner.borrow_mut();
            inner.queue.push(Entry {
                fd,
                buf,
                slot: slot.clone(),
            });
            inner.flusher.take()
        };
        if let Some(w) = flusher {
            w.wake();
        }
        Ticket { slot }
    }

    fn queued(&self) -> usize {
        self.inner.borrow().queue.len()
    }

    /// The flusher: one per worker, for as long as the worker runs.
    pub async fn run_flusher(self: Rc<Self>) {
        let mut batch = Vec::with_capacity(64);
        let mut results = Vec::with_capacity(64);
        loop {
            std::future::poll_fn(|cx| {
                let mut inner = self.inner.borrow_mut();
                if inner.queue.is_empty() {
                    inner.flusher = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            // Let every task already woken this round run first (they may submit too):
            // requeue behind them until a whole pass adds nothing.
            let mut seen = self.queued();
            loop {
                yield_once().await;
                let now = self.queued();
                if now == seen {
                    break;
                }
                seen = now;
            }
            std::mem::swap(&mut batch, &mut self.inner.borrow_mut().queue);
            self.flush(&mut batch, &mut results);
        }
    }

    /// Send `batch` with one `send_all` and hand each buffer back to its ticket.
    fn flush(&self, batch: &mut Vec<Entry>, results: &mut Vec<(usize, i32)>) {
        let mut inner = self.inner.borrow_mut();
        results.clear();
        {
            let live = batch
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.slot.borrow().cancelled)
                .map(|(i, e)| (i, e.fd, e.buf.as_slice()));
            results.extend_from_slice(inner.ring.send_all(live));
        }
        drop(inner);
        self.flushes.set(self.flushes.get() + 1);
        self.sends.set(self.sends.get() + results.len() as u64);
        FLUSHES.fetch_add(1, Ordering::Relaxed);
        SENDS.fetch_add(results.len() as u64, Ordering::Relaxed);
        for &(i, r) in results.iter() {
            let Some(e) = batch.get_mut(i) else {
                continue;
            };
            if r < 0 || r as usize != e.buf.len() {
                SHORT.fetch_add(1, Ordering::Relaxed);
            }
            let waker = {
                let mut slot = e.slot.borrow_mut();
                slot.done = Some((std::mem::take(&mut e.buf), r));
                slot.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
        batch.clear();
    }
}

/// Return `Pending` once, after putting the task at the back of the run queue.
fn yield_once() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            // A LocalSet task that wakes itself while running goes to the back of the
            // local queue (not the I/O driver's deferred list, as `yield_now` would).
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// A queued send. Poll it to get the buffer back with the bytes sent (`Ok(0)` when the
/// socket was full); drop it to withdraw a send not yet made.
pub struct Ticket {
    slot: Rc<RefCell<Slot>>,
}

impl Ticket {
    pub fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<(Vec<u8>, io::Result<usize>)> {
        let mut slot = self.slot.borrow_mut();
        match slot.done.take() {
            Some((buf, r)) if r >= 0 => Poll::Ready((buf, Ok(r as usize))),
            Some((buf, r)) => {
                let e = io::Error::from_raw_os_error(-r);
                if e.kind() == io::ErrorKind::WouldBlock {
                    Poll::Ready((buf, Ok(0)))
                } else {
                    Poll::Ready((buf, Err(e)))
                }
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Future for Ticket {
    type Output = (Vec<u8>, io::Result<usize>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_done(cx)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slot.borrow_mut().cancelled = true;
    }
}

/// Write all of `buf` to `wr`: through the batcher when there is one (the rest, if the
/// socket was full, with a normal write), else directly. Clears `buf` (keeping its
/// capacity).
pub async fn write_all(
    batcher: Option<&SendBatcher>,
    wr: &mut tokio::net::tcp::WriteHalf<'_>,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncWriteExt;
    let mut sent = 0;
    if let Some(b) = batcher {
        let fd = AsRef::<tokio::net::TcpStream>::as_ref(wr).as_raw_fd();
        let (back, r) = b.submit(fd, std::mem::take(buf)).await;
        *buf = back;
        sent = r?;
    }
    if sent < buf.len() {
        wr.write_all(&buf[sent..]).await?;
    }
    buf.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn pairs(n: usize) -> Vec<(TcpStream, TcpStream)> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        (0..n)
            .map(|_| {
                let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (b, _) = l.accept().unwrap();
                a.set_nonblocking(true).unwrap();
                (a, b)
            })
            .collect()
    }

    fn local<F: Future<Output = ()>>(f: F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f);
    }

    #[test]
    fn one_round_of_tasks_is_one_submission() {
        let Ok(b) = SendBatcher::new() else {
            eprintln!("io_uring unavailable here; nothing to test");
            return;
        };
        let mut socks = pairs(20);
        local(async {
            tokio::task::spawn_local(b.clone().run_flusher());
            // Let the flusher park before the round starts.
            tokio::task::yield_now().await;
            let before = b.flushes.get();
            let tasks: Vec<_> = socks
                .iter()
                .enumerate()
                .map(|(i, (a, _))| {
                    let fd = a.as_raw_fd();
                    let b = b.clone();
                    tokio::task::spawn_local(async move {
                        let msg = format!("reply {i}\r\n").into_bytes();
                        let (back, r) = b.submit(fd, msg.clone()).await;
                        assert_eq!(back, msg, "the buffer comes back");
                        assert_eq!(r.unwrap(), msg.len());
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(b.flushes.get() - before, 1, "20 tasks' sends in one batch");
        });
        for (i, (_, r)) in socks.iter_mut().enumerate() {
            let want = format!("reply {i}\r\n");
            let mut got = vec![0u8; want.len()];
            r.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes());
        }
    }

    #[test]
    fn a_dropped_ticket_is_not_sent_and_a_full_socket_reports_zero() {
        let Ok(b) = SendBatcher::new() else {
            eprintln!("io_uring unavailable here; nothing to test");
            return;
        };
        let mut socks = pairs(2);
        local(async {
            tokio::task::spawn_local(b.clone().run_flusher());
            let withdrawn = b.submit(socks[0].0.as_raw_fd(), b"never".to_vec());
            let kept = b.submit(socks[1].0.as_raw_fd(), b"sent".to_vec());
            drop(withdrawn);
            let (_, r) = kept.await;
            assert_eq!(r.unwrap(), 4);
            // Fill socket 1 (its peer does not read): the batch reports a short count,
            // then 0 (EAGAIN), never blocks.
            let big = vec![1u8; 8 << 20];
            let mut zero = false;
            for _ in 0..64 {
                let (_, r) = b.submit(socks[1].0.as_raw_fd(), big.clone()).await;
                if r.unwrap() == 0 {
                    zero = true;
                    break;
                }
            }
            assert!(zero, "a full socket never reported 0 bytes sent");
        });
        socks[0].1.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        let r = socks[0].1.read(&mut buf);
        assert!(
            matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "the withdrawn send reached the socket: {r:?}"
        );
        let mut got = [0u8; 4];
        socks[1].1.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"sent");
    }
}
