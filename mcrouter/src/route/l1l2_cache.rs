//! `L1L2CacheRoute` (mcrouter's): a small, near cache (`l1`) in front of a large one
//! (`l2`). Reads try `l1` first and fill it from `l2`; writes go to `l1` only (the client
//! keeps `l2` consistent, as mcrouter's header says). Optionally remembers `l2` misses in
//! `l1` (the negative cache), so repeated reads of absent keys stop at `l1`.
//!
//! Config: `{"type": "L1L2CacheRoute", "l1": <route>, "l2": <route>,
//! "upgradingL1Exptime": 60, "ncacheExptime": 10, "ncacheUpdatePeriod": 100}`
//! (`upgradingL1Exptime` required; the `ncache` fields default to 0, negative cache off).
//!
//! ```text
//!  get k ──> l1 ── hit ──────────────────────────────> the l1 reply
//!             │    └ flags & 0x10000 (negative cache) ─> a miss; every ncacheUpdatePeriod-th
//!             │        such hit re-reads l2 in the background and `set`s l1 (value or ncache)
//!             └ miss or error ──> l2 ── hit ──> the l2 reply; l1: add k <flags> upgradingL1Exptime
//!                                   ├ miss ──> the miss; l1: add k 65536 ncacheExptime "ncache"
//!                                   │          (only when ncacheUpdatePeriod > 0)
//!                                   └ error ─> the error
//!  everything else (set, add, delete, touch, incr, ...) ──> l1 only
//! ```
//!
//! - Reads are `get`, `gets`, `gat`, `gats`, `lease-get` and `mg`. As in mcrouter the same
//!   request goes to both (a `gat` touches in both; a `gets` may answer an `l2` CAS unique,
//!   which a later `cas` to `l1` will not match; a lease token may come from `l2`).
//! - The `l1` fills are sent without waiting for them and never overwrite (`add`); the
//!   negative-cache refresh overwrites (`set`). The fill takes the `l2` item's flags; its
//!   TTL is `upgradingL1Exptime`, whatever the `l2` TTL.
//! - Only `l1` items whose client flags have bit 0x10000 (`MC_MSG_FLAG_NEGATIVE_CACHE`) are
//!   negative-cache entries, whatever their value (mcrouter writes `ncache`).
//! - Differences from mcrouter: an `mg` reply shows flags only if asked (`f`), so an `mg`
//!   that does not ask for `f` cannot tell a negative-cache entry from a value and does not
//!   fill `l1` (mcrouter fills an empty value for an `mg` hit); neither does a base64-key
//!   `mg` (its key cannot go into a text `add`). The refresh period counter is one per
//!   route for all workers (mcrouter: one per proxy thread).
//!
//! Metrics: `mcrouter_l1l2_gets_total{result="l1_hit"|"ncache_hit"|"l2_hit"|"miss"|"error"}`.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use protocol::{MetaCode, Response};

use super::warm_up::storage_request;
use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::{Reply, ReplyKind};
use crate::request::{Op, Req};

/// mcrouter's `MC_MSG_FLAG_NEGATIVE_CACHE`: the client flags of a negative-cache entry.
pub const NEGATIVE_CACHE_FLAG: u32 = 0x10000;
/// The value mcrouter stores in a negative-cache entry.
pub const NCACHE_VALUE: &[u8] = b"ncache";

#[derive(Debug)]
pub struct L1L2CacheRoute {
    l1: RouteRef,
    l2: RouteRef,
    opts: Arc<Opts>,
}

#[derive(Debug)]
struct Opts {
    upgrading_l1_exptime: i64,
    ncache_exptime: i64,
    /// 0: negative cache off.
    ncache_update_period: u64,
    /// Negative-cache hits until the next refresh (counts down from the period).
    countdown: AtomicU64,
}

impl Opts {
    /// Count one negative-cache hit; true when this one should refresh its key.
    fn refresh_due(&self) -> bool {
        let p = self.ncache_update_period;
        if p == 0 {
            return false;
        }
        let prev = self
            .countdown
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(if c <= 1 { p } else { c - 1 })
            })
            .unwrap_or(p);
        prev <= 1
    }
}

impl L1L2CacheRoute {
    pub fn new(
        l1: RouteRef,
        l2: RouteRef,
        upgrading_l1_exptime: i64,
        ncache_exptime: i64,
        ncache_update_period: u64,
    ) -> Self {
        L1L2CacheRoute {
            l1,
            l2,
            opts: Arc::new(Opts {
                upgrading_l1_exptime,
                ncache_exptime,
                ncache_update_period,
                countdown: AtomicU64::new(ncache_update_period),
            }),
        }
    }
}

fn is_read(op: Op) -> bool {
    matches!(
        op,
        Op::Get | Op::Gets | Op::Gat | Op::Gats | Op::LeaseGet | Op::MetaGet
    )
}

/// The client flags a hit shows (`VALUE k <flags> ...`, or `mg`'s `f`).
fn hit_flags(reply: &Reply) -> Option<u32> {
    match protocol::parse_response(&reply.bytes).ok()??.0 {
        Response::Value { flags, .. } => Some(flags),
        r @ Response::Meta { .. } => std::str::from_utf8(r.meta_flag(b'f')?).ok()?.parse().ok(),
        _ => None,
    }
}

/// Flags and value of a hit, when it shows both.
fn hit_item(reply: &Reply) -> Option<(u32, Bytes)> {
    let (resp, _) = protocol::parse_response(&reply.bytes).ok()??;
    let data = match resp {
        Response::Value { data, .. } => data,
        Response::Meta {
            code: MetaCode::Va,
            data: Some(data),
            ..
        } => data,
        _ => return None,
    };
    Some((hit_flags(reply)?, reply.bytes.slice_ref(data)))
}

/// `add`/`set` of `key` to `l1`, sent now; its reply is dropped when it comes.
fn write_l1(
    l1: &RouteRef,
    cmd: &[u8],
    key: &[u8],
    flags: u32,
    exptime: i64,
    data: &[u8],
    ctx: &Rc<Ctx>,
) {
    let head = format!(" {flags} {exptime} {}\r\n", data.len());
    if let Some(req) = storage_request(cmd, key, head.as_bytes(), data) {
        tokio::task::spawn_local(l1.route(req, ctx));
    }
}

fn count_get(result: &'static str) {
    if crate::metrics::enabled() {
        metrics::counter!("mcrouter_l1l2_gets_total", "result" => result).increment(1);
    }
}

impl Route for L1L2CacheRoute {
    fn name(&self) -> String {
        "L1L2CacheRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        if !is_read(req.op()) || req.key_count() != 1 {
            return self.l1.route(req, ctx);
        }
        let first = self.l1.route(req.clone(), ctx);
        let (l1, l2, opts, ctx) = (
            self.l1.clone(),
            self.l2.clone(),
            self.opts.clone(),
            ctx.clone(),
        );
        Box::pin(async move {
            let l1_reply = first.await;
            // A base64 key cannot be written with a text command: no l1 writes for it.
            let key = (!req.base64_key()).then(|| req.key_bytes());
            if l1_reply.is_hit() {
                if hit_flags(&l1_reply).is_some_and(|f| f & NEGATIVE_CACHE_FLAG != 0) {
                    count_get("ncache_hit");
                    if let (true, Some(key)) = (opts.refresh_due(), key) {
                        let refresh = l2.route(req.clone(), &ctx);
                        tokio::task::spawn_local(async move {
                            let r = refresh.await;
                            match hit_item(&r) {
                                Some((flags, data)) => write_l1(
                                    &l1,
                                    b"set ",
                                    &key,
                                    flags,
                                    opts.upgrading_l1_exptime,
                                    &data,
                                    &ctx,
                                ),
                                None if r.is_hit() => {}
                                None => write_l1(
                                    &l1,
                                    b"set ",
                                    &key,
                                    NEGATIVE_CACHE_FLAG,
                                    opts.ncache_exptime,
                                    NCACHE_VALUE,
                                    &ctx,
                                ),
                            }
                        });
                    }
                    return Reply::default_for(&req);
                }
                count_get("l1_hit");
                return l1_reply;
            }
            let l2_reply = l2.route(req.clone(), &ctx).await;
            match (l2_reply.kind, key) {
                (ReplyKind::Hit, key) => {
                    count_get("l2_hit");
                    if let (Some((flags, data)), Some(key)) = (hit_item(&l2_reply), key) {
                        let exptime = opts.upgrading_l1_exptime;
                        write_l1(&l1, b"add ", &key, flags, exptime, &data, &ctx);
                    }
                }
                (ReplyKind::Miss, key) => {
                    count_get("miss");
                    if let (true, Some(key)) = (opts.ncache_update_period > 0, key) {
                        let (flags, exptime) = (NEGATIVE_CACHE_FLAG, opts.ncache_exptime);
                        write_l1(&l1, b"add ", &key, flags, exptime, NCACHE_VALUE, &ctx);
                    }
                }
                _ => count_get("error"),
            }
            l2_reply
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.l1.clone(), self.l2.clone()]
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        if is_read(req.op()) {
            self.children()
        } else {
            vec![self.l1.clone()]
        }
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let l1 = node.route(b, "l1")?;
    let l2 = node.route(b, "l2")?;
    let non_negative = |name: &str| -> Result<Option<i64>, ConfigError> {
        match node.i64_field(name)? {
            Some(v) if v < 0 => Err(node.err(name, format!("{v}: expected 0 or more"))),
            v => Ok(v),
        }
    };
    let upgrading = non_negative("upgradingL1Exptime")?.ok_or_else(|| {
        node.err(
            "upgradingL1Exptime",
            "missing; expected the TTL of values copied into l1",
        )
    })?;
    let ncache_exptime = non_negative("ncacheExptime")?.unwrap_or(0);
    let period = non_negative("ncacheUpdatePeriod")?.unwrap_or(0) as u64;
    Ok(Arc::new(L1L2CacheRoute::new(
        l1,
        l2,
        upgrading,
        ncache_exptime,
        period,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{check_configs, run, seen, settle, Mock};

    #[test]
    fn l1_hits_answer_and_l2_hits_fill_l1() {
        run(|ctx| async move {
            let l1 = Mock::replying("END\r\n");
            l1.answer_key("a", "VALUE a 3 2\r\nl1\r\nEND\r\n");
            let l2 = Mock::replying("VALUE b 7 2\r\nl2\r\nEND\r\n");
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 0, 0);
            let a = r.route(Mock::req("get a\r\n"), &ctx).await;
            assert_eq!(&a.bytes[..], b"VALUE a 3 2\r\nl1\r\nEND\r\n");
            assert_eq!(l2.count(), 0);
            let b = r.route(Mock::req("get b\r\n"), &ctx).await;
            assert_eq!(&b.bytes[..], b"VALUE b 7 2\r\nl2\r\nEND\r\n");
            settle().await;
            assert_eq!(seen(&l2), ["get b\r\n"]);
            assert_eq!(
                seen(&l1),
                ["get a\r\n", "get b\r\n", "add b 7 60 2\r\nl2\r\n"]
            );
        });
    }

    #[test]
    fn writes_go_to_l1_only() {
        run(|ctx| async move {
            let l1 = Mock::replying("STORED\r\n");
            let l2 = Mock::replying("STORED\r\n");
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 0, 0);
            for req in [
                "set k 0 0 1\r\nx\r\n",
                "delete k\r\n",
                "incr k 1\r\n",
                "touch k 9\r\n",
            ] {
                r.route(Mock::req(req), &ctx).await;
            }
            assert_eq!((l1.count(), l2.count()), (4, 0));
        });
    }

    #[test]
    fn l1_errors_read_l2_and_l2_errors_write_nothing() {
        run(|ctx| async move {
            let l1 = Mock::replying("SERVER_ERROR down\r\n");
            let l2 = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 5, 1);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_hit());
            let l2 = Mock::replying("SERVER_ERROR busy\r\n");
            let l1 = Mock::replying("END\r\n");
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 5, 1);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_error());
            settle().await;
            assert_eq!(l1.count(), 1, "{:?}", seen(&l1));
        });
    }

    #[test]
    fn negative_cache() {
        run(|ctx| async move {
            // Off (period 0): an l2 miss writes nothing.
            let l1 = Mock::replying("END\r\n");
            let l2 = Mock::replying("END\r\n");
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 5, 0);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            settle().await;
            assert_eq!(l1.count(), 1);

            // On: the miss is remembered in l1 as mcrouter writes it.
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 5, 3);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            settle().await;
            assert_eq!(seen(&l1)[2], "add k 65536 5 6\r\nncache\r\n");

            // Negative-cache hits are misses; every 3rd re-reads l2 and sets l1.
            l1.answer_key("k", "VALUE k 65536 6\r\nncache\r\nEND\r\n");
            l2.answer_key("k", "VALUE k 9 3\r\nnew\r\nEND\r\n");
            let before = (l1.count(), l2.count());
            for _ in 0..2 {
                let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], b"END\r\n");
            }
            settle().await;
            assert_eq!((l1.count(), l2.count()), (before.0 + 2, before.1));
            assert_eq!(
                &r.route(Mock::req("get k\r\n"), &ctx).await.bytes[..],
                b"END\r\n"
            );
            settle().await;
            assert_eq!(l2.count(), before.1 + 1);
            assert_eq!(seen(&l1).last().unwrap(), "set k 9 60 3\r\nnew\r\n");

            // The flag alone marks an entry, even with the negative cache off; a refresh
            // that finds l2 still empty rewrites the entry.
            let l1 = Mock::replying("VALUE k 65537 1\r\nx\r\nEND\r\n");
            let l2 = Mock::replying("END\r\n");
            let off = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 5, 0);
            assert!(off.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            assert_eq!(l2.count(), 0);
            let every = L1L2CacheRoute::new(l1.r(), l2.r(), 60, 5, 1);
            assert!(every.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            settle().await;
            assert_eq!(seen(&l1).last().unwrap(), "set k 65536 5 6\r\nncache\r\n");
        });
    }

    #[test]
    fn meta_gets_use_the_flags_they_show() {
        run(|ctx| async move {
            let l1 = Mock::replying("EN\r\n");
            let l2 = Mock::replying("VA 2 f4 t-1\r\nhi\r\n");
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 30, 0, 1);
            let got = r.route(Mock::req("mg k v f t\r\n"), &ctx).await;
            assert_eq!(&got.bytes[..], b"VA 2 f4 t-1\r\nhi\r\n");
            // Without `f` the flags are unknown: no fill.
            let l2b = Mock::replying("VA 2\r\nhi\r\n");
            let r2 = L1L2CacheRoute::new(l1.r(), l2b.r(), 30, 0, 1);
            r2.route(Mock::req("mg k v\r\n"), &ctx).await;
            settle().await;
            assert_eq!(
                seen(&l1),
                ["mg k v f t\r\n", "add k 4 30 2\r\nhi\r\n", "mg k v\r\n"]
            );
            // A negative-cache entry read with `f` is a miss.
            let l1 = Mock::replying("VA 6 f65536\r\nncache\r\n");
            let r = L1L2CacheRoute::new(l1.r(), l2.r(), 30, 0, 0);
            let got = r.route(Mock::req("mg k v f\r\n"), &ctx).await;
            assert_eq!(&got.bytes[..], b"EN\r\n");
        });
    }

    #[test]
    fn config() {
        let base = r#""l1": "NullRoute", "l2": "NullRoute""#;
        let cases = [
            (format!(r#"{{{base}, "upgradingL1Exptime": 10}}"#), None),
            (
                format!(
                    r#"{{{base}, "upgradingL1Exptime": 0, "ncacheExptime": 5, "ncacheUpdatePeriod": 100}}"#
                ),
                None,
            ),
            (
                format!("{{{base}}}"),
                Some("route.upgradingL1Exptime: missing"),
            ),
            (
                format!(r#"{{{base}, "upgradingL1Exptime": "10"}}"#),
                Some("route.upgradingL1Exptime: expected an integer"),
            ),
            (
                format!(r#"{{{base}, "upgradingL1Exptime": 1, "ncacheUpdatePeriod": -1}}"#),
                Some("route.ncacheUpdatePeriod: -1: expected 0 or more"),
            ),
            (
                r#"{"l1": "NullRoute", "upgradingL1Exptime": 1}"#.to_string(),
                Some("route.l2: missing"),
            ),
        ];
        check_configs("L1L2CacheRoute", build, &cases);
    }
}
