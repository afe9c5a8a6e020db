//! `DevNullRoute` (mcrouter's): [`super::null::NullRoute`]'s default replies, counted in
//! `stats` as `dev_null_requests` (one counter for the router process).
//!
//! Config: `"DevNullRoute"` or `{"type": "DevNullRoute"}` (other fields are ignored, as in
//! mcrouter).

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::Reply;
use crate::request::Req;

static DEV_NULL_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Requests answered by a `DevNullRoute` since the process started (`stats`).
pub fn requests() -> u64 {
    DEV_NULL_REQUESTS.load(Ordering::Relaxed)
}

#[derive(Debug, Default)]
pub struct DevNullRoute;

impl Route for DevNullRoute {
    fn name(&self) -> String {
        "DevNullRoute".into()
    }

    fn route(&self, req: Req, _ctx: &Rc<Ctx>) -> RouteFuture {
        DEV_NULL_REQUESTS.fetch_add(1, Ordering::Relaxed);
        ready(Reply::default_for(&req))
    }
}

pub fn build(_node: &Node<'_>, _b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(DevNullRoute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn answers_the_default_and_counts() {
        run(|ctx| async move {
            let before = requests();
            let r = DevNullRoute;
            let get = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&get.bytes[..], b"END\r\n");
            let set = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&set.bytes[..], b"NOT_STORED\r\n");
            // Other tests may count too (one counter per process).
            assert!(requests() >= before + 2);
        });
    }
}
