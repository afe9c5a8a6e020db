//! mcrouter's JSON config: parsing, validation and building the route tree.
//!
//! ```json
//! // comments and trailing commas are accepted
//! {
//!   "pools": {
//!     "A": {"servers": ["127.0.0.1:5001", "[::1]:5002"], "hash": "Ch3"},
//!   },
//!   "named_handles": [{"name": "main", "type": "PoolRoute", "pool": "A"}],
//!   "route": "PoolRoute|A",
//!   // or: "routes": [{"aliases": ["/region/cluster/"], "route": "main"}],
//! }
//! ```
//!
//! A route is an object `{"type": "...", ...}`, a string `"Type|argument"`
//! (`"PoolRoute|A"`, `"ErrorRoute|message"`, `"AllSyncRoute|Pool|A"`), or the name of a
//! named handle. In a list of children, `"Pool|A"` stands for one route per server of
//! pool A. Errors name the file, the JSON path and what was expected:
//! `cfg.json: route.operation_policies.get: unknown route type "FooRoute"`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::destination::{DestShared, Registry};
use crate::hash::{DEFAULT_HASH_FUNC, HASH_FUNC_NAMES};
use crate::route::destination::{DestinationRoute, LeafOptions};
use crate::route::root::RootRoute;
use crate::route::{build_typed, join, Node, RouteRef, ROUTE_TYPES};

/// A config that could not be loaded: where (file, JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{msg}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default(), if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ConfigError {
    pub file: Option<String>,
    /// JSON path, e.g. `route.operation_policies.get` (empty for the whole file).
    pub path: String,
    pub msg: String,
}

impl ConfigError {
    pub fn at(path: impl Into<String>, msg: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            path: path.into(),
            msg: msg.into(),
        }
    }

    fn in_file(mut self, file: Option<&str>) -> Self {
        if self.file.is_none() {
            self.file = file.map(str::to_string);
        }
        self
    }
}

/// Hash function settings of a pool or a hashing route.
#[derive(Debug, Clone, PartialEq)]
pub struct HashSpec {
    pub func: String,
    pub salt: Option<String>,
    pub weights: Option<Vec<f64>>,
    /// `weights` given as an object by tag (older `WeightedRendezvous` configs).
    pub tag_weights: Option<Vec<(String, f64)>>,
    /// Server tags (`Rendezvous`, `WeightedRendezvous`).
    pub tags: Option<Vec<String>>,
}

impl Default for HashSpec {
    fn default() -> Self {
        HashSpec {
            func: DEFAULT_HASH_FUNC.to_string(),
            salt: None,
            weights: None,
            tag_weights: None,
            tags: None,
        }
    }
}

impl HashSpec {
    /// Read `hash` (a name, or `{"hash_func", "salt", "weights", "tags"}`), `hash_func`,
    /// `salt`, `weights` and `tags` from a route or pool object; unset fields come from
    /// `base`.
    pub fn from_node(node: &Node<'_>, base: Option<&HashSpec>) -> Result<HashSpec, ConfigError> {
        let mut spec = base.cloned().unwrap_or_default();
        let mut apply = |obj: &Map<String, Value>, path: &str| -> Result<(), ConfigError> {
            for (field, v) in obj {
                let p = join(path, field);
                match field.as_str() {
                    "hash_func" => {
                        let s = v
                            .as_str()
                            .ok_or_else(|| ConfigError::at(p.clone(), "expected a string"))?;
                        if !HASH_FUNC_NAMES.contains(&s) {
                            return Err(ConfigError::at(
                                p,
                                format!(
                                    "unknown hash function {s:?}; expected one of {}",
                                    HASH_FUNC_NAMES.join(", ")
                                ),
                            ));
                        }
                        spec.func = s.to_string();
                    }
                    "salt" => {
                        spec.salt = Some(
                            v.as_str()
                                .ok_or_else(|| ConfigError::at(p, "expected a string"))?
                                .to_string(),
                        )
                    }
                    "weights" => {
                        if let Some(by_tag) = v.as_object() {
                            let w: Option<Vec<(String, f64)>> = by_tag
                                .iter()
                                .map(|(t, x)| x.as_f64().map(|x| (t.clone(), x)))
                                .collect();
                            spec.tag_weights = Some(w.ok_or_else(|| {
                                ConfigError::at(p, "expected numbers as the weights by tag")
                            })?);
                            spec.weights = None;
                            continue;
                        }
                        let w: Option<Vec<f64>> = v
                            .as_array()
                            .and_then(|a| a.iter().map(|x| x.as_f64()).collect());
                        spec.weights = Some(w.ok_or_else(|| {
                            ConfigError::at(p, "expected a list of numbers (or an object by tag)")
                        })?);
                        spec.tag_weights = None;
                    }
                    "tags" => {
                        let t: Option<Vec<String>> = v
                            .as_array()
                            .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect());
                        spec.tags = Some(
                            t.ok_or_else(|| ConfigError::at(p, "expected a list of strings"))?,
                        );
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        if let Some(obj) = node.obj {
            apply(obj, &node.path)?;
            match obj.get("hash") {
                None => {}
                Some(Value::String(s)) => {
                    let mut m = Map::new();
                    m.insert("hash_func".into(), Value::String(s.clone()));
                    apply(&m, &join(&node.path, "hash"))?;
                }
                Some(Value::Object(h)) => apply(h, &join(&node.path, "hash"))?,
                Some(_) => {
                    return Err(node.err(
                        "hash",
                        "expected a hash function name or {\"hash_func\": ..., \"salt\": ...}",
                    ))
                }
            }
        }
        Ok(spec)
    }
}

/// A pool as the builder resolved it.
#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub servers: Vec<Arc<DestShared>>,
    /// One `DestinationRoute` per server.
    pub routes: Vec<RouteRef>,
    pub hash: HashSpec,
}

/// Builds route trees; resolves pools and named handles on demand (any order).
pub struct Builder<'r> {
    registry: &'r Registry,
    pool_defs: Map<String, Value>,
    pools: HashMap<String, Arc<Pool>>,
    named_defs: HashMap<String, (Value, String)>,
    named: HashMap<String, RouteRef>,
    building: HashSet<String>,
}

impl<'r> Builder<'r> {
    pub fn new(registry: &'r Registry) -> Self {
        Builder {
            registry,
            pool_defs: Map::new(),
            pools: HashMap::new(),
            named_defs: HashMap::new(),
            named: HashMap::new(),
            building: HashSet::new(),
        }
    }

    /// The shared destination for a server string.
    pub fn destination(
        &mut self,
        server: &str,
        path: &str,
    ) -> Result<Arc<DestShared>, ConfigError> {
        let addr = normalize_server(server).ok_or_else(|| {
            ConfigError::at(
                path.to_string(),
                format!("bad server {server:?}; expected \"host:port\" or \"[v6]:port\""),
            )
        })?;
        Ok(self.registry.get_or_insert(&addr))
    }

    /// A pool name from a `pool` field: a string, or an inline pool object with `name`.
    pub fn pool_ref(&mut self, v: &Value, path: &str) -> Result<String, ConfigError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Object(o) => {
                let name = o
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or_else(|| {
                        ConfigError::at(join(path, "name"), "missing; an inline pool needs a name")
                    })?
                    .to_string();
                if self.pool_defs.contains_key(&name) {
                    return Err(ConfigError::at(
                        join(path, "name"),
                        format!("pool {name:?} is already defined"),
                    ));
                }
                self.pool_defs.insert(name.clone(), v.clone());
                self.build_pool(&name, path)?;
                Ok(name)
            }
            _ => Err(ConfigError::at(
                path.to_string(),
                "expected a pool name or a pool object",
            )),
        }
    }

    /// The pool `name` (built on first use).
    pub fn pool(&mut self, name: &str, path: &str) -> Result<Arc<Pool>, ConfigError> {
        if let Some(p) = self.pools.get(name) {
            return Ok(p.clone());
        }
        if !self.pool_defs.contains_key(name) {
            let mut known: Vec<&String> = self.pool_defs.keys().collect();
            known.sort();
            return Err(ConfigError::at(
                path.to_string(),
                format!("unknown pool {name:?}; defined pools: {known:?}"),
            ));
        }
        self.build_pool(name, &format!("pools.{name}"))
    }

    fn build_pool(&mut self, name: &str, path: &str) -> Result<Arc<Pool>, ConfigError> {
        let def = self.pool_defs.get(name).cloned().unwrap_or(Value::Null);
        let obj = def.as_object().ok_or_else(|| {
            ConfigError::at(
                path.to_string(),
                "expected a pool object {\"servers\": [...]}",
            )
        })?;
        let sp = join(path, "servers");
        let list = obj
            .get("servers")
            .and_then(|s| s.as_array())
            .ok_or_else(|| {
                ConfigError::at(sp.clone(), "missing; expected a list of \"host:port\"")
            })?;
        if list.is_empty() {
            return Err(ConfigError::at(sp, "expected at least one server"));
        }
        let mut servers = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let p = format!("{sp}[{i}]");
            let s = s
                .as_str()
                .ok_or_else(|| ConfigError::at(p.clone(), "expected \"host:port\""))?;
            servers.push(self.destination(s, &p)?);
        }
        let node = Node {
            path: path.to_string(),
            type_name: "pool".into(),
            obj: Some(obj),
            arg: None,
        };
        // As mcrouter's PoolRoute: a pool's `weights` with no hash function named mean
        // `WeightedCh3`.
        let named = obj.contains_key("hash") || obj.contains_key("hash_func");
        let base = (!named && obj.contains_key("weights")).then(|| HashSpec {
            func: "WeightedCh3".into(),
            ..HashSpec::default()
        });
        let hash = HashSpec::from_node(&node, base.as_ref())?;
        let leaf = LeafOptions::from_object(Some(obj), path)?;
        let routes = servers
            .iter()
            .map(|d| Arc::new(DestinationRoute::with_options(d.clone(), leaf)) as RouteRef)
            .collect();
        let pool = Arc::new(Pool {
            name: name.to_string(),
            servers,
            routes,
            hash,
        });
        self.pools.insert(name.to_string(), pool.clone());
        Ok(pool)
    }

    /// Build one route from a JSON value at `path`.
    pub fn route(&mut self, v: &Value, path: &str) -> Result<RouteRef, ConfigError> {
        match v {
            Value::String(s) => self.route_str(s, path),
            Value::Object(obj) => {
                let type_name = match obj.get("type") {
                    Some(Value::String(t)) => t.clone(),
                    Some(_) => {
                        return Err(ConfigError::at(join(path, "type"), "expected a string"))
                    }
                    None => {
                        return Err(ConfigError::at(
                            join(path, "type"),
                            "missing; expected a route type such as \"PoolRoute\"",
                        ))
                    }
                };
                let node = Node {
                    path: path.to_string(),
                    type_name,
                    obj: Some(obj),
                    arg: None,
                };
                let r = build_typed(&node, self)?;
                if let Some(Value::String(name)) = obj.get("name") {
                    self.named.insert(name.clone(), r.clone());
                }
                Ok(r)
            }
            _ => Err(ConfigError::at(
                path.to_string(),
                "expected a route: an object with \"type\", \"Type|arg\" or a named handle",
            )),
        }
    }

    fn route_str(&mut self, s: &str, path: &str) -> Result<RouteRef, ConfigError> {
        if let Some((t, arg)) = s.split_once('|') {
            let type_name = if t == "Pool" { "PoolRoute" } else { t };
            let node = Node {
                path: path.to_string(),
                type_name: type_name.to_string(),
                obj: None,
                arg: Some(arg),
            };
            return build_typed(&node, self);
        }
        if let Some(r) = self.named.get(s) {
            return Ok(r.clone());
        }
        if let Some((def, def_path)) = self.named_defs.get(s).cloned() {
            if !self.building.insert(s.to_string()) {
                return Err(ConfigError::at(
                    path.to_string(),
                    format!("named handle {s:?} refers to itself"),
                ));
            }
            let r = self.route(&def, &def_path);
            self.building.remove(s);
            let r = r?;
            self.named.insert(s.to_string(), r.clone());
            return Ok(r);
        }
        if ROUTE_TYPES.contains(&s) {
            let node = Node {
                path: path.to_string(),
                type_name: s.to_string(),
                obj: None,
                arg: None,
            };
            return build_typed(&node, self);
        }
        Err(ConfigError::at(
            path.to_string(),
            format!("unknown route type or named handle {s:?}"),
        ))
    }

    /// A list of routes: an array, `"Pool|A"` (one route per server), or a single route.
    /// As mcrouter's `createList`, a pool inside an array (`"Pool|A"` or an inline
    /// `{"type": "Pool", "name": ..., "servers": [...]}`) stands for its servers too:
    /// `["PoolRoute|A", "Pool|B"]` is A's route followed by one route per server of B.
    pub fn route_list(&mut self, v: &Value, path: &str) -> Result<Vec<RouteRef>, ConfigError> {
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match self.pool_servers(item, &item_path)? {
                        Some(routes) => out.extend(routes),
                        None => out.push(self.route(item, &item_path)?),
                    }
                }
                Ok(out)
            }
            other => match self.pool_servers(other, path)? {
                Some(routes) => Ok(routes),
                None => Ok(vec![self.route(other, path)?]),
            },
        }
    }

    /// The per-server routes of `v` if it names a pool as a list (`"Pool|A"`, or an
    /// object of type `Pool`).
    fn pool_servers(
        &mut self,
        v: &Value,
        path: &str,
    ) -> Result<Option<Vec<RouteRef>>, ConfigError> {
        let name = match v {
            Value::String(s) if s.starts_with("Pool|") => s[5..].to_string(),
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("Pool") => {
                self.pool_ref(v, path)?
            }
            _ => return Ok(None),
        };
        Ok(Some(self.pool(&name, path)?.routes.clone()))
    }
}

/// `host:port` with an optional `:ascii`/`:plain`/`:caret` protocol suffix removed, or
/// `None` if it does not look like an address.
pub fn normalize_server(s: &str) -> Option<String> {
    let mut s = s.trim();
    for suffix in [
        ":ascii",
        ":plain",
        ":caret",
        ":ssl",
        ":notcompressed",
        ":compressed",
    ] {
        while let Some(rest) = s.strip_suffix(suffix) {
            s = rest;
        }
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        s.rsplit_once(':')?
    };
    if host.is_empty() || port.parse::<u16>().ok()? == 0 {
        return None;
    }
    Some(s.to_string())
}

/// A loaded config: the route tree and what admin commands report about it.
#[derive(Debug)]
pub struct Config {
    pub root: Arc<RootRoute>,
    /// Where requests enter: `root`, or a router-wide wrapper over it
    /// ([`Config::with_big_values`]).
    pub top: RouteRef,
    /// The config text as read.
    pub text: String,
    pub file: Option<PathBuf>,
    pub loaded_at: SystemTime,
    /// Pool name -> servers, for `__mcrouter__.pools`.
    pub pools: BTreeMap<String, Vec<String>>,
}

impl Config {
    /// This config with big values split (`--big-value-split-threshold`) when `opts` says so.
    pub fn with_big_values(
        mut self,
        opts: Option<crate::route::big_value::BigValueOptions>,
    ) -> Config {
        if let Some(o) = opts {
            self.top = Arc::new(crate::route::big_value::BigValueRoute::new(self.top, o));
        }
        self
    }

    /// This config with `-R` as its default route and `--send-invalid-route-to-default`
    /// (see [`RootRoute::with_options`]); call before [`Config::with_big_values`].
    pub fn with_route_options(
        mut self,
        prefix: Option<&str>,
        invalid_to_default: bool,
    ) -> Result<Config, ConfigError> {
        if prefix.is_none() && !invalid_to_default {
            return Ok(self);
        }
        let root = self
            .root
            .with_options(prefix, invalid_to_default)
            .map_err(|msg| ConfigError {
                file: self.file.as_ref().map(|f| f.display().to_string()),
                path: "routes".into(),
                msg,
            })?;
        self.root = Arc::new(root);
        self.top = self.root.clone();
        Ok(self)
    }

    /// Read and build the config in `path`.
    pub fn load(path: &Path, registry: &Registry) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(name.clone()),
            path: String::new(),
            msg: format!("cannot read: {e}"),
        })?;
        let mut c = Config::parse(&text, Some(&name), registry)?;
        c.file = Some(path.to_path_buf());
        Ok(c)
    }

    /// Build from config text; `file` names it in errors.
    pub fn parse(
        text: &str,
        file: Option<&str>,
        registry: &Registry,
    ) -> Result<Config, ConfigError> {
        Self::parse_inner(text, registry).map_err(|e| e.in_file(file.or(Some("config"))))
    }

    fn parse_inner(text: &str, registry: &Registry) -> Result<Config, ConfigError> {
        let clean = strip_json_extras(text);
        let v: Value = serde_json::from_str(&clean).map_err(|e| {
            ConfigError::at(
                String::new(),
                format!(
                    "invalid JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let top = v
            .as_object()
            .ok_or_else(|| ConfigError::at(String::new(), "expected a JSON object"))?;
        for k in top.keys() {
            if !["pools", "route", "routes", "named_handles"].contains(&k.as_str()) {
                tracing::warn!(field = %k, "config: ignoring unknown top-level field");
            }
        }
        let mut b = Builder::new(registry);
        match top.get("pools") {
            None => {}
            Some(Value::Object(p)) => b.pool_defs = p.clone(),
            Some(_) => return Err(ConfigError::at("pools", "expected an object {name: pool}")),
        }
        match top.get("named_handles") {
            None => {}
            Some(Value::Array(list)) => {
                for (i, h) in list.iter().enumerate() {
                    let p = format!("named_handles[{i}]");
                    let name = h.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                        ConfigError::at(join(&p, "name"), "missing; expected a string")
                    })?;
                    b.named_defs.insert(name.to_string(), (h.clone(), p));
                }
            }
            Some(Value::Object(map)) => {
                for (name, h) in map {
                    b.named_defs
                        .insert(name.clone(), (h.clone(), format!("named_handles.{name}")));
                }
            }
            Some(_) => {
                return Err(ConfigError::at(
                    "named_handles",
                    "expected a list of routes with \"name\"",
                ))
            }
        }
        let routes = match (top.get("route"), top.get("routes")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    "routes",
                    "give either \"route\" or \"routes\", not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::at(
                    "route",
                    "missing; expected \"route\" (a route) or \"routes\" (a list with aliases)",
                ))
            }
            (Some(r), None) => vec![(String::new(), b.route(r, "route")?)],
            (None, Some(Value::Array(list))) => {
                let mut out = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    let p = format!("routes[{i}]");
                    let aliases =
                        item.get("aliases")
                            .and_then(|a| a.as_array())
                            .ok_or_else(|| {
                                ConfigError::at(
                                    join(&p, "aliases"),
                                    "missing; expected a list of \"/region/cluster/\"",
                                )
                            })?;
                    let route_v = item.get("route").ok_or_else(|| {
                        ConfigError::at(join(&p, "route"), "missing; expected a route")
                    })?;
                    let route = b.route(route_v, &join(&p, "route"))?;
                    for (j, a) in aliases.iter().enumerate() {
                        let ap = format!("{p}.aliases[{j}]");
                        let a = a
                            .as_str()
                            .ok_or_else(|| ConfigError::at(ap.clone(), "expected a string"))?;
                        let ok = a.starts_with('/')
                            && a.ends_with('/')
                            && crate::hash::routing_prefix(format!("{a}k").as_bytes()).len()
                                == a.len();
                        if !ok {
                            return Err(ConfigError::at(
                                ap,
                                format!("bad alias {a:?}; expected \"/region/cluster/\""),
                            ));
                        }
                        out.push((a.to_string(), route.clone()));
                    }
                }
                if out.is_empty() {
                    return Err(ConfigError::at("routes", "expected at least one alias"));
                }
                out
            }
            (None, Some(_)) => {
                return Err(ConfigError::at(
                    "routes",
                    "expected a list of {\"aliases\": [...], \"route\": ...}",
                ))
            }
        };
        let mut pools = BTreeMap::new();
        for (name, p) in &b.pools {
            pools.insert(
                name.clone(),
                p.servers.iter().map(|d| d.addr.clone()).collect(),
            );
        }
        let root = Arc::new(RootRoute::new(routes));
        Ok(Config {
            top: root.clone(),
            root,
            text: text.to_string(),
            file: None,
            loaded_at: SystemTime::now(),
            pools,
        })
    }
}

/// Remove `//` and `/* */` comments and trailing commas (outside strings) so the text is
/// plain JSON.
pub fn strip_json_extras(text: &str) -> String {
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            // Copy the string literal verbatim.
            out.push(c);
            i += 1;
            while i < b.len() {
                out.push(b[i]);
                if b[i] == b'\\' && i + 1 < b.len() {
                    out.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                i += 1;
                if b[i - 1] == b'"' {
                    break;
                }
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                // Keep newlines so JSON error line numbers stay right.
                if b[i] == b'\n' {
                    out.push(b'\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == b']' || c == b'}' {
            // Drop a trailing comma before the closing bracket.
            let mut j = out.len();
            while j > 0 && out[j - 1].is_ascii_whitespace() {
                j -= 1;
            }
            if j > 0 && out[j - 1] == b',' {
                out.remove(j - 1);
            }
            out.push(c);
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Some("t.json"), &Registry::default())
    }

    #[test]
    fn minimal_config() {
        let c = parse(r#"{"pools":{"A":{"servers":["127.0.0.1:5001"]}},"route":"PoolRoute|A"}"#)
            .unwrap();
        assert_eq!(c.pools["A"], vec!["127.0.0.1:5001".to_string()]);
    }

    #[test]
    fn comments_and_trailing_commas() {
        let c = parse(
            "// top\n{\"pools\": {/* inline */ \"A\": {\"servers\": [\"h:1\", \"h:2\",],},},\n \"route\": \"PoolRoute|A\", // end\n}",
        )
        .unwrap();
        assert_eq!(c.pools["A"].len(), 2);
        // Comment markers inside strings are kept.
        assert_eq!(
            strip_json_extras(r#"{"a": "x//y,}"}"#),
            r#"{"a": "x//y,}"}"#
        );
    }

    #[test]
    fn errors_name_file_path_and_expectation() {
        let e = parse(
            r#"{"pools":{"A":{"servers":["h:1"]}},
                "route":{"type":"OperationSelectorRoute","operation_policies":{"get":{"type":"FooRoute"}}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.json: route.operation_policies.get: unknown route type \"FooRoute\""
        );
        let e = parse(r#"{"pools":{"A":{"servers":["nope"]}},"route":"PoolRoute|A"}"#).unwrap_err();
        assert_eq!(e.path, "pools.A.servers[0]");
        let e = parse(r#"{"pools":{},"route":"PoolRoute|B"}"#).unwrap_err();
        assert!(e.msg.contains("unknown pool \"B\""), "{e}");
        let e = parse(r#"{"pools":{"A":{"servers":["h:1"]}},"route":{"type":"PoolRoute","pool":"A","hash":{"hash_func":"Md99"}}}"#)
            .unwrap_err();
        assert_eq!(e.path, "route.hash.hash_func");
        let e = parse("{\"route\": ").unwrap_err();
        assert!(e.to_string().starts_with("t.json: invalid JSON"), "{e}");
    }

    #[test]
    fn routes_aliases_and_named_handles() {
        let c = parse(
            r#"{
              "pools": {"A": {"servers": ["h:1", "h:2"]}, "B": {"servers": ["h:3"]}},
              "named_handles": [{"name": "fo", "type": "FailoverRoute", "children": ["PoolRoute|A", "PoolRoute|B"]}],
              "routes": [
                {"aliases": ["/r/c/", "/r/d/"], "route": "fo"},
                {"aliases": ["/x/y/"], "route": {"type": "AllSyncRoute", "children": "Pool|A"}}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(
            c.root.aliases().collect::<Vec<_>>(),
            vec!["/r/c/", "/r/d/", "/x/y/"]
        );
        let e = parse(r#"{"named_handles":[{"name":"x","type":"FailoverRoute","children":["x"]}],"route":"x"}"#)
            .unwrap_err();
        assert!(e.msg.contains("refers to itself"), "{e}");
    }

    #[test]
    fn a_pool_inside_a_list_stands_for_its_servers_as_in_mcrouter() {
        // mcrouter's test_deterministic_failover.json shape: the normal route, then the
        // failover pool's servers one by one.
        let c = parse(
            r#"{
              "pools": {"A": {"servers": ["h:1", "h:2"]}, "B": {"servers": ["h:3", "h:4", "h:5"]}},
              "route": {"type": "FailoverRoute", "children": ["PoolRoute|A", "Pool|B",
                  {"type": "Pool", "name": "C", "servers": ["h:6"]}]}
            }"#,
        )
        .unwrap();
        let root = c.root.default_route();
        assert_eq!(root.children().len(), 1 + 3 + 1);
        let req = crate::request::Req::from_wire(b"get k\r\n").unwrap();
        let path = crate::route::describe_path(root, &req);
        assert!(
            path.contains("h:3") && path.contains("h:5") && path.contains("h:6"),
            "{path}"
        );
        assert_eq!(c.pools.len(), 3);
    }

    #[test]
    fn every_route_type_builds() {
        let c = parse(
            r#"{
              "pools": {"A": {"servers": ["h:1", "h:2"], "hash": {"hash_func": "Crc32", "salt": "s"}},
                        "W": {"servers": ["h:1", "h:2"], "hash": "WeightedCh3", "weights": [1, 0.5]}},
              "route": {"type": "PrefixSelectorRoute",
                "policies": {"a": {"type": "OperationSelectorRoute",
                    "operation_policies": {
                      "get": {"type": "MissFailoverRoute", "children": ["PoolRoute|A", "PoolRoute|W"]},
                      "set": {"type": "AllSyncRoute", "children": "Pool|A"},
                      "delete": {"type": "AllAsyncRoute", "children": "Pool|A"},
                      "add": {"type": "AllInitialRoute", "children": "Pool|A"},
                      "replace": {"type": "AllMajorityRoute", "children": "Pool|A"},
                      "append": {"type": "AllFastestRoute", "children": "Pool|A"},
                      "prepend": {"type": "LatestRoute", "children": "Pool|A", "failover_count": 2},
                      "cas": {"type": "RandomRoute", "children": "Pool|A"},
                      "incr": {"type": "HashRoute", "children": "Pool|A", "hash_func": "Ketama"},
                      "decr": {"type": "FailoverRoute", "children": ["PoolRoute|A", "ErrorRoute|x"], "failover_errors": ["tko", "connect_error"]},
                      "touch": {"type": "ShadowRoute", "default_policy": "PoolRoute|A", "shadows": [{"target": "PoolRoute|W", "key_fraction_range": [0, 0.1]}]},
                      "lease-get": {"type": "ModifyKeyRoute", "target": "PoolRoute|A", "ensure_key_prefix": "p:"},
                      "lease-set": {"type": "ModifyExptimeRoute", "target": "PoolRoute|A", "exptime": 10, "action": "min"},
                      "metaget": {"type": "RateLimitRoute", "target": "PoolRoute|A", "rates": {"gets_rate": 10}}
                    },
                    "default_policy": "NullRoute"}},
                "wildcard": {"type": "PoolRoute", "pool": {"name": "C", "servers": ["[::1]:5"]}}}
            }"#,
        )
        .unwrap();
        assert_eq!(c.pools.len(), 3);
    }
}
