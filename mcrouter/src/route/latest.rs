//! `LatestRoute`: picks `failover_count` children (default 5) in a random order and
//! fails over among them (mcrouter uses it to spread load over replicas while
//! tolerating failures).
//!
//! Config: `{"type": "LatestRoute", "children": [...], "failover_count": 3,
//! "failover_errors": [...]}`.

use std::rc::Rc;
use std::sync::Arc;

use rand::Rng;

use super::failover::failover_in_order;
use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::ErrorClass;
use crate::request::Req;

/// Default number of children tried.
pub const DEFAULT_FAILOVER_COUNT: usize = 5;

#[derive(Debug)]
pub struct LatestRoute {
    children: Arc<[RouteRef]>,
    count: usize,
    errors: Option<Vec<ErrorClass>>,
}

impl LatestRoute {
    pub fn new(children: Vec<RouteRef>, count: usize, errors: Option<Vec<ErrorClass>>) -> Self {
        let count = count.clamp(1, children.len());
        LatestRoute {
            children: children.into(),
            count,
            errors,
        }
    }
}

impl Route for LatestRoute {
    fn name(&self) -> String {
        format!("LatestRoute(failover_count={})", self.count)
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let n = self.children.len();
        let mut rng = rand::rng();
        let mut order: Vec<usize> = (0..n).collect();
        // Partial Fisher-Yates: the first `count` positions.
        for i in 0..self.count {
            let j = rng.random_range(i..n);
            order.swap(i, j);
        }
        order.truncate(self.count);
        failover_in_order(self.children.clone(), order, self.errors.clone(), req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.to_vec()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let children = node.children(b)?;
    let count = match node.i64_field("failover_count")? {
        None => DEFAULT_FAILOVER_COUNT,
        Some(c) if c >= 1 => c as usize,
        Some(_) => return Err(node.err("failover_count", "expected an integer >= 1")),
    };
    let errors = node.error_classes("failover_errors")?;
    Ok(Arc::new(LatestRoute::new(children, count, errors)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn spreads_and_fails_over_within_count() {
        run(|ctx| async move {
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let up = Mock::replying("STORED\r\n");
            let r = LatestRoute::new(vec![down.r(), up.r()], 2, None);
            for _ in 0..20 {
                let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], b"STORED\r\n");
            }
            assert_eq!(up.count(), 20);
            assert!(down.count() > 0 && down.count() < 20, "{}", down.count());
        });
    }
}
