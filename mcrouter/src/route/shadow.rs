//! `ShadowRoute`: routes to `default_policy` and also sends a copy of requests whose key
//! is selected by a shadow's settings to that shadow's `target`, in the background (its
//! reply is ignored). Used to warm or test a new pool with real traffic.
//!
//! Config: `{"type": "ShadowRoute", "default_policy": ..., "shadows": [{"target": ...,
//! "key_fraction_range": [0.0, 0.1]}]}`. A PoolRoute's `shadows` use the same settings
//! (see [`wrap_pool_destinations`]).
//!
//! Shadow settings, as mcrouter's `ShadowSettings` (`mcrouter/routes/ShadowSettings.{h,cpp}`):
//!
//! - `key_fraction_range: [start, end]` (0 <= start <= end <= 1): a key is shadowed when
//!   the SpookyHash V2 32-bit hash (seed 0) of its routing key lies in
//!   `[start * (2^32-1), end * (2^32-1)]`, both ends included. Default `[0, 0]`: as in
//!   mcrouter, practically nothing is shadowed until a range is given.
//! - `index_range: [start, end]`: for PoolRoute shadows, the pool destinations (by
//!   position, `start <= i < end`) whose requests are shadowed. Default `[0, 0]`: none.
//!   A standalone ShadowRoute ignores it.
//! - `keys_to_shadow: [...]`: shadow exactly these routing keys (for every destination);
//!   cannot be combined with the ranges.
//! - `requests_fraction`: the fraction of the selected requests actually copied
//!   (default 1).

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value;

use super::{join, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::destination::DestShared;
use crate::hash::{routing_key, spooky};
use crate::request::{Op, Req};

/// One shadow: where copies go and which requests are copied.
#[derive(Debug)]
pub struct Shadow {
    pub target: RouteRef,
    pub settings: ShadowSettings,
}

/// mcrouter's `ShadowSettings`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSettings {
    /// Inclusive range of routing-key hashes shadowed.
    pub key_range: (u32, u32),
    /// `[start, end)` of the pool destinations shadowed (PoolRoute shadows).
    pub index_range: (usize, usize),
    /// When not empty: exactly these routing keys are shadowed.
    pub keys_to_shadow: HashSet<Vec<u8>>,
    /// Fraction of the selected requests copied.
    pub requests_fraction: f64,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        ShadowSettings {
            key_range: (0, 0),
            index_range: (0, 0),
            keys_to_shadow: HashSet::new(),
            requests_fraction: 1.0,
        }
    }
}

impl ShadowSettings {
    /// Settings shadowing the key fractions `[start, end]` (0 <= start <= end <= 1).
    pub fn key_fraction_range(start: f64, end: f64) -> ShadowSettings {
        ShadowSettings {
            key_range: fraction_range(start, end),
            ..Default::default()
        }
    }

    /// Whether requests on `key` are selected: its routing key is listed in
    /// `keys_to_shadow`, or (without that list) its hash is in `key_range`.
    pub fn selects_key(&self, key: &[u8]) -> bool {
        if self.keys_to_shadow.is_empty() {
            let h = key_hash(key);
            self.key_range.0 <= h && h <= self.key_range.1
        } else {
            self.keys_to_shadow.contains(routing_key(key))
        }
    }

    /// Whether this request on `key` is copied: selected, then `requests_fraction`.
    pub fn should_shadow(&self, key: &[u8]) -> bool {
        self.selects_key(key)
            && (self.requests_fraction >= 1.0 - 1e-5
                || rand::random::<f64>() < self.requests_fraction)
    }

    /// Whether pool destination `i` is shadowed (PoolRoute shadows).
    pub fn covers_index(&self, i: usize) -> bool {
        (self.index_range.0 <= i && i < self.index_range.1) || !self.keys_to_shadow.is_empty()
    }
}

/// mcrouter's `routingKeyHash()`: SpookyHash V2, 32 bits, seed 0, of the routing key.
pub fn key_hash(key: &[u8]) -> u32 {
    spooky::hash32(routing_key(key), 0)
}

fn fraction_range(start: f64, end: f64) -> (u32, u32) {
    let scale = f64::from(u32::MAX);
    ((start * scale) as u32, (end * scale) as u32)
}

#[derive(Debug)]
pub struct ShadowRoute {
    normal: RouteRef,
    shadows: Vec<Arc<Shadow>>,
}

impl ShadowRoute {
    pub fn new(normal: RouteRef, shadows: Vec<Arc<Shadow>>) -> Self {
        ShadowRoute { normal, shadows }
    }

    fn shadows_for<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = &'a Arc<Shadow>> + 'a {
        self.shadows
            .iter()
            .filter(move |s| s.settings.should_shadow(key))
    }
}

impl Route for ShadowRoute {
    fn name(&self) -> String {
        format!("ShadowRoute({} shadows)", self.shadows.len())
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        // Lease requests are not copied: a lease token belongs to the server that issued
        // it, and the router remembers which one that was (`lease::issuer`), so a copy
        // would take or spend the client's token.
        if !matches!(req.op(), Op::LeaseGet | Op::LeaseSet) {
            for s in self.shadows_for(req.routing_key()) {
                tokio::task::spawn_local(s.target.route(req.clone(), ctx));
            }
        }
        self.normal.route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        let mut v = vec![self.normal.clone()];
        v.extend(self.shadows.iter().map(|s| s.target.clone()));
        v
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        // Every shadow that could be asked (`requests_fraction` aside).
        let key = req.routing_key();
        let mut v = vec![self.normal.clone()];
        v.extend(
            self.shadows
                .iter()
                .filter(|s| s.settings.selects_key(key))
                .map(|s| s.target.clone()),
        );
        v
    }

    fn plain_destination(&self, op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        // A key some shadow may copy is routed on its own, through this route.
        if self.shadows.iter().any(|s| s.settings.selects_key(key)) {
            return None;
        }
        self.normal.plain_destination(op, key)
    }
}

/// Parse a `shadows` list (each `{"target": <route>, <settings>...}`) at `path`.
pub fn parse_shadows(
    b: &mut Builder,
    v: &Value,
    path: &str,
) -> Result<Vec<Arc<Shadow>>, ConfigError> {
    let list = v
        .as_array()
        .ok_or_else(|| ConfigError::at(path.to_string(), "expected a list of shadows"))?;
    let mut shadows = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let obj = s
            .as_object()
            .ok_or_else(|| ConfigError::at(p.clone(), "expected an object with `target`"))?;
        let sn = Node {
            path: p.clone(),
            type_name: "shadow".into(),
            obj: Some(obj),
            arg: None,
        };
        let target = sn.route(b, "target")?;
        let settings = parse_settings(&sn)?;
        shadows.push(Arc::new(Shadow { target, settings }));
    }
    Ok(shadows)
}

fn pair_f64(n: &Node<'_>, field: &str) -> Result<Option<(f64, f64)>, ConfigError> {
    let Some(v) = n.field(field) else {
        return Ok(None);
    };
    let pair: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    if pair.len() != 2 || v.as_array().map(Vec::len) != Some(2) {
        return Err(n.err(field, "expected [start, end]"));
    }
    Ok(Some((pair[0], pair[1])))
}

fn parse_settings(n: &Node<'_>) -> Result<ShadowSettings, ConfigError> {
    let mut st = ShadowSettings::default();
    if let Some((a, z)) = pair_f64(n, "key_fraction_range")? {
        if !(0.0 <= a && a <= z && z <= 1.0) {
            return Err(n.err(
                "key_fraction_range",
                "expected [start, end] with 0 <= start <= end <= 1",
            ));
        }
        st.key_range = fraction_range(a, z);
    }
    if let Some(v) = n.field("index_range") {
        let pair: Vec<u64> = v
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        if pair.len() != 2 || v.as_array().map(Vec::len) != Some(2) || pair[0] > pair[1] {
            return Err(n.err(
                "index_range",
                "expected [start, end] with whole numbers 0 <= start <= end",
            ));
        }
        st.index_range = (pair[0] as usize, pair[1] as usize);
    }
    if let Some(v) = n.field("keys_to_shadow") {
        let list = v
            .as_array()
            .ok_or_else(|| n.err("keys_to_shadow", "expected a list of keys"))?;
        for (i, k) in list.iter().enumerate() {
            let k = k
                .as_str()
                .ok_or_else(|| n.err(&format!("keys_to_shadow[{i}]"), "expected a string"))?;
            st.keys_to_shadow.insert(routing_key(k.as_bytes()).to_vec());
        }
        if !st.keys_to_shadow.is_empty()
            && ["index_range", "key_fraction_range", "key_fraction_range_rv"]
                .iter()
                .any(|f| n.field(f).is_some())
        {
            return Err(n.err(
                "keys_to_shadow",
                "cannot be combined with index_range or key_fraction_range",
            ));
        }
    }
    if let Some(f) = n.f64_field("requests_fraction")? {
        if !(0.0..=1.0).contains(&f) {
            return Err(n.err("requests_fraction", "expected a number from 0 to 1"));
        }
        st.requests_fraction = f;
    }
    Ok(st)
}

/// PoolRoute `shadows` (mcrouter's `wrapPoolDestinations` / `makeShadowRoutes`): each
/// destination `i` is wrapped in a [`ShadowRoute`] with the shadows whose `index_range`
/// covers `i` (or that list `keys_to_shadow`); the others are left as they are.
pub fn wrap_pool_destinations(
    destinations: Vec<RouteRef>,
    shadows: &[Arc<Shadow>],
) -> Vec<RouteRef> {
    destinations
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mine: Vec<Arc<Shadow>> = shadows
                .iter()
                .filter(|s| s.settings.covers_index(i))
                .cloned()
                .collect();
            if mine.is_empty() {
                d
            } else {
                Arc::new(ShadowRoute::new(d, mine)) as RouteRef
            }
        })
        .collect()
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let normal = match node.field("default_policy") {
        Some(_) => node.route(b, "default_policy")?,
        None => node.route(b, "children")?,
    };
    let shadows = match node.field("shadows") {
        Some(v) => parse_shadows(b, v, &join(&node.path, "shadows"))?,
        None => Vec::new(),
    };
    Ok(Arc::new(ShadowRoute::new(normal, shadows)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn copies_requests_in_range() {
        run(|ctx| async move {
            let main = Mock::replying("STORED\r\n");
            let sh = Mock::replying("NOT_STORED\r\n");
            let r = ShadowRoute::new(
                main.r(),
                vec![Arc::new(Shadow {
                    target: sh.r(),
                    settings: ShadowSettings::key_fraction_range(0.0, 0.5),
                })],
            );
            let mut expected = 0;
            for i in 0..50 {
                let key = format!("key{i}");
                if u64::from(key_hash(key.as_bytes())) <= u64::from(u32::MAX) / 2 {
                    expected += 1;
                }
                let reply = r
                    .route(Mock::req(&format!("set {key} 0 0 1\r\nx\r\n")), &ctx)
                    .await;
                assert_eq!(&reply.bytes[..], b"STORED\r\n");
            }
            tokio::task::yield_now().await;
            assert_eq!(main.count(), 50);
            assert_eq!(sh.count(), expected);
            assert!(expected > 5 && expected < 45);
        });
    }

    #[test]
    fn lease_requests_are_not_copied() {
        run(|ctx| async move {
            let main = Mock::replying("STORED\r\n");
            let sh = Mock::replying("STORED\r\n");
            let r = ShadowRoute::new(
                main.r(),
                vec![Arc::new(Shadow {
                    target: sh.r(),
                    settings: ShadowSettings::key_fraction_range(0.0, 1.0),
                })],
            );
            r.route(Mock::req("lease-get k\r\n"), &ctx).await;
            r.route(Mock::req("lease-set k 5 0 0 1\r\nx\r\n"), &ctx)
                .await;
            r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            tokio::task::yield_now().await;
            assert_eq!(main.count(), 3);
            assert_eq!(sh.seen(), vec![b"set k 0 0 1\r\nx\r\n".to_vec()]);
        });
    }

    /// mcrouter's defaults select nothing: a key range of [0, 0] and no destinations.
    #[test]
    fn settings_follow_mcrouter() {
        let d = ShadowSettings::default();
        assert!(!d.selects_key(b"k") && !d.covers_index(0));
        let all = ShadowSettings::key_fraction_range(0.0, 1.0);
        assert!(all.selects_key(b"k") && all.selects_key(b"/r/c/k|#|x"));
        // The routing key is hashed: the prefix and the hash stop do not matter.
        let h = key_hash(b"user:1");
        assert_eq!(key_hash(b"/r/c/user:1|#|zz"), h);
        let st = ShadowSettings {
            index_range: (1, 3),
            ..Default::default()
        };
        assert_eq!(
            (0..4).map(|i| st.covers_index(i)).collect::<Vec<_>>(),
            [false, true, true, false]
        );
        let listed = ShadowSettings {
            keys_to_shadow: [b"a".to_vec()].into_iter().collect(),
            ..Default::default()
        };
        assert!(listed.selects_key(b"a") && !listed.selects_key(b"b"));
        assert!(
            listed.covers_index(7),
            "a key list shadows every destination"
        );
        let none = ShadowSettings {
            requests_fraction: 0.0,
            ..ShadowSettings::key_fraction_range(0.0, 1.0)
        };
        assert!(!none.should_shadow(b"k"));
    }

    #[test]
    fn config_checks_settings() {
        use crate::config::Config;
        use crate::destination::Registry;
        let load = |shadow: &str| {
            let text = format!(
                r#"{{"pools": {{"A": {{"servers": ["127.0.0.1:1"]}}, "B": {{"servers": ["127.0.0.1:2"]}}}},
                    "route": {{"type": "ShadowRoute", "default_policy": "PoolRoute|A",
                              "shadows": [{{"target": "PoolRoute|B", {shadow}}}]}}}}"#
            );
            Config::parse(&text, Some("t.json"), &Registry::default())
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        load(r#""key_fraction_range": [0, 0.5], "index_range": [0, 2]"#).unwrap();
        load(r#""keys_to_shadow": ["a", "b"], "requests_fraction": 0.5"#).unwrap();
        let e = load(r#""key_fraction_range": [0.6, 0.5]"#).unwrap_err();
        assert!(e.contains("route.shadows[0].key_fraction_range"), "{e}");
        let e = load(r#""index_range": [2, 1]"#).unwrap_err();
        assert!(e.contains("route.shadows[0].index_range"), "{e}");
        let e = load(r#""keys_to_shadow": ["a"], "index_range": [0, 1]"#).unwrap_err();
        assert!(e.contains("cannot be combined"), "{e}");
    }
}
