//! `RateLimitRoute`: token buckets per class of operation (gets, sets, deletes); a
//! request over the limit gets the default reply (a miss, `NOT_STORED`, `NOT_FOUND`)
//! without reaching `target`, as mcrouter does.
//!
//! Config: `{"type": "RateLimitRoute", "target": ..., "rates": {"gets_rate": 1000,
//! "gets_burst": 100, "sets_rate": 500, "deletes_rate": 100}}` (per second; burst
//! defaults to the rate).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::{join, ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::Reply;
use crate::request::Req;

#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    pub fn take(&self) -> bool {
        let mut s = self.state.lock();
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub struct RateLimitRoute {
    target: RouteRef,
    gets: Option<Bucket>,
    sets: Option<Bucket>,
    deletes: Option<Bucket>,
}

impl RateLimitRoute {
    pub fn new(
        target: RouteRef,
        gets: Option<Bucket>,
        sets: Option<Bucket>,
        deletes: Option<Bucket>,
    ) -> Self {
        RateLimitRoute {
            target,
            gets,
            sets,
            deletes,
        }
    }
}

impl Route for RateLimitRoute {
    fn name(&self) -> String {
        "RateLimitRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let op = req.op();
        let bucket = if op.is_get() {
            &self.gets
        } else if op.is_delete() {
            &self.deletes
        } else if op.is_update() {
            &self.sets
        } else {
            &None
        };
        match bucket {
            Some(b) if !b.take() => ready(Reply::default_for(&req)),
            _ => self.target.route(req, ctx),
        }
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let target = node.route(b, "target")?;
    let path = join(&node.path, "rates");
    match node.field("rates") {
        Some(rates) => Ok(Arc::new(from_rates(target, rates, &path)?)),
        None => Err(ConfigError::at(
            path,
            "missing; expected an object of rates",
        )),
    }
}

/// `target` behind the limits of a `rates` object (mcrouter's `RateLimiter`: each
/// `<class>_rate` positive, `<class>_burst` defaulting to the rate). Also used for
/// PoolRoute's `rates`.
pub fn from_rates(
    target: RouteRef,
    rates: &serde_json::Value,
    path: &str,
) -> Result<RateLimitRoute, ConfigError> {
    let rates = rates
        .as_object()
        .ok_or_else(|| ConfigError::at(path.to_string(), "expected an object of rates"))?;
    let rn = Node {
        path: path.to_string(),
        type_name: "rates".into(),
        obj: Some(rates),
        arg: None,
    };
    let bucket = |class: &str| -> Result<Option<Bucket>, ConfigError> {
        let rate = rn.f64_field(&format!("{class}_rate"))?;
        let burst = rn.f64_field(&format!("{class}_burst"))?;
        match rate {
            None => Ok(None),
            Some(r) if r > 0.0 => Ok(Some(Bucket::new(r, burst.unwrap_or(r).max(1.0)))),
            Some(_) => Err(rn.err(&format!("{class}_rate"), "expected a positive number")),
        }
    };
    Ok(RateLimitRoute::new(
        target,
        bucket("gets")?,
        bucket("sets")?,
        bucket("deletes")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn sheds_over_the_burst() {
        run(|ctx| async move {
            let m = Mock::replying("STORED\r\n");
            let r = RateLimitRoute::new(m.r(), None, Some(Bucket::new(0.001, 3.0)), None);
            let mut stored = 0;
            for _ in 0..10 {
                let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
                if &reply.bytes[..] == b"STORED\r\n" {
                    stored += 1;
                }
            }
            assert_eq!(stored, 3);
            r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(m.count(), 4);
        });
    }
}
