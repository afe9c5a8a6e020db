//! `RateLimitRoute`: token buckets per class of operation (gets, sets, deletes); a
//! request over the limit gets the default reply (a miss, `NOT_STORED`, `NOT_FOUND`)
//! without reaching `target`, as mcrouter does.
//!
//! Config: `{"type": "RateLimitRoute", "target": ..., "rates": {"gets_rate": 1000,
//! "gets_burst": 100, "sets_rate": 500, "deletes_rate": 100}}` (per second).
//!
//! As mcrouter's `RateLimiter` (`mcrouter/routes/RateLimiter.{h,cpp}`, operation
//! classes from `mcrouter/lib/OperationTraits.h` / `McOperationTraits.h`):
//!
//! - `gets_rate` limits the get-like operations (get, gets, lease-get, metaget; here
//!   also `gat`/`gats`, `mg` and `me`), `sets_rate` the update-like ones (set, add,
//!   replace, append, prepend, cas, lease-set; here also `ms`), `deletes_rate` the
//!   delete-like ones (delete, `md`). Everything else (incr, decr, `ma`, touch,
//!   flush_all) is never limited: mcrouter's `canPassThrough` is `true` for operations
//!   that are not get-, update- or delete-like.
//! - A class without `<class>_rate` is not limited; a rate must be a positive number.
//! - `<class>_burst` defaults to the rate (not to 1); when given it must be positive. A
//!   burst below 1 lets nothing of that class through (a token bucket that can never
//!   hold one whole token), as in mcrouter.
//! - The buckets start empty and fill at their rate: mcrouter builds each one as
//!   `folly::TokenBucket(rate, burst, now)`, and folly's third argument is the time at
//!   which the bucket held no tokens. So right after a config is loaded (or reloaded,
//!   which builds new buckets) a class gets its first token after `1 / rate` seconds,
//!   and a full burst only after `burst / rate`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::{join, ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::Reply;
use crate::request::{Op, Req};

/// A token bucket: `rate` tokens a second, at most `burst` of them.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    /// Tokens, as of when.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// An empty bucket that starts filling now (as mcrouter's; see the module doc).
    pub fn new(rate: f64, burst: f64) -> Self {
        Self::with_tokens(rate, burst, 0.0, Instant::now())
    }

    fn with_tokens(rate: f64, burst: f64, tokens: f64, at: Instant) -> Self {
        Bucket {
            rate,
            burst,
            state: Mutex::new((tokens, at)),
        }
    }

    /// Take one token if there is one.
    pub fn take(&self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.rate;
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

/// The operation classes mcrouter's `RateLimiter` has a bucket for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Gets,
    Sets,
    Deletes,
}

impl Class {
    /// The bucket `op` takes a token from; `None`: never limited (arithmetic, touch,
    /// flush_all), as mcrouter's `canPassThrough` for `OtherThan<GetLike, UpdateLike,
    /// DeleteLike>`.
    pub fn of(op: Op) -> Option<Class> {
        match op {
            Op::Get
            | Op::Gets
            | Op::Gat
            | Op::Gats
            | Op::MetaGet
            | Op::MetaDebug
            | Op::LeaseGet => Some(Class::Gets),
            Op::Set
            | Op::Add
            | Op::Replace
            | Op::Append
            | Op::Prepend
            | Op::Cas
            | Op::MetaSet
            | Op::LeaseSet => Some(Class::Sets),
            Op::Delete | Op::MetaDelete => Some(Class::Deletes),
            Op::Incr | Op::Decr | Op::MetaArithmetic | Op::Touch | Op::FlushAll => None,
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
        let bucket = match Class::of(req.op()) {
            Some(Class::Gets) => &self.gets,
            Some(Class::Sets) => &self.sets,
            Some(Class::Deletes) => &self.deletes,
            None => &None,
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
/// `<class>_rate` positive, `<class>_burst` positive and defaulting to the rate). Also
/// used for PoolRoute's `rates`.
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
            Some(r) if r > 0.0 => match burst {
                None => Ok(Some(Bucket::new(r, r))),
                Some(b) if b > 0.0 => Ok(Some(Bucket::new(r, b))),
                Some(_) => Err(rn.err(&format!("{class}_burst"), "expected a positive number")),
            },
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
    fn a_bucket_starts_empty_and_fills_at_its_rate() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let b = Bucket::with_tokens(10.0, 3.0, 0.0, t0);
        assert!(
            !b.take_at(t0),
            "no token at the start (mcrouter's zeroTime = now)"
        );
        assert!(!b.take_at(at(50)), "half a token is not one");
        assert!(b.take_at(at(100)), "one token after 1 / rate");
        assert!(!b.take_at(at(100)));
        // Long idle: the bucket holds `burst` tokens, not more.
        let taken = (0..10).filter(|_| b.take_at(at(60_000))).count();
        assert_eq!(taken, 3);
        // The constructor the config uses starts empty too.
        assert!(!Bucket::new(0.001, 5.0).take());
    }

    #[test]
    fn sheds_over_the_burst() {
        run(|ctx| async move {
            let m = Mock::replying("STORED\r\n");
            // A full bucket that refills too slowly to matter during the test.
            let full = Bucket::with_tokens(0.001, 3.0, 3.0, Instant::now());
            let r = RateLimitRoute::new(m.r(), None, Some(full), None);
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

    /// Which operations take a token from which bucket (mcrouter's `RateLimiter`:
    /// get-, update- and delete-like; the rest pass unlimited).
    #[test]
    fn only_get_update_and_delete_like_operations_are_limited() {
        run(|ctx| async move {
            let m = Mock::replying("STORED\r\n");
            // Every bucket empty (as after a config load) and filling too slowly to matter.
            let empty = || Some(Bucket::new(0.001, 1.0));
            let r = RateLimitRoute::new(m.r(), empty(), empty(), empty());
            let limited = [
                "get k\r\n",
                "gets k\r\n",
                "gat 0 k\r\n",
                "mg k v\r\n",
                "lease-get k\r\n",
                "set k 0 0 1\r\nx\r\n",
                "add k 0 0 1\r\nx\r\n",
                "append k 0 0 1\r\nx\r\n",
                "cas k 0 0 1 1\r\nx\r\n",
                "ms k 1\r\nx\r\n",
                "delete k\r\n",
                "md k\r\n",
            ];
            for line in limited {
                r.route(Mock::req(line), &ctx).await;
                assert_eq!(m.count(), 0, "{line:?} should be limited");
            }
            let unlimited = ["incr k 1\r\n", "decr k 1\r\n", "touch k 10\r\n", "ma k\r\n"];
            for (i, line) in unlimited.iter().enumerate() {
                for _ in 0..3 {
                    r.route(Mock::req(line), &ctx).await;
                }
                assert_eq!(m.count(), 3 * (i + 1), "{line:?} is never limited");
            }
        });
    }

    fn rates(json: &str) -> Result<RateLimitRoute, String> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        from_rates(Mock::replying("END\r\n").r(), &v, "route.rates").map_err(|e| e.to_string())
    }

    /// The burst defaults to the rate (not to at least one token) and must be positive.
    #[test]
    fn burst_defaults_to_the_rate() {
        let r = rates(r#"{"sets_rate": 4}"#).unwrap();
        let b = r.sets.as_ref().unwrap();
        assert_eq!((b.rate, b.burst), (4.0, 4.0));
        assert!(r.gets.is_none() && r.deletes.is_none());
        let r = rates(r#"{"gets_rate": 0.5}"#).unwrap();
        assert_eq!(r.gets.as_ref().unwrap().burst, 0.5);
        // A burst below one token lets nothing through.
        assert!(!r.gets.as_ref().unwrap().take());
        let r = rates(r#"{"deletes_rate": 10, "deletes_burst": 3}"#).unwrap();
        assert_eq!(r.deletes.as_ref().unwrap().burst, 3.0);
        let e = rates(r#"{"sets_rate": 10, "sets_burst": 0}"#).unwrap_err();
        assert!(
            e.contains("route.rates.sets_burst: expected a positive number"),
            "{e}"
        );
        let e = rates(r#"{"gets_rate": -1}"#).unwrap_err();
        assert!(
            e.contains("route.rates.gets_rate: expected a positive number"),
            "{e}"
        );
    }
}
