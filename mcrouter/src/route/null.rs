//! `NullRoute`: answers the default reply without sending anything (gets miss, sets
//! `NOT_STORED`, deletes `NOT_FOUND`).
//!
//! Config: `"NullRoute"` or `{"type": "NullRoute"}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::Reply;
use crate::request::Req;

#[derive(Debug, Default)]
pub struct NullRoute;

impl Route for NullRoute {
    fn name(&self) -> String {
        "NullRoute".into()
    }

    fn route(&self, req: Req, _ctx: &Rc<Ctx>) -> RouteFuture {
        ready(Reply::default_for(&req))
    }
}

pub fn build(_node: &Node<'_>, _b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Ok(Arc::new(NullRoute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn default_replies() {
        run(|ctx| async move {
            let r = NullRoute;
            assert_eq!(
                &r.route(Mock::req("get k\r\n"), &ctx).await.bytes[..],
                b"END\r\n"
            );
            assert_eq!(
                &r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await.bytes[..],
                b"NOT_STORED\r\n"
            );
            assert_eq!(
                &r.route(Mock::req("delete k\r\n"), &ctx).await.bytes[..],
                b"NOT_FOUND\r\n"
            );
            assert_eq!(
                &r.route(Mock::req("mg k v\r\n"), &ctx).await.bytes[..],
                b"EN\r\n"
            );
        });
    }
}
