//! `MigrateRoute`: moves traffic from one route to another at a set time, as mcrouter's
//! handle of the same name (`mcrouter/lib/routes/MigrateRoute.h`), so a pool can be
//! replaced without a window where deletes miss either side.
//!
//! Config: `{"type": "MigrateRoute", "from": <route>, "to": <route>, "start_time":
//! <Unix seconds>, "interval": <seconds, default 3600>}`.
//!
//! ```text
//!  time:        start_time      + interval      + 2 * interval
//!  deletes:  from  |  from + to   |  from + to     |  to
//!  the rest: from  |  from        |  to            |  to
//! ```
//!
//! A delete sent to both answers with the worse of the two replies (an error over
//! `NOT_FOUND` over `DELETED`). Deletes are `delete` and meta `md`; everything else,
//! `flush_all` included, follows the other row.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{join_all, worst, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::{Op, Req};

/// mcrouter's default `interval`.
pub const DEFAULT_INTERVAL_SECS: i64 = 3600;

/// The clock, in Unix seconds (injectable for tests).
type Clock = fn() -> i64;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub struct MigrateRoute {
    from: RouteRef,
    to: RouteRef,
    start: i64,
    interval: i64,
    clock: Clock,
}

impl std::fmt::Debug for MigrateRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateRoute")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("start", &self.start)
            .field("interval", &self.interval)
            .finish()
    }
}

impl MigrateRoute {
    pub fn new(from: RouteRef, to: RouteRef, start: i64, interval: i64) -> Self {
        Self::with_clock(from, to, start, interval, unix_now)
    }

    pub fn with_clock(
        from: RouteRef,
        to: RouteRef,
        start: i64,
        interval: i64,
        clock: Clock,
    ) -> Self {
        MigrateRoute {
            from,
            to,
            start,
            interval,
            clock,
        }
    }

    /// The routes `op` goes to now.
    fn targets(&self, op: Op) -> Vec<&RouteRef> {
        let now = (self.clock)();
        let delete = matches!(op, Op::Delete | Op::MetaDelete);
        let both_until = self.start.saturating_add(self.interval.saturating_mul(2));
        let switch = self.start.saturating_add(self.interval);
        if delete && now >= self.start && now < both_until {
            vec![&self.from, &self.to]
        } else if now < switch {
            vec![&self.from]
        } else {
            vec![&self.to]
        }
    }
}

impl Route for MigrateRoute {
    fn name(&self) -> String {
        format!(
            "MigrateRoute|start_time={}|interval={}",
            self.start, self.interval
        )
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let targets = self.targets(req.op());
        if let [one] = targets.as_slice() {
            return one.route(req, ctx);
        }
        let futs = targets.iter().map(|t| t.route(req.clone(), ctx)).collect();
        Box::pin(async move {
            let replies = join_all(futs).await;
            worst(replies).expect("two replies")
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.from.clone(), self.to.clone()]
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        self.targets(req.op()).into_iter().cloned().collect()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let Some(start) = node.i64_field("start_time")? else {
        return Err(node.err("start_time", "missing; expected Unix seconds"));
    };
    let interval = match node.i64_field("interval")? {
        None => DEFAULT_INTERVAL_SECS,
        Some(i) if i >= 0 => i,
        Some(_) => return Err(node.err("interval", "expected seconds >= 0")),
    };
    let from = node.route(b, "from")?;
    let to = node.route(b, "to")?;
    Ok(Arc::new(MigrateRoute::new(from, to, start, interval)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    /// Start at t=1000 with an interval of 100; the clocks below are fixed instants.
    fn at(clock: Clock, from: &Arc<Mock>, to: &Arc<Mock>) -> MigrateRoute {
        MigrateRoute::with_clock(from.r(), to.r(), 1000, 100, clock)
    }

    /// (from, to) request counts after one `get` and one `delete`.
    async fn sent(clock: Clock, ctx: &Rc<Ctx>) -> ((usize, usize), (usize, usize)) {
        let from = Mock::replying("DELETED\r\n");
        let to = Mock::replying("DELETED\r\n");
        let r = at(clock, &from, &to);
        r.route(Mock::req("get k\r\n"), ctx).await;
        let get = (from.count(), to.count());
        r.route(Mock::req("delete k\r\n"), ctx).await;
        (get, (from.count() - get.0, to.count() - get.1))
    }

    #[test]
    fn traffic_moves_in_three_steps() {
        run(|ctx| async move {
            // Before the start: everything to `from`.
            assert_eq!(sent(|| 999, &ctx).await, ((1, 0), (1, 0)));
            // First interval: deletes to both, the rest to `from`.
            assert_eq!(sent(|| 1000, &ctx).await, ((1, 0), (1, 1)));
            assert_eq!(sent(|| 1099, &ctx).await, ((1, 0), (1, 1)));
            // Second interval: deletes to both, the rest to `to`.
            assert_eq!(sent(|| 1100, &ctx).await, ((0, 1), (1, 1)));
            assert_eq!(sent(|| 1199, &ctx).await, ((0, 1), (1, 1)));
            // After: everything to `to`.
            assert_eq!(sent(|| 1200, &ctx).await, ((0, 1), (0, 1)));
        });
    }

    #[test]
    fn a_delete_to_both_answers_the_worse_reply() {
        run(|ctx| async move {
            let from = Mock::replying("DELETED\r\n");
            let to = Mock::replying("NOT_FOUND\r\n");
            let r = at(|| 1050, &from, &to);
            let reply = r.route(Mock::req("delete k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"NOT_FOUND\r\n");
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let r = at(|| 1150, &down, &to);
            let reply = r.route(Mock::req("md k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"SERVER_ERROR down\r\n");
            // The admin view follows the same rule.
            let req = Mock::req("delete k\r\n");
            assert_eq!(r.children_for(&req).len(), 2);
            assert_eq!(r.children_for(&Mock::req("get k\r\n")).len(), 1);
        });
    }

    #[test]
    fn a_config_names_it() {
        let c = crate::config::Config::parse(
            r#"{"pools": {"A": {"servers": ["h:1"]}, "B": {"servers": ["h:2"]}},
                "route": {"type": "MigrateRoute", "from": "PoolRoute|A", "to": "PoolRoute|B",
                          "start_time": 1, "interval": 1}}"#,
            None,
            &Default::default(),
        )
        .unwrap();
        // Long after the migration: everything goes to B.
        let root: RouteRef = c.root.clone();
        let d = crate::route::destinations_for(&root, &Mock::req("delete k\r\n"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].addr, "h:2");
    }

    #[test]
    fn config() {
        use crate::route::testing::with_json_node;
        let build_err = |json: &str| {
            with_json_node(json, "MigrateRoute", |n| {
                build(n, &mut Builder::new(&Default::default())).map(|_| ())
            })
            .unwrap_err()
            .to_string()
        };
        let e = build_err(r#"{"from": "NullRoute", "to": "NullRoute"}"#);
        assert!(e.contains("route.start_time: missing"), "{e}");
        let e = build_err(r#"{"from": "NullRoute", "start_time": 5}"#);
        assert!(e.contains("route.to: missing"), "{e}");
        let e = build_err(
            r#"{"from": "NullRoute", "to": "NullRoute", "start_time": 5, "interval": -1}"#,
        );
        assert!(e.contains("route.interval: expected seconds >= 0"), "{e}");
    }
}
