//! `ModifyExptimeRoute`: rewrites the exptime of storage/touch/gat requests before
//! routing to `target`: `action: "set"` (default) always uses `exptime`, `"min"` uses
//! the smaller of the two (0, "never expires", counts as infinite).
//!
//! Config: `{"type": "ModifyExptimeRoute", "target": ..., "exptime": 60, "action": "min"}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Set,
    Min,
}

#[derive(Debug)]
pub struct ModifyExptimeRoute {
    target: RouteRef,
    exptime: i64,
    action: Action,
}

impl ModifyExptimeRoute {
    pub fn new(target: RouteRef, exptime: i64, action: Action) -> Self {
        ModifyExptimeRoute {
            target,
            exptime,
            action,
        }
    }

    fn new_exptime(&self, old: i64) -> i64 {
        match self.action {
            Action::Set => self.exptime,
            // A cap of 0 ("never expires") caps nothing.
            Action::Min if self.exptime == 0 => old,
            Action::Min if old == 0 || old > self.exptime => self.exptime,
            Action::Min => old,
        }
    }
}

impl Route for ModifyExptimeRoute {
    fn name(&self) -> String {
        format!("ModifyExptimeRoute|{:?}={}", self.action, self.exptime)
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        match req.exptime() {
            Some(old) if self.new_exptime(old) != old => {
                let r = req.with_exptime(self.new_exptime(old));
                self.target.route(r, ctx)
            }
            _ => self.target.route(req, ctx),
        }
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.target.clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let target = node.route(b, "target")?;
    let exptime = node
        .i64_field("exptime")?
        .ok_or_else(|| node.err("exptime", "missing; expected seconds"))?;
    let action = match node.str_field("action")? {
        None | Some("set") => Action::Set,
        Some("min") => Action::Min,
        Some(other) => {
            return Err(node.err(
                "action",
                format!("unknown action {other:?}; expected \"set\" or \"min\""),
            ))
        }
    };
    Ok(Arc::new(ModifyExptimeRoute::new(target, exptime, action)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn set_and_min() {
        run(|ctx| async move {
            let m = Mock::replying("STORED\r\n");
            let r = ModifyExptimeRoute::new(m.r(), 60, Action::Set);
            r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(m.seen()[0], b"set k 0 60 1\r\nx\r\n");
            let r = ModifyExptimeRoute::new(m.r(), 60, Action::Min);
            r.route(Mock::req("set k 0 10 1\r\nx\r\n"), &ctx).await;
            r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            r.route(Mock::req("get k\r\n"), &ctx).await;
            let seen = m.seen();
            assert_eq!(seen[1], b"set k 0 10 1\r\nx\r\n");
            assert_eq!(seen[2], b"set k 0 60 1\r\nx\r\n");
            assert_eq!(seen[3], b"get k\r\n");
            // A cap of 0 (never expires) leaves every exptime alone.
            let r = ModifyExptimeRoute::new(m.r(), 0, Action::Min);
            r.route(Mock::req("set k 0 30 1\r\nx\r\n"), &ctx).await;
            assert_eq!(m.seen()[4], b"set k 0 30 1\r\nx\r\n");
        });
    }
}
