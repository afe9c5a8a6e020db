//! `OperationSelectorRoute`: picks a child by operation (`get`, `set`, `delete`, ...),
//! with `default_policy` for the rest. Meta commands are named `metaget`, `metaset`,
//! `metadelete`, `metaarithmetic`, `metadebug`.
//!
//! As in mcrouter (`mcrouter/routes/OperationSelectorRoute-inl.h`: each
//! `operation_policies` key is one request type, looked up by its carbon name), a
//! policy catches exactly its own operation: `get` is not used for `gets`, `gat`,
//! `gats`, `metaget` or `lease-get`, `set` not for `lease-set` or `metaset`, `delete`
//! not for `metadelete`; those take their own policy or `default_policy`.
//!
//! Config: `{"type": "OperationSelectorRoute", "operation_policies": {"get": ...,
//! "set": ...}, "default_policy": ...}`.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::{join, ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::destination::DestShared;
use crate::reply::{ErrorClass, Reply};
use crate::request::{Op, Req, OP_NAMES};

#[derive(Debug)]
pub struct OperationSelectorRoute {
    policies: HashMap<Op, RouteRef>,
    default: Option<RouteRef>,
}

impl OperationSelectorRoute {
    pub fn new(policies: HashMap<Op, RouteRef>, default: Option<RouteRef>) -> Self {
        OperationSelectorRoute { policies, default }
    }

    fn pick(&self, op: Op) -> Option<&RouteRef> {
        self.policies.get(&op).or(self.default.as_ref())
    }
}

impl Route for OperationSelectorRoute {
    fn name(&self) -> String {
        "OperationSelectorRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        match self.pick(req.op()) {
            Some(r) => r.route(req, ctx),
            None => ready(Reply::error_static(
                ErrorClass::LocalError,
                b"SERVER_ERROR mcrouter: no route for this operation\r\n",
            )),
        }
    }

    fn children(&self) -> Vec<RouteRef> {
        let mut v: Vec<RouteRef> = self.policies.values().cloned().collect();
        v.extend(self.default.clone());
        v
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        self.pick(req.op()).cloned().into_iter().collect()
    }

    fn plain_destination(&self, op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        self.pick(op)?.plain_destination(op, key)
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let mut policies = HashMap::new();
    if let Some(v) = node.field("operation_policies") {
        let path = join(&node.path, "operation_policies");
        let obj = v.as_object().ok_or_else(|| {
            ConfigError::at(path.clone(), "expected an object {operation: route}")
        })?;
        for (name, rv) in obj {
            let p = join(&path, name);
            let op = Op::from_name(name).ok_or_else(|| {
                ConfigError::at(
                    p.clone(),
                    format!(
                        "unknown operation {name:?}; expected one of {}",
                        OP_NAMES.join(", ")
                    ),
                )
            })?;
            policies.insert(op, b.route(rv, &p)?);
        }
    }
    let default = node.opt_route(b, "default_policy")?;
    if policies.is_empty() && default.is_none() {
        return Err(node.err(
            "operation_policies",
            "expected operation_policies and/or default_policy",
        ));
    }
    Ok(Arc::new(OperationSelectorRoute::new(policies, default)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn selects_by_operation() {
        run(|ctx| async move {
            let gets = Mock::replying("END\r\n");
            let rest = Mock::replying("STORED\r\n");
            let mut p = HashMap::new();
            p.insert(Op::Get, gets.r());
            let r = OperationSelectorRoute::new(p, Some(rest.r()));
            r.route(Mock::req("get a\r\n"), &ctx).await;
            r.route(Mock::req("set a 0 0 1\r\nx\r\n"), &ctx).await;
            r.route(Mock::req("delete a\r\n"), &ctx).await;
            assert_eq!((gets.count(), rest.count()), (1, 2));
            let none = OperationSelectorRoute::new(HashMap::new(), None);
            assert!(none.route(Mock::req("get a\r\n"), &ctx).await.is_error());
        });
    }

    /// Each policy key matches only its own operation; the rest go to default_policy.
    #[test]
    fn a_policy_catches_only_its_operation() {
        use crate::config::Config;
        use crate::destination::Registry;
        use crate::route::{destinations_for, RouteRef};
        let text = r#"{"pools": {"G": {"servers": ["127.0.0.1:1"]}, "S": {"servers": ["127.0.0.1:2"]},
                                 "D": {"servers": ["127.0.0.1:3"]}, "X": {"servers": ["127.0.0.1:4"]}},
            "route": {"type": "OperationSelectorRoute",
                      "operation_policies": {"get": "PoolRoute|G", "set": "PoolRoute|S",
                                             "delete": "PoolRoute|D"},
                      "default_policy": "PoolRoute|X"}}"#;
        let cfg = Config::parse(text, Some("t.json"), &Registry::default()).unwrap();
        let root: RouteRef = cfg.root.clone();
        let to = |wire: &str| {
            let req = Req::from_wire(wire.as_bytes()).unwrap();
            destinations_for(&root, &req)[0].addr.clone()
        };
        assert_eq!(to("get k\r\n"), "127.0.0.1:1");
        assert_eq!(to("set k 0 0 1\r\nx\r\n"), "127.0.0.1:2");
        assert_eq!(to("delete k\r\n"), "127.0.0.1:3");
        for other in [
            "gets k\r\n",
            "gat 1 k\r\n",
            "gats 1 k\r\n",
            "mg k v\r\n",
            "lease-get k\r\n",
            "ms k 1\r\nx\r\n",
            "lease-set k 1 0 0 1\r\nx\r\n",
            "md k\r\n",
            "add k 0 0 1\r\nx\r\n",
        ] {
            assert_eq!(to(other), "127.0.0.1:4", "{other:?}");
        }
    }

    #[test]
    fn unknown_operations_are_refused() {
        run(|ctx| async move {
            let none = OperationSelectorRoute::new(HashMap::new(), None);
            assert!(none.route(Mock::req("get a\r\n"), &ctx).await.is_error());
        });
    }
}
