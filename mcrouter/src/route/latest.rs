//! `LatestRoute`: a FailoverRoute over at most `failover_count` children (default 5)
//! chosen pseudo-randomly from the router's host name, as mcrouter does: every router
//! host sticks to its own order (so it connects to few servers, and load spreads over the
//! replicas across hosts) and fails over along it. With `"thread_local_failover": true`
//! each worker thread gets its own order too.
//!
//! Config: `{"type": "LatestRoute", "children": [...], "failover_count": 3,
//! "failover_errors": [...], "thread_local_failover": false}`.

use std::rc::Rc;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::failover::{failover_in_order, FailoverErrors};
use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

/// Default number of children tried.
pub const DEFAULT_FAILOVER_COUNT: usize = 5;

#[derive(Debug)]
pub struct LatestRoute {
    children: Arc<[RouteRef]>,
    count: usize,
    errors: FailoverErrors,
    /// Seed of the order: from the host name (and the thread with `thread_local`).
    seed: u64,
    thread_local: bool,
}

/// A stable 64-bit seed for this host (its name), as mcrouter seeds with the host id.
pub fn host_seed() -> u64 {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    let c = crc32fast::hash(name.trim().as_bytes()) as u64;
    c << 32 | crc32fast::hash(format!("latest:{}", name.trim()).as_bytes()) as u64
}

impl LatestRoute {
    pub fn new(children: Vec<RouteRef>, count: usize, errors: FailoverErrors) -> Self {
        Self::with_seed(children, count, errors, host_seed(), false)
    }

    pub fn with_seed(
        children: Vec<RouteRef>,
        count: usize,
        errors: FailoverErrors,
        seed: u64,
        thread_local: bool,
    ) -> Self {
        let count = count.clamp(1, children.len());
        LatestRoute {
            children: children.into(),
            count,
            errors,
            seed,
            thread_local,
        }
    }

    /// The children tried, in order: the first `count` of a seeded shuffle.
    pub fn order(&self) -> Vec<usize> {
        let mut seed = self.seed;
        if self.thread_local {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::thread::current().id().hash(&mut h);
            seed ^= h.finish();
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = self.children.len();
        let mut order: Vec<usize> = (0..n).collect();
        // Partial Fisher-Yates: the first `count` positions.
        for i in 0..self.count {
            let j = rng.random_range(i..n);
            order.swap(i, j);
        }
        order.truncate(self.count);
        order
    }
}

impl Route for LatestRoute {
    fn name(&self) -> String {
        format!("LatestRoute(failover_count={})", self.count)
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        failover_in_order(self.children.clone(), self.order(), self.errors, req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.to_vec()
    }

    fn children_for(&self, _req: &Req) -> Vec<RouteRef> {
        self.order()
            .into_iter()
            .map(|i| self.children[i].clone())
            .collect()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let children = node.children(b)?;
    let count = match node.i64_field("failover_count")? {
        None => DEFAULT_FAILOVER_COUNT,
        Some(c) if c >= 1 => c as usize,
        Some(_) => return Err(node.err("failover_count", "expected an integer >= 1")),
    };
    let errors = node.failover_errors("failover_errors")?;
    let thread_local = node.bool_field("thread_local_failover")?.unwrap_or(false);
    Ok(Arc::new(LatestRoute::with_seed(
        children,
        count,
        errors,
        host_seed(),
        thread_local,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn sticks_to_a_host_order_and_fails_over_along_it() {
        run(|ctx| async move {
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let up: Vec<Arc<Mock>> = (0..4).map(|_| Mock::replying("STORED\r\n")).collect();
            let mut children = vec![down.r()];
            children.extend(up.iter().map(|m| m.r()));
            // Find a seed whose order starts with the failing child.
            let seed = (0..1000u64)
                .find(|&s| {
                    LatestRoute::with_seed(children.clone(), 2, FailoverErrors::default(), s, false)
                        .order()[0]
                        == 0
                })
                .expect("some seed puts child 0 first");
            let r =
                LatestRoute::with_seed(children.clone(), 2, FailoverErrors::default(), seed, false);
            let order = r.order();
            for _ in 0..20 {
                let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], b"STORED\r\n");
            }
            // Every request went down the same path: the failing child, then the next one.
            assert_eq!(down.count(), 20);
            assert_eq!(up[order[1] - 1].count(), 20);
            assert_eq!(up.iter().map(|m| m.count()).sum::<usize>(), 20);
            // Other hosts pick other orders: over many seeds every child leads sometimes.
            let mut firsts = std::collections::HashSet::new();
            for s in 0..200u64 {
                firsts.insert(
                    LatestRoute::with_seed(
                        children.clone(),
                        2,
                        FailoverErrors::default(),
                        s,
                        false,
                    )
                    .order()[0],
                );
            }
            assert_eq!(firsts.len(), 5);
        });
    }
}
