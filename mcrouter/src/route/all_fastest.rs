//! `AllFastestRoute`: sends to every child and returns the first reply that is not an
//! error (the last error if all fail).
//!
//! Config: `{"type": "AllFastestRoute", "children": [...]}`.

use std::rc::Rc;
use std::sync::Arc;

use futures_util::stream::StreamExt;

use super::{fan_out, finish_in_background, no_children, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug)]
pub struct AllFastestRoute {
    children: Vec<RouteRef>,
}

impl AllFastestRoute {
    pub fn new(children: Vec<RouteRef>) -> Self {
        AllFastestRoute { children }
    }
}

impl Route for AllFastestRoute {
    fn name(&self) -> String {
        "AllFastestRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let mut futs = fan_out(&self.children, &req, ctx);
        Box::pin(async move {
            let mut last = None;
            while let Some(r) = futs.next().await {
                if !r.is_error() {
                    finish_in_background(futs);
                    return r;
                }
                last = Some(r);
            }
            last.unwrap_or_else(no_children)
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.clone()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(AllFastestRoute::new(node.children(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn first_non_error_wins() {
        run(|ctx| async move {
            let err = Mock::replying("SERVER_ERROR x\r\n");
            let slow = Mock::delayed("VALUE k 0 1\r\ny\r\nEND\r\n", 50);
            let r = AllFastestRoute::new(vec![err.r(), slow.r()]);
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"VALUE k 0 1\r\ny\r\nEND\r\n");
            let r = AllFastestRoute::new(vec![err.r(), err.r()]);
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert!(reply.is_error());
        });
    }
}
