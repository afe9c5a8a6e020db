//! `KeySplitRoute` (mcrouter's): spreads a hot key over `replicas` copies, `key`,
//! `key::1`, ..., `key::<replicas-1>`, each placed by the hash of its own key. Each router
//! host reads and writes its own copy, number `hostid % replicas` (see
//! [`crate::hostid`]), so the load of one key is split across the fleet's hosts.
//!
//! Config: `{"type": "KeySplitRoute", "destination": <route>, "replicas": 10,
//! "all_sync": false, "first_hit": false}` (`replicas` 2..=1000 and `all_sync` required,
//! `first_hit` optional).
//!
//! | request | sent to |
//! |---|---|
//! | `get`, `mg`, `lease-get`, `lease-set` | this host's copy; with `first_hit`, every copy at once, answering the first hit (`lease-set`: the first stored), else the last reply |
//! | `set`, `ms` | this host's copy; with `all_sync`, also every other copy |
//! | `delete`, `md` | every copy (the client gets this host's copy's reply) |
//! | anything else (`add`, `cas`, `incr`, `touch`, `gets`, ...) | this host's copy |
//!
//! - Copy 0 is the key itself; copy `i` appends `::i`, before the `|#|` hash stop when
//!   the key has one (`abc|#|x` -> `abc::3|#|x`), keeping a `/region/cluster/` prefix.
//! - The copies other than this host's are sent at once and their replies are not
//!   waited for. Replies carry the client's key (`VALUE abc`, not `VALUE abc::3`).
//! - A key longer than 245 bytes (no room for `::999` under memcached's 250-byte key
//!   limit) is routed unchanged and not fanned out, for every operation. mcrouter's
//!   limit is 255 (its own servers take longer keys), so it splits keys of up to 250
//!   bytes, whose copies stock memcached refuses; and for operations other than get,
//!   lease-get, lease-set, set and delete it appends the suffix to any key.

use std::rc::Rc;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{finish_in_background, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::destination::DestShared;
use crate::hash::routing_key::{key_without_route, routing_prefix, HASH_STOP};
use crate::reply::{restore_client_key, ClientKey, Reply, ReplyKind};
use crate::request::{Op, Req};

pub const MIN_REPLICAS: u32 = 2;
pub const MAX_REPLICAS: u32 = 1000;
/// Longest key that can take a suffix: `::999` still fits memcached's 250-byte keys.
pub const MAX_SPLIT_KEY_LEN: usize = protocol::Limits::DEFAULT_MAX_KEY_LEN - 2 - 3;

#[derive(Debug)]
pub struct KeySplitRoute {
    destination: RouteRef,
    replicas: u32,
    all_sync: bool,
    first_hit: bool,
    /// This host's copy: `hostid % replicas`.
    replica: u32,
}

/// What a request does under the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The key unchanged (too long to take a suffix).
    Whole,
    /// To this host's copy only.
    Own,
    /// To this host's copy, answered; the other copies in the background.
    All,
    /// To every copy at once; the first hit (or stored) answers.
    FirstHit,
}

impl KeySplitRoute {
    pub fn new(
        destination: RouteRef,
        replicas: u32,
        all_sync: bool,
        first_hit: bool,
        host_id: u32,
    ) -> Self {
        KeySplitRoute {
            destination,
            replicas,
            all_sync,
            first_hit,
            replica: host_id % replicas,
        }
    }

    fn plan(&self, op: Op, key: &[u8]) -> Plan {
        if key.len() > MAX_SPLIT_KEY_LEN {
            return Plan::Whole;
        }
        match op {
            Op::Get | Op::MetaGet | Op::LeaseGet | Op::LeaseSet if self.first_hit => Plan::FirstHit,
            Op::Set | Op::MetaSet if self.all_sync => Plan::All,
            Op::Delete | Op::MetaDelete => Plan::All,
            _ => Plan::Own,
        }
    }

    /// `req` as copy `id` gets it.
    fn copy_req(&self, req: &Req, id: u32) -> Req {
        if id == 0 {
            req.clone()
        } else {
            req.with_routing_key(&copy_key(req.routing_key(), id))
        }
    }

    /// `req` sent to copy `id`.
    fn to_copy(&self, req: &Req, id: u32, ctx: &Rc<Ctx>) -> RouteFuture {
        if id == 0 {
            return self.destination.route(req.clone(), ctx);
        }
        let original = ClientKey::of(req);
        let fut = self.destination.route(self.copy_req(req, id), ctx);
        Box::pin(async move { restore_client_key(fut.await, &original) })
    }
}

/// The key of copy `id` (> 0) of `key`.
pub fn copy_key(key: &[u8], id: u32) -> Vec<u8> {
    let suffix = format!("::{id}");
    let prefix_len = routing_prefix(key).len();
    let rest = key_without_route(key);
    let at = memchr::memmem::find(rest, HASH_STOP).map_or(key.len(), |i| prefix_len + i);
    let mut out = Vec::with_capacity(key.len() + suffix.len());
    out.extend_from_slice(&key[..at]);
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(&key[at..]);
    out
}

impl Route for KeySplitRoute {
    fn name(&self) -> String {
        format!(
            "KeySplitRoute|replicas={}|all_sync={}|first_hit={}|replica={}",
            self.replicas, self.all_sync, self.first_hit, self.replica
        )
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        if req.key_count() != 1 {
            return self.destination.route(req, ctx);
        }
        match self.plan(req.op(), req.routing_key()) {
            Plan::Whole => self.destination.route(req, ctx),
            Plan::Own => self.to_copy(&req, self.replica, ctx),
            Plan::All => {
                for id in (0..self.replicas).filter(|&id| id != self.replica) {
                    let fut = self.to_copy(&req, id, ctx);
                    tokio::task::spawn_local(fut);
                }
                self.to_copy(&req, self.replica, ctx)
            }
            Plan::FirstHit => {
                let mut futs: FuturesUnordered<RouteFuture> = (0..self.replicas)
                    .map(|id| self.to_copy(&req, id, ctx))
                    .collect();
                let wanted = if req.op() == Op::LeaseSet {
                    ReplyKind::Ok
                } else {
                    ReplyKind::Hit
                };
                Box::pin(async move {
                    let mut last: Option<Reply> = None;
                    while let Some(r) = futs.next().await {
                        if r.kind == wanted {
                            finish_in_background(futs);
                            return r;
                        }
                        last = Some(r);
                    }
                    last.unwrap_or_else(super::no_children)
                })
            }
        }
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.destination.clone()]
    }

    fn child_requests(&self, req: &Req) -> Vec<(RouteRef, Req)> {
        if req.key_count() != 1 {
            return vec![(self.destination.clone(), req.clone())];
        }
        let ids: Vec<u32> = match self.plan(req.op(), req.routing_key()) {
            Plan::Whole => vec![0],
            Plan::Own => vec![self.replica],
            Plan::All | Plan::FirstHit => (0..self.replicas).collect(),
        };
        ids.into_iter()
            .map(|id| (self.destination.clone(), self.copy_req(req, id)))
            .collect()
    }

    fn plain_destination(&self, op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        match self.plan(op, key) {
            Plan::Whole => self.destination.plain_destination(op, key),
            Plan::Own if self.replica == 0 => self.destination.plain_destination(op, key),
            _ => None,
        }
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let destination = node.route(b, "destination")?;
    let range = format!("expected an integer from {MIN_REPLICAS} to {MAX_REPLICAS}");
    let replicas = node
        .i64_field("replicas")
        .map_err(|_| node.err("replicas", range.clone()))?
        .ok_or_else(|| node.err("replicas", format!("missing; {range}")))?;
    let replicas = u32::try_from(replicas)
        .ok()
        .filter(|r| (MIN_REPLICAS..=MAX_REPLICAS).contains(r))
        .ok_or_else(|| node.err("replicas", format!("{replicas} out of range; {range}")))?;
    let all_sync = node
        .bool_field("all_sync")?
        .ok_or_else(|| node.err("all_sync", "missing; expected true or false"))?;
    let first_hit = node.bool_field("first_hit")?.unwrap_or(false);
    Ok(Arc::new(KeySplitRoute::new(
        destination,
        replicas,
        all_sync,
        first_hit,
        crate::hostid::get(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{check_configs, run, Mock};

    fn keys(m: &Mock) -> Vec<String> {
        let mut v: Vec<String> = m
            .seen()
            .iter()
            .map(|r| {
                let line = String::from_utf8_lossy(r);
                let first = line.split("\r\n").next().unwrap_or("").to_string();
                first.split(' ').nth(1).unwrap_or("").to_string()
            })
            .collect();
        v.sort();
        v
    }

    fn ten() -> Vec<String> {
        let mut all = vec!["abc".to_string()];
        all.extend((1..10).map(|i| format!("abc::{i}")));
        all.sort();
        all
    }

    #[test]
    fn each_host_reads_and_writes_its_own_copy() {
        // mcrouter's KeySplitRouteTest: hostid i -> `abc` for 0, else `abc::i`.
        run(|ctx| async move {
            for host in 0..10u32 {
                for all_sync in [false, true] {
                    let m = Mock::replying("END\r\n");
                    let r = KeySplitRoute::new(m.r(), 10, all_sync, false, host);
                    r.route(Mock::req("get abc\r\n"), &ctx).await;
                    r.route(Mock::req("lease-get abc\r\n"), &ctx).await;
                    r.route(Mock::req("add abc 0 0 1\r\nx\r\n"), &ctx).await;
                    let want = if host == 0 {
                        "abc".to_string()
                    } else {
                        format!("abc::{host}")
                    };
                    assert_eq!(keys(&m), vec![want; 3], "host {host}");
                }
            }
        });
    }

    #[test]
    fn sets_fan_out_only_with_all_sync_and_deletes_always() {
        run(|ctx| async move {
            for host in 0..10u32 {
                let m = Mock::replying("STORED\r\n");
                let r = KeySplitRoute::new(m.r(), 10, false, false, host);
                r.route(Mock::req("set abc 0 0 1\r\nx\r\n"), &ctx).await;
                assert_eq!(m.count(), 1);
                for all_sync in [false, true] {
                    let m = Mock::replying("DELETED\r\n");
                    let r = KeySplitRoute::new(m.r(), 10, all_sync, false, host);
                    let reply = r.route(Mock::req("delete abc\r\n"), &ctx).await;
                    assert_eq!(&reply.bytes[..], b"DELETED\r\n");
                    tokio::task::yield_now().await;
                    assert_eq!(keys(&m), ten(), "delete, host {host}");
                }
                let m = Mock::replying("STORED\r\n");
                let r = KeySplitRoute::new(m.r(), 10, true, false, host);
                r.route(Mock::req("set abc 0 0 1\r\nx\r\n"), &ctx).await;
                tokio::task::yield_now().await;
                assert_eq!(keys(&m), ten(), "set, host {host}");
            }
        });
    }

    #[test]
    fn the_answer_is_this_hosts_copy_under_the_clients_key() {
        run(|ctx| async move {
            let m = Mock::replying("END\r\n");
            m.answer_key("abc::2", "VALUE abc::2 5 1\r\nv\r\nEND\r\n");
            m.answer_key("abc", "SERVER_ERROR other copy\r\n");
            let r = KeySplitRoute::new(m.r(), 3, true, false, 2);
            let reply = r.route(Mock::req("get abc\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"VALUE abc 5 1\r\nv\r\nEND\r\n");
            // A delete answers this host's copy's reply, not another's error.
            m.answer_key("abc::2", "NOT_FOUND\r\n");
            let reply = r.route(Mock::req("delete abc\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"NOT_FOUND\r\n");
        });
    }

    #[test]
    fn first_hit_asks_every_copy() {
        // mcrouter's FirstHitTest and FirstHitWorstCaseTest (3 replicas, lease-get).
        run(|ctx| async move {
            for hit in ["abc", "abc::1", "abc::2"] {
                let m = Mock::replying("END\r\n");
                m.answer_key(hit, &format!("VALUE {hit} 0 1\r\nv\r\nEND\r\n"));
                let r = KeySplitRoute::new(m.r(), 3, true, true, 0);
                let reply = r.route(Mock::req("lease-get abc\r\n"), &ctx).await;
                assert!(reply.is_hit(), "{hit}");
                assert_eq!(&reply.bytes[..], b"VALUE abc 0 1\r\nv\r\nEND\r\n");
                tokio::task::yield_now().await;
                assert_eq!(keys(&m), ["abc", "abc::1", "abc::2"]);
            }
            let m = Mock::replying("END\r\n");
            let r = KeySplitRoute::new(m.r(), 3, true, true, 1);
            assert!(r.route(Mock::req("get abc\r\n"), &ctx).await.is_miss());
            assert_eq!(m.count(), 3);
        });
    }

    #[test]
    fn admin_walks_see_the_copy_keys() {
        let r = KeySplitRoute::new(Arc::new(crate::route::null::NullRoute), 3, false, false, 2);
        let keys = |req: &str| -> Vec<Vec<u8>> {
            r.child_requests(&Mock::req(req))
                .iter()
                .map(|(_, q)| q.key().to_vec())
                .collect()
        };
        assert_eq!(keys("get hot\r\n"), [b"hot::2".to_vec()]);
        assert_eq!(
            keys("delete hot\r\n"),
            [b"hot".to_vec(), b"hot::1".to_vec(), b"hot::2".to_vec()]
        );
    }

    #[test]
    fn copy_keys() {
        assert_eq!(copy_key(b"abc", 3), b"abc::3");
        assert_eq!(copy_key(b"abc|#|ignore_me", 3), b"abc::3|#|ignore_me");
        assert_eq!(copy_key(b"/r/c/abc|#|x", 12), b"/r/c/abc::12|#|x");
        assert_eq!(copy_key(b"/r/c/abc", 1), b"/r/c/abc::1");
    }

    #[test]
    fn long_keys_stay_whole() {
        // mcrouter's TestLongKey (host 1 of 5), with memcached's 250-byte limit where
        // mcrouter has 255: 245 bytes are split, longer keys are not.
        let r = KeySplitRoute::new(Arc::new(crate::route::null::NullRoute), 5, true, true, 1);
        let long = vec![b'a'; 246];
        for op in [Op::Get, Op::Delete, Op::Set, Op::LeaseGet, Op::Incr] {
            assert_eq!(r.plan(op, &long), Plan::Whole, "{op:?}");
        }
        assert_eq!(r.plan(Op::Get, &long[..245]), Plan::FirstHit);
        assert_eq!(r.plan(Op::Delete, &long[..245]), Plan::All);
        run(|ctx| async move {
            let m = Mock::replying("END\r\n");
            let r = KeySplitRoute::new(m.r(), 5, true, false, 1);
            let (split, whole) = ("a".repeat(245), "b".repeat(250));
            r.route(Mock::req(&format!("get {split}\r\n")), &ctx).await;
            r.route(Mock::req(&format!("get {whole}\r\n")), &ctx).await;
            assert_eq!(keys(&m), [format!("{split}::1"), whole]);
        });
    }

    #[test]
    fn base64_meta_keys_are_split_decoded() {
        run(|ctx| async move {
            let m = Mock::replying("EN\r\n");
            let r = KeySplitRoute::new(m.r(), 4, false, false, 3);
            // "abc" is YWJj; "abc::3" is YWJjOjoz.
            r.route(Mock::req("mg YWJj b v\r\n"), &ctx).await;
            assert_eq!(keys(&m), ["YWJjOjoz"]);
        });
    }

    #[test]
    fn config() {
        let d = r#""destination": "NullRoute""#;
        let cases = [
            (
                format!(r#"{{{d}, "replicas": 2, "all_sync": false}}"#),
                None,
            ),
            (
                format!(r#"{{{d}, "replicas": 1000, "all_sync": true, "first_hit": true}}"#),
                None,
            ),
            (
                format!(r#"{{{d}, "replicas": 1, "all_sync": false}}"#),
                Some("route.replicas: 1 out of range; expected an integer from 2 to 1000"),
            ),
            (
                format!(r#"{{{d}, "replicas": 1001, "all_sync": false}}"#),
                Some("route.replicas: 1001 out of range"),
            ),
            (
                format!(r#"{{{d}, "replicas": "3", "all_sync": false}}"#),
                Some("route.replicas: expected an integer"),
            ),
            (
                format!(r#"{{{d}, "all_sync": false}}"#),
                Some("route.replicas: missing"),
            ),
            (
                format!(r#"{{{d}, "replicas": 3}}"#),
                Some("route.all_sync: missing; expected true or false"),
            ),
            (
                r#"{"replicas": 3, "all_sync": false}"#.to_string(),
                Some("route.destination: missing"),
            ),
        ];
        check_configs("KeySplitRoute", build, &cases);
    }
}
