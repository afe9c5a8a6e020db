//! `DestinationRoute`: a leaf that sends the request to one server over the worker's
//! pipelined connections (mcrouter builds these for every server of a pool).
//!
//! Config: `{"type": "DestinationRoute", "server": "host:port"}` or `"DestinationRoute|host:port"`;
//! options `"asynclog": false` (failed deletes are not spooled, see [`crate::asynclog`]),
//! `"coalesce": false` (see [`crate::coalesce`]) and `"lease_mode": "native"|"meta"`,
//! `"lease_ttl": N` (see [`crate::lease`]) and `"keep_routing_prefix": true`. Pools take the
//! same options for all their servers.
//!
//! As mcrouter's `DestinationRoute` (`mcrouter/routes/DestinationRoute.h`, `doRoute`), a
//! key's `/region/cluster/` routing prefix (sent by the client, or set by a
//! `ModifyKeyRoute`'s `set_routing_prefix`) is stripped here, just before the request
//! goes to the server, unless the pool says `keep_routing_prefix` (mcrouter's pool option
//! of that name); replies carry the key as it reached this leaf.
//!
//! Leaves are where the router's per-key bookkeeping happens, because a leaf is "one key on
//! one server": coalescing of identical reads, closing flights on writes, remembering which
//! server issued a lease token, sending a `lease-set` to that server, and emulating leases
//! with meta commands for stock memcached.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use protocol::Request;
use serde_json::Value;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::coalesce::Coalescer;
use crate::config::{Builder, ConfigError};
use crate::destination::{DestShared, ReplyEnd};
use crate::hash::{key_without_route, routing_prefix};
use crate::lease::{self, LeaseMode};
use crate::reply::{restore_client_key, ClientKey};
use crate::request::{Op, Req};

/// Per-leaf options (from the pool or the `DestinationRoute` node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafOptions {
    /// Merge identical in-flight reads (default on).
    pub coalesce: bool,
    pub lease_mode: LeaseMode,
    /// Spool deletes that fail to the asynclog (default on, as in mcrouter; the router
    /// needs `--async-dir`).
    pub asynclog: bool,
    /// Send keys with their routing prefix (default off: stripped, as mcrouter does).
    pub keep_routing_prefix: bool,
}

impl Default for LeafOptions {
    fn default() -> Self {
        LeafOptions {
            coalesce: true,
            lease_mode: LeaseMode::Native,
            asynclog: true,
            keep_routing_prefix: false,
        }
    }
}

impl LeafOptions {
    /// Reads `coalesce`, `lease_mode` and `lease_ttl` from a pool or route object.
    pub fn from_object(
        obj: Option<&serde_json::Map<String, Value>>,
        path: &str,
    ) -> Result<Self, ConfigError> {
        let mut o = LeafOptions::default();
        let Some(obj) = obj else {
            return Ok(o);
        };
        let at = |f: &str| super::join(path, f);
        if let Some(v) = obj.get("asynclog") {
            o.asynclog = v
                .as_bool()
                .ok_or_else(|| ConfigError::at(at("asynclog"), "expected true or false"))?;
        }
        if let Some(v) = obj.get("keep_routing_prefix") {
            o.keep_routing_prefix = v.as_bool().ok_or_else(|| {
                ConfigError::at(at("keep_routing_prefix"), "expected true or false")
            })?;
        }
        if let Some(v) = obj.get("coalesce") {
            o.coalesce = v
                .as_bool()
                .ok_or_else(|| ConfigError::at(at("coalesce"), "expected true or false"))?;
        }
        let ttl = match obj.get("lease_ttl") {
            None => lease::DEFAULT_META_LEASE_TTL,
            Some(v) => v
                .as_u64()
                .filter(|&t| (1..=u64::from(u32::MAX)).contains(&t))
                .ok_or_else(|| {
                    ConfigError::at(at("lease_ttl"), "expected a number of seconds >= 1")
                })? as u32,
        };
        match obj.get("lease_mode").map(|v| v.as_str()) {
            None | Some(Some("native")) => {}
            Some(Some("meta")) => o.lease_mode = LeaseMode::Meta { ttl },
            Some(_) => {
                return Err(ConfigError::at(
                    at("lease_mode"),
                    "expected \"native\" (the server knows lease-get) or \"meta\" \
                     (emulate leases with mg/ms, stock memcached 1.6)",
                ))
            }
        }
        Ok(o)
    }
}

#[derive(Debug)]
pub struct DestinationRoute {
    dest: Arc<DestShared>,
    opts: LeafOptions,
}

impl DestinationRoute {
    pub fn new(dest: Arc<DestShared>) -> Self {
        Self::with_options(dest, LeafOptions::default())
    }

    pub fn with_options(dest: Arc<DestShared>, opts: LeafOptions) -> Self {
        DestinationRoute { dest, opts }
    }

    /// Send to this leaf's server (lease-get: translated and its token remembered).
    fn send(&self, req: &Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let op = req.op();
        if op != Op::LeaseGet {
            return Box::pin(ctx.dests.send(&self.dest, req.raw(), req.reply_end()));
        }
        let dest = self.dest.clone();
        let key = Bytes::copy_from_slice(req.key());
        match self.opts.lease_mode {
            LeaseMode::Native => {
                let fut = ctx.dests.send(&self.dest, req.raw(), ReplyEnd::Values);
                Box::pin(async move {
                    let r = fut.await;
                    if let Some((_, token, _)) = lease::parse_lvalue(&r.bytes) {
                        lease::remember(&key, token, &dest, LeaseMode::Native);
                    }
                    r
                })
            }
            mode @ LeaseMode::Meta { ttl } => {
                let fut =
                    ctx.dests
                        .send(&self.dest, &lease::meta_lease_get(&key, ttl), ReplyEnd::One);
                Box::pin(async move {
                    let (r, token) = lease::meta_get_reply(&key, fut.await);
                    if let Some(t) = token {
                        lease::remember(&key, t, &dest, mode);
                    }
                    r
                })
            }
        }
    }

    /// `lease-set`: to the server that issued the token, in its pool's lease mode.
    fn lease_set(&self, req: &Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let Some(Request::LeaseSet {
            key,
            token,
            flags,
            exptime,
            data,
            ..
        }) = req.parsed()
        else {
            return self.send(req, ctx);
        };
        let found = lease::issuer(key, token);
        if crate::metrics::enabled() {
            let routing = if found.is_some() { "issuer" } else { "unknown" };
            metrics::counter!("mcrouter_lease_sets_total", "routing" => routing).increment(1);
        }
        let (dest, mode) = found.unwrap_or((self.dest.clone(), self.opts.lease_mode));
        ctx.coalesce.write_passed(dest.id, key);
        match mode {
            LeaseMode::Native => Box::pin(ctx.dests.send(&dest, req.raw(), ReplyEnd::One)),
            LeaseMode::Meta { .. } => {
                let raw = lease::meta_lease_set(key, token, flags, exptime, data);
                let fut = ctx.dests.send(&dest, &raw, ReplyEnd::One);
                Box::pin(async move { lease::meta_set_reply(fut.await) })
            }
        }
    }
}

impl Route for DestinationRoute {
    fn name(&self) -> String {
        format!("DestinationRoute|{}", self.dest.addr)
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        // The cheap test first: plain keys (no leading `/`) skip the key count.
        if !self.opts.keep_routing_prefix
            && !routing_prefix(req.routing_key()).is_empty()
            && req.key_count() == 1
        {
            let original = ClientKey::of(&req);
            let stripped = req.with_routing_key(key_without_route(req.routing_key()));
            let fut = self.route_here(stripped, ctx);
            return Box::pin(async move { restore_client_key(fut.await, &original) });
        }
        self.route_here(req, ctx)
    }

    fn plain_destination(&self, _op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        // A key to rewrite is not sent as part of a batched multi-get.
        if !self.opts.keep_routing_prefix && !routing_prefix(key).is_empty() {
            return None;
        }
        Some(&self.dest)
    }

    fn destination(&self) -> Option<&Arc<DestShared>> {
        Some(&self.dest)
    }
}

impl DestinationRoute {
    /// Route `req`, its key as the server gets it.
    fn route_here(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let op = req.op();
        if op == Op::LeaseSet {
            return self.lease_set(&req, ctx);
        }
        if op.is_delete() {
            ctx.coalesce.write_passed(self.dest.id, req.routing_key());
            let fut = self.send(&req, ctx);
            return match &ctx.asynclog {
                Some(log) if self.opts.asynclog || req.asynclog() => {
                    crate::asynclog::spool_on_failure(log.clone(), &self.dest.addr, &req, fut)
                }
                _ => fut,
            };
        }
        if op.is_update() {
            ctx.coalesce.write_passed(self.dest.id, req.routing_key());
        } else if self.opts.coalesce && Coalescer::eligible(&req) {
            return Coalescer::join_or_send(ctx, self.dest.id, &req, || self.send(&req, ctx));
        }
        self.send(&req, ctx)
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let server = match node.arg {
        Some(a) => a,
        None => node
            .str_field("server")?
            .ok_or_else(|| node.err("server", "missing; expected \"host:port\""))?,
    };
    let dest = b.destination(server, &node.path)?;
    let opts = LeafOptions::from_object(node.obj, &node.path)?;
    Ok(Arc::new(DestinationRoute::with_options(dest, opts)))
}
