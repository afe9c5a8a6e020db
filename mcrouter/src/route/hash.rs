//! `HashRoute`: picks one child by hashing the routing key (mcrouter's
//! `HashRoute`/`SelectionRoute` with a `HashSelector`). `PoolRoute` is a `HashRoute` over
//! the pool's destinations. `flush_all` goes to every child.
//!
//! Config: `{"type": "HashRoute", "children": [...], "hash_func": "Ch3", "salt": "...",
//! "weights": [...]}`; `hash` may also be an object `{"hash_func": ..., "salt": ...,
//! "weights": ...}` as in mcrouter's PoolRoute. `Rendezvous` and `WeightedRendezvous`
//! also take `"tags": [...]`, one string per child (see [`crate::hash::rendezvous`]).

use std::rc::Rc;
use std::sync::Arc;

use super::{all_sync, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError, HashSpec};
use crate::destination::DestShared;
use crate::hash::{HashFunc, HashSelector, Weights};
use crate::request::{Op, Req};

#[derive(Debug)]
pub struct HashRoute {
    label: String,
    children: Vec<RouteRef>,
    selector: HashSelector,
}

impl HashRoute {
    /// `label` is what `name()` reports (`HashRoute` or `PoolRoute|A`).
    pub fn new(label: String, children: Vec<RouteRef>, selector: HashSelector) -> Self {
        HashRoute {
            label,
            children,
            selector,
        }
    }

    /// Build over `children` with `spec`; `names` are the server names Ketama hashes.
    pub fn from_spec(
        label: String,
        children: Vec<RouteRef>,
        spec: &HashSpec,
        path: &str,
    ) -> Result<Self, ConfigError> {
        let names = server_names(&children);
        Self::from_spec_named(label, children, &names, spec, path)
    }

    /// As [`HashRoute::from_spec`] with the names Ketama hashes given (a pool whose
    /// destinations are wrapped, e.g. in shadows, hashes as the bare pool does).
    pub fn from_spec_named(
        label: String,
        children: Vec<RouteRef>,
        names: &[String],
        spec: &HashSpec,
        path: &str,
    ) -> Result<Self, ConfigError> {
        let weights = match (&spec.weights, &spec.tag_weights) {
            (Some(w), _) => Some(Weights::List(w)),
            (None, Some(w)) => Some(Weights::ByTag(w)),
            (None, None) => None,
        };
        let func = HashFunc::from_config_tagged(&spec.func, names, weights, spec.tags.as_deref())
            .map_err(|e| ConfigError::at(path.to_string(), e.to_string()))?;
        let selector = HashSelector::new(func, spec.salt.as_deref());
        Ok(HashRoute::new(label, children, selector))
    }

    pub fn selector(&self) -> &HashSelector {
        &self.selector
    }

    fn pick(&self, key: &[u8]) -> &RouteRef {
        &self.children[self.selector.select(key)]
    }
}

impl Route for HashRoute {
    fn name(&self) -> String {
        format!("{} ({})", self.label, self.selector.describe())
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        if req.op() == Op::FlushAll {
            return all_sync::broadcast(&self.children, req, ctx);
        }
        self.pick(req.routing_key()).route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.clone()
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        if req.op() == Op::FlushAll {
            return self.children.clone();
        }
        vec![self.pick(req.routing_key()).clone()]
    }

    fn plain_destination(&self, op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        if op == Op::FlushAll {
            return None;
        }
        self.pick(key).plain_destination(op, key)
    }
}

/// The server name of each child (its address, or its route name), what Ketama hashes.
pub fn server_names(children: &[RouteRef]) -> Vec<String> {
    children
        .iter()
        .map(|c| {
            c.destination()
                .map(|d| d.addr.clone())
                .unwrap_or_else(|| c.name())
        })
        .collect()
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let children = node.children(b)?;
    let spec = HashSpec::from_node(node, None)?;
    Ok(Arc::new(HashRoute::from_spec(
        "HashRoute".into(),
        children,
        &spec,
        &node.path,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HashSpec;
    use crate::route::testing::{run, Mock};

    #[test]
    fn hashes_keys_to_one_child_and_broadcasts_flush() {
        run(|ctx| async move {
            let mocks: Vec<_> = (0..3).map(|_| Mock::replying("STORED\r\n")).collect();
            let children: Vec<RouteRef> = mocks.iter().map(|m| m.r()).collect();
            let spec = HashSpec::default();
            let r = HashRoute::from_spec("PoolRoute|A".into(), children, &spec, "t").unwrap();
            for i in 0..1000 {
                let req = Mock::req(&format!("set {i} 0 0 1\r\nx\r\n"));
                // Ch3 golden split of "0".."999" over 3 servers.
                r.route(req, &ctx).await;
            }
            let counts: Vec<usize> = mocks.iter().map(|m| m.count()).collect();
            assert_eq!(counts, vec![307, 342, 351]);
            // The routing prefix and hash stop do not change placement.
            let idx = r.selector().select(b"user:7");
            assert_eq!(r.selector().select(b"/r/c/user:7|#|x"), idx);
            r.route(Mock::req("flush_all\r\n"), &ctx).await;
            let counts: Vec<usize> = mocks.iter().map(|m| m.count()).collect();
            assert_eq!(counts, vec![308, 343, 352]);
            assert!(r.name().starts_with("PoolRoute|A (hash|Ch3"));
        });
    }

    /// Where `key`'s get goes under `config`.
    fn server_for(config: &str, key: &str) -> String {
        let c = crate::config::Config::parse(config, None, &Default::default()).unwrap();
        let root: RouteRef = c.root.clone();
        let req = crate::admin::request_for("get", key).unwrap();
        let d = crate::route::destinations_for(&root, &req);
        assert_eq!(d.len(), 1, "{}", crate::route::describe_path(&root, &req));
        d[0].addr.clone()
    }

    /// A config routing to pool `P` of `servers` with the pool fields `fields`.
    fn pool_config(servers: &[&str], fields: &str) -> String {
        let list: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
        format!(
            r#"{{"pools": {{"P": {{"servers": [{}], {fields}}}}}, "route": "PoolRoute|P"}}"#,
            list.join(", ")
        )
    }

    const THREE: [&str; 3] = ["h:1", "h:2", "h:3"];

    fn build_err(config: &str) -> String {
        crate::config::Config::parse(config, None, &Default::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rendezvous_pools_place_keys_by_tag() {
        // mcrouter's golden vectors over tags xxx.0.yy..xxx.2.yy: Rendezvous puts
        // "sample" on 1, WeightedRendezvous (equal weights) on 0 and "" on 2.
        let pool = |hash: &str| pool_config(&THREE, hash);
        let tags = r#""tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"]"#;
        let plain = pool(&format!(r#""hash": {{"hash_func": "Rendezvous", {tags}}}"#));
        assert_eq!(server_for(&plain, "sample"), "h:2");
        // The routing key is hashed: what follows a hash stop changes nothing.
        assert_eq!(server_for(&plain, "sample|#|x"), "h:2");
        let weighted = pool(&format!(
            r#""hash": "WeightedRendezvous", "weights": [1, 1, 1], {tags}"#
        ));
        assert_eq!(server_for(&weighted, "sample"), "h:1");
        assert_eq!(server_for(&weighted, "mykey"), "h:2");
        // Weights by tag (older mcrouter configs) are the same weights.
        let by_tag = pool(&format!(
            r#""hash": {{"hash_func": "WeightedRendezvous", {tags},
                "weights": {{"xxx.2.yy": 1, "xxx.0.yy": 1, "xxx.1.yy": 1}}}}"#
        ));
        assert_eq!(server_for(&by_tag, "sample"), "h:1");
        // A zero weight takes no keys.
        let zero = pool(&format!(
            r#""hash": "WeightedRendezvous", "weights": [1, 0, 1], {tags}"#
        ));
        for i in 0..200 {
            assert_ne!(server_for(&zero, &format!("k{i}")), "h:2");
        }
        // A HashRoute takes the same fields.
        let route = r#"{"route": {"type": "HashRoute", "hash_func": "Rendezvous",
            "tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"],
            "children": ["PoolRoute|P", "PoolRoute|Q", "PoolRoute|S"]},
            "pools": {"P": {"servers": ["h:7"]}, "Q": {"servers": ["h:8"]},
                      "S": {"servers": ["h:9"]}}}"#;
        assert_eq!(server_for(route, "sample"), "h:8");
    }

    #[test]
    fn weighted_ch4_pools_shed_a_lighter_servers_keys() {
        let cfg = |w: &str| {
            pool_config(
                &THREE,
                &format!(r#""hash": {{"hash_func": "WeightedCh4", "weights": {w}}}"#),
            )
        };
        // mcrouter's WeightedCh4HashFuncTest: "0".."999" over weights 1, 1, 0.7.
        let light = cfg("[1, 1, 0.7]");
        let mut counts = [0; 3];
        for i in 0..1000 {
            let s = server_for(&light, &i.to_string());
            counts[["h:1", "h:2", "h:3"].iter().position(|x| *x == s).unwrap()] += 1;
        }
        assert_eq!(counts, [352, 378, 270]);
        let e = build_err(&cfg("[1, 2, 1]"));
        assert!(e.contains("WeightedCh4: weights[1] = 2 is invalid"), "{e}");
        let e = build_err(&pool_config(&["h:1", "h:2"], r#""hash": "WeightedCh4""#));
        assert!(e.contains("WeightedCh4: `weights` is required"), "{e}");
    }

    /// mcrouter's PoolRoute: a pool with `weights` and no hash function is WeightedCh3.
    #[test]
    fn pool_weights_alone_mean_weighted_ch3() {
        let cfg = |hash: &str| pool_config(&THREE, hash);
        let implicit = cfg(r#""weights": [1, 0.2, 1]"#);
        let explicit = cfg(r#""hash": "WeightedCh3", "weights": [1, 0.2, 1]"#);
        let ch3 = cfg(r#""hash": "Ch3""#);
        let mut moved = 0;
        for i in 0..100 {
            let k = format!("k{i}");
            let s = server_for(&implicit, &k);
            assert_eq!(s, server_for(&explicit, &k), "{k}");
            moved += usize::from(s != server_for(&ch3, &k));
        }
        assert!(moved > 0);
        // A route over the weighted pool that names Ch3 ignores the pool's weights, as
        // in mcrouter; weights the route gives a Ch3 itself are refused.
        let over = |route: &str| {
            format!(
                r#"{{"pools": {{"P": {{"servers": ["h:1", "h:2", "h:3"], "weights": [1, 0.2, 1]}},
                    "Q": {{"servers": ["h:1", "h:2", "h:3"]}}}}, "route": {route}}}"#
            )
        };
        let named = over(r#"{"type": "PoolRoute", "pool": "P", "hash": "Ch3"}"#);
        let bare = over(r#""PoolRoute|Q""#);
        for i in 0..100 {
            let k = format!("k{i}");
            assert_eq!(server_for(&named, &k), server_for(&bare, &k), "{k}");
        }
        let e = build_err(&over(
            r#"{"type": "PoolRoute", "pool": "P", "hash": {"hash_func": "Ch3", "weights": [1, 1, 1]}}"#,
        ));
        assert!(e.contains("Ch3: does not take `weights`"), "{e}");
    }

    #[test]
    fn const_shard_pools_take_the_shard_from_the_key() {
        let cfg = &pool_config(&["h:1", "h:2", "h:3", "h:4"], r#""hash": "ConstShard""#);
        assert_eq!(server_for(cfg, "user:3:profile"), "h:4");
        assert_eq!(server_for(cfg, "user:0:profile"), "h:1");
        // mcrouter's Ch3 fallback for keys without a shard ("blahmeh" -> 2 of 4).
        assert_eq!(server_for(cfg, "blahmeh"), "h:3");
        let e = build_err(&pool_config(
            &["h:1", "h:2"],
            r#""hash": "ConstShard", "weights": [1, 1]"#,
        ));
        assert!(e.contains("ConstShard: does not take `weights`"), "{e}");
    }

    #[test]
    fn rendezvous_config_errors_name_the_problem() {
        let cfg = |hash: &str| pool_config(&["h:1", "h:2"], hash);
        let e = build_err(&cfg(r#""hash": "Rendezvous""#));
        assert!(e.contains("Rendezvous: `tags` is required"), "{e}");
        let e = build_err(&cfg(r#""hash": "Rendezvous", "tags": ["a"]"#));
        assert!(
            e.contains("number of tags 1 doesn't match number of route handles 2"),
            "{e}"
        );
        let e = build_err(&cfg(r#""hash": "Rendezvous", "tags": ["a", 2]"#));
        assert!(e.contains("tags: expected a list of strings"), "{e}");
        let e = build_err(&cfg(
            r#""hash": "Rendezvous", "tags": ["a", "b"], "weights": [1, 1]"#,
        ));
        assert!(e.contains("Rendezvous: does not take `weights`"), "{e}");
        let e = build_err(&cfg(r#""hash": "WeightedRendezvous", "tags": ["a", "b"]"#));
        assert!(e.contains("`weights` is required"), "{e}");
        let e = build_err(&cfg(
            r#""hash": "WeightedRendezvous", "tags": ["a", "b"], "weights": [1, -1]"#,
        ));
        assert!(e.contains("weights[1] = -1 is invalid"), "{e}");
        // Tags are names: the other functions ignore them (mcrouter passes a pool's
        // tags to whatever hash function it uses).
        let tagged = cfg(r#""tags": ["a", "b"]"#);
        let plain = cfg(r#""hash": "Ch3""#);
        for i in 0..20 {
            let k = format!("k{i}");
            assert_eq!(server_for(&tagged, &k), server_for(&plain, &k));
        }
        // One server needs no tags, as in mcrouter (no hash function is built there).
        let one = pool_config(&["h:1"], r#""hash": "Rendezvous""#);
        assert_eq!(server_for(&one, "x"), "h:1");
    }
}
