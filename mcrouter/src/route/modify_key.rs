//! `ModifyKeyRoute`: rewrites the key before routing to `target`: `set_routing_prefix`
//! replaces (or adds) the `/region/cluster/` prefix, `ensure_key_prefix` adds a prefix to
//! keys that lack it, `key_suffix` appends. Get replies carry the client's own key.
//!
//! Config: `{"type": "ModifyKeyRoute", "target": ..., "ensure_key_prefix": "app:",
//! "set_routing_prefix": "/r/c/", "key_suffix": ":v2"}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::hash::{key_without_route, routing_prefix};
use crate::reply::rewrite_value_key;
use crate::request::Req;

#[derive(Debug, Default)]
pub struct KeyChange {
    pub set_routing_prefix: Option<Vec<u8>>,
    pub ensure_key_prefix: Option<Vec<u8>>,
    pub key_suffix: Option<Vec<u8>>,
}

impl KeyChange {
    /// The new key, or `None` when unchanged.
    pub fn apply(&self, key: &[u8]) -> Option<Vec<u8>> {
        let prefix = routing_prefix(key);
        let rest = key_without_route(key);
        let mut out = Vec::with_capacity(key.len() + 32);
        out.extend_from_slice(self.set_routing_prefix.as_deref().unwrap_or(prefix));
        if let Some(p) = &self.ensure_key_prefix {
            if !rest.starts_with(p) {
                out.extend_from_slice(p);
            }
        }
        out.extend_from_slice(rest);
        if let Some(s) = &self.key_suffix {
            out.extend_from_slice(s);
        }
        (out != key).then_some(out)
    }
}

#[derive(Debug)]
pub struct ModifyKeyRoute {
    target: RouteRef,
    change: KeyChange,
}

impl ModifyKeyRoute {
    pub fn new(target: RouteRef, change: KeyChange) -> Self {
        ModifyKeyRoute { target, change }
    }
}

impl Route for ModifyKeyRoute {
    fn name(&self) -> String {
        "ModifyKeyRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        if req.key_count() != 1 {
            return self.target.route(req, ctx);
        }
        let Some(new_key) = self.change.apply(req.key()) else {
            return self.target.route(req, ctx);
        };
        let original = req.key().to_vec();
        let fut = self.target.route(req.with_key(&new_key), ctx);
        Box::pin(async move { rewrite_value_key(fut.await, &original) })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }

    fn children_for(&self, _req: &Req) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let target = node.route(b, "target")?;
    let bytes = |s: Option<&str>| s.map(|s| s.as_bytes().to_vec());
    let change = KeyChange {
        set_routing_prefix: bytes(node.str_field("set_routing_prefix")?),
        ensure_key_prefix: bytes(node.str_field("ensure_key_prefix")?),
        key_suffix: bytes(node.str_field("key_suffix")?),
    };
    if let Some(p) = &change.set_routing_prefix {
        if !p.is_empty() && routing_prefix(&[p.as_slice(), b"k"].concat()).len() != p.len() {
            return Err(node.err("set_routing_prefix", "expected \"/region/cluster/\""));
        }
    }
    Ok(Arc::new(ModifyKeyRoute::new(target, change)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn rewrites_key_and_restores_it_in_replies() {
        run(|ctx| async move {
            let m = Mock::replying("VALUE app:k 0 1\r\nv\r\nEND\r\n");
            let r = ModifyKeyRoute::new(
                m.r(),
                KeyChange {
                    ensure_key_prefix: Some(b"app:".to_vec()),
                    ..Default::default()
                },
            );
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(m.seen()[0], b"get app:k\r\n");
            assert_eq!(&reply.bytes[..], b"VALUE k 0 1\r\nv\r\nEND\r\n");
            r.route(Mock::req("get app:k\r\n"), &ctx).await;
            assert_eq!(m.seen()[1], b"get app:k\r\n");
        });
    }

    #[test]
    fn routing_prefix_and_suffix() {
        let c = KeyChange {
            set_routing_prefix: Some(b"/a/b/".to_vec()),
            key_suffix: Some(b":2".to_vec()),
            ..Default::default()
        };
        assert_eq!(c.apply(b"/x/y/k").unwrap(), b"/a/b/k:2");
        assert_eq!(c.apply(b"k").unwrap(), b"/a/b/k:2");
    }
}
