//! `LatencyInjectionRoute` (mcrouter's): delays requests on their way to `child`, for
//! testing how clients and the tier behave with a slow dependency.
//!
//! Config: `{"type": "LatencyInjectionRoute", "child": <route>, "before_latency_ms": 5,
//! "after_latency_ms": 0, "total_latency_ms": 0}`: wait `before_latency_ms` before
//! sending, `after_latency_ms` after the reply, then pad the whole request to at least
//! `total_latency_ms`. At least one of them must be given; when all are 0 the route is its
//! child. mcrouter's `request_payload_latency` reads delays carried in Thrift requests;
//! the memcached protocol has no such fields, so `true` is refused
//! (`max_request_latency_us` is accepted and has nothing to cap).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug)]
pub struct LatencyInjectionRoute {
    child: RouteRef,
    before: Duration,
    after: Duration,
    total: Duration,
}

impl LatencyInjectionRoute {
    pub fn new(child: RouteRef, before: Duration, after: Duration, total: Duration) -> Self {
        LatencyInjectionRoute {
            child,
            before,
            after,
            total,
        }
    }
}

impl Route for LatencyInjectionRoute {
    fn name(&self) -> String {
        format!(
            "LatencyInjectionRoute|before={}ms|after={}ms|total={}ms",
            self.before.as_millis(),
            self.after.as_millis(),
            self.total.as_millis()
        )
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let start = Instant::now();
        let (child, ctx) = (self.child.clone(), ctx.clone());
        let (before, after, total) = (self.before, self.after, self.total);
        // Without a delay before, the request is queued now, like any other route's.
        let sent = before.is_zero().then(|| child.route(req.clone(), &ctx));
        Box::pin(async move {
            let reply = match sent {
                Some(fut) => fut.await,
                None => {
                    tokio::time::sleep(before).await;
                    child.route(req, &ctx).await
                }
            };
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            if let Some(rest) = total.checked_sub(start.elapsed()) {
                tokio::time::sleep(rest).await;
            }
            reply
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.child.clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let child = node.route(b, "child")?;
    let ms = |name: &str| -> Result<Option<Duration>, ConfigError> {
        match node.i64_field(name)? {
            Some(v) if v < 0 => Err(node.err(name, format!("{v}: expected 0 or more"))),
            v => Ok(v.map(|v| Duration::from_millis(v as u64))),
        }
    };
    let (before, after, total) = (
        ms("before_latency_ms")?,
        ms("after_latency_ms")?,
        ms("total_latency_ms")?,
    );
    let payload = node.bool_field("request_payload_latency")?;
    if payload == Some(true) {
        return Err(node.err(
            "request_payload_latency",
            "not supported: memcached requests carry no latency fields",
        ));
    }
    node.i64_field("max_request_latency_us")?;
    if before.is_none() && after.is_none() && total.is_none() && payload.is_none() {
        return Err(ConfigError::at(
            node.path.clone(),
            "LatencyInjectionRoute needs before_latency_ms, after_latency_ms or total_latency_ms",
        ));
    }
    let (before, after, total) = (
        before.unwrap_or_default(),
        after.unwrap_or_default(),
        total.unwrap_or_default(),
    );
    if before.is_zero() && after.is_zero() && total.is_zero() {
        return Ok(child);
    }
    Ok(Arc::new(LatencyInjectionRoute::new(
        child, before, after, total,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{check_configs, run, Mock};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn delays_add_up_and_total_pads() {
        run(|ctx| async move {
            let child = Mock::delayed("END\r\n", 20);
            for (before, after, total, least, most) in [
                (30, 0, 0, 50, 1050),
                (0, 30, 0, 50, 1050),
                (30, 30, 0, 80, 1080),
                (0, 0, 100, 100, 1100),
                // The total is a floor, not a cap.
                (30, 30, 10, 80, 1080),
            ] {
                let r = LatencyInjectionRoute::new(child.r(), ms(before), ms(after), ms(total));
                let t = Instant::now();
                let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
                let took = t.elapsed();
                assert!(reply.is_miss());
                assert!(
                    took >= ms(least) && took < ms(most),
                    "{before}/{after}/{total}: {took:?}"
                );
            }
        });
    }

    #[test]
    fn config() {
        let c = r#""child": "NullRoute""#;
        let cases = [
            (format!(r#"{{{c}, "before_latency_ms": 5}}"#), None),
            (
                format!(r#"{{{c}, "total_latency_ms": 0, "max_request_latency_us": 9}}"#),
                None,
            ),
            (
                format!("{{{c}}}"),
                Some("route: LatencyInjectionRoute needs before_latency_ms"),
            ),
            (
                format!(r#"{{{c}, "after_latency_ms": -1}}"#),
                Some("route.after_latency_ms: -1: expected 0 or more"),
            ),
            (
                format!(r#"{{{c}, "request_payload_latency": true}}"#),
                Some("route.request_payload_latency: not supported"),
            ),
            (
                r#"{"before_latency_ms": 1}"#.to_string(),
                Some("route.child: missing"),
            ),
        ];
        check_configs("LatencyInjectionRoute", build, &cases);
        // All zero: the child itself.
        let r = crate::route::testing::with_json_node(
            &format!(r#"{{{c}, "before_latency_ms": 0}}"#),
            "LatencyInjectionRoute",
            |n| {
                build(n, &mut Builder::new(&Default::default()))
                    .unwrap()
                    .name()
            },
        );
        assert_eq!(r, "NullRoute");
    }
}
