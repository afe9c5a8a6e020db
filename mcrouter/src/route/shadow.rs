//! `ShadowRoute`: routes to `default_policy` and also sends a copy of requests whose key
//! falls in a shadow's `key_fraction_range` to that shadow, in the background (its reply
//! is ignored). Used to warm or test a new pool with real traffic.
//!
//! Config: `{"type": "ShadowRoute", "default_policy": ..., "shadows": [{"target": ...,
//! "key_fraction_range": [0.0, 0.1]}]}`.

use std::rc::Rc;
use std::sync::Arc;

use super::{join, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError};
use crate::destination::DestShared;
use crate::hash::routing_key;
use crate::request::{Op, Req};

#[derive(Debug)]
pub struct Shadow {
    pub target: RouteRef,
    /// `[start, end)` of the key's hash fraction in `[0, 1]`.
    pub range: (f64, f64),
}

#[derive(Debug)]
pub struct ShadowRoute {
    normal: RouteRef,
    shadows: Vec<Shadow>,
}

/// Where a key falls in `[0, 1)` (stable: crc32 of the routing key).
pub fn key_fraction(key: &[u8]) -> f64 {
    f64::from(crc32fast::hash(routing_key(key))) / (f64::from(u32::MAX) + 1.0)
}

impl ShadowRoute {
    pub fn new(normal: RouteRef, shadows: Vec<Shadow>) -> Self {
        ShadowRoute { normal, shadows }
    }

    fn shadows_for<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = &'a Shadow> + 'a {
        let f = key_fraction(key);
        self.shadows
            .iter()
            .filter(move |s| f >= s.range.0 && (f < s.range.1 || s.range.1 >= 1.0))
    }
}

impl Route for ShadowRoute {
    fn name(&self) -> String {
        format!("ShadowRoute({} shadows)", self.shadows.len())
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        for s in self.shadows_for(req.routing_key()) {
            tokio::task::spawn_local(s.target.route(req.clone(), ctx));
        }
        self.normal.route(req, ctx)
    }

    fn children(&self) -> Vec<RouteRef> {
        let mut v = vec![self.normal.clone()];
        v.extend(self.shadows.iter().map(|s| s.target.clone()));
        v
    }

    fn children_for(&self, req: &Req) -> Vec<RouteRef> {
        let mut v = vec![self.normal.clone()];
        v.extend(
            self.shadows_for(req.routing_key())
                .map(|s| s.target.clone()),
        );
        v
    }

    fn plain_destination(&self, op: Op, key: &[u8]) -> Option<&Arc<DestShared>> {
        if self.shadows_for(key).next().is_some() {
            return None;
        }
        self.normal.plain_destination(op, key)
    }
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let normal = match node.field("default_policy") {
        Some(_) => node.route(b, "default_policy")?,
        None => node.route(b, "children")?,
    };
    let mut shadows = Vec::new();
    if let Some(v) = node.field("shadows") {
        let path = join(&node.path, "shadows");
        let list = v
            .as_array()
            .ok_or_else(|| ConfigError::at(path.clone(), "expected a list of shadows"))?;
        for (i, s) in list.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let obj = s
                .as_object()
                .ok_or_else(|| ConfigError::at(p.clone(), "expected an object with `target`"))?;
            let sn = Node {
                path: p.clone(),
                type_name: "shadow".into(),
                obj: Some(obj),
                arg: None,
            };
            let target = sn.route(b, "target")?;
            let range = match obj.get("key_fraction_range") {
                None => (0.0, 1.0),
                Some(r) => {
                    let rp = join(&p, "key_fraction_range");
                    let pair: Vec<f64> = r
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                        .unwrap_or_default();
                    if pair.len() != 2
                        || !(0.0..=1.0).contains(&pair[0])
                        || pair[1] < pair[0]
                        || pair[1] > 1.0
                    {
                        return Err(ConfigError::at(
                            rp,
                            "expected [start, end] with 0 <= start <= end <= 1",
                        ));
                    }
                    (pair[0], pair[1])
                }
            };
            shadows.push(Shadow { target, range });
        }
    }
    Ok(Arc::new(ShadowRoute::new(normal, shadows)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, Mock};

    #[test]
    fn copies_requests_in_range() {
        run(|ctx| async move {
            let main = Mock::replying("STORED\r\n");
            let sh = Mock::replying("NOT_STORED\r\n");
            let r = ShadowRoute::new(
                main.r(),
                vec![Shadow {
                    target: sh.r(),
                    range: (0.0, 0.5),
                }],
            );
            let mut expected = 0;
            for i in 0..50 {
                let key = format!("key{i}");
                if key_fraction(key.as_bytes()) < 0.5 {
                    expected += 1;
                }
                let reply = r
                    .route(Mock::req(&format!("set {key} 0 0 1\r\nx\r\n")), &ctx)
                    .await;
                assert_eq!(&reply.bytes[..], b"STORED\r\n");
            }
            tokio::task::yield_now().await;
            assert_eq!(main.count(), 50);
            assert_eq!(sh.count(), expected);
            assert!(expected > 5 && expected < 45);
        });
    }
}
