//! `PrefixSelectorRoute`: picks a child by the longest matching key prefix (of the key
//! without its routing prefix), with `wildcard` for keys that match none.
//!
//! Config: `{"type": "PrefixSelectorRoute", "policies": {"user:": ..., "session:": ...},
//! "wildcard": ...}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{join, ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::destination::DestShared;
use crate::hash::key_without_route;
use crate::reply::{ErrorClass, Reply};
use crate::request::{Op, Req};

#[derive(Debug)]
pub struct PrefixSelectorRoute {
    /// Sorted longest first, so the first match is the longest.
    policies: Vec<(Vec<u8>, RouteRef)>,
    wildcard: Option<RouteRef>,
}

impl PrefixSelectorRoute {
    pub fn new(mut policies: Vec<(Vec<u8>, RouteRef)>, wildcard: Option<RouteRef>) -> Self {
        policies.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        PrefixSelectorRoute { policies, wildcard }
    }

    fn pick(&self, key: &[u8]) -> Option<&RouteRef> {
        let k = key_without_route(key);
        self.policies
            .iter()
            .find(|(p, _)| k.starts_with(p))
            .map(|(_, r)| r)
            .or(self.wildcard.as_ref())
    }
}

impl Route for PrefixSelectorRoute {
    fn name(&self) -> String {
        "PrefixSelectorRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        match self.pick(req.routing_key()) {
            Some(r) => r.route(req, ctx),
            None => ready(Reply::error_static(
                ErrorClass::LocalError,
                b"SERVER_ERROR mcrouter: no route for this key prefix\r\n",
            )),
        }
    }

    fn children(&self) -> Vec<RouteRef> {
        let mut v: Vec<RouteRef> = self.policies.iter().map(|(_, r)| r.clone()).collect();
        v.extend(self.wildcard.clone());
        v
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        if req.op() == Op::FlushAll {
            return self.children();
        }
        self.pick(req.routing_key()).cloned().into_iter().collect()
    }

    fn plain_destination(&self, op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        self.pick(key)?.plain_destination(op, key)
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let mut policies = Vec::new();
    if let Some(v) = node.field("policies") {
        let path = join(&node.path, "policies");
        let obj = v
            .as_object()
            .ok_or_else(|| ConfigError::at(path.clone(), "expected an object {prefix: route}"))?;
        for (prefix, rv) in obj {
            policies.push((
                prefix.as_bytes().to_vec(),
                b.route(rv, &join(&path, prefix))?,
            ));
        }
    }
    let wildcard = node.opt_route(b, "wildcard")?;
    if policies.is_empty() && wildcard.is_none() {
        return Err(node.err("policies", "expected policies and/or wildcard"));
    }
    Ok(Arc::new(PrefixSelectorRoute::new(policies, wildcard)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn longest_prefix_then_wildcard() {
        run(|ctx| async move {
            let a = Mock::replying("END\r\n");
            let ab = Mock::replying("END\r\n");
            let w = Mock::replying("END\r\n");
            let r = PrefixSelectorRoute::new(
                vec![(b"a".to_vec(), a.r()), (b"ab".to_vec(), ab.r())],
                Some(w.r()),
            );
            r.route(Mock::req("get abc\r\n"), &ctx).await;
            r.route(Mock::req("get /r/c/abc\r\n"), &ctx).await;
            r.route(Mock::req("get axe\r\n"), &ctx).await;
            r.route(Mock::req("get zed\r\n"), &ctx).await;
            assert_eq!((a.count(), ab.count(), w.count()), (1, 2, 1));
        });
    }
}
