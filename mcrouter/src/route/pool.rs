//! `PoolRoute`: hash over the servers of a pool (mcrouter's most common route).
//!
//! Config: `"PoolRoute|A"`, `{"type": "PoolRoute", "pool": "A"}`, or with an inline pool
//! `{"type": "PoolRoute", "pool": {"name": "A", "servers": [...]}}`; options
//! `"hash": "Ch3"` or `"hash": {"hash_func": "Crc32", "salt": "x", "weights": [...]}`
//! (overriding the pool's own `hash`/`weights`).
//!
//! As mcrouter's `makePoolRoute` (`mcrouter/routes/McRouteHandleProvider-inl.h`,
//! `PoolRouteUtils.h`), the object form also takes:
//!
//! - `"shadows": [{"target": <route>, "index_range": [0, 2], "key_fraction_range":
//!   [0, 0.1]}, ...]`: the pool's destinations whose position is in a shadow's
//!   `index_range` are wrapped in a [`ShadowRoute`](super::shadow::ShadowRoute) copying
//!   the requests with keys in its `key_fraction_range` to `target` (settings in
//!   [`super::shadow`]). Placement is unchanged: the hash sees the bare servers.
//! - `"rates": {"gets_rate": ..., "sets_rate": ..., "deletes_rate": ..., "*_burst": ...}`:
//!   the whole pool behind a [`RateLimitRoute`](super::rate_limit::RateLimitRoute).

use std::sync::Arc;

use serde_json::Value;

use super::hash::{server_names, HashRoute};
use super::{rate_limit, shadow, Node, RouteRef};
use crate::config::{Builder, ConfigError, HashSpec};
use crate::hash::takes_weights;

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let (pool_name, pool_path) = match (node.arg, node.field("pool")) {
        (Some(a), _) => (a.to_string(), node.path.clone()),
        (None, Some(v)) => {
            let path = super::join(&node.path, "pool");
            (b.pool_ref(v, &path)?, path)
        }
        (None, None) => return Err(node.err("pool", "missing; expected a pool name")),
    };
    let pool = b.pool(&pool_name, &pool_path)?;
    let mut spec = HashSpec::from_node(node, Some(&pool.hash))?;
    // As in mcrouter, the pool's weights go to whichever function the route names, and
    // one that takes none ignores them (weights given with the function, in the route or
    // in the pool, are checked).
    let hash_obj = match node.field("hash") {
        Some(Value::Object(h)) => Some(h),
        _ => None,
    };
    let route_names_func = node.field("hash").is_some() || node.field("hash_func").is_some();
    let route_weights =
        node.field("weights").is_some() || hash_obj.is_some_and(|h| h.contains_key("weights"));
    if route_names_func && !route_weights && !takes_weights(&spec.func) {
        spec.weights = None;
        spec.tag_weights = None;
    }
    let names = server_names(&pool.routes);
    let mut destinations = pool.routes.clone();
    if let Some(v) = node.field("shadows") {
        let shadows = shadow::parse_shadows(b, v, &super::join(&node.path, "shadows"))?;
        destinations = shadow::wrap_pool_destinations(destinations, &shadows);
    }
    let mut route: RouteRef = Arc::new(HashRoute::from_spec_named(
        format!("PoolRoute|{pool_name}"),
        destinations,
        &names,
        &spec,
        &node.path,
    )?);
    if let Some(v) = node.field("rates") {
        route = Arc::new(rate_limit::from_rates(
            route,
            v,
            &super::join(&node.path, "rates"),
        )?);
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::destination::Registry;
    use crate::request::Req;
    use crate::route::{describe_path, destinations_for, RouteRef};

    fn load(fields: &str) -> Result<Config, String> {
        let text = format!(
            r#"{{"pools": {{"A": {{"servers": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]}},
                            "S": {{"servers": ["127.0.0.1:9"]}}}},
                "route": {{"type": "PoolRoute", "pool": "A", {fields}}}}}"#
        );
        Config::parse(&text, Some("t.json"), &Registry::default()).map_err(|e| e.to_string())
    }

    /// For each of keys `k0..k59`: (the pool server it goes to, whether the shadow
    /// pool is asked too).
    fn placement(cfg: &Config) -> Vec<(String, bool)> {
        let root: RouteRef = cfg.root.clone();
        (0..60)
            .map(|i| {
                let req = Req::from_wire(format!("get k{i}\r\n").as_bytes()).unwrap();
                let dests: Vec<String> = destinations_for(&root, &req)
                    .iter()
                    .map(|d| d.addr.clone())
                    .collect();
                (dests[0].clone(), dests.iter().any(|d| d == "127.0.0.1:9"))
            })
            .collect()
    }

    /// mcrouter's `wrapPoolDestinations`: only the destinations in `index_range` are
    /// shadowed, and only keys in `key_fraction_range`; placement stays the same.
    #[test]
    fn shadows_wrap_the_destinations_in_index_range() {
        let bare = placement(&load(r#""hash": "Ch3""#).unwrap());
        assert!(bare.iter().all(|(_, s)| !s));
        let cfg = load(
            r#""shadows": [{"target": "PoolRoute|S", "index_range": [1, 3],
                            "key_fraction_range": [0, 1]}]"#,
        )
        .unwrap();
        let shadowed = placement(&cfg);
        for ((a, _), (b, s)) in bare.iter().zip(&shadowed) {
            assert_eq!(a, b, "shadows do not move keys");
            assert_eq!(*s, b != "127.0.0.1:1", "{b}: index 0 is not shadowed");
        }
        assert!(shadowed.iter().any(|(_, s)| *s));
        // The default key range ([0, 0]) and index range ([0, 0]) shadow nothing.
        let none = placement(
            &load(r#""shadows": [{"target": "PoolRoute|S", "index_range": [0, 3]}]"#).unwrap(),
        );
        assert!(none.iter().all(|(_, s)| !s));
        let none = placement(
            &load(r#""shadows": [{"target": "PoolRoute|S", "key_fraction_range": [0, 1]}]"#)
                .unwrap(),
        );
        assert!(none.iter().all(|(_, s)| !s));
        // A key list shadows those keys wherever they go.
        let listed = placement(
            &load(r#""shadows": [{"target": "PoolRoute|S", "keys_to_shadow": ["k3", "k40"]}]"#)
                .unwrap(),
        );
        for (i, (_, s)) in listed.iter().enumerate() {
            assert_eq!(*s, i == 3 || i == 40, "k{i}");
        }
        let e = load(r#""shadows": [{"target": "PoolRoute|S", "index_range": [2]}]"#).unwrap_err();
        assert!(e.contains("route.shadows[0].index_range"), "{e}");
    }

    #[test]
    fn rates_put_the_pool_behind_a_rate_limit() {
        let cfg = load(r#""rates": {"sets_rate": 5, "sets_burst": 2}"#).unwrap();
        let root: RouteRef = cfg.root.clone();
        let req = Req::from_wire(b"set k 0 0 1\r\nx\r\n").unwrap();
        let path = describe_path(&root, &req);
        assert!(path.contains("RateLimitRoute\n"), "{path}");
        assert!(path.contains("PoolRoute|A"), "{path}");
        let e = load(r#""rates": {"sets_rate": 0}"#).unwrap_err();
        assert!(
            e.contains("route.rates.sets_rate: expected a positive number"),
            "{e}"
        );
        let e = load(r#""rates": 5"#).unwrap_err();
        assert!(e.contains("route.rates: expected an object"), "{e}");
    }
}
