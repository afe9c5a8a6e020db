//! `L1L2SizeSplitRoute` (mcrouter's): small values live in `l1` (a fast, small pool);
//! values of `threshold` bytes or more live in `l2` (a large pool), with a sentinel in
//! `l1` marking where the value is. `l1` holds every key, so deletes, touches and CAS go
//! to `l1` alone.
//!
//! Config: `{"type": "L1L2SizeSplitRoute", "l1": <route>, "l2": <route>,
//! "threshold": 1024, "ttl_threshold": 0, "failure_ttl": 60, "both_full_set": false,
//! "retries": 1}` (`threshold` required).
//!
//! ```text
//!  set k <flags> <exptime> <L >= threshold>
//!    ├─ l2: set k <flags> <exptime> <value>
//!    └─ STORED: l1: set k <flags|0x20> <exptime> ""  (the sentinel) ─> its reply
//!       else: the l2 reply, nothing in l1
//!  lease-set k <token> ... (big)
//!    ├─ l2: set k|==|<random u32> ... <value>
//!    ├─ STORED: l1: lease-set k <token> <flags|0x20> <exptime> "<random u32>"
//!    └─ else:   l1: lease-set k ... <value> with exptime at most failure_ttl
//!  get/gets/lease-get k ──> l1 ── not a hit with 0x20 ──> as is
//!                              └─ sentinel "" ──> l2: get k;  "<n>" ──> l2: get k|==|<n>
//!                                   ├─ hit: VALUE k <l2 flags> ... (gets: l1's CAS unique)
//!                                   ├─ error: the error (a connection-type error also
//!                                   │    removes the sentinel)
//!                                   └─ miss: remove the sentinel; ask again up to
//!                                        `retries` times (gets, lease-get), then a miss
//!  everything else (add, cas, delete, touch, gat, mg, ...) ──> l1 only
//! ```
//!
//! - While a split write is under way (`l2` written, the sentinel not yet), later
//!   requests for its key wait and then run in the order they came, so a pipelined
//!   `set` then `get`/`delete` keeps its order (mcrouter gives no such order).
//! - A value goes to `l1` whole when `threshold` is 0, it is shorter than `threshold`,
//!   `ttl_threshold` is set and its exptime is below it (0, never expiring, counts as
//!   below), or its key is over 231 bytes (no room for `|==|` and 20 digits).
//! - 0x20 is `MC_MSG_FLAG_SIZE_SPLIT`; the sentinel is removed with `gets` then `cas`
//!   with exptime -1, and only while `l1` still holds the same sentinel.
//! - `both_full_set`: big values are set in `l1` whole and copied to `l2` in the
//!   background (a `lease-set` too: mcrouter sends that one to `l1` under the `|==|` key,
//!   which its own reads never find; here it keeps the client's key).
//! - As in mcrouter, a `delete` leaves the `l2` copy to expire; `gat`/`gats` and `mg`
//!   see the sentinel itself. Differences: an `l2` miss behind a sentinel answers a miss
//!   where mcrouter answers a local error (which its default `miss_on_get_errors` turns
//!   into a miss), and the sentinel is always removed (mcrouter keeps it after the last
//!   retry, and after a plain `get` that found no `l2` value under the key itself); stock memcached has no "return sentinels only when asked" get flag, so
//!   `l1` items a client stores with flag 0x20 itself are read as sentinels.

use std::rc::Rc;
use std::sync::Arc;

use super::big_value::{value_of, value_reply, Hit};
use super::key_order::KeyOrder;
use super::warm_up::storage_request;
use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::{Reply, ReplyKind};
use crate::request::{Op, Req};
use protocol::Request;

/// mcrouter's `MC_MSG_FLAG_SIZE_SPLIT`: the client flags of a sentinel.
pub const SIZE_SPLIT_FLAG: u32 = 0x20;
/// Between the key and the random number of a lease-set's `l2` key.
pub const HASH_ALIAS: &str = "|==|";
/// Longest key that is split: `|==|` and 20 digits still fit under 255.
pub const MAX_SPLIT_KEY_LEN: usize = 255 - 4 - 20;
pub const DEFAULT_FAILURE_TTL: i64 = 60;
pub const MAX_RETRIES: i64 = 10;

#[derive(Debug, Clone, Copy)]
pub struct SizeSplitOptions {
    pub threshold: usize,
    pub ttl_threshold: i64,
    pub failure_ttl: i64,
    pub both_full_set: bool,
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub struct L1L2SizeSplitRoute {
    l1: RouteRef,
    l2: RouteRef,
    opts: SizeSplitOptions,
    /// A split write holds its key until the sentinel is written (see [`KeyOrder`]).
    order: Arc<KeyOrder>,
}

/// The `l2` key of a lease-set sentinel `n`.
pub fn l2_key(key: &[u8], n: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.extend_from_slice(HASH_ALIAS.as_bytes());
    k.extend_from_slice(n);
    k
}

fn req_line(line: String) -> Option<Req> {
    Req::from_wire(line.as_bytes())
}

fn miss() -> Reply {
    Reply::default_for_op(Op::Get)
}

/// What `l1` holds for a key: a plain reply, or a sentinel pointing into `l2`.
struct Sentinel {
    /// `""` (the value is in `l2` under the key) or the lease-set number.
    value: Vec<u8>,
    cas: Option<u64>,
}

impl Sentinel {
    fn of(reply: &Reply) -> Option<Sentinel> {
        let Hit {
            flags, cas, data, ..
        } = value_of(reply)?;
        (flags & SIZE_SPLIT_FLAG != 0).then(|| Sentinel {
            value: data.to_vec(),
            cas,
        })
    }

    fn l2_get(&self, key: &[u8]) -> Option<Req> {
        let k = if self.value.is_empty() {
            key.to_vec()
        } else {
            l2_key(key, &self.value)
        };
        let mut line = b"get ".to_vec();
        line.extend_from_slice(&k);
        line.extend_from_slice(b"\r\n");
        Req::from_wire(&line)
    }
}

impl L1L2SizeSplitRoute {
    pub fn new(l1: RouteRef, l2: RouteRef, opts: SizeSplitOptions) -> Self {
        L1L2SizeSplitRoute {
            l1,
            l2,
            opts,
            order: Arc::default(),
        }
    }

    /// mcrouter's `fullSetShouldGoToL1`.
    fn whole_to_l1(&self, key: &[u8], len: usize, exptime: i64) -> bool {
        let o = &self.opts;
        o.threshold == 0
            || len < o.threshold
            || (o.ttl_threshold != 0 && exptime < o.ttl_threshold)
            || key.len() > MAX_SPLIT_KEY_LEN
    }

    /// `set` and `lease-set`: a big value goes to `l2`, a sentinel to `l1`.
    fn write(&self, req: Req, ctx: &Rc<Ctx>, queued: bool) -> RouteFuture {
        let (key, token, flags, exptime, data) = match req.parsed() {
            Some(Request::Storage {
                key,
                flags,
                exptime,
                data,
                ..
            }) => (key, None, flags, exptime, data),
            Some(Request::LeaseSet {
                key,
                token,
                flags,
                exptime,
                data,
                ..
            }) => (key, Some(token), flags, exptime, data),
            _ => return self.l1.route(req, ctx),
        };
        if self.whole_to_l1(key, data.len(), exptime) {
            return self.l1.route(req, ctx);
        }
        if self.opts.both_full_set {
            return both_full(&self.l1, &self.l2, req, ctx);
        }
        let Some(token) = token else {
            let sentinel = req_line(format!(
                "set {} {} {exptime} 0\r\n\r\n",
                String::from_utf8_lossy(key),
                flags | SIZE_SPLIT_FLAG
            ));
            let first = self.l2.route(req.clone(), ctx);
            let (l1, ctx) = (self.l1.clone(), ctx.clone());
            let guard = (!queued).then(|| self.order.begin(key));
            return Box::pin(async move {
                let _guard = guard;
                let r = first.await;
                match (r.kind, sentinel) {
                    (ReplyKind::Ok, Some(s)) => l1.route(s, &ctx).await,
                    _ => r,
                }
            });
        };
        let n = rand::random::<u32>().to_string();
        let l2_set = storage_request(
            b"set ",
            &l2_key(key, n.as_bytes()),
            format!(" {flags} {exptime} {}\r\n", data.len()).as_bytes(),
            data,
        );
        let k = String::from_utf8_lossy(key).into_owned();
        let sentinel = req_line(format!(
            "lease-set {k} {token} {} {exptime} {}\r\n{n}\r\n",
            flags | SIZE_SPLIT_FLAG,
            n.len()
        ));
        let capped = if exptime == 0 || exptime > self.opts.failure_ttl {
            self.opts.failure_ttl
        } else {
            exptime
        };
        let fallback = req.with_exptime(capped);
        let (Some(l2_set), Some(sentinel)) = (l2_set, sentinel) else {
            return self.l1.route(req, ctx);
        };
        let first = self.l2.route(l2_set, ctx);
        let (l1, ctx) = (self.l1.clone(), ctx.clone());
        let guard = (!queued).then(|| self.order.begin(key));
        Box::pin(async move {
            let _guard = guard;
            if first.await.kind == ReplyKind::Ok {
                l1.route(sentinel, &ctx).await
            } else {
                l1.route(fallback, &ctx).await
            }
        })
    }

    /// `get`, `gets`, `lease-get`: a sentinel's value comes from `l2`.
    fn read(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let first = self.l1.route(req.clone(), ctx);
        let (l1, l2, ctx) = (self.l1.clone(), self.l2.clone(), ctx.clone());
        // A plain `get` is not asked again (mcrouter's get has no retries).
        let retries = if req.op() == Op::Get {
            0
        } else {
            self.opts.retries
        };
        Box::pin(async move {
            let mut l1_reply = first.await;
            let key = req.key().to_vec();
            for attempt in 0..=retries {
                if attempt > 0 {
                    l1_reply = l1.route(req.clone(), &ctx).await;
                }
                let Some(s) = Sentinel::of(&l1_reply) else {
                    return l1_reply;
                };
                let Some(get) = s.l2_get(&key) else {
                    return miss();
                };
                let r = l2.route(get, &ctx).await;
                if let Some(hit) = value_of(&r) {
                    let cas = if req.op() == Op::Gets { s.cas } else { None };
                    return value_reply(&key, hit.flags, cas, hit.data);
                }
                if r.is_error() {
                    if r.error_class().is_some_and(|c| c.is_failover_default()) {
                        remove_sentinel(&l1, &key, &s.value, &ctx).await;
                    }
                    return r;
                }
                remove_sentinel(&l1, &key, &s.value, &ctx).await;
            }
            miss()
        })
    }
}

/// `both_full_set`: the write to `l1` whole; once stored, a `set` of it to `l2` in the
/// background.
fn both_full(l1: &RouteRef, l2: &RouteRef, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
    let copy = match req.parsed() {
        Some(Request::LeaseSet {
            key,
            flags,
            exptime,
            data,
            ..
        }) => storage_request(
            b"set ",
            key,
            format!(" {flags} {exptime} {}\r\n", data.len()).as_bytes(),
            data,
        ),
        _ => Some(req.clone()),
    };
    let first = l1.route(req, ctx);
    let (l2, ctx) = (l2.clone(), ctx.clone());
    Box::pin(async move {
        let r = first.await;
        if let (ReplyKind::Ok, Some(copy)) = (r.kind, copy) {
            tokio::task::spawn_local(l2.route(copy, &ctx));
        }
        r
    })
}

/// mcrouter's `deleteSentinel`: expire `key` in `l1` if it still holds sentinel `value`.
async fn remove_sentinel(l1: &RouteRef, key: &[u8], value: &[u8], ctx: &Rc<Ctx>) {
    let k = String::from_utf8_lossy(key);
    let Some(gets) = req_line(format!("gets {k}\r\n")) else {
        return;
    };
    let r = l1.route(gets, ctx).await;
    let Some(Hit {
        data,
        cas: Some(cas),
        ..
    }) = value_of(&r)
    else {
        return;
    };
    if data != value {
        return;
    }
    if let Some(expire) = req_line(format!("cas {k} 0 -1 0 {cas}\r\n\r\n")) {
        l1.route(expire, ctx).await;
    }
}

impl Route for L1L2SizeSplitRoute {
    fn name(&self) -> String {
        format!("L1L2SizeSplitRoute|threshold={}", self.opts.threshold)
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let me = self.clone();
        self.order
            .route(req, ctx, move |req, ctx, queued| match req.op() {
                Op::Set | Op::LeaseSet => me.write(req, ctx, queued),
                Op::Get | Op::Gets | Op::LeaseGet if req.key_count() == 1 => me.read(req, ctx),
                _ => me.l1.route(req, ctx),
            })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.l1.clone(), self.l2.clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let l1 = node.route(b, "l1")?;
    let l2 = node.route(b, "l2")?;
    let threshold = node
        .i64_field("threshold")?
        .ok_or_else(|| node.err("threshold", "missing; expected a size in bytes"))?;
    let threshold = usize::try_from(threshold)
        .map_err(|_| node.err("threshold", format!("{threshold}: expected 0 or more")))?;
    let ttl_threshold = node.i64_field("ttl_threshold")?.unwrap_or(0);
    if ttl_threshold < 0 {
        return Err(node.err("ttl_threshold", "must be 0 or more"));
    }
    let failure_ttl = node
        .i64_field("failure_ttl")?
        .unwrap_or(DEFAULT_FAILURE_TTL);
    if failure_ttl <= 0 {
        return Err(node.err("failure_ttl", "must be more than 0"));
    }
    let retries = node.i64_field("retries")?.unwrap_or(1);
    if !(1..=MAX_RETRIES).contains(&retries) {
        return Err(node.err("retries", format!("{retries}: expected 1 to {MAX_RETRIES}")));
    }
    let opts = SizeSplitOptions {
        threshold,
        ttl_threshold,
        failure_ttl,
        both_full_set: node.bool_field("both_full_set")?.unwrap_or(false),
        retries: retries as u32,
    };
    Ok(Arc::new(L1L2SizeSplitRoute::new(l1, l2, opts)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{check_configs, run, seen, settle, Mock};

    fn opts(threshold: usize) -> SizeSplitOptions {
        SizeSplitOptions {
            threshold,
            ttl_threshold: 0,
            failure_ttl: DEFAULT_FAILURE_TTL,
            both_full_set: false,
            retries: 1,
        }
    }

    #[test]
    fn big_sets_go_to_l2_with_a_sentinel_in_l1() {
        run(|ctx| async move {
            let l1 = Mock::replying("STORED\r\n");
            let l2 = Mock::replying("STORED\r\n");
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(8));
            r.route(Mock::req("set small 1 60 7\r\nsmaller\r\n"), &ctx)
                .await;
            let got = r
                .route(Mock::req("set big 1 60 8\r\n12345678\r\n"), &ctx)
                .await;
            assert_eq!(&got.bytes[..], b"STORED\r\n");
            assert_eq!(seen(&l2), ["set big 1 60 8\r\n12345678\r\n"]);
            assert_eq!(
                seen(&l1),
                ["set small 1 60 7\r\nsmaller\r\n", "set big 33 60 0\r\n\r\n"]
            );
            // l2 refuses: its reply, no sentinel.
            let l2 = Mock::replying("SERVER_ERROR out of memory\r\n");
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(8));
            let got = r
                .route(Mock::req("set big 1 60 8\r\n12345678\r\n"), &ctx)
                .await;
            assert!(got.is_error());
            assert_eq!(l1.count(), 2);
        });
    }

    #[test]
    fn ttl_threshold_and_key_length_keep_values_whole() {
        run(|ctx| async move {
            let l1 = Mock::replying("STORED\r\n");
            let l2 = Mock::replying("STORED\r\n");
            let o = SizeSplitOptions {
                ttl_threshold: 50,
                ..opts(4)
            };
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), o);
            r.route(Mock::req("set a 0 0 5\r\n12345\r\n"), &ctx).await;
            r.route(Mock::req("set a 0 49 5\r\n12345\r\n"), &ctx).await;
            assert_eq!(l2.count(), 0);
            r.route(Mock::req("set a 0 50 5\r\n12345\r\n"), &ctx).await;
            assert_eq!(l2.count(), 1);
            let long = "k".repeat(232);
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(4));
            r.route(Mock::req(&format!("set {long} 0 0 5\r\n12345\r\n")), &ctx)
                .await;
            assert_eq!(l2.count(), 1);
            r.route(
                Mock::req(&format!("set {} 0 0 5\r\n12345\r\n", &long[..231])),
                &ctx,
            )
            .await;
            assert_eq!(l2.count(), 2);
        });
    }

    #[test]
    fn lease_sets_use_a_numbered_l2_key_or_fall_back_to_l1() {
        run(|ctx| async move {
            let l1 = Mock::replying("STORED\r\n");
            let l2 = Mock::replying("STORED\r\n");
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(8));
            r.route(Mock::req("lease-set k 77 1 30 10\r\n0123456789\r\n"), &ctx)
                .await;
            let l2_seen = seen(&l2);
            let line = l2_seen[0].split("\r\n").next().unwrap().to_string();
            let n = line
                .strip_prefix("set k|==|")
                .and_then(|r| r.strip_suffix(" 1 30 10"))
                .unwrap_or_else(|| panic!("{line}"));
            assert!(n.parse::<u32>().is_ok(), "{n}");
            assert_eq!(
                seen(&l1),
                [format!("lease-set k 77 33 30 {}\r\n{n}\r\n", n.len())]
            );
            // l2 fails: the whole value to l1, its TTL at most failure_ttl.
            let l2 = Mock::replying("SERVER_ERROR busy\r\n");
            for (exptime, want) in [(0, 60), (30, 30), (100, 60)] {
                let l1 = Mock::replying("STORED\r\n");
                let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(8));
                let req = format!("lease-set k 77 1 {exptime} 10\r\n0123456789\r\n");
                r.route(Mock::req(&req), &ctx).await;
                let want = format!("lease-set k 77 1 {want} 10\r\n0123456789\r\n");
                assert_eq!(seen(&l1), [want]);
            }
        });
    }

    #[test]
    fn reads_follow_sentinels_into_l2() {
        run(|ctx| async move {
            let l1 = Mock::replying("END\r\n");
            l1.answer_key("k", "VALUE k 33 0 5\r\n\r\nEND\r\n");
            l1.answer_key("n", "VALUE n 33 4 6\r\n1234\r\nEND\r\n");
            l1.answer_key("small", "VALUE small 1 2\r\nhi\r\nEND\r\n");
            let l2 = Mock::replying("END\r\n");
            l2.answer_key("k", "VALUE k 1 10\r\n0123456789\r\nEND\r\n");
            l2.answer_key("n|==|1234", "VALUE n|==|1234 1 3\r\nabc\r\nEND\r\n");
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(8));
            let got = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&got.bytes[..], b"VALUE k 1 10\r\n0123456789\r\nEND\r\n");
            // gets answers l1's CAS unique; the l2 key of a lease-set sentinel.
            let got = r.route(Mock::req("gets n\r\n"), &ctx).await;
            assert_eq!(&got.bytes[..], b"VALUE n 1 3 6\r\nabc\r\nEND\r\n");
            let got = r.route(Mock::req("get small\r\n"), &ctx).await;
            assert_eq!(&got.bytes[..], b"VALUE small 1 2\r\nhi\r\nEND\r\n");
            assert_eq!(seen(&l2), ["get k\r\n", "get n|==|1234\r\n"]);
        });
    }

    #[test]
    fn a_sentinel_without_its_value_is_removed() {
        run(|ctx| async move {
            let l1 = Mock::replying("STORED\r\n");
            l1.answer_key("n", "VALUE n 33 4 6\r\n1234\r\nEND\r\n");
            let l2 = Mock::replying("END\r\n");
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(8));
            assert!(r.route(Mock::req("get n\r\n"), &ctx).await.is_miss());
            assert_eq!(
                seen(&l1),
                ["get n\r\n", "gets n\r\n", "cas n 0 -1 0 6\r\n\r\n"]
            );
            // gets and lease-get ask again (`retries` times) after removing it.
            let before = l1.count();
            assert!(r.route(Mock::req("lease-get n\r\n"), &ctx).await.is_miss());
            assert_eq!(l1.count(), before + 6, "{:?}", seen(&l1));
            // An l2 connection error also removes it and is answered.
            let l2 = Mock::replying("SERVER_ERROR down\r\n");
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(8));
            let before = l1.count();
            assert!(r.route(Mock::req("get n\r\n"), &ctx).await.is_error());
            assert_eq!(l1.count(), before + 3);
        });
    }

    #[test]
    fn both_full_set_writes_l1_whole_then_copies() {
        run(|ctx| async move {
            let l1 = Mock::replying("STORED\r\n");
            let l2 = Mock::replying("STORED\r\n");
            let o = SizeSplitOptions {
                both_full_set: true,
                ..opts(4)
            };
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), o);
            r.route(Mock::req("set k 1 0 5\r\n12345\r\n"), &ctx).await;
            r.route(Mock::req("lease-set k 9 1 0 5\r\n12345\r\n"), &ctx)
                .await;
            settle().await;
            assert_eq!(
                seen(&l1),
                [
                    "set k 1 0 5\r\n12345\r\n",
                    "lease-set k 9 1 0 5\r\n12345\r\n"
                ]
            );
            assert_eq!(seen(&l2), ["set k 1 0 5\r\n12345\r\n"; 2]);
        });
    }

    #[test]
    fn a_delete_after_a_split_set_comes_after_its_sentinel() {
        run(|ctx| async move {
            let l1 = Mock::replying("DELETED\r\n");
            let l2 = Mock::delayed("STORED\r\n", 20);
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(4));
            let set = r.route(Mock::req("set k 1 0 5\r\n12345\r\n"), &ctx);
            let del = r.route(Mock::req("delete k\r\n"), &ctx);
            let other = r.route(Mock::req("delete j\r\n"), &ctx);
            assert_eq!(seen(&l1), ["delete j\r\n"]);
            futures_util::future::join3(set, del, other).await;
            assert_eq!(
                seen(&l1),
                ["delete j\r\n", "set k 33 0 0\r\n\r\n", "delete k\r\n"]
            );
            assert!(r.order.is_idle());
        });
    }

    #[test]
    fn other_operations_go_to_l1() {
        run(|ctx| async move {
            let l1 = Mock::replying("DELETED\r\n");
            let l2 = Mock::replying("DELETED\r\n");
            let r = L1L2SizeSplitRoute::new(l1.r(), l2.r(), opts(1));
            for req in [
                "delete k\r\n",
                "add k 0 0 5\r\n12345\r\n",
                "touch k 5\r\n",
                "gat 5 k\r\n",
            ] {
                r.route(Mock::req(req), &ctx).await;
            }
            assert_eq!((l1.count(), l2.count()), (4, 0));
        });
    }

    #[test]
    fn config() {
        let b = r#""l1": "NullRoute", "l2": "NullRoute""#;
        let cases = [
            (format!(r#"{{{b}, "threshold": 8}}"#), None),
            (
                format!(
                    r#"{{{b}, "threshold": 8, "ttl_threshold": 5, "failure_ttl": 9, "both_full_set": true, "retries": 10}}"#
                ),
                None,
            ),
            (format!("{{{b}}}"), Some("route.threshold: missing")),
            (
                format!(r#"{{{b}, "threshold": -1}}"#),
                Some("route.threshold: -1: expected 0 or more"),
            ),
            (
                format!(r#"{{{b}, "threshold": 8, "failure_ttl": 0}}"#),
                Some("route.failure_ttl: must be more than 0"),
            ),
            (
                format!(r#"{{{b}, "threshold": 8, "ttl_threshold": -1}}"#),
                Some("route.ttl_threshold: must be 0 or more"),
            ),
            (
                format!(r#"{{{b}, "threshold": 8, "retries": 11}}"#),
                Some("route.retries: 11: expected 1 to 10"),
            ),
            (
                format!(r#"{{{b}, "threshold": 8, "retries": 0}}"#),
                Some("route.retries: 0: expected 1 to 10"),
            ),
            (
                format!(r#"{{{b}, "threshold": 8, "both_full_set": 1}}"#),
                Some("route.both_full_set: expected true or false"),
            ),
        ];
        check_configs("L1L2SizeSplitRoute", build, &cases);
    }
}
