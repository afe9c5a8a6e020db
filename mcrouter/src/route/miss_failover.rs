//! `MissFailoverRoute`: for gets, tries the children in order until one returns a hit
//! (a miss or an error moves on); returns the last reply if none hits. Other operations
//! go to the first child only.
//!
//! Config: `{"type": "MissFailoverRoute", "children": [...]}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug)]
pub struct MissFailoverRoute {
    children: Arc<[RouteRef]>,
}

impl MissFailoverRoute {
    pub fn new(children: Vec<RouteRef>) -> Self {
        MissFailoverRoute {
            children: children.into(),
        }
    }
}

impl Route for MissFailoverRoute {
    fn name(&self) -> String {
        "MissFailoverRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let first = self.children[0].route(req.clone(), ctx);
        if !req.op().is_get() || self.children.len() == 1 {
            return first;
        }
        let children = self.children.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            let mut reply = first.await;
            for c in &children[1..] {
                if reply.is_hit() {
                    break;
                }
                reply = c.route(req.clone(), &ctx).await;
            }
            reply
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.to_vec()
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        if req.op().is_get() {
            self.children.to_vec()
        } else {
            vec![self.children[0].clone()]
        }
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(MissFailoverRoute::new(node.children(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn misses_move_on_and_sets_go_to_the_first() {
        run(|ctx| async move {
            let miss = Mock::replying("END\r\n");
            let hit = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let r = MissFailoverRoute::new(vec![miss.r(), hit.r()]);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_hit());
            assert_eq!((miss.count(), hit.count()), (1, 1));
            r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!((miss.count(), hit.count()), (2, 1));
        });
    }
}
