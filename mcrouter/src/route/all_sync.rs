//! `AllSyncRoute`: sends the request to every child at once, waits for all, and returns
//! the worst reply (an error if any child failed).
//!
//! Config: `{"type": "AllSyncRoute", "children": [...]}` or `"AllSyncRoute|Pool|A"`.

use std::rc::Rc;
use std::sync::Arc;

use super::{join_all, no_children, worst, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug)]
pub struct AllSyncRoute {
    children: Vec<RouteRef>,
}

impl AllSyncRoute {
    pub fn new(children: Vec<RouteRef>) -> Self {
        AllSyncRoute { children }
    }
}

/// Send to all `children`, return the worst reply.
pub fn broadcast(children: &[RouteRef], req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
    let futs: Vec<RouteFuture> = children.iter().map(|c| c.route(req.clone(), ctx)).collect();
    Box::pin(async move { worst(join_all(futs).await).unwrap_or_else(no_children) })
}

impl Route for AllSyncRoute {
    fn name(&self) -> String {
        "AllSyncRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        broadcast(&self.children, req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.clone()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(AllSyncRoute::new(node.children(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn waits_for_all_and_returns_the_worst() {
        run(|ctx| async move {
            let a = Mock::replying("STORED\r\n");
            let b = Mock::replying("SERVER_ERROR boom\r\n");
            let r = AllSyncRoute::new(vec![a.r(), b.r()]);
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"SERVER_ERROR boom\r\n");
            assert_eq!(a.count(), 1);
            assert_eq!(b.count(), 1);
            let ok = AllSyncRoute::new(vec![a.r(), a.r()]);
            let reply = ok.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
        });
    }
}
