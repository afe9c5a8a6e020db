//! `RemoteMarkerRoute`: read-your-writes across regions with remote markers (NSDI'13
//! "Scaling Memcache at Facebook", section 5), for the router of a **non-master** region.
//!
//! Config:
//!
//! ```text
//! {"type": "RemoteMarkerRoute",
//!  "local": <route>,            // this region's cache
//!  "master": <route>,           // the master region's cache
//!  "markers": <route>,          // where markers live (default: "local")
//!  "marker_prefix": "__rm__:",  // marker key = prefix + key
//!  "marker_ttl": 60}            // seconds; bounds staleness if an invalidation is lost
//! ```
//!
//! - A client **write** (storage, arithmetic, touch, delete) first sets the marker
//!   `r_k` in `markers` (if that fails, the write fails: without the marker a reader
//!   here could see stale data), then goes to `master`, then deletes `k` in `local`; the
//!   client gets the master's reply.
//! - A **read** goes to `local`; on a miss, if the marker `r_k` exists the read goes to
//!   `master` (the local region has not caught up with the write yet), else the local
//!   miss is the answer.
//! - A **delete from the invalidation intake** ([`Req::invalidation`], the database
//!   tailer's authoritative invalidation once the write has replicated) deletes `k` in
//!   `local` and removes the marker.
//!
//! A marker key is `prefix + key` when that is a valid text key of at most 250 bytes;
//! otherwise `prefix + "#" + md5(key)` in hex (the same on every router of the region).

use std::rc::Rc;
use std::sync::Arc;

use md5::{Digest, Md5};

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::ErrorClass;
use crate::request::Req;

pub const DEFAULT_MARKER_PREFIX: &str = "__rm__:";
pub const DEFAULT_MARKER_TTL: u32 = 60;

#[derive(Debug)]
pub struct RemoteMarkerRoute {
    local: RouteRef,
    master: RouteRef,
    markers: RouteRef,
    prefix: Vec<u8>,
    ttl: u32,
}

impl RemoteMarkerRoute {
    pub fn new(
        local: RouteRef,
        master: RouteRef,
        markers: RouteRef,
        prefix: &str,
        ttl: u32,
    ) -> Self {
        RemoteMarkerRoute {
            local,
            master,
            markers,
            prefix: prefix.as_bytes().to_vec(),
            ttl,
        }
    }

    /// The marker key for `key`.
    pub fn marker_key(&self, key: &[u8]) -> Vec<u8> {
        let mut m = self.prefix.clone();
        let text = key.iter().all(|&b| b > b' ' && b != 0x7f);
        if text && m.len() + key.len() <= protocol::Limits::DEFAULT_MAX_KEY_LEN {
            m.extend_from_slice(key);
        } else {
            m.push(b'#');
            for b in Md5::digest(key) {
                m.extend_from_slice(format!("{b:02x}").as_bytes());
            }
        }
        m
    }

    /// The marker request for `key`. The marker is named after the key without its
    /// `/region/cluster/` prefix, the key the servers store (the prefix is stripped at the
    /// destination), so `k` and `/west/c/k` share one marker.
    fn marker_req(&self, cmd: &str, key: &[u8]) -> Req {
        let mk = self.marker_key(crate::hash::routing_key::key_without_route(key));
        let mut raw = Vec::with_capacity(mk.len() + 32);
        raw.extend_from_slice(cmd.as_bytes());
        raw.push(b' ');
        raw.extend_from_slice(&mk);
        if cmd == "set" {
            raw.extend_from_slice(format!(" 0 {} 1\r\n1\r\n", self.ttl).as_bytes());
        } else {
            raw.extend_from_slice(b"\r\n");
        }
        Req::from_wire(&raw).expect("marker requests are well formed")
    }

    fn delete_req(key: &[u8]) -> Option<Req> {
        let mut raw = Vec::with_capacity(key.len() + 9);
        raw.extend_from_slice(b"delete ");
        raw.extend_from_slice(key);
        raw.extend_from_slice(b"\r\n");
        Req::from_wire(&raw)
    }
}

impl Route for RemoteMarkerRoute {
    fn name(&self) -> String {
        format!(
            "RemoteMarkerRoute|{}",
            String::from_utf8_lossy(&self.prefix)
        )
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let op = req.op();
        let key = req.routing_key().to_vec();
        if op.is_delete() && req.invalidation() {
            let local = self.local.route(req, ctx);
            let marker = self.markers.route(self.marker_req("delete", &key), ctx);
            return Box::pin(async move {
                let (r, _) = futures_util::future::join(local, marker).await;
                r
            });
        }
        if op.is_update() || op.is_delete() {
            let set_marker = self.markers.route(self.marker_req("set", &key), ctx);
            let master = self.master.clone();
            let local = self.local.clone();
            let ctx = ctx.clone();
            return Box::pin(async move {
                let m = set_marker.await;
                if m.is_error() {
                    return m;
                }
                let r = master.route(req, &ctx).await;
                if let Some(d) = Self::delete_req(&key) {
                    let _ = local.route(d, &ctx).await;
                }
                r
            });
        }
        if !op.is_get() {
            return self.local.route(req, ctx);
        }
        let local = self.local.route(req.clone(), ctx);
        let check = self.marker_req("get", &key);
        let markers = self.markers.clone();
        let master = self.master.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            let r = local.await;
            if !r.is_miss() {
                return r;
            }
            let m = markers.route(check, &ctx).await;
            if m.is_hit() {
                if crate::metrics::enabled() {
                    metrics::counter!("mcrouter_remote_marker_reads_total").increment(1);
                }
                return master.route(req, &ctx).await;
            }
            if m.error_class()
                .is_some_and(|c| !matches!(c, ErrorClass::RemoteError | ErrorClass::ClientError))
            {
                // The marker store is unreachable: the master is the safe answer.
                return master.route(req, &ctx).await;
            }
            r
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![
            self.local.clone(),
            self.master.clone(),
            self.markers.clone(),
        ]
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        let op = req.op();
        if op.is_delete() && req.invalidation() {
            vec![self.local.clone(), self.markers.clone()]
        } else if op.is_update() || op.is_delete() {
            vec![
                self.markers.clone(),
                self.master.clone(),
                self.local.clone(),
            ]
        } else if op.is_get() {
            vec![
                self.local.clone(),
                self.markers.clone(),
                self.master.clone(),
            ]
        } else {
            vec![self.local.clone()]
        }
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let local = node.route(b, "local")?;
    let master = node.route(b, "master")?;
    let markers = node
        .opt_route(b, "markers")?
        .unwrap_or_else(|| local.clone());
    let prefix = node
        .str_field("marker_prefix")?
        .unwrap_or(DEFAULT_MARKER_PREFIX);
    if prefix.is_empty() || prefix.bytes().any(|c| c <= b' ' || c == 0x7f) || prefix.len() > 100 {
        return Err(node.err(
            "marker_prefix",
            "expected a non-empty key prefix without spaces or control characters (at most 100 bytes)",
        ));
    }
    let ttl = match node.i64_field("marker_ttl")? {
        None => DEFAULT_MARKER_TTL,
        Some(t) if (1..=2_592_000).contains(&t) => t as u32,
        Some(_) => {
            return Err(node.err(
                "marker_ttl",
                "expected seconds between 1 and 2592000 (30 days)",
            ))
        }
    };
    Ok(Arc::new(RemoteMarkerRoute::new(
        local, master, markers, prefix, ttl,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    fn route(local: &Arc<Mock>, master: &Arc<Mock>, markers: &Arc<Mock>) -> RemoteMarkerRoute {
        RemoteMarkerRoute::new(local.r(), master.r(), markers.r(), "rm:", 30)
    }

    #[test]
    fn a_write_sets_the_marker_then_writes_master_then_deletes_local() {
        run(|ctx| async move {
            let (local, master, markers) = (
                Mock::replying("DELETED\r\n"),
                Mock::replying("STORED\r\n"),
                Mock::replying("STORED\r\n"),
            );
            let r = route(&local, &master, &markers);
            let reply = r.route(Mock::req("set k 5 0 1\r\nv\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
            assert_eq!(markers.seen(), vec![b"set rm:k 0 30 1\r\n1\r\n".to_vec()]);
            assert_eq!(master.seen(), vec![b"set k 5 0 1\r\nv\r\n".to_vec()]);
            assert_eq!(local.seen(), vec![b"delete k\r\n".to_vec()]);
        });
    }

    #[test]
    fn a_write_fails_when_the_marker_cannot_be_set() {
        run(|ctx| async move {
            let (local, master, markers) = (
                Mock::replying("DELETED\r\n"),
                Mock::replying("STORED\r\n"),
                Mock::replying("SERVER_ERROR down\r\n"),
            );
            let r = route(&local, &master, &markers);
            let reply = r.route(Mock::req("delete k\r\n"), &ctx).await;
            assert!(reply.is_error());
            assert_eq!((master.count(), local.count()), (0, 0));
        });
    }

    #[test]
    fn a_local_miss_with_a_marker_reads_the_master() {
        run(|ctx| async move {
            let local = Mock::replying("END\r\n");
            let master = Mock::replying("VALUE k 0 2\r\nv2\r\nEND\r\n");
            let marked = Mock::replying("VALUE rm:k 0 1\r\n1\r\nEND\r\n");
            let r = route(&local, &master, &marked);
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert!(reply.is_hit());
            assert_eq!(marked.seen(), vec![b"get rm:k\r\n".to_vec()]);
            // Without a marker the local miss stands.
            let unmarked = Mock::replying("END\r\n");
            let r = route(&local, &master, &unmarked);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            assert_eq!(master.count(), 1);
            // A local hit never looks at markers.
            let hit = Mock::replying("VALUE k 0 1\r\nx\r\nEND\r\n");
            let r = route(&hit, &master, &marked);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_hit());
            assert_eq!((marked.count(), master.count()), (1, 1));
        });
    }

    #[test]
    fn an_intake_delete_clears_local_and_the_marker() {
        run(|ctx| async move {
            let (local, master, markers) = (
                Mock::replying("DELETED\r\n"),
                Mock::replying("DELETED\r\n"),
                Mock::replying("DELETED\r\n"),
            );
            let r = route(&local, &master, &markers);
            let req = Mock::req("delete k\r\n").into_invalidation();
            let reply = r.route(req, &ctx).await;
            assert_eq!(&reply.bytes[..], b"DELETED\r\n");
            assert_eq!(local.seen(), vec![b"delete k\r\n".to_vec()]);
            assert_eq!(markers.seen(), vec![b"delete rm:k\r\n".to_vec()]);
            assert_eq!(master.count(), 0);
        });
    }

    #[test]
    fn a_routing_prefix_is_not_part_of_the_marker() {
        run(|ctx| async move {
            let (local, master, markers) = (
                Mock::replying("DELETED\r\n"),
                Mock::replying("STORED\r\n"),
                Mock::replying("STORED\r\n"),
            );
            let r = route(&local, &master, &markers);
            let reply = r
                .route(Mock::req("set /west/c/k 5 0 1\r\nv\r\n"), &ctx)
                .await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
            assert_eq!(markers.seen(), vec![b"set rm:k 0 30 1\r\n1\r\n".to_vec()]);
            // The write and the local delete keep the prefix for the destination to strip.
            assert_eq!(
                master.seen(),
                vec![b"set /west/c/k 5 0 1\r\nv\r\n".to_vec()]
            );
            assert_eq!(local.seen(), vec![b"delete /west/c/k\r\n".to_vec()]);
            // A plain read of the same key checks the same marker.
            let miss = Mock::replying("END\r\n");
            let marked = Mock::replying("VALUE rm:k 0 1\r\n1\r\nEND\r\n");
            let master = Mock::replying("VALUE k 0 2\r\nv2\r\nEND\r\n");
            let r = route(&miss, &master, &marked);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_hit());
            assert_eq!(marked.seen(), vec![b"get rm:k\r\n".to_vec()]);
        });
    }

    #[test]
    fn long_or_binary_keys_get_a_hashed_marker() {
        let m = Mock::replying("END\r\n");
        let r = route(&m, &m, &m);
        assert_eq!(r.marker_key(b"abc"), b"rm:abc".to_vec());
        let long = vec![b'x'; 250];
        let mk = r.marker_key(&long);
        assert_eq!(mk.len(), 3 + 1 + 32);
        assert!(mk.starts_with(b"rm:#"));
        assert_ne!(r.marker_key(&[0, 1, 2]), r.marker_key(&[0, 1, 3]));
    }
}
