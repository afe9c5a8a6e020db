//! `AsynclogRoute` (mcrouter's older explicit form): routes everything to `target`, and
//! marks deletes so that one a server cannot take is spooled to the asynclog
//! (`--async-dir`) even under a pool that says `"asynclog": false`. Pools spool by
//! default, so this matters only for such pools. Without `--async-dir` nothing is spooled
//! and the route only passes requests on.
//!
//! Config: `{"type": "AsynclogRoute", "name": "A", "target": <route>}`, or the string form
//! `"AsynclogRoute|Pool|A"` (mcrouter uses the same string as name and target). The name
//! labels the route (`route_handles`); spool records are per server, as for pools.

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug)]
pub struct AsynclogRoute {
    name: String,
    target: RouteRef,
}

impl AsynclogRoute {
    pub fn new(name: String, target: RouteRef) -> Self {
        AsynclogRoute { name, target }
    }
}

impl Route for AsynclogRoute {
    fn name(&self) -> String {
        format!("AsynclogRoute|{}", self.name)
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        if req.op().is_delete() && !req.asynclog() {
            return self.target.route(req.into_asynclog(), ctx);
        }
        self.target.route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    if let Some(arg) = node.arg {
        let target = b.route(&serde_json::Value::String(arg.to_string()), &node.path)?;
        return Ok(Arc::new(AsynclogRoute::new(arg.to_string(), target)));
    }
    let name = node
        .str_field("name")?
        .ok_or_else(|| node.err("name", "missing; expected a string"))?;
    let target = node.route(b, "target")?;
    Ok(Arc::new(AsynclogRoute::new(name.to_string(), target)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{check_configs, run, Mock};

    #[test]
    fn marks_deletes_only() {
        run(|ctx| async move {
            #[derive(Debug, Default)]
            struct Marks(parking_lot::Mutex<Vec<bool>>);
            impl Route for Marks {
                fn name(&self) -> String {
                    "Marks".into()
                }
                fn route(&self, req: Req, _ctx: &Rc<Ctx>) -> RouteFuture {
                    self.0.lock().push(req.asynclog());
                    super::super::ready(crate::reply::Reply::default_for(&req))
                }
            }
            let m = Arc::new(Marks::default());
            let r = AsynclogRoute::new("A".into(), m.clone());
            for req in [
                "get k\r\n",
                "delete k\r\n",
                "set k 0 0 1\r\nx\r\n",
                "md k\r\n",
            ] {
                r.route(Mock::req(req), &ctx).await;
            }
            assert_eq!(*m.0.lock(), [false, true, false, true]);
        });
    }

    #[test]
    fn config() {
        let cases = [
            (r#"{"name": "A", "target": "NullRoute"}"#.to_string(), None),
            (
                r#"{"target": "NullRoute"}"#.to_string(),
                Some("route.name: missing; expected a string"),
            ),
            (
                r#"{"name": "A"}"#.to_string(),
                Some("route.target: missing"),
            ),
        ];
        check_configs("AsynclogRoute", build, &cases);
    }
}
