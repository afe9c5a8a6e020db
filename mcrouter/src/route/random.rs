//! `RandomRoute`: sends each request to one child chosen uniformly at random.
//!
//! Config: `{"type": "RandomRoute", "children": [...]}`.

use std::rc::Rc;
use std::sync::Arc;

use rand::Rng;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug)]
pub struct RandomRoute {
    children: Vec<RouteRef>,
}

impl RandomRoute {
    pub fn new(children: Vec<RouteRef>) -> Self {
        RandomRoute { children }
    }
}

impl Route for RandomRoute {
    fn name(&self) -> String {
        "RandomRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let i = rand::rng().random_range(0..self.children.len());
        self.children[i].route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.clone()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(RandomRoute::new(node.children(b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn uses_every_child() {
        run(|ctx| async move {
            let a = Mock::replying("STORED\r\n");
            let b = Mock::replying("STORED\r\n");
            let r = RandomRoute::new(vec![a.r(), b.r()]);
            for _ in 0..100 {
                r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            }
            assert_eq!(a.count() + b.count(), 100);
            assert!(a.count() > 10 && b.count() > 10);
        });
    }
}
