//! `LoggingRoute` (mcrouter's): passes requests to `target` (a `NullRoute` without one)
//! and logs each one at `info` level (run the router with `-v`, or
//! `RUST_LOG=mcrouter::route::logging=info`): operation, key, result, reply bytes.
//! mcrouter logs through a callback its embedder sets, or `LOG(INFO)` in older versions;
//! this is the latter, one line per request.
//!
//! Config: `{"type": "LoggingRoute", "target": <route>}` or `"LoggingRoute|Pool|A"`.

use std::rc::Rc;
use std::sync::Arc;

use super::null::NullRoute;
use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::ReplyKind;
use crate::request::Req;

#[derive(Debug)]
pub struct LoggingRoute {
    target: RouteRef,
}

impl LoggingRoute {
    pub fn new(target: RouteRef) -> Self {
        LoggingRoute { target }
    }
}

/// mcrouter's result name for a reply kind.
fn result_name(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Hit => "found",
        ReplyKind::Miss | ReplyKind::NotFound => "notfound",
        ReplyKind::Ok => "ok",
        ReplyKind::NotStored => "notstored",
        ReplyKind::Exists => "exists",
        ReplyKind::Error(c) => c.name(),
    }
}

impl Route for LoggingRoute {
    fn name(&self) -> String {
        "LoggingRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let fut = self.target.route(req.clone(), ctx);
        Box::pin(async move {
            let reply = fut.await;
            tracing::info!(
                op = req.op().name(),
                key = %String::from_utf8_lossy(req.routing_key()),
                result = result_name(reply.kind),
                bytes = reply.bytes.len(),
                "request"
            );
            reply
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let target = match node.arg {
        Some(arg) => b.route(&serde_json::Value::String(arg.to_string()), &node.path)?,
        None => node
            .opt_route(b, "target")?
            .unwrap_or_else(|| Arc::new(NullRoute)),
    };
    Ok(Arc::new(LoggingRoute::new(target)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, with_json_node, Mock};

    #[test]
    fn passes_replies_through() {
        run(|ctx| async move {
            let m = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let r = LoggingRoute::new(m.r());
            let got = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&got.bytes[..], b"VALUE k 0 1\r\nv\r\nEND\r\n");
            assert_eq!(m.count(), 1);
            assert_eq!(result_name(got.kind), "found");
        });
    }

    #[test]
    fn without_a_target_it_answers_like_null_route() {
        run(|ctx| async move {
            let r = with_json_node("{}", "LoggingRoute", |n| {
                build(n, &mut Builder::new(&Default::default())).unwrap()
            });
            let got = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&got.bytes[..], b"NOT_STORED\r\n");
        });
    }
}
