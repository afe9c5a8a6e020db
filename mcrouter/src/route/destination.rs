//! `DestinationRoute`: a leaf that sends the request to one server over the worker's
//! pipelined connections (mcrouter builds these for every server of a pool).
//!
//! Config: `{"type": "DestinationRoute", "server": "host:port"}` or `"DestinationRoute|host:port"`.

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::destination::DestShared;
use crate::request::{Op, Req};

#[derive(Debug)]
pub struct DestinationRoute {
    dest: Arc<DestShared>,
}

impl DestinationRoute {
    pub fn new(dest: Arc<DestShared>) -> Self {
        DestinationRoute { dest }
    }
}

impl Route for DestinationRoute {
    fn name(&self) -> String {
        format!("DestinationRoute|{}", self.dest.addr)
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        Box::pin(
            ctx.dests
                .send(&self.dest, req.raw(), req.op().reply_until_end()),
        )
    }

    fn plain_destination(&self, _op: Op, _key: &[u8]) -> Option<&Arc<DestShared>> {
        Some(&self.dest)
    }

    fn destination(&self) -> Option<&Arc<DestShared>> {
        Some(&self.dest)
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let server = match node.arg {
        Some(a) => a,
        None => node
            .str_field("server")?
            .ok_or_else(|| node.err("server", "missing; expected \"host:port\""))?,
    };
    let dest = b.destination(server, &node.path)?;
    Ok(Arc::new(DestinationRoute::new(dest)))
}
