//! Route handles: the nodes of the route tree. One file per handle, all implementing
//! [`Route`].
//!
//! A tree is built from the config ([`crate::config`]) and shared by all workers
//! (`Arc<dyn Route>`); it is immutable and replaced as a whole on reload. Routing a
//! request is synchronous up to the first wait: `route()` may queue bytes on a
//! destination connection before it returns the future, so a client's pipelined requests
//! reach the backends in order and in one batch.
//!
//! ```text
//!   RootRoute (routing prefix: /region/cluster/)
//!     └─ PrefixSelectorRoute ─ OperationSelectorRoute ─ AllAsyncRoute ─ FailoverRoute ─ PoolRoute
//!                                                                                       └─ HashRoute ─ DestinationRoute*
//! ```
//!
//! Adding a handle (lease, coalescing, asynclog, gutter, warm-up...): a new file with a
//! struct implementing [`Route`] and a `build(&Node, &mut Builder)` function, and one line
//! in [`build_typed`].

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{Builder, ConfigError};
use crate::destination::{DestShared, WorkerDests};
use crate::reply::{ErrorClass, ErrorSet, Reply};
use crate::request::{Op, Req};
use failover::FailoverErrors;

pub mod all_async;
pub mod all_fastest;
pub mod all_initial;
pub mod all_majority;
pub mod all_sync;
pub mod asynclog_route;
pub mod big_value;
pub mod blackhole;
pub mod destination;
pub mod dev_null;
pub mod error;
pub mod failover;
pub mod failover_with_exptime;
pub mod hash;
pub mod host_id;
pub mod key_order;
pub mod key_split;
pub mod l1l2_cache;
pub mod l1l2_size_split;
pub mod latency_injection;
pub mod latest;
pub mod logging;
pub mod migrate;
pub mod miss_failover;
pub mod modify_exptime;
pub mod modify_key;
pub mod null;
pub mod operation_selector;
pub mod pool;
pub mod prefix_selector;
pub mod random;
pub mod rate_limit;
pub mod remote_marker;
pub mod root;
pub mod shadow;
pub mod warm_up;

#[cfg(test)]
pub(crate) mod testing;

/// The future of a routed request. Not `Send`: each worker thread runs its own requests.
pub type RouteFuture = Pin<Box<dyn Future<Output = Reply>>>;

/// A shared route handle.
pub type RouteRef = Arc<dyn Route>;

/// Per-worker context a route uses to reach destinations.
pub struct Ctx {
    pub dests: WorkerDests,
    /// This worker's in-flight reads (see [`crate::coalesce`]).
    pub coalesce: crate::coalesce::Coalescer,
    /// The router's spool for failed deletes (`--async-dir`); `None` when off.
    pub asynclog: Option<Arc<crate::asynclog::AsyncLog>>,
}

/// A node of the route tree.
pub trait Route: Send + Sync + std::fmt::Debug {
    /// mcrouter-style description, e.g. `PoolRoute|A` or `FailoverRoute`.
    fn name(&self) -> String;

    /// Route `req`. Work that can start at once (queuing on a connection) starts before
    /// this returns.
    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture;

    /// Every child (config order): used to list destinations and for `flush_all`.
    fn children(&self) -> Vec<RouteRef> {
        Vec::new()
    }

    /// The children `req` would be sent to (admin `route`/`route_handles`); by default all.
    fn children_for(&self, _req: &Req) -> Vec<RouteRef> {
        self.children()
    }

    /// The request each child would get (admin `route`/`route_handles`): by default `req`
    /// itself, to each of [`Route::children_for`]; routes that change the key say how.
    fn child_requests(&self, req: &Req) -> Vec<(RouteRef, Req)> {
        self.children_for(req)
            .into_iter()
            .map(|c| (c, req.clone()))
            .collect()
    }

    /// When this subtree sends `op` on `key` to exactly one destination and does nothing
    /// else with the reply, that destination: multi-key gets are then batched, one
    /// request per destination.
    fn plain_destination(&self, _op: Op, _key: &[u8]) -> Option<&Arc<DestShared>> {
        None
    }

    /// The destination this node is, for leaf nodes.
    fn destination(&self) -> Option<&Arc<DestShared>> {
        None
    }
}

/// A ready future (router-made replies).
pub fn ready(reply: Reply) -> RouteFuture {
    Box::pin(std::future::ready(reply))
}

/// Every destination under `route` (deduplicated, tree order).
pub fn all_destinations(route: &RouteRef) -> Vec<Arc<DestShared>> {
    let mut out: Vec<Arc<DestShared>> = Vec::new();
    fn walk(r: &RouteRef, out: &mut Vec<Arc<DestShared>>) {
        if let Some(d) = r.destination() {
            if !out.iter().any(|x| x.id == d.id) {
                out.push(d.clone());
            }
        }
        for c in r.children() {
            walk(&c, out);
        }
    }
    walk(route, &mut out);
    out
}

/// The destinations `req` would be sent to (admin `route(op,key)`).
pub fn destinations_for(route: &RouteRef, req: &Req) -> Vec<Arc<DestShared>> {
    let mut out: Vec<Arc<DestShared>> = Vec::new();
    fn walk(r: &RouteRef, req: &Req, out: &mut Vec<Arc<DestShared>>) {
        if let Some(d) = r.destination() {
            if !out.iter().any(|x| x.id == d.id) {
                out.push(d.clone());
            }
        }
        for (c, r) in r.child_requests(req) {
            walk(&c, &r, out);
        }
    }
    walk(route, req, &mut out);
    out
}

/// The handles `req` traverses, one per line, indented by depth (admin `route_handles`).
pub fn describe_path(route: &RouteRef, req: &Req) -> String {
    let mut out = String::new();
    fn walk(r: &RouteRef, req: &Req, depth: usize, out: &mut String) {
        let _ = writeln!(out, "{}{}", "  ".repeat(depth), r.name());
        for (c, r) in r.child_requests(req) {
            walk(&c, &r, depth + 1, out);
        }
    }
    walk(route, req, 0, &mut out);
    out
}

/// A route description being built: its JSON path, and either an object or the argument
/// of a `Type|arg` string.
pub struct Node<'a> {
    pub path: String,
    pub type_name: String,
    pub obj: Option<&'a Map<String, Value>>,
    pub arg: Option<&'a str>,
}

impl<'a> Node<'a> {
    pub fn err(&self, field: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(join(&self.path, field), msg)
    }

    pub fn field(&self, name: &str) -> Option<&'a Value> {
        self.obj.and_then(|o| o.get(name))
    }

    /// The object in field `name` as a node of its own (`None` when the field is absent;
    /// an error saying `expected` when it is not an object).
    pub fn object_field(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<Option<Node<'a>>, ConfigError> {
        let Some(v) = self.field(name) else {
            return Ok(None);
        };
        let path = join(&self.path, name);
        let Some(obj) = v.as_object() else {
            return Err(ConfigError::at(path, expected));
        };
        Ok(Some(Node {
            path,
            type_name: name.into(),
            obj: Some(obj),
            arg: None,
        }))
    }

    /// A required child route in field `name`.
    pub fn route(&self, b: &mut Builder, name: &str) -> Result<RouteRef, ConfigError> {
        match self.field(name) {
            Some(v) => b.route(v, &join(&self.path, name)),
            None => Err(self.err(name, "missing; expected a route")),
        }
    }

    /// An optional child route in field `name`.
    pub fn opt_route(&self, b: &mut Builder, name: &str) -> Result<Option<RouteRef>, ConfigError> {
        match self.field(name) {
            Some(v) => b.route(v, &join(&self.path, name)).map(Some),
            None => Ok(None),
        }
    }

    /// Children: the `children` field (a list of routes, or `"Pool|A"`), or the
    /// `Type|Pool|A` argument.
    pub fn children(&self, b: &mut Builder) -> Result<Vec<RouteRef>, ConfigError> {
        if let Some(arg) = self.arg {
            return b.route_list(&Value::String(arg.to_string()), &self.path);
        }
        match self.field("children") {
            Some(v) => {
                let list = b.route_list(v, &join(&self.path, "children"))?;
                if list.is_empty() {
                    return Err(self.err("children", "expected at least one route"));
                }
                Ok(list)
            }
            None => Err(self.err("children", "missing; expected a list of routes")),
        }
    }

    pub fn str_field(&self, name: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.field(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(name, "expected a string")),
        }
    }

    pub fn f64_field(&self, name: &str) -> Result<Option<f64>, ConfigError> {
        match self.field(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(name, "expected a number")),
        }
    }

    pub fn i64_field(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        match self.field(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.err(name, "expected an integer")),
        }
    }

    pub fn bool_field(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.field(name) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(name, "expected true or false")),
        }
    }

    /// `failover_errors`: a list of error names (for every operation), or an object with
    /// a list per operation kind, `{"gets": [...], "updates": [...], "deletes": [...]}`
    /// (a kind left out keeps the default), as mcrouter's `FailoverErrorsSettings`.
    pub fn failover_errors(&self, name: &str) -> Result<FailoverErrors, ConfigError> {
        let Some(v) = self.field(name) else {
            return Ok(FailoverErrors::default());
        };
        if let Some(obj) = v.as_object() {
            let mut out = FailoverErrors::default();
            for (kind, list) in obj {
                let field = format!("{name}.{kind}");
                let set = Some(self.error_set(&field, list)?);
                match kind.as_str() {
                    "gets" => out.gets = set,
                    "updates" => out.updates = set,
                    "deletes" => out.deletes = set,
                    _ => {
                        return Err(self.err(
                            &field,
                            format!(
                            "unknown operation kind {kind:?}; expected gets, updates or deletes"
                        ),
                        ))
                    }
                }
            }
            return Ok(out);
        }
        let set = Some(self.error_set(name, v)?);
        Ok(FailoverErrors {
            gets: set,
            updates: set,
            deletes: set,
        })
    }

    /// One list of error names at field `name` (mcrouter's result names without `mc_res_`).
    pub(crate) fn error_set(&self, name: &str, v: &Value) -> Result<ErrorSet, ConfigError> {
        let Some(list) = v.as_array() else {
            return Err(self.err(
                name,
                "expected a list of error names, or an object {\"gets\": [...], \"updates\": [...], \"deletes\": [...]}",
            ));
        };
        let mut out = ErrorSet::default();
        for (i, e) in list.iter().enumerate() {
            let name_i = format!("{name}[{i}]");
            let s = e
                .as_str()
                .ok_or_else(|| self.err(&name_i, "expected a string"))?;
            let c = ErrorClass::from_config_name(s).ok_or_else(|| {
                self.err(
                    &name_i,
                    format!(
                        "unknown error {s:?}; expected one of {}",
                        ErrorClass::config_names().join(", ")
                    ),
                )
            })?;
            // A name for a result this router never produces matches nothing.
            if let Some(c) = c {
                out.insert(c);
            }
        }
        Ok(out)
    }
}

/// `a.b` / `a[0]` path joining.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else if field.starts_with('[') {
        format!("{path}{field}")
    } else {
        format!("{path}.{field}")
    }
}

/// Every route type the config accepts.
pub const ROUTE_TYPES: &[&str] = &[
    "PoolRoute",
    "HashRoute",
    "FailoverRoute",
    "FailoverWithExptimeRoute",
    "AllSyncRoute",
    "AllAsyncRoute",
    "AllInitialRoute",
    "AllMajorityRoute",
    "AllFastestRoute",
    "MissFailoverRoute",
    "MigrateRoute",
    "LatestRoute",
    "RandomRoute",
    "OperationSelectorRoute",
    "PrefixSelectorRoute",
    "ShadowRoute",
    "ModifyKeyRoute",
    "ModifyExptimeRoute",
    "RateLimitRoute",
    "ErrorRoute",
    "NullRoute",
    "DestinationRoute",
    "WarmUpRoute",
    "RemoteMarkerRoute",
    "PrefixPolicyRoute",
    "DevNullRoute",
    "HostIdRoute",
    "KeySplitRoute",
    "L1L2CacheRoute",
    "AsynclogRoute",
    "LatencyInjectionRoute",
    "LoggingRoute",
    "L1L2SizeSplitRoute",
    "BlackholeRoute",
];

/// Build a route of a known type.
pub fn build_typed(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    match node.type_name.as_str() {
        "PoolRoute" | "Pool" => pool::build(node, b),
        "HashRoute" => hash::build(node, b),
        "FailoverRoute" => failover::build(node, b),
        "FailoverWithExptimeRoute" => failover_with_exptime::build(node, b),
        "AllSyncRoute" => all_sync::build(node, b),
        "AllAsyncRoute" => all_async::build(node, b),
        "AllInitialRoute" => all_initial::build(node, b),
        "AllMajorityRoute" => all_majority::build(node, b),
        "AllFastestRoute" => all_fastest::build(node, b),
        "MissFailoverRoute" => miss_failover::build(node, b),
        "MigrateRoute" => migrate::build(node, b),
        "LatestRoute" => latest::build(node, b),
        "RandomRoute" => random::build(node, b),
        // mcrouter's older name for the same route.
        "OperationSelectorRoute" | "PrefixPolicyRoute" => operation_selector::build(node, b),
        "PrefixSelectorRoute" => prefix_selector::build(node, b),
        "ShadowRoute" => shadow::build(node, b),
        "ModifyKeyRoute" => modify_key::build(node, b),
        "ModifyExptimeRoute" => modify_exptime::build(node, b),
        "RateLimitRoute" => rate_limit::build(node, b),
        "ErrorRoute" => error::build(node, b),
        "NullRoute" => null::build(node, b),
        "DestinationRoute" => destination::build(node, b),
        "WarmUpRoute" => warm_up::build(node, b),
        "RemoteMarkerRoute" => remote_marker::build(node, b),
        "DevNullRoute" => dev_null::build(node, b),
        "HostIdRoute" => host_id::build(node, b),
        "KeySplitRoute" => key_split::build(node, b),
        "L1L2CacheRoute" => l1l2_cache::build(node, b),
        "AsynclogRoute" => asynclog_route::build(node, b),
        "LatencyInjectionRoute" => latency_injection::build(node, b),
        "LoggingRoute" => logging::build(node, b),
        "L1L2SizeSplitRoute" => l1l2_size_split::build(node, b),
        "BlackholeRoute" => blackhole::build(node, b),
        other => Err(ConfigError::at(
            node.path.clone(),
            format!("unknown route type {other:?}"),
        )),
    }
}

/// Send `req` to every route and collect the replies in order (all futures run together).
pub async fn join_all(futs: Vec<RouteFuture>) -> Vec<Reply> {
    futures_util::future::join_all(futs).await
}

/// `req` sent to every child at once; their replies in the order they come (the
/// `All*` routes that answer before every child has).
pub fn fan_out(
    children: &[RouteRef],
    req: &Req,
    ctx: &Rc<Ctx>,
) -> futures_util::stream::FuturesUnordered<RouteFuture> {
    children.iter().map(|c| c.route(req.clone(), ctx)).collect()
}

/// Once an `All*` route has its answer, the children still running finish in the
/// background (their requests were sent; dropping them would cut the replies short).
pub fn finish_in_background(mut futs: futures_util::stream::FuturesUnordered<RouteFuture>) {
    use futures_util::StreamExt;
    if !futs.is_empty() {
        tokio::task::spawn_local(async move { while futs.next().await.is_some() {} });
    }
}

/// What an `All*` route without children answers.
pub fn no_children() -> Reply {
    Reply::error_static(ErrorClass::LocalError, b"SERVER_ERROR no children\r\n")
}

/// The reply with the highest severity (first among equals).
pub fn worst(replies: Vec<Reply>) -> Option<Reply> {
    let mut best: Option<Reply> = None;
    for r in replies {
        match &best {
            Some(b) if b.severity() >= r.severity() => {}
            _ => best = Some(r),
        }
    }
    best
}
