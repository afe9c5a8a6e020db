//! `RootRoute` (internal): the top of every tree. With `routes` and `aliases` it picks
//! the route by the key's `/region/cluster/` routing prefix (keys without one use the
//! default route, the first alias). The key keeps its prefix through the tree; the
//! destination strips it before the key reaches a server unless its pool says
//! `keep_routing_prefix` (as mcrouter's `DestinationRoute`).

use std::rc::Rc;
use std::sync::Arc;

use super::{ready, Ctx, Route, RouteFuture, RouteRef};
use crate::destination::DestShared;
use crate::hash::routing_prefix;
use crate::reply::{ErrorClass, Reply};
use crate::request::{Op, Req};

#[derive(Debug)]
pub struct RootRoute {
    /// `(alias, route)`, config order, except that the default comes first.
    routes: Vec<(String, RouteRef)>,
    /// `--send-invalid-route-to-default`: a prefix no alias has goes to the default route.
    invalid_to_default: bool,
}

impl RootRoute {
    pub fn new(routes: Vec<(String, RouteRef)>) -> Self {
        RootRoute {
            routes,
            invalid_to_default: false,
        }
    }

    /// This root with `prefix` (`-R /region/cluster/`) as the default route, as mcrouter:
    /// a config with one `route` serves under that prefix; with `routes`, the alias equal
    /// to it is the default, and a prefix no alias has is an error.
    pub fn with_options(
        &self,
        prefix: Option<&str>,
        invalid_to_default: bool,
    ) -> Result<RootRoute, String> {
        let mut routes = self.routes.clone();
        if let Some(p) = prefix {
            if routes.len() == 1 && routes[0].0.is_empty() {
                routes[0].0 = p.to_string();
            } else {
                let i = routes.iter().position(|(a, _)| a == p).ok_or_else(|| {
                    let aliases: Vec<&str> = self.aliases().collect();
                    format!(
                        "invalid default route {p:?} (--route-prefix): the config's aliases are {}",
                        aliases.join(", ")
                    )
                })?;
                let default = routes.remove(i);
                routes.insert(0, default);
            }
        }
        Ok(RootRoute {
            routes,
            invalid_to_default,
        })
    }

    pub fn default_route(&self) -> &RouteRef {
        &self.routes[0].1
    }

    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|(a, _)| a.as_str())
    }

    fn pick(&self, key: &[u8]) -> Option<&RouteRef> {
        let prefix = routing_prefix(key);
        if prefix.is_empty() {
            return Some(self.default_route());
        }
        self.routes
            .iter()
            .find(|(a, _)| a.as_bytes() == prefix)
            .map(|(_, r)| r)
    }
}

impl Route for RootRoute {
    fn name(&self) -> String {
        "RootRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        // Base64 meta keys are routed by their decoded key.
        let prefix_len = routing_prefix(req.routing_key()).len();
        if prefix_len == 0 || req.op() == Op::FlushAll {
            return self.default_route().route(req, ctx);
        }
        let Some(r) = self
            .pick(req.routing_key())
            .or(self.invalid_to_default.then(|| self.default_route()))
        else {
            return ready(Reply::error_static(
                ErrorClass::LocalError,
                b"SERVER_ERROR mcrouter: no route for this routing prefix\r\n",
            ));
        };
        r.route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.routes.iter().map(|(_, r)| r.clone()).collect()
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        self.pick(req.routing_key())
            .or(self.invalid_to_default.then(|| self.default_route()))
            .cloned()
            .into_iter()
            .collect()
    }

    fn plain_destination(&self, op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        if !routing_prefix(key).is_empty() {
            return None;
        }
        self.default_route().plain_destination(op, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn selects_by_routing_prefix() {
        run(|ctx| async move {
            let a = Mock::replying("VALUE /r/a/k 0 1\r\nv\r\nEND\r\n");
            let b = Mock::replying("END\r\n");
            let r = RootRoute::new(vec![("/r/a/".into(), a.r()), ("/r/b/".into(), b.r())]);
            // No prefix: the default (first) route.
            r.route(Mock::req("get k\r\n"), &ctx).await;
            // A prefix: that route; the key goes on with its prefix (the destination
            // strips it, see route::destination).
            let reply = r.route(Mock::req("get /r/a/k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"VALUE /r/a/k 0 1\r\nv\r\nEND\r\n");
            assert_eq!(a.seen()[1], b"get /r/a/k\r\n");
            r.route(Mock::req("delete /r/b/k\r\n"), &ctx).await;
            assert_eq!(b.seen()[0], b"delete /r/b/k\r\n");
            let reply = r.route(Mock::req("get /r/zz/k\r\n"), &ctx).await;
            assert!(reply.is_error());
            // A base64 meta key routes by its decoded key: "L3IvYi9h" is "/r/b/a".
            r.route(Mock::req("mg L3IvYi9h b v\r\n"), &ctx).await;
            assert_eq!(b.seen()[1], b"mg L3IvYi9h b v\r\n");
        });
    }

    #[test]
    fn route_prefix_picks_the_default_route() {
        run(|ctx| async move {
            let a = Mock::replying("END\r\n");
            let b = Mock::replying("END\r\n");
            let r = RootRoute::new(vec![("/r/a/".into(), a.r()), ("/r/b/".into(), b.r())]);
            let r = r.with_options(Some("/r/b/"), false).unwrap();
            r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!((a.count(), b.count()), (0, 1));
            assert!(r.route(Mock::req("get /r/zz/k\r\n"), &ctx).await.is_error());
            let err = r.with_options(Some("/x/y/"), false).unwrap_err();
            assert!(err.contains("/r/a/") && err.contains("/r/b/"), "{err}");
            // --send-invalid-route-to-default
            let r = r.with_options(None, true).unwrap();
            r.route(Mock::req("get /r/zz/k\r\n"), &ctx).await;
            assert_eq!(b.seen()[1], b"get /r/zz/k\r\n");
            // One `route`: it serves under the prefix.
            let one = RootRoute::new(vec![(String::new(), a.r())]);
            let one = one.with_options(Some("/r/c/"), false).unwrap();
            one.route(Mock::req("get /r/c/k\r\n"), &ctx).await;
            assert_eq!(a.seen()[0], b"get /r/c/k\r\n");
        });
    }
}
