//! `WarmUpRoute`: brings a cold (new, empty) cluster into service by reading through to a
//! warm one, as in "Scaling Memcache at Facebook" (NSDI'13, section 4.3 "Cold Cluster
//! Warmup") and mcrouter's handle of the same name.
//!
//! Config: `{"type": "WarmUpRoute", "cold": <route>, "warm": <route>, "exptime": 3600,
//! "delete_holdoff_ms": 2000}` (`exptime` and `delete_holdoff_ms` optional).
//!
//! ```text
//!  get k ──> cold ── hit ──────────────────────────────> VALUE (cold)
//!              └─ miss ──> warm: mg k s v f t
//!                            ├─ VA ... f<flags> t<ttl> ──> VALUE k <flags> ... (to the client)
//!                            │     └─> cold: add k <flags> <remaining ttl> ...  (not awaited)
//!                            └─ EN / error / stale ─────> the cold miss
//!  lease-get k ──> cold ── VALUE ──> as is
//!                   └─ LVALUE k <token> (or a miss) ──> warm: mg k s v f t
//!                            ├─ hit ──> VALUE (warm); cold: lease-set k <token> ... (token > 1)
//!                            │                           or add k ... (no token)
//!                            └─ miss ─> the LVALUE: the client fills from the database
//!  everything else (set, add, delete, touch, incr, gets, gat, mg, ...) ──> cold only
//! ```
//!
//! - **Remaining TTL.** mcrouter adds with a fixed `exptime`; this route asks the warm
//!   server for the item's remaining TTL (`t`) and uses it, so a warmed item expires in the
//!   cold cluster when it would have in the warm one: `t-1` (no expiry) -> `0`, `t0` (in
//!   its last second) -> `1`, more than 30 days (memcached's `REALTIME_MAXDELTA`) -> an
//!   absolute Unix time. `exptime` is only the fallback for a warm reply without `t`.
//! - **Only clean warm hits are used.** A warm reply marked stale (`X`, after `md k I`),
//!   or a lease placeholder (`W`/`Z`: another client is filling an empty item) counts as a
//!   warm miss: such a value must neither reach a client as a plain hit nor be copied.
//! - **Not warmed:** `gets` (a warm CAS unique means nothing on the cold server, and a
//!   client's `cas` must go to the cold one), `gat`/`gats` (they write an exptime), and
//!   meta `mg`/`me` (their flags would have to be re-derived from the warm reply): cold
//!   only. Multi-key gets reach this route one key at a time (it is not a plain
//!   destination, so the proxy splits them).
//! - **The fill is queued before the client is answered** (on the cold route, whose
//!   destination connection takes it at once) and its reply is collected in the background:
//!   the answer is not delayed, and a client's next request to the same cold connection
//!   comes after the fill. `add` never overwrites a value a client set meanwhile.
//! - **Delete hold-off** (`delete_holdoff_ms` > 0; the paper's "deletes in the cold cluster
//!   are issued with a two-second hold-off"): a `delete`/`md` through this route holds off
//!   fills of that key for the window, so a warm value read before the warm cluster saw the
//!   delete is not copied into the cold one after it. During the window the get is still
//!   answered from the warm route (the client would have read that value a moment earlier
//!   anyway); only the fill is skipped (`held_off`). Shared by all workers; a config
//!   reload starts with an empty table. It covers deletes that pass through this router
//!   process; memcached itself no longer has delete hold-off.
//!
//! Metrics: `mcrouter_warmup_gets_total{result="cold_hit"|"warm_hit"|"miss"}` and
//! `mcrouter_warmup_fills_total{result="stored"|"not_stored"|"error"|"held_off"}`.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use protocol::{MetaCode, Response};

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::hash::routing_key::key_without_route;
use crate::lease::{self, HOT_MISS_TOKEN};
use crate::reply::{Reply, ReplyKind};
use crate::request::{Op, Req};

/// memcached's `REALTIME_MAXDELTA`: larger exptimes are absolute Unix times.
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;
/// Bound on keys remembered by the delete hold-off; past it, every fill is held off for
/// one window instead (safe, and the table is emptied).
pub const MAX_HELD_KEYS: usize = 100_000;
/// The hold-off table is pruned of expired keys when it grows past this (or twice its
/// size after the previous pruning), so pruning is amortised O(1) per delete.
const PRUNE_MIN: usize = 1024;
/// Largest accepted `delete_holdoff_ms` (one hour).
const MAX_HOLDOFF_MS: i64 = 3_600_000;

#[derive(Debug)]
pub struct WarmUpRoute {
    cold: RouteRef,
    warm: RouteRef,
    /// Exptime of fills when the warm reply carries no TTL.
    fallback_exptime: i64,
    holdoff: Option<Arc<HoldOff>>,
}

impl WarmUpRoute {
    /// `holdoff`: the delete hold-off window (`None` or zero: off).
    pub fn new(
        cold: RouteRef,
        warm: RouteRef,
        fallback_exptime: i64,
        holdoff: Option<Duration>,
    ) -> Self {
        WarmUpRoute {
            cold,
            warm,
            fallback_exptime,
            holdoff: holdoff
                .filter(|d| !d.is_zero())
                .map(|d| Arc::new(HoldOff::new(d))),
        }
    }

    fn legs(&self) -> Legs {
        Legs {
            cold: self.cold.clone(),
            warm: self.warm.clone(),
            fallback_exptime: self.fallback_exptime,
            holdoff: self.holdoff.clone(),
        }
    }

    /// `get k`: cold, then warm on a miss.
    fn get(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let cold = self.cold.route(req.clone(), ctx);
        let legs = self.legs();
        let ctx = ctx.clone();
        Box::pin(async move {
            let cold_reply = cold.await;
            if cold_reply.is_hit() {
                count_get("cold_hit");
                return cold_reply;
            }
            let key = req.key();
            match legs.ask_warm(key, &ctx).await {
                Some((warm_reply, item)) => {
                    count_get("warm_hit");
                    let exptime = legs.fill_exptime(item.ttl);
                    legs.fill(key, add_request(key, &item, exptime), &ctx);
                    lease::meta_get_reply(key, warm_reply).0
                }
                None => {
                    count_get("miss");
                    cold_reply
                }
            }
        })
    }

    /// `lease-get k`: cold; on a lease miss, warm; a warm value answers the client and
    /// fills the cold route with the lease token this route was given.
    fn lease_get(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let cold = self.cold.route(req.clone(), ctx);
        let legs = self.legs();
        let ctx = ctx.clone();
        Box::pin(async move {
            let cold_reply = cold.await;
            let token = lease::parse_lvalue(&cold_reply.bytes).map(|(_, t, _)| t);
            if cold_reply.is_hit() && token.is_none() {
                count_get("cold_hit");
                return cold_reply;
            }
            let key = req.key();
            match legs.ask_warm(key, &ctx).await {
                Some((warm_reply, item)) => {
                    count_get("warm_hit");
                    let exptime = legs.fill_exptime(item.ttl);
                    match token {
                        // Another client holds the lease and fills: just answer.
                        Some(HOT_MISS_TOKEN) => {}
                        Some(t) => legs.fill(key, lease_set_request(key, t, &item, exptime), &ctx),
                        None => legs.fill(key, add_request(key, &item, exptime), &ctx),
                    }
                    lease::meta_get_reply(key, warm_reply).0
                }
                None => {
                    count_get("miss");
                    cold_reply
                }
            }
        })
    }
}

/// What a request future needs of the route (cheap clones).
struct Legs {
    cold: RouteRef,
    warm: RouteRef,
    fallback_exptime: i64,
    holdoff: Option<Arc<HoldOff>>,
}

impl Legs {
    /// `mg k s v f t` on the warm route: the reply and its item when it is a clean hit.
    async fn ask_warm(&self, key: &[u8], ctx: &Rc<Ctx>) -> Option<(Reply, WarmItem)> {
        let mut line = Vec::with_capacity(key.len() + 16);
        line.extend_from_slice(b"mg ");
        line.extend_from_slice(key);
        line.extend_from_slice(b" s v f t\r\n");
        let req = Req::from_wire(&line)?;
        let reply = self.warm.route(req, ctx).await;
        let item = WarmItem::parse(&reply)?;
        Some((reply, item))
    }

    fn fill_exptime(&self, ttl: Option<i64>) -> i64 {
        fill_exptime(ttl, self.fallback_exptime, unix_now())
    }

    /// Send `fill` to the cold route now (unless `key` is held off) and count its result
    /// in the background.
    fn fill(&self, key: &[u8], fill: Option<Req>, ctx: &Rc<Ctx>) {
        if let Some(h) = &self.holdoff {
            if h.held(key, Instant::now()) {
                count_fill("held_off");
                return;
            }
        }
        let Some(fill) = fill else {
            // Not expressible as a request (e.g. a value over the protocol limits).
            count_fill("error");
            return;
        };
        let fut = self.cold.route(fill, ctx);
        tokio::task::spawn_local(async move {
            let r = fut.await;
            count_fill(match r.kind {
                ReplyKind::Ok => "stored",
                ReplyKind::NotStored | ReplyKind::Exists | ReplyKind::NotFound => "not_stored",
                _ => "error",
            });
        });
    }
}

/// A warm hit: flags, remaining TTL (`None` when the reply has no `t`), value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WarmItem {
    flags: u32,
    ttl: Option<i64>,
    data: Bytes,
}

impl WarmItem {
    /// The item of a `VA` reply without `W`, `Z` or `X` (see the module doc).
    fn parse(reply: &Reply) -> Option<WarmItem> {
        let (resp, _) = protocol::parse_response(&reply.bytes).ok()??;
        let Response::Meta {
            code: MetaCode::Va,
            data: Some(data),
            ..
        } = resp
        else {
            return None;
        };
        if [b'W', b'Z', b'X']
            .iter()
            .any(|&f| resp.meta_flag(f).is_some())
        {
            return None;
        }
        let num = |f: u8| {
            resp.meta_flag(f)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        Some(WarmItem {
            flags: num(b'f').and_then(|f| u32::try_from(f).ok()).unwrap_or(0),
            ttl: num(b't'),
            data: reply.bytes.slice_ref(data),
        })
    }
}

/// The exptime that makes a cold copy expire with the warm item: `ttl` is the warm
/// reply's remaining TTL (`-1`: never expires; `None`: unknown, use `fallback`).
pub fn fill_exptime(ttl: Option<i64>, fallback: i64, unix_now: i64) -> i64 {
    match ttl {
        None => fallback,
        Some(-1) => 0,
        // In its last second (memcached never says less than -1 otherwise).
        Some(t) if t <= 0 => 1,
        Some(t) if t > MAX_RELATIVE_EXPTIME => unix_now + t,
        Some(t) => t,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn add_request(key: &[u8], item: &WarmItem, exptime: i64) -> Option<Req> {
    let head = format!(" {} {exptime} {}\r\n", item.flags, item.data.len());
    storage_request(b"add ", key, head.as_bytes(), &item.data)
}

fn lease_set_request(key: &[u8], token: u64, item: &WarmItem, exptime: i64) -> Option<Req> {
    let head = format!(" {token} {} {exptime} {}\r\n", item.flags, item.data.len());
    storage_request(b"lease-set ", key, head.as_bytes(), &item.data)
}

/// `<cmd><key><head><data>\r\n` as a request (`None` when it is not a valid one, e.g. a value
/// over the protocol limits).
pub(crate) fn storage_request(cmd: &[u8], key: &[u8], head: &[u8], data: &[u8]) -> Option<Req> {
    let mut v = Vec::with_capacity(cmd.len() + key.len() + head.len() + data.len() + 2);
    v.extend_from_slice(cmd);
    v.extend_from_slice(key);
    v.extend_from_slice(head);
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    Req::from_wire(&v)
}

fn count_get(result: &'static str) {
    if crate::metrics::enabled() {
        metrics::counter!("mcrouter_warmup_gets_total", "result" => result).increment(1);
    }
}

fn count_fill(result: &'static str) {
    if crate::metrics::enabled() {
        metrics::counter!("mcrouter_warmup_fills_total", "result" => result).increment(1);
    }
}

/// Keys recently deleted through the route, with the end of their hold-off.
#[derive(Debug)]
struct HoldOff {
    window: Duration,
    state: Mutex<HoldState>,
}

#[derive(Debug)]
struct HoldState {
    until: HashMap<Vec<u8>, Instant>,
    /// The table overflowed: every key is held off until then.
    all_until: Option<Instant>,
    /// Prune expired keys when the table reaches this size.
    prune_at: usize,
}

impl HoldOff {
    fn new(window: Duration) -> Self {
        HoldOff {
            window,
            state: Mutex::new(HoldState {
                until: HashMap::new(),
                all_until: None,
                prune_at: PRUNE_MIN,
            }),
        }
    }

    fn note_delete(&self, key: &[u8], now: Instant) {
        // Held by the key the servers store: `/r/c/k` and `k` are one key.
        let key = key_without_route(key);
        let deadline = now + self.window;
        let mut s = self.state.lock();
        if s.all_until.is_some_and(|u| u > now) {
            // Everything is held off already (and the table was emptied): extend.
            s.all_until = Some(deadline);
            return;
        }
        if s.until.len() >= s.prune_at.min(MAX_HELD_KEYS) {
            s.until.retain(|_, d| *d > now);
            s.prune_at = (s.until.len() * 2).max(PRUNE_MIN);
        }
        if s.until.len() >= MAX_HELD_KEYS && !s.until.contains_key(key) {
            // Every remembered deadline is before `deadline`: one global window covers them.
            s.until.clear();
            s.prune_at = PRUNE_MIN;
            s.all_until = Some(deadline);
            return;
        }
        s.until.insert(key.to_vec(), deadline);
    }

    fn held(&self, key: &[u8], now: Instant) -> bool {
        let key = key_without_route(key);
        let mut s = self.state.lock();
        if let Some(u) = s.all_until {
            if u > now {
                return true;
            }
            s.all_until = None;
        }
        match s.until.get(key) {
            Some(&d) if d > now => true,
            Some(_) => {
                s.until.remove(key);
                false
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().until.len()
    }
}

impl Route for WarmUpRoute {
    fn name(&self) -> String {
        match &self.holdoff {
            Some(h) => format!("WarmUpRoute|delete_holdoff_ms={}", h.window.as_millis()),
            None => "WarmUpRoute".into(),
        }
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        match req.op() {
            Op::Get if req.key_count() == 1 => self.get(req, ctx),
            Op::LeaseGet => self.lease_get(req, ctx),
            Op::Delete | Op::MetaDelete => {
                if let Some(h) = &self.holdoff {
                    h.note_delete(req.routing_key(), Instant::now());
                }
                self.cold.route(req, ctx)
            }
            _ => self.cold.route(req, ctx),
        }
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.cold.clone(), self.warm.clone()]
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        match req.op() {
            Op::Get | Op::LeaseGet => self.children(),
            _ => vec![self.cold.clone()],
        }
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let cold = node.route(b, "cold")?;
    let warm = node.route(b, "warm")?;
    let exptime = match node.i64_field("exptime")? {
        None => 0,
        Some(e) if e >= 0 => e,
        Some(_) => {
            return Err(node.err(
                "exptime",
                "expected seconds >= 0 (0: fills without a warm TTL never expire)",
            ))
        }
    };
    let holdoff = match node.i64_field("delete_holdoff_ms")? {
        None => 0,
        Some(ms) if (0..=MAX_HOLDOFF_MS).contains(&ms) => ms,
        Some(_) => {
            return Err(node.err(
                "delete_holdoff_ms",
                format!("expected milliseconds between 0 (off) and {MAX_HOLDOFF_MS}"),
            ))
        }
    };
    Ok(Arc::new(WarmUpRoute::new(
        cold,
        warm,
        exptime,
        Some(Duration::from_millis(holdoff as u64)),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    const WARM_HIT: &str = "VA 5 s5 f42 t300\r\nhello\r\n";

    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    fn seen(m: &Mock) -> Vec<String> {
        m.seen()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    #[test]
    fn cold_hit_does_not_touch_warm() {
        run(|ctx| async move {
            let cold = Mock::replying("VALUE k 1 1\r\nc\r\nEND\r\n");
            let warm = Mock::replying(WARM_HIT);
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"VALUE k 1 1\r\nc\r\nEND\r\n");
            settle().await;
            assert_eq!((cold.count(), warm.count()), (1, 0));
        });
    }

    #[test]
    fn warm_hit_answers_value_and_adds_to_cold_with_the_ttl() {
        run(|ctx| async move {
            let cold = Mock::replying("END\r\n");
            let warm = Mock::replying(WARM_HIT);
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert!(reply.is_hit());
            assert_eq!(&reply.bytes[..], b"VALUE k 42 5\r\nhello\r\nEND\r\n");
            assert_eq!(seen(&warm), ["mg k s v f t\r\n"]);
            settle().await;
            assert_eq!(seen(&cold), ["get k\r\n", "add k 42 300 5\r\nhello\r\n"]);
        });
    }

    #[test]
    fn warm_miss_or_error_answers_the_cold_miss() {
        for warm_reply in ["EN\r\n", "SERVER_ERROR boom\r\n", "ERROR\r\n"] {
            run(|ctx| async move {
                let cold = Mock::replying("END\r\n");
                let warm = Mock::replying(warm_reply);
                let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
                let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
                assert!(reply.is_miss(), "{warm_reply:?}");
                assert_eq!(&reply.bytes[..], b"END\r\n");
                settle().await;
                assert_eq!((cold.count(), warm.count()), (1, 1));
            });
        }
    }

    #[test]
    fn stale_or_placeholder_warm_items_are_misses() {
        for warm_reply in [
            "VA 1 s1 f0 t10 X W\r\nx\r\n",
            "VA 0 s0 f0 t10 Z\r\n\r\n",
            "VA 0 s0 f0 t10 W\r\n\r\n",
        ] {
            run(|ctx| async move {
                let cold = Mock::replying("END\r\n");
                let warm = Mock::replying(warm_reply);
                let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
                let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], b"END\r\n", "{warm_reply:?}");
                settle().await;
                assert_eq!(cold.count(), 1, "no fill for {warm_reply:?}");
            });
        }
    }

    #[test]
    fn writes_and_other_reads_go_to_cold_only() {
        run(|ctx| async move {
            let cold = Mock::replying("STORED\r\n");
            let warm = Mock::replying(WARM_HIT);
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, Some(Duration::from_secs(2)));
            for req in [
                "set k 0 0 1\r\nx\r\n",
                "add k 0 0 1\r\nx\r\n",
                "delete k\r\n",
                "touch k 10\r\n",
                "incr k 1\r\n",
                "gets k\r\n",
                "gat 10 k\r\n",
                "mg k v\r\n",
                "ms k 1\r\nx\r\n",
            ] {
                r.route(Mock::req(req), &ctx).await;
            }
            settle().await;
            assert_eq!((cold.count(), warm.count()), (9, 0));
            let set = Mock::req("set k 0 0 1\r\nx\r\n");
            assert_eq!(r.children_for(&set).len(), 1);
            assert_eq!(r.children_for(&Mock::req("get k\r\n")).len(), 2);
            assert_eq!(r.children().len(), 2);
        });
    }

    #[test]
    fn delete_holdoff_skips_the_fill_but_answers_from_warm() {
        run(|ctx| async move {
            let cold = Mock::replying("END\r\n");
            let warm = Mock::replying(WARM_HIT);
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, Some(Duration::from_secs(60)));
            r.route(Mock::req("delete k\r\n"), &ctx).await;
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"VALUE k 42 5\r\nhello\r\nEND\r\n");
            // Another key is not held off.
            r.route(Mock::req("get other\r\n"), &ctx).await;
            settle().await;
            assert_eq!(
                seen(&cold),
                [
                    "delete k\r\n",
                    "get k\r\n",
                    "get other\r\n",
                    "add other 42 300 5\r\nhello\r\n"
                ]
            );
            // md (meta delete) holds off too.
            r.route(Mock::req("md other\r\n"), &ctx).await;
            r.route(Mock::req("get other\r\n"), &ctx).await;
            settle().await;
            assert_eq!(cold.count(), 6);
        });
    }

    #[test]
    fn holdoff_ignores_the_routing_prefix() {
        let h = HoldOff::new(Duration::from_secs(10));
        let t0 = Instant::now();
        h.note_delete(b"/r/c/k", t0);
        assert!(h.held(b"k", t0));
        assert!(h.held(b"/other/c/k", t0));
        assert!(!h.held(b"j", t0));
    }

    #[test]
    fn holdoff_expires_and_stays_bounded() {
        let h = HoldOff::new(Duration::from_millis(100));
        let t0 = Instant::now();
        h.note_delete(b"k", t0);
        assert!(h.held(b"k", t0 + Duration::from_millis(99)));
        assert!(!h.held(b"k", t0 + Duration::from_millis(100)));
        assert_eq!(h.len(), 0, "an expired key is forgotten when looked up");
        // Expired keys are pruned as the table grows.
        for i in 0..10 * PRUNE_MIN {
            let now = t0 + Duration::from_millis(i as u64);
            h.note_delete(format!("k{i}").as_bytes(), now);
        }
        assert!(h.len() < 2 * PRUNE_MIN + 200, "{}", h.len());
        // Past the bound (all within one window): every key held off, table emptied.
        let h = HoldOff::new(Duration::from_secs(10));
        for i in 0..=MAX_HELD_KEYS {
            h.note_delete(format!("k{i}").as_bytes(), t0);
        }
        assert_eq!(h.len(), 0);
        assert!(h.held(b"never-deleted", t0 + Duration::from_secs(9)));
        assert!(!h.held(b"never-deleted", t0 + Duration::from_secs(10)));
        h.note_delete(b"again", t0 + Duration::from_secs(11));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn ttl_conversion() {
        let now = 1_700_000_000;
        assert_eq!(fill_exptime(Some(-1), 99, now), 0);
        assert_eq!(fill_exptime(Some(0), 99, now), 1);
        assert_eq!(fill_exptime(Some(1000), 99, now), 1000);
        assert_eq!(
            fill_exptime(Some(MAX_RELATIVE_EXPTIME), 99, now),
            MAX_RELATIVE_EXPTIME
        );
        assert_eq!(
            fill_exptime(Some(MAX_RELATIVE_EXPTIME + 1), 99, now),
            now + MAX_RELATIVE_EXPTIME + 1
        );
        assert_eq!(fill_exptime(None, 99, now), 99);
    }

    #[test]
    fn no_expiry_and_long_ttls_reach_the_add() {
        run(|ctx| async move {
            let cold = Mock::replying("END\r\n");
            let warm = Mock::replying("VA 1 s1 f7 t-1\r\nx\r\n");
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
            r.route(Mock::req("get k\r\n"), &ctx).await;
            settle().await;
            assert_eq!(seen(&cold)[1], "add k 7 0 1\r\nx\r\n");

            let cold = Mock::replying("END\r\n");
            let warm = Mock::replying("VA 1 s1 f7 t31536000\r\nx\r\n");
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
            let before = unix_now();
            r.route(Mock::req("get k\r\n"), &ctx).await;
            settle().await;
            let add = &seen(&cold)[1];
            let exptime: i64 = add.split(' ').nth(3).unwrap().parse().unwrap();
            assert!(
                (before + 31_536_000..=unix_now() + 31_536_000).contains(&exptime),
                "{add:?}"
            );

            // No `t` in the reply: the configured fallback.
            let cold = Mock::replying("END\r\n");
            let warm = Mock::replying("VA 1 f7\r\nx\r\n");
            let r = WarmUpRoute::new(cold.r(), warm.r(), 600, None);
            r.route(Mock::req("get k\r\n"), &ctx).await;
            settle().await;
            assert_eq!(seen(&cold)[1], "add k 7 600 1\r\nx\r\n");
        });
    }

    #[test]
    fn lease_get_fills_with_the_token() {
        run(|ctx| async move {
            // Cold lease miss, we hold token 7: answer the warm value, lease-set cold.
            let cold = Mock::replying("LVALUE k 7 0 0\r\n\r\nEND\r\n");
            let warm = Mock::replying(WARM_HIT);
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
            let reply = r.route(Mock::req("lease-get k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"VALUE k 42 5\r\nhello\r\nEND\r\n");
            settle().await;
            assert_eq!(
                seen(&cold),
                ["lease-get k\r\n", "lease-set k 7 42 300 5\r\nhello\r\n"]
            );

            // Hot miss (someone else fills): warm value, no fill.
            let cold = Mock::replying("LVALUE k 1 0 0\r\n\r\nEND\r\n");
            let r = WarmUpRoute::new(cold.r(), warm.r(), 0, None);
            let reply = r.route(Mock::req("lease-get k\r\n"), &ctx).await;
            assert!(reply.bytes.starts_with(b"VALUE k 42 5\r\n"));
            settle().await;
            assert_eq!(cold.count(), 1);

            // Warm miss: the client gets the lease token to fill from the database.
            let warm_miss = Mock::replying("EN\r\n");
            let r = WarmUpRoute::new(cold.r(), warm_miss.r(), 0, None);
            let reply = r.route(Mock::req("lease-get k\r\n"), &ctx).await;
            assert!(reply.bytes.starts_with(b"LVALUE k 1 "));

            // Cold hit: warm not asked.
            let cold_hit = Mock::replying("VALUE k 0 1\r\nc\r\nEND\r\n");
            let r = WarmUpRoute::new(cold_hit.r(), warm_miss.r(), 0, None);
            let reply = r.route(Mock::req("lease-get k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"VALUE k 0 1\r\nc\r\nEND\r\n");
            assert_eq!(warm_miss.count(), 1);
        });
    }

    #[test]
    fn config_validation() {
        use crate::config::Config;
        use crate::destination::Registry;
        let load = |route: &str| {
            let text = format!(
                r#"{{"pools": {{"c": {{"servers": ["127.0.0.1:1"]}}, "w": {{"servers": ["127.0.0.1:2"]}}}},
                    "route": {route}}}"#
            );
            Config::parse(&text, Some("test.json"), &Registry::default()).map(|_| ())
        };
        load(r#"{"type": "WarmUpRoute", "cold": "PoolRoute|c", "warm": "PoolRoute|w"}"#).unwrap();
        load(
            r#"{"type": "WarmUpRoute", "cold": "PoolRoute|c", "warm": "PoolRoute|w",
                "exptime": 3600, "delete_holdoff_ms": 2000}"#,
        )
        .unwrap();
        for (bad, field) in [
            (r#"{"type": "WarmUpRoute", "warm": "PoolRoute|w"}"#, "cold"),
            (r#"{"type": "WarmUpRoute", "cold": "PoolRoute|c"}"#, "warm"),
            (
                r#"{"type": "WarmUpRoute", "cold": "PoolRoute|c", "warm": "PoolRoute|w", "exptime": -1}"#,
                "exptime",
            ),
            (
                r#"{"type": "WarmUpRoute", "cold": "PoolRoute|c", "warm": "PoolRoute|w", "delete_holdoff_ms": "2s"}"#,
                "delete_holdoff_ms",
            ),
        ] {
            let e = load(bad).unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }
}
