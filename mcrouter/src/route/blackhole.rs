//! `BlackholeRoute` (mcrouter's): requests whose fields match the `policies` go to
//! `blackhole_child` (a `NullRoute` unless given); all others to `default`.
//!
//! Config: `{"type": "BlackholeRoute", "default": <route>, "blackhole_child": <route>,
//! "policies": {"key": [{"op": "equals", "value": "bad:key"}],
//!              "exptime": [{"op": "not_equals", "value": 0}]}}`.
//!
//! - As in mcrouter, the policies of one field are OR'd and the fields AND'd, and a
//!   field the request does not have is not looked at, so `{}` (or policies only for
//!   fields a request lacks) blackholes every request.
//! - Fields, by mcrouter's request field names: `key` (the full key as sent, compared
//!   with string values), `exptime` (storage, `touch`, `gat`, `lease-set`), `flags` (the
//!   client flags of a storage request), `delta` (`incr`/`decr`), `casToken` (`cas`) and
//!   `leaseToken` (`lease-set`); numbers and booleans compare with the numeric fields. A
//!   value of another type never matches.
//! - Meta commands are matched on their key only.

use std::rc::Rc;
use std::sync::Arc;

use protocol::Request;
use serde_json::Value;

use super::null::NullRoute;
use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::request::Req;

/// One `{"op": ..., "value": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    equals: bool,
    value: Value,
}

impl Policy {
    fn matches(&self, field: &Field<'_>) -> bool {
        let same = match (field, &self.value) {
            (Field::Str(s), Value::String(v)) => *s == v.as_bytes(),
            (Field::Num(n), Value::Number(v)) => v
                .as_i64()
                .map(|v| i128::from(v) == *n)
                .or_else(|| v.as_u64().map(|v| i128::from(v) == *n))
                .unwrap_or_else(|| v.as_f64() == Some(*n as f64)),
            (Field::Num(n), Value::Bool(b)) => *n == i128::from(*b),
            _ => return false,
        };
        same == self.equals
    }
}

/// A request field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field<'a> {
    Str(&'a [u8]),
    Num(i128),
}

/// The named fields of a request (`key`: the decoded key).
fn fields<'a>(req: &'a Req, r: &Request<'a>) -> Vec<(&'static str, Field<'a>)> {
    let key = if req.key_count() == 1 {
        Some(req.routing_key())
    } else {
        req.keys().next()
    };
    let mut out = Vec::new();
    if let Some(k) = key {
        out.push(("key", Field::Str(k)));
    }
    match *r {
        Request::Storage {
            flags,
            exptime,
            cas,
            kind,
            ..
        } => {
            out.push(("exptime", Field::Num(exptime.into())));
            out.push(("flags", Field::Num(flags.into())));
            if kind == protocol::StorageKind::Cas {
                out.push(("casToken", Field::Num(cas.into())));
            }
        }
        Request::LeaseSet {
            flags,
            exptime,
            token,
            ..
        } => {
            out.push(("exptime", Field::Num(exptime.into())));
            out.push(("flags", Field::Num(flags.into())));
            out.push(("leaseToken", Field::Num(token.into())));
        }
        Request::Touch { exptime, .. } => out.push(("exptime", Field::Num(exptime.into()))),
        Request::Retrieval {
            exptime: Some(e), ..
        } => out.push(("exptime", Field::Num(e.into()))),
        Request::Arith { delta, .. } => out.push(("delta", Field::Num(delta.into()))),
        _ => {}
    }
    out
}

#[derive(Debug)]
pub struct BlackholeRoute {
    default: RouteRef,
    blackhole: RouteRef,
    policies: Vec<(String, Vec<Policy>)>,
}

impl BlackholeRoute {
    pub fn new(
        default: RouteRef,
        blackhole: RouteRef,
        policies: Vec<(String, Vec<Policy>)>,
    ) -> Self {
        BlackholeRoute {
            default,
            blackhole,
            policies,
        }
    }

    /// mcrouter's `shouldBlackhole`.
    fn blackholed(&self, req: &Req) -> bool {
        let Some(parsed) = req.parsed() else {
            return self.policies.is_empty();
        };
        // Multi-key gets reach this route one key at a time (the proxy splits them: the
        // route is no plain destination).
        fields(req, &parsed).iter().all(|(name, value)| {
            match self.policies.iter().find(|(n, _)| n == name) {
                None => true,
                Some((_, list)) => list.iter().any(|p| p.matches(value)),
            }
        })
    }

    fn pick(&self, req: &Req) -> &RouteRef {
        if self.blackholed(req) {
            &self.blackhole
        } else {
            &self.default
        }
    }
}

impl Route for BlackholeRoute {
    fn name(&self) -> String {
        "BlackholeRoute".into()
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        self.pick(&req).route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.default.clone(), self.blackhole.clone()]
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        vec![self.pick(req).clone()]
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let default = node.route(b, "default")?;
    let blackhole = node
        .opt_route(b, "blackhole_child")?
        .unwrap_or_else(|| Arc::new(NullRoute));
    let Some(obj) = node.field("policies") else {
        return Err(node.err(
            "policies",
            "missing; expected {\"field\": [{\"op\": ..., \"value\": ...}]}",
        ));
    };
    let obj = obj.as_object().ok_or_else(|| {
        node.err(
            "policies",
            "expected an object of field -> list of policies",
        )
    })?;
    let mut policies = Vec::new();
    for (field, list) in obj {
        let at = format!("policies.{field}");
        let list = list
            .as_array()
            .ok_or_else(|| node.err(&at, "expected a list of {\"op\": ..., \"value\": ...}"))?;
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let equals = match p.get("op").and_then(Value::as_str) {
                Some("equals") => true,
                Some("not_equals") => false,
                _ => return Err(node.err(&at, "expected \"op\": \"equals\" or \"not_equals\"")),
            };
            let value = p
                .get("value")
                .cloned()
                .ok_or_else(|| node.err(&at, "missing \"value\""))?;
            out.push(Policy { equals, value });
        }
        policies.push((field.clone(), out));
    }
    Ok(Arc::new(BlackholeRoute::new(default, blackhole, policies)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{check_configs, run, with_json_node, Mock};

    fn route(policies: &str, default: &Arc<Mock>, hole: &Arc<Mock>) -> RouteRef {
        let v: Value = serde_json::from_str(policies).unwrap();
        let mut list = Vec::new();
        for (field, ps) in v.as_object().unwrap() {
            let ps = ps
                .as_array()
                .unwrap()
                .iter()
                .map(|p| Policy {
                    equals: p["op"] == "equals",
                    value: p["value"].clone(),
                })
                .collect();
            list.push((field.clone(), ps));
        }
        Arc::new(BlackholeRoute::new(default.r(), hole.r(), list))
    }

    #[test]
    fn fields_and_policies_as_mcrouter() {
        run(|ctx| async move {
            let d = Mock::replying("STORED\r\n");
            let h = Mock::replying("NOT_STORED\r\n");
            // Within a field any policy; across fields all.
            let r = route(
                r#"{"key": [{"op": "equals", "value": "a"}, {"op": "equals", "value": "b"}],
                    "exptime": [{"op": "not_equals", "value": 0}]}"#,
                &d,
                &h,
            );
            for (req, hole) in [
                ("set a 0 10 1\r\nx\r\n", true),
                ("set b 0 10 1\r\nx\r\n", true),
                ("set a 0 0 1\r\nx\r\n", false),
                ("set c 0 10 1\r\nx\r\n", false),
                // get has no exptime: only its key counts.
                ("get a\r\n", true),
                ("get c\r\n", false),
                ("touch a 5\r\n", true),
                ("mg a v\r\n", true),
            ] {
                let (hb, db) = (h.count(), d.count());
                r.route(Mock::req(req), &ctx).await;
                assert_eq!(
                    (h.count() - hb, d.count() - db),
                    if hole { (1, 0) } else { (0, 1) },
                    "{req:?}"
                );
            }
            // No policies for a request's fields (or none at all): blackholed.
            let r = route(r#"{"delta": [{"op": "equals", "value": 5}]}"#, &d, &h);
            let hb = h.count();
            r.route(Mock::req("get a\r\n"), &ctx).await;
            r.route(Mock::req("incr a 5\r\n"), &ctx).await;
            r.route(Mock::req("incr a 6\r\n"), &ctx).await;
            assert_eq!(h.count(), hb + 2);
            let r = route("{}", &d, &h);
            r.route(Mock::req("delete a\r\n"), &ctx).await;
            assert_eq!(h.count(), hb + 3);
            // Types: a number never equals the key; booleans compare as 0/1.
            let r = route(
                r#"{"key": [{"op": "equals", "value": 1}], "flags": [{"op": "equals", "value": true}]}"#,
                &d,
                &h,
            );
            let hb = h.count();
            r.route(Mock::req("set 1 1 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(h.count(), hb);
        });
    }

    #[test]
    fn config() {
        let cases = [
            (r#"{"default": "NullRoute", "policies": {}}"#.to_string(), None),
            (
                r#"{"default": "NullRoute", "blackhole_child": "ErrorRoute", "policies": {"key": [{"op": "not_equals", "value": "k"}]}}"#.to_string(),
                None,
            ),
            (r#"{"policies": {}}"#.to_string(), Some("route.default: missing")),
            (r#"{"default": "NullRoute"}"#.to_string(), Some("route.policies: missing")),
            (
                r#"{"default": "NullRoute", "policies": {"key": [{"op": "like", "value": "k"}]}}"#.to_string(),
                Some("route.policies.key[0]: expected \"op\""),
            ),
            (
                r#"{"default": "NullRoute", "policies": {"key": [{"op": "equals"}]}}"#.to_string(),
                Some("route.policies.key[0]: missing \"value\""),
            ),
            (
                r#"{"default": "NullRoute", "policies": {"key": {"op": "equals"}}}"#.to_string(),
                Some("route.policies.key: expected a list"),
            ),
        ];
        check_configs("BlackholeRoute", build, &cases);
        let name = with_json_node(
            r#"{"default": "NullRoute", "policies": {}}"#,
            "BlackholeRoute",
            |n| {
                build(n, &mut Builder::new(&Default::default()))
                    .unwrap()
                    .name()
            },
        );
        assert_eq!(name, "BlackholeRoute");
    }
}
