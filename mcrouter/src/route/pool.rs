//! `PoolRoute`: hash over the servers of a pool (mcrouter's most common route).
//!
//! Config: `"PoolRoute|A"`, `{"type": "PoolRoute", "pool": "A"}`, or with an inline pool
//! `{"type": "PoolRoute", "pool": {"name": "A", "servers": [...]}}`; options
//! `"hash": "Ch3"` or `"hash": {"hash_func": "Crc32", "salt": "x", "weights": [...]}`
//! (overriding the pool's own `hash`/`weights`).

use std::sync::Arc;

use super::hash::HashRoute;
use super::{Node, RouteRef};
use crate::config::{Builder, ConfigError, HashSpec};

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
    let spec = HashSpec::from_node(node, Some(&pool.hash))?;
    Ok(Arc::new(HashRoute::from_spec(
        format!("PoolRoute|{pool_name}"),
        pool.routes.clone(),
        &spec,
        &node.path,
    )?))
}
