//! `FailoverRoute`: tries the children in order, moving to the next only when a reply is
//! an error of one of the `failover_errors` classes (default: mcrouter's
//! `isFailoverErrorResult`, every error except the backend rejecting the request:
//! `CLIENT_ERROR` is passed to the client, not retried elsewhere).
//!
//! Config: `{"type": "FailoverRoute", "children": [...], "failover_errors":
//! ["connect_error", "timeout", "tko", ...]}`, or per operation kind (mcrouter's
//! `FailoverErrorsSettings`): `"failover_errors": {"gets": [...], "updates": [...],
//! "deletes": [...]}`, where an operation kind left out keeps the default. The first
//! child is the primary; the rest are tried in order (a gutter pool is a FailoverRoute's
//! second child).

use std::rc::Rc;
use std::sync::Arc;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::reply::{ErrorClass, ErrorSet, Reply};
use crate::request::{Op, Req};

/// `failover_errors`: the error classes that make a failover route try its next child,
/// per operation kind as in mcrouter's `FailoverErrorsSettings` (get-like, update-like,
/// delete-like; arithmetic, touch and the rest always use the default). `None` for a
/// kind: the default, [`ErrorClass::is_failover_default`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailoverErrors {
    pub gets: Option<ErrorSet>,
    pub updates: Option<ErrorSet>,
    pub deletes: Option<ErrorSet>,
}

impl FailoverErrors {
    /// The same list for every operation kind (the list form of the config).
    pub fn list(classes: &[ErrorClass]) -> FailoverErrors {
        let s = Some(ErrorSet::of(classes));
        FailoverErrors {
            gets: s,
            updates: s,
            deletes: s,
        }
    }

    /// Whether `reply` to an `op` request should make a failover route try its next
    /// child.
    pub fn should_failover(&self, op: Op, reply: &Reply) -> bool {
        let Some(c) = reply.error_class() else {
            return false;
        };
        let set = match op {
            Op::Get | Op::Gets | Op::Gat | Op::Gats | Op::MetaGet | Op::LeaseGet => self.gets,
            Op::Set
            | Op::Add
            | Op::Replace
            | Op::Append
            | Op::Prepend
            | Op::Cas
            | Op::LeaseSet
            | Op::MetaSet => self.updates,
            Op::Delete | Op::MetaDelete => self.deletes,
            _ => None,
        };
        match set {
            None => c.is_failover_default(),
            Some(s) => s.contains(c),
        }
    }
}

#[derive(Debug)]
pub struct FailoverRoute {
    children: Arc<[RouteRef]>,
    errors: FailoverErrors,
}

impl FailoverRoute {
    pub fn new(children: Vec<RouteRef>, errors: FailoverErrors) -> Self {
        FailoverRoute {
            children: children.into(),
            errors,
        }
    }
}

/// Route to `children[order[0]]`, then the next on failover errors.
pub fn failover_in_order(
    children: Arc<[RouteRef]>,
    order: Vec<usize>,
    errors: FailoverErrors,
    req: Req,
    ctx: &Rc<Ctx>,
) -> RouteFuture {
    let first = children[order[0]].route(req.clone(), ctx);
    let ctx = ctx.clone();
    Box::pin(async move {
        let op = req.op();
        let mut reply = first.await;
        for &i in &order[1..] {
            if !errors.should_failover(op, &reply) {
                break;
            }
            reply = children[i].route(req.clone(), &ctx).await;
        }
        reply
    })
}

impl Route for FailoverRoute {
    fn name(&self) -> String {
        "FailoverRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        if self.children.len() == 1 {
            return self.children[0].route(req, ctx);
        }
        failover_in_order(
            self.children.clone(),
            (0..self.children.len()).collect(),
            self.errors,
            req,
            ctx,
        )
    }

    fn children(&self) -> Vec<RouteRef> {
        self.children.to_vec()
    }

    fn children_for(&self, _req: &Req) -> Vec<RouteRef> {
        self.children.to_vec()
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let children = node.children(b)?;
    let errors = node.failover_errors("failover_errors")?;
    Ok(Arc::new(FailoverRoute::new(children, errors)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn fails_over_on_errors_only() {
        run(|ctx| async move {
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let up = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let r = FailoverRoute::new(vec![down.r(), up.r()], FailoverErrors::default());
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert!(reply.is_hit());
            assert_eq!((down.count(), up.count()), (1, 1));
            // A miss is not an error: no failover.
            let miss = Mock::replying("END\r\n");
            let r = FailoverRoute::new(vec![miss.r(), up.r()], FailoverErrors::default());
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            assert_eq!(up.count(), 1);
        });
    }

    #[test]
    fn failover_errors_restricts_the_classes() {
        run(|ctx| async move {
            let remote = Mock::replying("SERVER_ERROR remote\r\n");
            let up = Mock::replying("STORED\r\n");
            let r = FailoverRoute::new(
                vec![remote.r(), up.r()],
                FailoverErrors::list(&[ErrorClass::Timeout]),
            );
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert!(reply.is_error());
            assert_eq!(up.count(), 0);
            let r = FailoverRoute::new(
                vec![remote.r(), up.r()],
                FailoverErrors::list(&[ErrorClass::RemoteError]),
            );
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
        });
    }

    #[test]
    fn client_errors_are_replies_not_failover_errors() {
        run(|ctx| async move {
            let up = Mock::replying("NOT_FOUND\r\n");
            for line in [
                "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
                "ERROR\r\n",
            ] {
                let bad = Mock::replying(line);
                let r = FailoverRoute::new(vec![bad.r(), up.r()], FailoverErrors::default());
                let reply = r.route(Mock::req("incr t 1\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], line.as_bytes());
                assert_eq!(reply.error_class(), Some(ErrorClass::ClientError));
            }
            assert_eq!(up.count(), 0);
            // Only when the config asks for it (for gets, updates and deletes; arithmetic
            // always uses the default, as in mcrouter).
            let bad = Mock::replying("CLIENT_ERROR bad data chunk\r\n");
            let r = FailoverRoute::new(
                vec![bad.r(), up.r()],
                FailoverErrors::list(&[ErrorClass::ClientError]),
            );
            let reply = r.route(Mock::req("delete t\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"NOT_FOUND\r\n");
            let reply = r.route(Mock::req("incr t 1\r\n"), &ctx).await;
            assert!(reply.bytes.starts_with(b"CLIENT_ERROR"));
        });
    }

    /// Build from JSON at path `route`.
    fn parse(json: &str) -> Result<FailoverErrors, ConfigError> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let node = Node {
            path: "route".into(),
            type_name: "FailoverRoute".into(),
            obj: v.as_object(),
            arg: None,
        };
        node.failover_errors("failover_errors")
    }

    #[test]
    fn failover_errors_per_operation_kind() {
        let e = parse(
            r#"{"failover_errors": {"gets": ["timeout", "connect_error"],
                                    "deletes": ["shutdown", "try_again"]}}"#,
        )
        .unwrap();
        let timeout = Reply::error(ErrorClass::Timeout, "t");
        let remote = Reply::error(ErrorClass::RemoteError, "r");
        let client = Reply::error_static(ErrorClass::ClientError, b"CLIENT_ERROR x\r\n");
        // gets: only the listed classes.
        assert!(e.should_failover(Op::Get, &timeout));
        assert!(e.should_failover(Op::MetaGet, &timeout));
        assert!(!e.should_failover(Op::Get, &remote));
        // updates: not given, so the default (every error but a client error).
        assert!(e.should_failover(Op::Set, &remote));
        assert!(e.should_failover(Op::MetaSet, &timeout));
        assert!(!e.should_failover(Op::Set, &client));
        // deletes: names of results we never produce match nothing.
        assert!(!e.should_failover(Op::Delete, &timeout));
        assert!(!e.should_failover(Op::MetaDelete, &remote));
        // Arithmetic and touch are neither: always the default.
        assert!(e.should_failover(Op::Incr, &remote));
        assert!(!e.should_failover(Op::MetaArithmetic, &client));
        assert!(e.should_failover(Op::Touch, &timeout));
        // Never a non-error.
        assert!(!e.should_failover(Op::Get, &Reply::default_for(&Mock::req("get k\r\n"))));

        // The list form: the same for every kind; every mcrouter error name loads.
        let e = parse(
            r#"{"failover_errors": ["connect_error", "connect_timeout", "timeout", "tko",
                "remote_error", "local_error", "busy", "try_again", "shutdown", "aborted",
                "ooo", "bad_command", "bad_key", "bad_flags", "bad_exptime", "bad_lease_id",
                "bad_cas_id", "bad_value", "client_error"]}"#,
        )
        .unwrap();
        assert_eq!(e.gets, e.updates);
        assert_eq!(e.gets, e.deletes);
        assert!(e.should_failover(Op::Delete, &client));
        // Absent: the default for every kind.
        assert_eq!(parse("{}").unwrap(), FailoverErrors::default());
    }

    #[test]
    fn failover_errors_config_errors_name_the_path() {
        let err = |json: &str| parse(json).unwrap_err().to_string();
        let e = err(r#"{"failover_errors": {"gets": ["nope"]}}"#);
        assert!(
            e.contains("route.failover_errors.gets[0]: unknown error \"nope\""),
            "{e}"
        );
        assert!(e.contains("try_again"), "{e}");
        let e = err(r#"{"failover_errors": {"updates": "timeout"}}"#);
        assert!(
            e.contains("route.failover_errors.updates: expected a list"),
            "{e}"
        );
        let e = err(r#"{"failover_errors": {"get": ["timeout"]}}"#);
        assert!(
            e.contains("route.failover_errors.get: unknown operation kind"),
            "{e}"
        );
        let e = err(r#"{"failover_errors": ["timeout", 3]}"#);
        assert!(
            e.contains("route.failover_errors[1]: expected a string"),
            "{e}"
        );
        let e = err(r#"{"failover_errors": "timeout"}"#);
        assert!(e.contains("route.failover_errors: expected a list"), "{e}");
    }
}
