//! `HostIdRoute` (mcrouter's): every request from this router host goes to one child,
//! chosen once, when the config is built, as `hostid % children` (see
//! [`crate::hostid`]); with a `salt`, by a hash of the salt and the host id instead, so
//! two such routes need not pick the same position. As in mcrouter the route is the chosen
//! child itself (it does not appear in `route_handles`), and without children it is a
//! `NullRoute`.
//!
//! Config: `{"type": "HostIdRoute", "children": [...], "salt": "s"}` or
//! `"HostIdRoute|Pool|A"`. mcrouter's salted hash is folly's; ours is MurmurHash64A of
//! the salt and the host id, so a salted choice differs from mcrouter's on the same host
//! (the unsalted one does too: the host id itself is ours).

use std::sync::Arc;

use super::null::NullRoute;
use super::{Node, RouteRef};
use crate::config::{Builder, ConfigError};

/// Which of `n` children the host `host_id` takes.
pub fn pick(host_id: u32, salt: Option<&str>, n: usize) -> usize {
    let h = match salt.filter(|s| !s.is_empty()) {
        None => u64::from(host_id),
        Some(s) => {
            let mut buf = s.as_bytes().to_vec();
            buf.extend_from_slice(&host_id.to_le_bytes());
            crate::hash::ch3::murmur_hash_64a(&buf, 0)
        }
    };
    (h % n as u64) as usize
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let salt = node.str_field("salt")?;
    let children = if node.arg.is_some() || node.field("children").is_some() {
        node.children(b)?
    } else {
        Vec::new()
    };
    if children.is_empty() {
        return Ok(Arc::new(NullRoute));
    }
    let i = pick(crate::hostid::get(), salt, children.len());
    Ok(children[i].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::with_json_node;

    #[test]
    fn unsalted_is_hostid_modulo() {
        for h in 0..20u32 {
            assert_eq!(pick(h, None, 3), h as usize % 3);
            assert_eq!(pick(h, Some(""), 3), h as usize % 3);
        }
    }

    #[test]
    fn salts_spread_hosts_differently() {
        let a: Vec<usize> = (0..100).map(|h| pick(h, Some("a"), 4)).collect();
        let b: Vec<usize> = (0..100).map(|h| pick(h, Some("b"), 4)).collect();
        assert_ne!(a, b);
        for v in [&a, &b] {
            for c in 0..4 {
                assert!(v.iter().filter(|&&x| x == c).count() > 10, "{v:?}");
            }
        }
        assert_eq!(
            a,
            (0..100).map(|h| pick(h, Some("a"), 4)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn builds_the_chosen_child_or_a_null_route() {
        let name = |json: &str| {
            with_json_node(json, "HostIdRoute", |n| {
                build(n, &mut Builder::new(&Default::default())).map(|r| r.name())
            })
        };
        let want = ["ErrorRoute", "NullRoute"][pick(crate::hostid::get(), None, 2)];
        let got = name(r#"{"children": ["ErrorRoute", "NullRoute"]}"#).unwrap();
        assert!(got.starts_with(want), "{got} vs {want}");
        assert_eq!(name("{}").unwrap(), "NullRoute");
        assert!(name(r#"{"children": ["NullRoute"], "salt": 3}"#)
            .unwrap_err()
            .to_string()
            .contains("route.salt: expected a string"));
    }
}
