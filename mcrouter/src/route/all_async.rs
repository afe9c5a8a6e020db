//! `AllAsyncRoute`: sends the request to every child in the background and answers at
//! once with the default reply (what `NullRoute` would say), as mcrouter does.
//!
//! Config: `{"type": "AllAsyncRoute", "children": [...]}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::Reply;
use crate::request::Req;

#[derive(Debug)]
pub struct AllAsyncRoute {
    children: Vec<RouteRef>,
}

impl AllAsyncRoute {
    pub fn new(children: Vec<RouteRef>) -> Self {
        AllAsyncRoute { children }
    }
}

impl Route for AllAsyncRoute {
    fn name(&self) -> String {
        "AllAsyncRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let default = Reply::default_for(&req);
        for c in &self.children {
            tokio::task::spawn_local(crate::metrics::replicated(c.route(req.clone(), ctx)));
        }
        ready(default)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.clone()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(AllAsyncRoute::new(node.children(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn answers_default_and_sends_to_all() {
        run(|ctx| async move {
            let a = Mock::replying("STORED\r\n");
            let b = Mock::replying("STORED\r\n");
            let r = AllAsyncRoute::new(vec![a.r(), b.r()]);
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"NOT_STORED\r\n");
            tokio::task::yield_now().await;
            assert_eq!(a.count() + b.count(), 2);
        });
    }
}
