//! Keeping a client's order on one key across a request that is done in several steps.
//!
//! Routes forward a client's pipelined requests in the order they came (each `route()`
//! queues its bytes before it returns), so a `set` then a `get` of a key reach the server
//! in that order. A route whose write takes two round trips (`BigValueRoute`: chunks, then
//! the index; `L1L2SizeSplitRoute`: `l2`, then the sentinel in `l1`) would let a later
//! `get` or `delete` of the key overtake its second step. Such a write holds its key here
//! ([`KeyOrder::begin`]); a request for a held key queues behind the last one queued for
//! it and runs once that one is done, so requests for the key run one after the other, in
//! the order they came, until the queue drains. Other keys are not affected.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Ctx, RouteFuture};
use crate::request::Req;

/// Keys with a request under way that later ones must wait for.
#[derive(Debug, Default)]
pub struct KeyOrder {
    /// Key -> the last request queued for it: (its id, "done" receiver).
    keys: Mutex<HashMap<Vec<u8>, Queued>>,
    next_id: AtomicU64,
}

type Queued = (u64, watch::Receiver<bool>);

/// A request's place in its key's queue; dropping it (done, or abandoned) lets the next
/// one run.
pub struct KeyGuard {
    order: Arc<KeyOrder>,
    key: Vec<u8>,
    id: u64,
    done: watch::Sender<bool>,
}

impl KeyOrder {
    /// Hold `key` until the guard is dropped.
    pub fn begin(self: &Arc<Self>, key: &[u8]) -> KeyGuard {
        let (done, rx) = watch::channel(false);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.keys.lock().insert(key.to_vec(), (id, rx));
        KeyGuard {
            order: self.clone(),
            key: key.to_vec(),
            id,
            done,
        }
    }

    /// No key is held.
    pub fn is_idle(&self) -> bool {
        self.keys.lock().is_empty()
    }

    /// Route `req` with `dispatch` now when its key is not held; else once the request
    /// queued before it is done (`dispatch`'s last argument: whether the request holds its
    /// key's place already, so a multi-step write need not `begin` again).
    pub fn route(
        self: &Arc<Self>,
        req: Req,
        ctx: &Rc<Ctx>,
        dispatch: impl FnOnce(Req, &Rc<Ctx>, bool) -> RouteFuture + 'static,
    ) -> RouteFuture {
        let queued = (req.key_count() == 1)
            .then(|| self.queue(req.key()))
            .flatten();
        let Some((guard, mut prev)) = queued else {
            return dispatch(req, ctx, false);
        };
        let ctx = ctx.clone();
        Box::pin(async move {
            let _guard = guard;
            // Err: the one before was abandoned; either way it is over.
            let _ = prev.wait_for(|done| *done).await;
            dispatch(req, &ctx, true).await
        })
    }

    /// When `key` is held: a guard that makes this request the one later ones wait for,
    /// and the receiver of the one before it.
    fn queue(self: &Arc<Self>, key: &[u8]) -> Option<(KeyGuard, watch::Receiver<bool>)> {
        let prev = self.keys.lock().get(key).map(|(_, rx)| rx.clone())?;
        Some((self.begin(key), prev))
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let _ = self.done.send(true);
        let mut keys = self.order.keys.lock();
        if keys.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            keys.remove(&self.key);
        }
    }
}
