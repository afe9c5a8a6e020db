//! `FailoverWithExptimeRoute`: a normal route with gutter (failover) routes whose data
//! expires quickly ("Scaling Memcache at Facebook", NSDI'13, section 3.3).
//!
//! Requests go to `normal`. When its reply is an error of one of the `failover_errors`
//! classes (default: mcrouter's failover errors, every error but `CLIENT_ERROR`, as
//! [`FailoverRoute`](super::failover::FailoverRoute); a list, or per operation kind),
//! the request goes to the `failover` routes in order until one answers without such an
//! error. A miss is not an error: it is never failed over. Requests sent to a failover
//! route have their exptime capped at `failover_exptime` (a
//! [`ModifyExptimeRoute`] with `"action": "min"` around each failover route): an exptime
//! of 0 ("never expires") or a larger one becomes the cap, a smaller one is kept. This is
//! what makes a gutter pool safe: what it holds for a dead server expires soon, so a
//! value that became stale while the normal server was down (deletes and updates went
//! elsewhere) is not served for long once that server is back.
//!
//! Capped: the text storage commands (`set`/`add`/`replace`/`cas`/`append`/`prepend`),
//! `touch`, `gat`/`gats` and lease-set, i.e. whatever [`Req::exptime`] and
//! [`Req::with_exptime`] rewrite. Meta commands (`ms ... T<ttl>`) are forwarded to the
//! gutter unchanged.
//!
//! Deletes are failed over like any request (a delete that fails on the normal route
//! deletes from the gutter instead). Configs usually send deletes to the main and gutter
//! pools both with an `OperationSelectorRoute` (see `examples/gutter.json`).
//!
//! Each request sent to a failover route counts in `mcrouter_gutter_failovers_total`.
//!
//! Config:
//!
//! ```json
//! {"type": "FailoverWithExptimeRoute",
//!  "normal": "PoolRoute|main",
//!  "failover": "PoolRoute|gutter",            // a route or a list of routes, tried in order
//!  "failover_exptime": 10,                    // seconds; default 60
//!  "failover_errors": ["connect_error", "timeout", "tko"]}   // optional, see FailoverRoute
//! ```
//!
//! `failover_exptime` defaults to [`DEFAULT_FAILOVER_EXPTIME`] = 60 s, mcrouter's
//! default (`makeFailoverWithExptimeRoute` in
//! `mcrouter/routes/FailoverWithExptimeRouteFactory.h`). It must be an integer from 0 to
//! 30 days: memcached reads a larger exptime as an absolute Unix time. 0 means "no cap":
//! the failover routes get the exptimes as sent.
//!
//! `failover` may be left out or empty, as in mcrouter: the route is then its normal
//! route alone.
//!
//! As in mcrouter, whose factory builds this route as a `FailoverRoute` over the normal
//! route and the capped failover routes, `failover_limit` and `failover_policy` work
//! here as on [`FailoverRoute`](super::failover::FailoverRoute).
//!
//! `settings` (the old per-error-kind `FailoverWithExptimeSettings`, `{"tko": {"gets":
//! true, ...}, "connect_timeout": ..., "data_timeout": ...}`) was removed from mcrouter
//! in 2016: today's mcrouter builds this route as a `FailoverRoute` configured by
//! `failover_errors` and ignores `settings`. So does this router (with a warning); write
//! `failover_errors` per operation kind instead (`{"gets": ["tko", "connect_error"],
//! ...}`).
//!
//! There is no `Type|arg` string form: the route needs two routes.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::failover::{
    parse_failover_limit, parse_failover_policy, FailoverErrors, FailoverLimiter, FailoverPolicy,
    FailoverRoute,
};
use super::modify_exptime::{Action, ModifyExptimeRoute};
use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::destination::DestShared;
use crate::request::Req;

/// Default `failover_exptime` in seconds (mcrouter's).
pub const DEFAULT_FAILOVER_EXPTIME: i64 = 60;

/// The largest `failover_exptime`: memcached reads larger exptimes as Unix times.
pub const MAX_FAILOVER_EXPTIME: i64 = 60 * 60 * 24 * 30;

#[derive(Debug)]
pub struct FailoverWithExptimeRoute {
    /// A FailoverRoute over the normal route and the (capped, counted) failover routes.
    failover: FailoverRoute,
    /// Requests sent to a failover route (also exported as a metric).
    sent: Arc<AtomicU64>,
    failover_exptime: i64,
}

impl FailoverWithExptimeRoute {
    /// `failover` routes are wrapped in the exptime cap here (unless `failover_exptime`
    /// is 0). Every route in order, no `failover_limit`.
    pub fn new(
        normal: RouteRef,
        failover: Vec<RouteRef>,
        failover_exptime: i64,
        errors: FailoverErrors,
    ) -> Self {
        let policy = FailoverPolicy::in_order(1 + failover.len());
        Self::with_options(normal, failover, failover_exptime, errors, None, policy)
    }

    pub fn with_options(
        normal: RouteRef,
        failover: Vec<RouteRef>,
        failover_exptime: i64,
        errors: FailoverErrors,
        limiter: Option<FailoverLimiter>,
        policy: FailoverPolicy,
    ) -> Self {
        let sent = Arc::new(AtomicU64::new(0));
        let mut children = Vec::with_capacity(1 + failover.len());
        children.push(normal);
        children.extend(failover.into_iter().map(|r| -> RouteRef {
            let route: RouteRef = if failover_exptime > 0 {
                Arc::new(ModifyExptimeRoute::new(r, failover_exptime, Action::Min))
            } else {
                r
            };
            Arc::new(Counted {
                route,
                sent: sent.clone(),
            })
        }));
        FailoverWithExptimeRoute {
            failover: FailoverRoute::with_options(children, errors, limiter, policy),
            sent,
            failover_exptime,
        }
    }

    /// The exptime cap of the failover routes (0: none).
    pub fn failover_exptime(&self) -> i64 {
        self.failover_exptime
    }

    /// Requests this route sent to a failover route so far.
    pub fn failovers(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Route for FailoverWithExptimeRoute {
    fn name(&self) -> String {
        format!(
            "FailoverWithExptimeRoute|failover_exptime={}",
            self.failover_exptime
        )
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        self.failover.route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.failover.children()
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        self.failover.children_for(req)
    }
}

/// A failover route: counts each request sent to it, then passes it on. Invisible in
/// the admin views (name, children and destination are the wrapped route's). It has no
/// `plain_destination`: multi-get batching must not go around the count.
#[derive(Debug)]
struct Counted {
    route: RouteRef,
    sent: Arc<AtomicU64>,
}

impl Route for Counted {
    fn name(&self) -> String {
        self.route.name()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if crate::metrics::enabled() {
            metrics::counter!("mcrouter_gutter_failovers_total").increment(1);
        }
        self.route.route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.route.children()
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        self.route.children_for(req)
    }

    fn destination(&self) -> Option<&Arc<DestShared>> {
        self.route.destination()
    }
}

/// Parse and build (the concrete type, for tests).
fn from_node(node: &Node<'_>, b: &mut Builder) -> Result<FailoverWithExptimeRoute, ConfigError> {
    if node.obj.is_none() {
        return Err(node.err(
            "type",
            "FailoverWithExptimeRoute needs an object: {\"type\": \"FailoverWithExptimeRoute\", \
             \"normal\": <route>, \"failover\": <route or list of routes>}",
        ));
    }
    let normal = node.route(b, "normal")?;
    let failover = match node.field("failover") {
        Some(v) => b.route_list(v, &super::join(&node.path, "failover"))?,
        None => Vec::new(),
    };
    if node.field("settings").is_some() {
        tracing::warn!(
            "{}: `settings` is ignored, as by mcrouter since 2016; use failover_errors",
            super::join(&node.path, "settings")
        );
    }
    let failover_exptime = match node.field("failover_exptime") {
        None => DEFAULT_FAILOVER_EXPTIME,
        Some(v) => match v.as_i64() {
            Some(n) if (0..=MAX_FAILOVER_EXPTIME).contains(&n) => n,
            _ => {
                return Err(node.err(
                    "failover_exptime",
                    format!(
                        "expected a whole number of seconds from 0 to {MAX_FAILOVER_EXPTIME} \
                         (30 days), got {v}"
                    ),
                ))
            }
        },
    };
    let errors = node.failover_errors("failover_errors")?;
    // `failover_tag`: checked as on FailoverRoute, then ignored (no Carbon reply fields).
    node.bool_field("failover_tag")?;
    let limiter = parse_failover_limit(node)?;
    let policy = parse_failover_policy(node, 1 + failover.len())?;
    Ok(FailoverWithExptimeRoute::with_options(
        normal,
        failover,
        failover_exptime,
        errors,
        limiter,
        policy,
    ))
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(from_node(node, b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Registry;
    use crate::reply::ErrorClass;
    use crate::route::describe_path;
    use crate::route::testing::{run, with_json_node, Mock};

    const DOWN: &str = "SERVER_ERROR down\r\n";

    fn route(normal: &Arc<Mock>, gutter: &Arc<Mock>, cap: i64) -> FailoverWithExptimeRoute {
        FailoverWithExptimeRoute::new(normal.r(), vec![gutter.r()], cap, FailoverErrors::default())
    }

    /// Build from JSON (with `"type"` added) at path `route`.
    fn parse(json: &str) -> Result<FailoverWithExptimeRoute, ConfigError> {
        let registry = Registry::default();
        let mut b = Builder::new(&registry);
        with_json_node(json, "FailoverWithExptimeRoute", |node| {
            from_node(node, &mut b)
        })
    }

    #[test]
    fn fails_over_on_errors_only() {
        run(|ctx| async move {
            let gutter = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            // Error: the gutter answers.
            let down = Mock::replying(DOWN);
            let r = route(&down, &gutter, 10);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_hit());
            assert_eq!((down.count(), gutter.count(), r.failovers()), (1, 1, 1));
            // A miss is an answer: no failover.
            let miss = Mock::replying("END\r\n");
            let r = route(&miss, &gutter, 10);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            // Neither is a stored or a not-stored.
            for ok in ["STORED\r\n", "NOT_STORED\r\n"] {
                let up = Mock::replying(ok);
                let r = route(&up, &gutter, 10);
                let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], ok.as_bytes());
                assert_eq!(r.failovers(), 0);
            }
            assert_eq!(gutter.count(), 1);
        });
    }

    #[test]
    fn failover_routes_are_tried_in_order() {
        run(|ctx| async move {
            let (n, g1, g2) = (
                Mock::replying(DOWN),
                Mock::replying(DOWN),
                Mock::replying("STORED\r\n"),
            );
            let r = FailoverWithExptimeRoute::new(
                n.r(),
                vec![g1.r(), g2.r()],
                10,
                FailoverErrors::default(),
            );
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
            assert_eq!((n.count(), g1.count(), g2.count()), (1, 1, 1));
            assert_eq!(r.failovers(), 2, "one per request sent to a failover route");
            // All failover routes fail: the last error is the answer.
            let r =
                FailoverWithExptimeRoute::new(n.r(), vec![g1.r()], 10, FailoverErrors::default());
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], DOWN.as_bytes());
            assert_eq!(r.failovers(), 1);
        });
    }

    #[test]
    fn failover_errors_restricts_the_classes() {
        run(|ctx| async move {
            let remote = Mock::replying(DOWN);
            let gutter = Mock::replying("STORED\r\n");
            let r = FailoverWithExptimeRoute::new(
                remote.r(),
                vec![gutter.r()],
                10,
                FailoverErrors::list(&[ErrorClass::Timeout]),
            );
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert!(reply.is_error());
            assert_eq!((gutter.count(), r.failovers()), (0, 0));
        });
    }

    #[test]
    fn exptime_is_capped_only_on_the_failover_leg() {
        run(|ctx| async move {
            let down = Mock::replying(DOWN);
            let gutter = Mock::replying("STORED\r\n");
            let r = route(&down, &gutter, 10);
            for req in [
                "set k 0 0 1\r\nx\r\n",
                "set k 0 3600 1\r\nx\r\n",
                "add k 5 5 1\r\nx\r\n",
                "cas k 0 99 1 7\r\nx\r\n",
                "touch k 0\r\n",
                "gat 100 k\r\n",
                "get k\r\n",
                "delete k\r\n",
            ] {
                r.route(Mock::req(req), &ctx).await;
            }
            let seen: Vec<String> = gutter
                .seen()
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            assert_eq!(
                seen,
                [
                    "set k 0 10 1\r\nx\r\n",   // never expires -> the cap
                    "set k 0 10 1\r\nx\r\n",   // longer -> the cap
                    "add k 5 5 1\r\nx\r\n",    // shorter: kept
                    "cas k 0 10 1 7\r\nx\r\n", // cas too
                    "touch k 10\r\n",
                    "gat 10 k\r\n",
                    "get k\r\n",
                    "delete k\r\n",
                ]
            );
            // The normal route got the requests as sent.
            let normal = down.seen();
            assert_eq!(normal[0], b"set k 0 0 1\r\nx\r\n");
            assert_eq!(normal[1], b"set k 0 3600 1\r\nx\r\n");
            assert_eq!(normal[5], b"gat 100 k\r\n");
            assert_eq!(r.failovers(), 8);
        });
    }

    #[test]
    fn zero_failover_exptime_means_no_cap() {
        run(|ctx| async move {
            let down = Mock::replying(DOWN);
            let gutter = Mock::replying("STORED\r\n");
            let r = route(&down, &gutter, 0);
            r.route(Mock::req("set k 0 3600 1\r\nx\r\n"), &ctx).await;
            r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(gutter.seen()[0], b"set k 0 3600 1\r\nx\r\n");
            assert_eq!(gutter.seen()[1], b"set k 0 0 1\r\nx\r\n");
        });
    }

    #[test]
    fn failover_limit_and_policy_apply_as_on_failover_route() {
        run(|ctx| async move {
            let (n, g1, g2) = (
                Mock::replying(DOWN),
                Mock::replying(DOWN),
                Mock::replying("STORED\r\n"),
            );
            let (limit, policy) = with_json_node(
                r#"{"failover_policy": {"type": "InOrderPolicy", "max_tries": 2},
                    "failover_limit": {"rate": 0.5, "burst": 1}}"#,
                "FailoverWithExptimeRoute",
                |node| {
                    (
                        parse_failover_limit(node).unwrap(),
                        parse_failover_policy(node, 3).unwrap(),
                    )
                },
            );
            let r = FailoverWithExptimeRoute::with_options(
                n.r(),
                vec![g1.r(), g2.r()],
                10,
                FailoverErrors::default(),
                limit,
                policy,
            );
            let set = || Mock::req("set k 0 0 1\r\nx\r\n");
            // max_tries 2: the normal route and one failover route, then its error.
            assert!(r.route(set(), &ctx).await.is_error());
            assert_eq!((n.count(), g1.count(), g2.count()), (1, 1, 0));
            assert_eq!(r.failovers(), 1);
            // The one token of the limit is spent: the normal route's error is the answer.
            assert!(r.route(set(), &ctx).await.is_error());
            assert_eq!((n.count(), g1.count(), g2.count()), (2, 1, 0));
            assert_eq!(r.failovers(), 1);
            // Half a token per request: the next one may fail over again.
            r.route(set(), &ctx).await;
            assert_eq!((n.count(), g1.count(), g2.count()), (3, 2, 0));
            assert_eq!(r.failovers(), 2);
        });
        // Both are read from the route's config.
        let e = parse(r#"{"normal": "ErrorRoute", "failover_policy": {"type": "Nope"}}"#)
            .expect_err("unknown policy");
        assert!(e.to_string().contains("route.failover_policy.type"), "{e}");
        let e = parse(r#"{"normal": "ErrorRoute", "failover_limit": {"burst": 3}}"#)
            .expect_err("limit without rate");
        assert!(e.to_string().contains("route.failover_limit.rate"), "{e}");
    }

    #[test]
    fn config_defaults_and_admin_view() {
        let r = parse(r#"{"normal": "ErrorRoute", "failover": "NullRoute"}"#).unwrap();
        assert_eq!(r.failover_exptime(), DEFAULT_FAILOVER_EXPTIME);
        assert_eq!(DEFAULT_FAILOVER_EXPTIME, 60, "mcrouter's default");
        // As in mcrouter: no failover routes is the normal route alone, and the old
        // `settings` object is accepted and ignored.
        run(|ctx| async move {
            let r =
                parse(r#"{"normal": "ErrorRoute", "settings": {"tko": {"gets": false}}}"#).unwrap();
            assert_eq!(r.children().len(), 1);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_error());
            assert_eq!(r.failovers(), 0);
        });
        let r = parse(
            r#"{"normal": "ErrorRoute", "failover": ["NullRoute", "NullRoute"],
                "failover_exptime": 2, "failover_errors": ["tko"]}"#,
        )
        .unwrap();
        assert_eq!(r.failover_exptime(), 2);
        assert_eq!(
            r.failover.errors(),
            FailoverErrors::list(&[ErrorClass::Tko])
        );
        // Admin `route_handles`: the normal route and each capped failover route.
        let r: RouteRef = Arc::new(r);
        let path = describe_path(&r, &Mock::req("get k\r\n"));
        assert_eq!(
            path,
            "FailoverWithExptimeRoute|failover_exptime=2\n\
             \x20 ErrorRoute|mcrouter: ErrorRoute\n\
             \x20 ModifyExptimeRoute|Min=2\n\
             \x20   NullRoute\n\
             \x20 ModifyExptimeRoute|Min=2\n\
             \x20   NullRoute\n"
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = |json: &str| parse(json).map(|_| ()).unwrap_err().to_string();
        let e = err(r#"{"failover": "NullRoute"}"#);
        assert!(e.contains("route.normal: missing"), "{e}");
        for bad in ["-1", "1.5", "\"10\"", "2592001"] {
            let e = err(&format!(
                r#"{{"normal": "NullRoute", "failover": "NullRoute", "failover_exptime": {bad}}}"#
            ));
            assert!(
                e.contains("route.failover_exptime: expected a whole number of seconds"),
                "{bad}: {e}"
            );
        }
        let e =
            err(r#"{"normal": "NullRoute", "failover": "NullRoute", "failover_errors": ["nope"]}"#);
        assert!(e.contains("route.failover_errors[0]: unknown error"), "{e}");
        let e = err(r#"{"normal": {"type": "FooRoute"}, "failover": "NullRoute"}"#);
        assert!(e.contains("route.normal: unknown route type"), "{e}");
        // No string form.
        let registry = Registry::default();
        let mut b = Builder::new(&registry);
        let node = Node {
            path: "route".into(),
            type_name: "FailoverWithExptimeRoute".into(),
            obj: None,
            arg: Some("Pool|A"),
        };
        let e = build(&node, &mut b).unwrap_err().to_string();
        assert!(e.contains("needs an object"), "{e}");
    }
}
