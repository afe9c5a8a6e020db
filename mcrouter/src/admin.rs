//! Admin keys: `get __mcrouter__.<what>` answered by the router itself.
//!
//! | key | value |
//! |-----|-------|
//! | `__mcrouter__.version` | router version |
//! | `__mcrouter__.config` | the config text in force |
//! | `__mcrouter__.config_age` | seconds since it was loaded |
//! | `__mcrouter__.config_file` | its path |
//! | `__mcrouter__.options` | the command-line options, one `name value` per line |
//! | `__mcrouter__.route(op,key)` | the servers `op` on `key` goes to, one per line |
//! | `__mcrouter__.route_handles(op,key)` | the route handles it traverses, indented |
//! | `__mcrouter__.pools` | pools and their servers (JSON) |

use std::sync::Arc;

use crate::request::{Op, Req};
use crate::route::{describe_path, destinations_for, RouteRef};
use crate::server::Shared;

/// Keys starting with this are admin requests.
pub const ADMIN_PREFIX: &[u8] = b"__mcrouter__.";

/// The value for admin key `key` (`None`: unknown, answered as a miss).
pub fn lookup(key: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    let what = std::str::from_utf8(key.strip_prefix(ADMIN_PREFIX)?).ok()?;
    let cfg = shared.config.load();
    let text = match what {
        "version" => format!("mcrouter-rs {}", env!("CARGO_PKG_VERSION")),
        "config" => cfg.text.clone(),
        "config_age" => cfg
            .loaded_at
            .elapsed()
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string(),
        "config_file" => cfg
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        "options" => shared.opts.describe(),
        "pools" => serde_json::to_string(&cfg.pools).unwrap_or_default(),
        _ => {
            let (name, args) = what.split_once('(')?;
            let args = args.strip_suffix(')')?;
            let (op, k) = args.split_once(',')?;
            let req = request_for(op, k)?;
            let root: RouteRef = cfg.top.clone();
            match name {
                "route" => destinations_for(&root, &req)
                    .iter()
                    .map(|d| d.addr.as_str())
                    .collect::<Vec<_>>()
                    .join("\r\n"),
                "route_handles" => describe_path(&root, &req).trim_end().to_string(),
                _ => return None,
            }
        }
    };
    Some(text.into_bytes())
}

/// A representative request for `op` on `key` (admin `route(op,key)`).
pub fn request_for(op: &str, key: &str) -> Option<Req> {
    let op = Op::from_name(op)?;
    let wire = match op {
        Op::Get | Op::Gets | Op::LeaseGet => format!("{} {key}\r\n", op.name()),
        Op::Gat | Op::Gats => format!("{} 0 {key}\r\n", op.name()),
        Op::Set | Op::Add | Op::Replace | Op::Append | Op::Prepend => {
            format!("{} {key} 0 0 0\r\n\r\n", op.name())
        }
        Op::Cas => format!("cas {key} 0 0 0 1\r\n\r\n"),
        Op::LeaseSet => format!("lease-set {key} 1 0 0 0\r\n\r\n"),
        Op::Delete => format!("delete {key}\r\n"),
        Op::Incr | Op::Decr => format!("{} {key} 1\r\n", op.name()),
        Op::Touch => format!("touch {key} 0\r\n"),
        Op::MetaGet => format!("mg {key}\r\n"),
        Op::MetaSet => format!("ms {key} 0\r\n\r\n"),
        Op::MetaDelete => format!("md {key}\r\n"),
        Op::MetaArithmetic => format!("ma {key}\r\n"),
        Op::MetaDebug => format!("me {key}\r\n"),
        Op::FlushAll => "flush_all\r\n".to_string(),
    };
    Req::from_wire(wire.as_bytes())
}

/// `VALUE <key> 0 <len>\r\n<data>\r\nEND\r\n` for an admin hit, `END\r\n` for a miss.
pub fn reply(key: &[u8], shared: &Arc<Shared>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(v) = lookup(key, shared) {
        protocol::encode_value_header(&mut out, key, 0, v.len(), None);
        out.extend_from_slice(&v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"END\r\n");
    out
}
