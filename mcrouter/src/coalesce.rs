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
//! - On by default; `"coalesce": false` on a pool (or on a `DestinationRoute`) turns it off
//!   for the routes over that pool.
//! - Counted in `stats` as `coalesced_requests` (reads answered by another request's reply).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
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
    /// `(reply channel, joined)`: the first waiter started the flight.
    waiters: RefCell<Vec<(oneshot::Sender<Reply>, bool)>>,
}

/// A worker's open flights.
#[derive(Default)]
pub struct Coalescer {
    flights: RefCell<HashMap<FlightKey, Rc<Flight>>>,
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
            key: Bytes::copy_from_slice(req.key()),
        };
        let (tx, rx) = oneshot::channel();
        let wait = Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Reply::error_static(
                    ErrorClass::LocalError,
                    b"SERVER_ERROR mcrouter: request dropped\r\n",
                )
            })
        });
        if let Some(f) = this.flights.borrow().get(&fk) {
            f.waiters.borrow_mut().push((tx, true));
            COALESCED.fetch_add(1, Ordering::Relaxed);
            return wait;
        }
        let id = this.next_id.get();
        this.next_id.set(id + 1);
        let flight = Rc::new(Flight {
            id,
            waiters: RefCell::new(vec![(tx, false)]),
        });
        let fut = send();
        this.flights.borrow_mut().insert(fk.clone(), flight.clone());
        let ctx = ctx.clone();
        tokio::task::spawn_local(async move {
            let reply = fut.await;
            {
                let mut flights = ctx.coalesce.flights.borrow_mut();
                if flights.get(&fk).is_some_and(|f| f.id == id) {
                    flights.remove(&fk);
                }
            }
            let lease = fk.op == Op::LeaseGet;
            for (tx, joined) in flight.waiters.take() {
                let r = if joined && lease {
                    crate::lease::as_hot_miss(&reply)
                } else {
                    reply.clone()
                };
                let _ = tx.send(r);
            }
        });
        wait
    }
}
