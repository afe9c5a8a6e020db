//! `FailoverRoute`: tries the children in order, moving to the next only when a reply is
//! an error of one of the `failover_errors` classes (default: every error).
//!
//! Config: `{"type": "FailoverRoute", "children": [...], "failover_errors":
//! ["connect_error", "timeout", "tko", ...]}`. The first child is the primary; the rest
//! are tried in order (a gutter pool is a FailoverRoute's second child).

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::{ErrorClass, Reply};
use crate::request::Req;

#[derive(Debug)]
pub struct FailoverRoute {
    children: Arc<[RouteRef]>,
    /// `None`: fail over on every error.
    errors: Option<Vec<ErrorClass>>,
}

impl FailoverRoute {
    pub fn new(children: Vec<RouteRef>, errors: Option<Vec<ErrorClass>>) -> Self {
        FailoverRoute {
            children: children.into(),
            errors,
        }
    }
}

/// Whether `reply` should make a failover route try its next child.
pub fn should_failover(errors: &Option<Vec<ErrorClass>>, reply: &Reply) -> bool {
    match (reply.error_class(), errors) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(c), Some(list)) => list.contains(&c),
    }
}

/// Route to `children[order[0]]`, then the next on failover errors.
pub fn failover_in_order(
    children: Arc<[RouteRef]>,
    order: Vec<usize>,
    errors: Option<Vec<ErrorClass>>,
    req: Req,
    ctx: &Rc<Ctx>,
) -> RouteFuture {
    let first = children[order[0]].route(req.clone(), ctx);
    let ctx = ctx.clone();
    Box::pin(async move {
        let mut reply = first.await;
        for &i in &order[1..] {
            if !should_failover(&errors, &reply) {
                break;
            }
            reply = children[i].route(req.clone(), &ctx).await;
        }
        reply
    })
}

impl Route for FailoverRoute {
    fn name(&self) -> String {
        "FailoverRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        if self.children.len() == 1 {
            return self.children[0].route(req, ctx);
        }
        failover_in_order(
            self.children.clone(),
            (0..self.children.len()).collect(),
            self.errors.clone(),
            req,
            ctx,
        )
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.to_vec()
    }

    fn children_for(&self, _req: &Req) -> Vec<RouteRef> {
        self.children.to_vec()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let children = node.children(b)?;
    let errors = node.error_classes("failover_errors")?;
    Ok(Arc::new(FailoverRoute::new(children, errors)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn fails_over_on_errors_only() {
        run(|ctx| async move {
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let up = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let r = FailoverRoute::new(vec![down.r(), up.r()], None);
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert!(reply.is_hit());
            assert_eq!((down.count(), up.count()), (1, 1));
            // A miss is not an error: no failover.
            let miss = Mock::replying("END\r\n");
            let r = FailoverRoute::new(vec![miss.r(), up.r()], None);
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            assert_eq!(up.count(), 1);
        });
    }

    #[test]
    fn failover_errors_restricts_the_classes() {
        run(|ctx| async move {
            let remote = Mock::replying("SERVER_ERROR remote\r\n");
            let up = Mock::replying("STORED\r\n");
            let r = FailoverRoute::new(vec![remote.r(), up.r()], Some(vec![ErrorClass::Timeout]));
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert!(reply.is_error());
            assert_eq!(up.count(), 0);
            let r = FailoverRoute::new(
                vec![remote.r(), up.r()],
                Some(vec![ErrorClass::RemoteError]),
            );
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
        });
    }
}
