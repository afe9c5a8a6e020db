//! `FailoverWithExptimeRoute`: not built yet (stub registered so the module list is stable).

use super::{Node, RouteRef};
use crate::config::{Builder, ConfigError};

pub fn build(node: &Node<'_>, _b: &mut Builder) -> Result<RouteRef, ConfigError> {
    Err(node.err("type", "FailoverWithExptimeRoute is not implemented yet"))
}
