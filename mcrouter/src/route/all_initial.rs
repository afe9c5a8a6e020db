//! `AllInitialRoute`: sends the request to every child, returns the first child's reply
//! and lets the others finish in the background.
//!
//! Config: `{"type": "AllInitialRoute", "children": [...]}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug)]
pub struct AllInitialRoute {
    children: Vec<RouteRef>,
}

impl AllInitialRoute {
    pub fn new(children: Vec<RouteRef>) -> Self {
        AllInitialRoute { children }
    }
}

impl Route for AllInitialRoute {
    fn name(&self) -> String {
        "AllInitialRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let first = self.children[0].route(req.clone(), ctx);
        for c in &self.children[1..] {
            tokio::task::spawn_local(crate::metrics::replicated(c.route(req.clone(), ctx)));
        }
        first
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.clone()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(AllInitialRoute::new(node.children(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn returns_the_first_childs_reply() {
        run(|ctx| async move {
            let a = Mock::replying("NOT_STORED\r\n");
            let b = Mock::replying("STORED\r\n");
            let r = AllInitialRoute::new(vec![a.r(), b.r()]);
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"NOT_STORED\r\n");
            tokio::task::yield_now().await;
            assert_eq!(b.count(), 1);
        });
    }
}
