//! `ModifyKeyRoute`: rewrites the key before routing to `target`: `set_routing_prefix`
//! replaces (or adds) the `/region/cluster/` prefix, `ensure_key_prefix` adds a prefix to
//! keys that lack it (`modify_inplace`: overwrites their first bytes instead),
//! `replace_key_prefix` swaps that prefix for `ensure_key_prefix`, `key_suffix` appends.
//! Replies carry the client's own key (`VALUE` lines, the meta `k` flag: see
//! [`restore_client_key`]); base64 meta keys are rewritten decoded; a
//! result over 250 bytes is refused with `SERVER_ERROR ModifyKeyRoute: invalid key`.
//!
//! Config: `{"type": "ModifyKeyRoute", "target": ..., "ensure_key_prefix": "app:",
//! "set_routing_prefix": "/r/c/", "key_suffix": ":v2"}`.

use std::rc::Rc;
use std::sync::Arc;

use protocol::Limits;

use super::{ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::hash::{key_without_route, routing_prefix};
use crate::reply::{restore_client_key, ClientKey, ErrorClass, Reply};
use crate::request::Req;

#[derive(Debug, Default)]
pub struct KeyChange {
    pub set_routing_prefix: Option<Vec<u8>>,
    pub ensure_key_prefix: Option<Vec<u8>>,
    /// A key (without routing prefix) starting with this has it replaced by
    /// `ensure_key_prefix`.
    pub replace_key_prefix: Option<Vec<u8>>,
    /// A key lacking `ensure_key_prefix` has its first bytes overwritten by it rather than
    /// prefixed (same length).
    pub modify_inplace: bool,
    pub key_suffix: Option<Vec<u8>>,
}

impl KeyChange {
    /// The new key, or `None` when unchanged (mcrouter's `getModifiedKey`, plus our
    /// `key_suffix`).
    pub fn apply(&self, key: &[u8]) -> Option<Vec<u8>> {
        let own = routing_prefix(key);
        let rp = self.set_routing_prefix.as_deref().unwrap_or(own);
        let rest = key_without_route(key);
        let prefix = self.ensure_key_prefix.as_deref().unwrap_or(b"");
        let mut out = Vec::with_capacity(key.len() + 32);
        out.extend_from_slice(rp);
        match &self.replace_key_prefix {
            Some(old) if rest.starts_with(old) => {
                out.extend_from_slice(prefix);
                out.extend_from_slice(&rest[old.len()..]);
            }
            _ if !rest.starts_with(prefix) => {
                out.extend_from_slice(prefix);
                let skip = if self.modify_inplace && rest.len() >= prefix.len() {
                    prefix.len()
                } else {
                    0
                };
                out.extend_from_slice(&rest[skip..]);
            }
            _ => out.extend_from_slice(rest),
        }
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
        // Base64 meta keys are changed decoded, then encoded again.
        let Some(new_key) = self.change.apply(req.routing_key()) else {
            return self.target.route(req, ctx);
        };
        if new_key.len() > Limits::DEFAULT_MAX_KEY_LEN {
            return ready(Reply::error(
                ErrorClass::LocalError,
                "ModifyKeyRoute: invalid key: key too long",
            ));
        }
        let original = ClientKey::of(&req);
        let fut = self.target.route(req.with_routing_key(&new_key), ctx);
        Box::pin(async move { restore_client_key(fut.await, &original) })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }

    fn children_for(&self, _req: &Req) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }

    fn child_requests(&self, req: &Req) -> Vec<(RouteRef, Req)> {
        let changed = (req.key_count() == 1)
            .then(|| self.change.apply(req.routing_key()))
            .flatten()
            .filter(|k| k.len() <= Limits::DEFAULT_MAX_KEY_LEN);
        let req = match changed {
            Some(k) => req.with_routing_key(&k),
            None => req.clone(),
        };
        vec![(self.target.clone(), req)]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let target = node.route(b, "target")?;
    // Key pieces must be valid in a key: no spaces or control characters (mcrouter checks
    // the same), or they would split the request line.
    let piece = |field: &str| -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(s) = node.str_field(field)? else {
            return Ok(None);
        };
        if s.len() > Limits::DEFAULT_MAX_KEY_LEN || s.bytes().any(|c| c <= b' ' || c == 0x7f) {
            return Err(node.err(
                field,
                "expected a key piece without spaces or control characters (at most 250 bytes)",
            ));
        }
        Ok(Some(s.as_bytes().to_vec()))
    };
    let modify_inplace = match node.field("modify_inplace") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| node.err("modify_inplace", "expected true or false"))?,
    };
    let change = KeyChange {
        set_routing_prefix: node
            .str_field("set_routing_prefix")?
            .map(|s| s.as_bytes().to_vec()),
        ensure_key_prefix: piece("ensure_key_prefix")?,
        replace_key_prefix: piece("replace_key_prefix")?,
        modify_inplace,
        key_suffix: piece("key_suffix")?,
    };
    if change.modify_inplace && change.replace_key_prefix.is_some() {
        return Err(node.err(
            "modify_inplace",
            "cannot be used together with replace_key_prefix",
        ));
    }
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
    fn meta_k_flag_echoes_the_clients_key() {
        run(|ctx| async move {
            let m = Mock::replying("VA 1 kapp:k s1\r\nv\r\n");
            let r = ModifyKeyRoute::new(
                m.r(),
                KeyChange {
                    ensure_key_prefix: Some(b"app:".to_vec()),
                    ..Default::default()
                },
            );
            let reply = r.route(Mock::req("mg k k s v\r\n"), &ctx).await;
            assert_eq!(m.seen()[0], b"mg app:k k s v\r\n");
            assert_eq!(&reply.bytes[..], b"VA 1 kk s1\r\nv\r\n");
            // Base64: the backend echoes its own key in base64; the client gets its own.
            let m = Mock::replying("HD b kYXBwOmZvbw==\r\n");
            let r = ModifyKeyRoute::new(
                m.r(),
                KeyChange {
                    ensure_key_prefix: Some(b"app:".to_vec()),
                    ..Default::default()
                },
            );
            let reply = r.route(Mock::req("mg Zm9v b k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"HD b kZm9v\r\n");
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

    /// The examples in mcrouter's ModifyKeyRoute.h, and its replace/in-place options.
    #[test]
    fn mcrouters_key_rules() {
        let c = KeyChange {
            set_routing_prefix: Some(b"/a/b/".to_vec()),
            ensure_key_prefix: Some(b"foo".to_vec()),
            ..Default::default()
        };
        assert_eq!(c.apply(b"/a/b/a").unwrap(), b"/a/b/fooa");
        assert_eq!(c.apply(b"foo").unwrap(), b"/a/b/foo");
        assert_eq!(c.apply(b"/b/c/o").unwrap(), b"/a/b/fooo");
        assert_eq!(c.apply(b"/a/b/foox"), None);
        let replace = KeyChange {
            ensure_key_prefix: Some(b"new:".to_vec()),
            replace_key_prefix: Some(b"old:".to_vec()),
            ..Default::default()
        };
        assert_eq!(replace.apply(b"old:k").unwrap(), b"new:k");
        assert_eq!(replace.apply(b"/r/c/old:k").unwrap(), b"/r/c/new:k");
        assert_eq!(replace.apply(b"k").unwrap(), b"new:k");
        assert_eq!(replace.apply(b"new:k"), None);
        let inplace = KeyChange {
            ensure_key_prefix: Some(b"ab".to_vec()),
            modify_inplace: true,
            ..Default::default()
        };
        assert_eq!(inplace.apply(b"xyz").unwrap(), b"abz");
        assert_eq!(
            inplace.apply(b"x").unwrap(),
            b"abx",
            "shorter than the prefix"
        );
        assert_eq!(inplace.apply(b"abq"), None);
    }

    #[test]
    fn base64_meta_keys_are_rewritten_decoded_and_long_results_refused() {
        run(|ctx| async move {
            let m = Mock::replying("HD\r\n");
            let r = ModifyKeyRoute::new(
                m.r(),
                KeyChange {
                    ensure_key_prefix: Some(b"app:".to_vec()),
                    ..Default::default()
                },
            );
            // "Zm9v" is base64 for "foo"; "YXBwOmZvbw==" for "app:foo".
            r.route(Mock::req("mg Zm9v b v\r\n"), &ctx).await;
            assert_eq!(m.seen()[0], b"mg YXBwOmZvbw== b v\r\n");
            let long = "k".repeat(248);
            let reply = r.route(Mock::req(&format!("get {long}\r\n")), &ctx).await;
            assert_eq!(
                &reply.bytes[..],
                b"SERVER_ERROR ModifyKeyRoute: invalid key: key too long\r\n"
            );
            assert_eq!(m.seen().len(), 1, "nothing sent for the long key");
        });
    }

    #[test]
    fn config_checks_key_pieces() {
        use crate::config::Config;
        use crate::destination::Registry;
        let load = |fields: &str| {
            let text = format!(
                r#"{{"pools": {{"A": {{"servers": ["127.0.0.1:1"]}}}},
                    "route": {{"type": "ModifyKeyRoute", "target": "PoolRoute|A", {fields}}}}}"#
            );
            Config::parse(&text, Some("t.json"), &Registry::default())
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        load(r#""ensure_key_prefix": "app:", "replace_key_prefix": "old:""#).unwrap();
        load(r#""ensure_key_prefix": "app:", "modify_inplace": true"#).unwrap();
        let e = load(r#""ensure_key_prefix": "secret ""#).unwrap_err();
        assert!(
            e.contains("route.ensure_key_prefix: expected a key piece"),
            "{e}"
        );
        let e = load(r#""replace_key_prefix": "a\tb""#).unwrap_err();
        assert!(e.contains("route.replace_key_prefix"), "{e}");
        let e = load(r#""modify_inplace": "yes""#).unwrap_err();
        assert!(
            e.contains("route.modify_inplace: expected true or false"),
            "{e}"
        );
        let e = load(r#""replace_key_prefix": "x", "modify_inplace": true"#).unwrap_err();
        assert!(e.contains("cannot be used together"), "{e}");
    }
}
