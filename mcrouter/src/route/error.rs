//! `ErrorRoute`: answers every request with `SERVER_ERROR <response>` (a local error).
//!
//! Config: `"ErrorRoute"`, `"ErrorRoute|message"` or `{"type": "ErrorRoute", "response":
//! "message"}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{ready, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::{ErrorClass, Reply};
use crate::request::Req;

#[derive(Debug)]
pub struct ErrorRoute {
    reply: Reply,
}

impl ErrorRoute {
    pub fn new(msg: &str) -> Self {
        ErrorRoute {
            reply: Reply::error(ErrorClass::LocalError, msg),
        }
    }
}

impl Route for ErrorRoute {
    fn name(&self) -> String {
        format!(
            "ErrorRoute|{}",
            String::from_utf8_lossy(&self.reply.bytes[13..self.reply.bytes.len() - 2])
        )
    }

    fn route(&self, _req: Req, _ctx: &Rc<Ctx>) -> RouteFuture {
        ready(self.reply.clone())
    }
}

pub fn build(node: &Node<'_>, _b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let msg = match node.arg {
        Some(a) => a,
        None => node
            .str_field("response")?
            .unwrap_or("mcrouter: ErrorRoute"),
    };
    Ok(Arc::new(ErrorRoute::new(msg)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn answers_server_error() {
        run(|ctx| async move {
            let r = ErrorRoute::new("nope");
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"SERVER_ERROR nope\r\n");
            assert_eq!(reply.error_class(), Some(ErrorClass::LocalError));
        });
    }
}
