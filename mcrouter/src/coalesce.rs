//! Request coalescing: identical single-key reads in flight to the same destination are
//! merged into one backend request, and its reply is fanned out to every waiter.
//!
//! ```text
//!  client a: get k ─┐                                   ┌─> a
//!  client b: get k ─┼─> flight (dest 3, get, k) ── get k ──> server 3 ── reply ──┼─> b
//!  client c: get k ─┘      (b, c join: no bytes sent)                        └─> c
//! ```
//!
//! - Scope: per worker thread (`--num-proxies`), at the `DestinationRoute` leaves, keyed by
//!   (destination, operation, key). Coalesced operations: `get`, `gets` (all waiters see
//!   the same CAS, as if they had asked at the same moment) and `lease-get`. A coalesced
//!   `lease-get` miss hands the fill token to the first waiter only; the others get the
//!   same reply with token 1 (hot miss), so "one fill per lease window" still holds.
//! - Read-your-writes per client connection: a client connection lives on one worker, and
//!   every write of a key (`set`/`add`/.../`delete`/`incr`/`touch`/meta writes/`lease-set`)
//!   that reaches a leaf of this worker closes the key's open flights for that
//!   destination. A get issued after the client's write therefore never joins a request
//!   that was sent before the write; it starts a new one, queued behind the write.
//! - Multi-key gets are not coalesced (they are split per server by the proxy).
//! - The first request's own future drives the backend request and hands the reply to
//!   the joiners (no task per flight); if its client goes away first, a joiner takes the
//!   backend request over.
//! - On by default; `"coalesce": false` on a pool (or on a `DestinationRoute`) turns it off
//!   for the routes over that pool.
//! - Counted in `stats` as `coalesced_requests` (reads answered by another request's reply).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::reply::{ErrorClass, Reply};
use crate::request::{Op, Req};
use crate::route::{Ctx, RouteFuture};

static COALESCED: AtomicU64 = AtomicU64::new(0);

/// Reads answered by another request's backend reply (all workers), for `stats`.
pub fn coalesced() -> u64 {
    COALESCED.load(Ordering::Relaxed)
}

const OPS: [Op; 3] = [Op::Get, Op::Gets, Op::LeaseGet];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FlightKey {
    dest: usize,
    op: Op,
    key: Bytes,
}

struct Flight {
    id: u64,
    /// Reply channels of the requests that joined (the leader gets the reply itself).
    waiters: RefCell<Vec<oneshot::Sender<Reply>>>,
    /// The backend request of a leader that was dropped before its reply came (its
    /// client went away): the first joiner to notice takes it over.
    orphan: RefCell<Option<RouteFuture>>,
    /// The reply, once it came (for a joiner that re-registers after a takeover).
    landed: RefCell<Option<Reply>>,
}

/// The request that started a flight: its future drives the backend request and hands
/// the reply to the joiners (no task of its own). Dropped early, it leaves the backend
/// request to a joiner.
struct Leader {
    fut: Option<RouteFuture>,
    ctx: Rc<Ctx>,
    fk: FlightKey,
    flight: Rc<Flight>,
    /// Took over from a dropped leader: answers like a joiner (lease hot miss).
    joined: bool,
}

impl Leader {
    /// Close the flight and answer every joiner.
    fn land(&self, reply: &Reply) {
        self.close();
        let lease = self.fk.op == Op::LeaseGet;
        let joined_reply = || {
            if lease {
                crate::lease::as_hot_miss(reply)
            } else {
                reply.clone()
            }
        };
        *self.flight.landed.borrow_mut() = Some(joined_reply());
        for tx in self.flight.waiters.take() {
            let _ = tx.send(joined_reply());
        }
    }

    /// Take the flight out of the open ones (if it is still this one).
    fn close(&self) {
        let mut flights = self.ctx.coalesce.flights.borrow_mut();
        if flights
            .get(&self.fk)
            .is_some_and(|f| f.id == self.flight.id)
        {
            flights.remove(&self.fk);
        }
    }
}

impl Future for Leader {
    type Output = Reply;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Reply> {
        let Some(fut) = self.fut.as_mut() else {
            return std::task::Poll::Ready(Reply::error_static(
                ErrorClass::LocalError,
                b"SERVER_ERROR polled twice\r\n",
            ));
        };
        let reply = std::task::ready!(fut.as_mut().poll(cx));
        self.fut = None;
        self.land(&reply);
        std::task::Poll::Ready(if self.joined && self.fk.op == Op::LeaseGet {
            crate::lease::as_hot_miss(&reply)
        } else {
            reply
        })
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else {
            return;
        };
        // Later reads start a new flight.
        self.close();
        // Joiners still waiting (each holds the flight) get the request: dropping their
        // senders wakes them, and the first to run takes it over (see `join`).
        if Rc::strong_count(&self.flight) > 1 {
            *self.flight.orphan.borrow_mut() = Some(fut);
            drop(self.flight.waiters.take());
        }
    }
}

/// A joiner: wait for the leader's reply; if the leader was dropped, take its request
/// over (or wait for whoever did).
async fn join(
    mut rx: oneshot::Receiver<Reply>,
    ctx: Rc<Ctx>,
    fk: FlightKey,
    flight: Rc<Flight>,
) -> Reply {
    loop {
        if let Ok(r) = rx.await {
            return r;
        }
        if let Some(r) = flight.landed.borrow().clone() {
            return r;
        }
        let orphan = flight.orphan.borrow_mut().take();
        if let Some(fut) = orphan {
            return Leader {
                fut: Some(fut),
                ctx,
                fk,
                flight,
                joined: true,
            }
            .await;
        }
        let (tx, rx2) = oneshot::channel();
        flight.waiters.borrow_mut().push(tx);
        rx = rx2;
    }
}

/// A worker's open flights.
#[derive(Default)]
pub struct Coalescer {
    flights: RefCell<HashMap<FlightKey, Rc<Flight>, ahash::RandomState>>,
    next_id: Cell<u64>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Coalescer({} flights)", self.flights.borrow().len())
    }
}

impl Coalescer {
    /// Whether `req` may share a backend request with identical ones.
    pub fn eligible(req: &Req) -> bool {
        OPS.contains(&req.op()) && !req.noreply() && !req.quiet() && req.key_count() == 1
    }

    /// A write of `key` is being sent to `dest`: later reads must not join older flights.
    pub fn write_passed(&self, dest: usize, key: &[u8]) {
        let mut f = self.flights.borrow_mut();
        if f.is_empty() {
            return;
        }
        let key = Bytes::copy_from_slice(key);
        for op in OPS {
            f.remove(&FlightKey {
                dest,
                op,
                key: key.clone(),
            });
        }
    }

    /// Open flights (tests).
    pub fn open_flights(&self) -> usize {
        self.flights.borrow().len()
    }

    /// Join the open flight for (`dest`, `req`), or start one with `send` (called at once,
    /// so the request is queued on the connection before this returns).
    pub fn join_or_send(
        ctx: &Rc<Ctx>,
        dest: usize,
        req: &Req,
        send: impl FnOnce() -> RouteFuture,
    ) -> RouteFuture {
        let this = &ctx.coalesce;
        let fk = FlightKey {
            dest,
            op: req.op(),
            key: req.key_bytes(),
        };
        let open = this.flights.borrow().get(&fk).cloned();
        if let Some(flight) = open {
            let (tx, rx) = oneshot::channel();
            flight.waiters.borrow_mut().push(tx);
            COALESCED.fetch_add(1, Ordering::Relaxed);
            return Box::pin(join(rx, ctx.clone(), fk, flight));
        }
        let id = this.next_id.get();
        this.next_id.set(id + 1);
        let flight = Rc::new(Flight {
            id,
            waiters: RefCell::new(Vec::new()),
            orphan: RefCell::new(None),
            landed: RefCell::new(None),
        });
        let fut = send();
        this.flights.borrow_mut().insert(fk.clone(), flight.clone());
        Box::pin(Leader {
            fut: Some(fut),
            ctx: ctx.clone(),
            fk,
            flight,
            joined: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyKind;
    use crate::route::testing::run;

    /// A backend request that answers when `rx` fires.
    fn pending(rx: oneshot::Receiver<&'static [u8]>) -> RouteFuture {
        Box::pin(async move {
            let b = rx.await.unwrap_or(b"SERVER_ERROR gone\r\n");
            Reply {
                kind: ReplyKind::Hit,
                bytes: Bytes::from_static(b),
            }
        })
    }

    #[test]
    fn joiners_get_the_leaders_reply_and_one_request_is_sent() {
        run(|ctx| async move {
            let req = Req::from_wire(b"get k\r\n").unwrap();
            let (tx, rx) = oneshot::channel();
            let mut sent = 0;
            let a = Coalescer::join_or_send(&ctx, 1, &req, || {
                sent += 1;
                pending(rx)
            });
            let b = Coalescer::join_or_send(&ctx, 1, &req, || unreachable!("joins"));
            let c = Coalescer::join_or_send(&ctx, 1, &req, || unreachable!("joins"));
            assert_eq!((sent, ctx.coalesce.open_flights()), (1, 1));
            tx.send(b"VALUE k 0 1\r\nx\r\nEND\r\n").unwrap();
            let (a, b, c) = tokio::join!(a, b, c);
            for r in [a, b, c] {
                assert_eq!(&r.bytes[..], b"VALUE k 0 1\r\nx\r\nEND\r\n");
            }
            assert_eq!(ctx.coalesce.open_flights(), 0, "the flight closed");
        });
    }

    #[test]
    fn a_dropped_leader_leaves_its_request_to_the_joiners() {
        run(|ctx| async move {
            let req = Req::from_wire(b"get k\r\n").unwrap();
            let (tx, rx) = oneshot::channel();
            let a = Coalescer::join_or_send(&ctx, 1, &req, || pending(rx));
            let b = Coalescer::join_or_send(&ctx, 1, &req, || unreachable!("joins"));
            let c = Coalescer::join_or_send(&ctx, 1, &req, || unreachable!("joins"));
            // The leader's client goes away before the reply.
            drop(a);
            assert_eq!(ctx.coalesce.open_flights(), 0, "later reads start anew");
            let b = tokio::task::spawn_local(b);
            let c = tokio::task::spawn_local(c);
            tokio::task::yield_now().await;
            tx.send(b"VALUE k 0 1\r\ny\r\nEND\r\n").unwrap();
            for r in [b.await.unwrap(), c.await.unwrap()] {
                assert_eq!(&r.bytes[..], b"VALUE k 0 1\r\ny\r\nEND\r\n");
            }
            // A leader dropped with no joiner closes its flight.
            let (_tx, rx) = oneshot::channel();
            drop(Coalescer::join_or_send(&ctx, 1, &req, || pending(rx)));
            assert_eq!(ctx.coalesce.open_flights(), 0);
        });
    }
}
