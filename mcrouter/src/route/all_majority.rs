//! `AllMajorityRoute`: sends to every child and returns as soon as more than half agree
//! on the result; if no result reaches a majority, the most common one once all have
//! answered (ties: the worst).
//!
//! Config: `{"type": "AllMajorityRoute", "children": [...]}`.

use std::rc::Rc;
use std::sync::Arc;

use futures_util::stream::StreamExt;

use super::{fan_out, finish_in_background, no_children, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::Reply;
use crate::request::Req;

#[derive(Debug)]
pub struct AllMajorityRoute {
    children: Vec<RouteRef>,
}

impl AllMajorityRoute {
    pub fn new(children: Vec<RouteRef>) -> Self {
        AllMajorityRoute { children }
    }
}

impl Route for AllMajorityRoute {
    fn name(&self) -> String {
        "AllMajorityRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let n = self.children.len();
        let mut futs = fan_out(&self.children, &req, ctx);
        Box::pin(async move {
            let mut seen: Vec<(Reply, usize)> = Vec::new();
            while let Some(r) = futs.next().await {
                let count = match seen.iter_mut().find(|(x, _)| x.same_result(&r)) {
                    Some((_, c)) => {
                        *c += 1;
                        *c
                    }
                    None => {
                        seen.push((r.clone(), 1));
                        1
                    }
                };
                if count * 2 > n {
                    finish_in_background(futs);
                    return r;
                }
            }
            seen.into_iter()
                .max_by(|(a, ca), (b, cb)| ca.cmp(cb).then(a.severity().cmp(&b.severity())))
                .map(|(r, _)| r)
                .unwrap_or_else(no_children)
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.clone()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(AllMajorityRoute::new(node.children(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn majority_wins() {
        run(|ctx| async move {
            let ok = Mock::replying("STORED\r\n");
            let bad = Mock::replying("NOT_STORED\r\n");
            let r = AllMajorityRoute::new(vec![bad.r(), ok.r(), ok.r()]);
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
            let r = AllMajorityRoute::new(vec![bad.r(), bad.r(), ok.r()]);
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"NOT_STORED\r\n");
        });
    }
}
