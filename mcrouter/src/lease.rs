//! Lease bookkeeping in the router: which server issued a `lease-get` token, so the
//! matching `lease-set` reaches that server even when the route tree changed in between
//! (a config reload moved the key), and the meta-command emulation of leases for stock
//! memcached backends.
//!
//! # Token -> server memory
//!
//! ```text
//!  lease-get k ──> DestinationRoute(A) ──> LVALUE k 12345 ...   remember (k, 12345) -> A
//!        (config reload: k now hashes to B)
//!  lease-set k 12345 ──> DestinationRoute(B) ── lookup (k, 12345) = A ──> sent to A
//! ```
//!
//! One process-wide table (workers and config generations share it), entries live for
//! [`TOKEN_MEMORY`] (the servers' default lease window) and the table holds at most
//! [`MAX_TOKENS`] entries (expired ones are swept when it is full; if it is still full the
//! token is not remembered and the lease-set follows the route, which is the right server
//! unless the config changed).
//!
//! # Lease modes (pool option `"lease_mode"`)
//!
//! - `"native"` (default): the backend implements `lease-get`/`lease-set` (our
//!   cache-server, Facebook's memcached); requests pass through unchanged.
//! - `"meta"`: the backend is a stock memcached 1.6 without leases; the router emulates
//!   them with meta commands:
//!   - `lease-get k` -> `mg k s v f c N<lease_ttl>`. A hit without `W`/`Z` answers
//!     `VALUE`; `W` (this client won the right to fill: memcached created an empty
//!     placeholder, or the item is stale after `md k I`) answers
//!     `LVALUE k <cas+1> <flags> <bytes>` (the stale value when `X`); `Z` (someone else
//!     is filling) answers `LVALUE k 1 ...` (hot miss, stale value when `X`).
//!   - `lease-set k <token> <flags> <exptime> <bytes>` -> `ms k <bytes> F<flags>
//!     T<exptime> C<token-1>`: `HD` -> `STORED`, `EX`/`NF`/`NS` -> `NOT_STORED` (any write
//!     of the key since the miss changed its CAS, so a stale fill is refused).
//!   - The window is the placeholder's TTL (`"lease_ttl"`, default 10 s). Tokens are the
//!     placeholder's CAS + 1, so they are always > 1. A stale value after a delete needs the
//!     writer to use `md k I` (memcached keeps the item, marked stale); a plain `delete`
//!     removes it and the next `lease-get` simply wins a fresh fill.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::destination::DestShared;
use crate::reply::{Reply, ReplyKind};

/// How long the router remembers which server issued a token.
pub const TOKEN_MEMORY: Duration = Duration::from_secs(10);
/// Bound on remembered tokens.
pub const MAX_TOKENS: usize = 100_000;
/// The hot-miss token (back off and retry).
pub const HOT_MISS_TOKEN: u64 = 1;
/// Default placeholder TTL in `"meta"` lease mode.
pub const DEFAULT_META_LEASE_TTL: u32 = 10;

/// How a pool's servers do leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeaseMode {
    #[default]
    Native,
    /// Emulated with `mg N`/`ms C` (stock memcached 1.6); the placeholder TTL.
    Meta { ttl: u32 },
}

type TokenMap = HashMap<(Bytes, u64), (Arc<DestShared>, LeaseMode, Instant)>;

fn tokens() -> &'static Mutex<TokenMap> {
    static T: OnceLock<Mutex<TokenMap>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Remember that `dest` (whose pool uses `mode`) issued `token` for `key`.
pub fn remember(key: &[u8], token: u64, dest: &Arc<DestShared>, mode: LeaseMode) {
    if crate::metrics::enabled() {
        let event = if token <= HOT_MISS_TOKEN {
            "hot_miss"
        } else {
            "issued"
        };
        metrics::counter!("mcrouter_lease_tokens_routed_total", "event" => event).increment(1);
    }
    if token <= HOT_MISS_TOKEN {
        return;
    }
    let now = Instant::now();
    let mut t = tokens().lock();
    if t.len() >= MAX_TOKENS {
        t.retain(|_, (_, _, at)| now.duration_since(*at) < TOKEN_MEMORY);
        if t.len() >= MAX_TOKENS {
            return;
        }
    }
    t.insert(
        (Bytes::copy_from_slice(key), token),
        (dest.clone(), mode, now),
    );
}

/// The server that issued `token` for `key`, if remembered and recent (forgets it: a
/// token fills at most once).
pub fn issuer(key: &[u8], token: u64) -> Option<(Arc<DestShared>, LeaseMode)> {
    let mut t = tokens().lock();
    let (d, mode, at) = t.remove(&(Bytes::copy_from_slice(key), token))?;
    (at.elapsed() < TOKEN_MEMORY).then_some((d, mode))
}

/// Number of remembered tokens (tests).
pub fn remembered() -> usize {
    tokens().lock().len()
}

/// `LVALUE <key> <token> <flags> <bytes>` fields of a lease miss reply.
pub fn parse_lvalue(bytes: &[u8]) -> Option<(&[u8], u64, usize)> {
    let rest = bytes.strip_prefix(b"LVALUE ")?;
    let eol = rest.windows(2).position(|w| w == b"\r\n")?;
    let mut it = rest[..eol].split(|&b| b == b' ');
    let key = it.next()?;
    let token = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    Some((key, token, 7 + eol + 2))
}

/// The same lease-miss reply with token 1 (a coalesced lease-get that did not lead).
pub fn as_hot_miss(reply: &Reply) -> Reply {
    let b = &reply.bytes[..];
    let Some(rest) = b.strip_prefix(b"LVALUE ") else {
        return reply.clone();
    };
    let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
        return reply.clone();
    };
    let fields: Vec<&[u8]> = rest[..eol].split(|&c| c == b' ').collect();
    if fields.len() != 4 {
        return reply.clone();
    }
    let mut v = Vec::with_capacity(b.len());
    v.extend_from_slice(b"LVALUE ");
    v.extend_from_slice(fields[0]);
    v.extend_from_slice(b" 1 ");
    v.extend_from_slice(fields[2]);
    v.push(b' ');
    v.extend_from_slice(fields[3]);
    v.extend_from_slice(&rest[eol..]);
    Reply {
        kind: reply.kind,
        bytes: Bytes::from(v),
    }
}

/// `mg` request emulating `lease-get key` in `"meta"` mode.
pub fn meta_lease_get(key: &[u8], ttl: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 24);
    v.extend_from_slice(b"mg ");
    v.extend_from_slice(key);
    v.extend_from_slice(format!(" s v f c N{ttl}\r\n").as_bytes());
    v
}

/// `ms` request emulating a `lease-set` in `"meta"` mode.
pub fn meta_lease_set(key: &[u8], token: u64, flags: u32, exptime: i64, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + data.len() + 64);
    v.extend_from_slice(b"ms ");
    v.extend_from_slice(key);
    v.extend_from_slice(
        format!(
            " {} F{flags} T{exptime} C{}\r\n",
            data.len(),
            token.saturating_sub(1)
        )
        .as_bytes(),
    );
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

/// Translate the `mg` reply to what `lease-get key` answers; `Some(token)` when the
/// client may fill.
pub fn meta_get_reply(key: &[u8], reply: Reply) -> (Reply, Option<u64>) {
    let b = &reply.bytes[..];
    let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
        return (reply, None);
    };
    let line = &b[..eol];
    if !line.starts_with(b"VA ") {
        // EN (no vivify possible, e.g. out of memory), errors: pass a plain miss / error on.
        if line == b"EN" {
            return (
                Reply {
                    kind: ReplyKind::Miss,
                    bytes: Bytes::from_static(b"END\r\n"),
                },
                None,
            );
        }
        return (reply, None);
    }
    let mut fields = line[3..].split(|&c| c == b' ');
    let len: usize = match fields
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.parse().ok())
    {
        Some(l) => l,
        None => return (reply, None),
    };
    let (mut flags, mut cas, mut win, mut hot, mut stale) = (0u32, 0u64, false, false, false);
    for f in fields {
        match f.first() {
            Some(b'f') => flags = parse(&f[1..]).unwrap_or(0) as u32,
            Some(b'c') => cas = parse(&f[1..]).unwrap_or(0),
            Some(b'W') => win = true,
            Some(b'Z') => hot = true,
            Some(b'X') => stale = true,
            _ => {}
        }
    }
    let data_start = eol + 2;
    let data = b.get(data_start..data_start + len).unwrap_or(&[]);
    let mut v = Vec::with_capacity(len + key.len() + 48);
    let token = if win {
        Some(cas.saturating_add(1).max(2))
    } else if hot {
        Some(HOT_MISS_TOKEN)
    } else {
        None
    };
    match token {
        None => {
            v.extend_from_slice(format!("VALUE {} {flags} {len}\r\n", Latin(key)).as_bytes());
            v.extend_from_slice(data);
            v.extend_from_slice(b"\r\nEND\r\n");
        }
        Some(t) => {
            // Without X the item is memcached's empty placeholder: no stale data to pass.
            let (flags, data) = if stale { (flags, data) } else { (0, &[][..]) };
            v.extend_from_slice(
                format!("LVALUE {} {t} {flags} {}\r\n", Latin(key), data.len()).as_bytes(),
            );
            v.extend_from_slice(data);
            v.extend_from_slice(b"\r\nEND\r\n");
        }
    }
    (
        Reply {
            kind: ReplyKind::Hit,
            bytes: Bytes::from(v),
        },
        token.filter(|&t| t > HOT_MISS_TOKEN),
    )
}

/// Translate the `ms` reply of an emulated `lease-set`.
pub fn meta_set_reply(reply: Reply) -> Reply {
    let b = &reply.bytes[..];
    let (kind, bytes): (ReplyKind, &'static [u8]) = if b.starts_with(b"HD") {
        (ReplyKind::Ok, b"STORED\r\n")
    } else if b.starts_with(b"EX") || b.starts_with(b"NF") || b.starts_with(b"NS") {
        (ReplyKind::NotStored, b"NOT_STORED\r\n")
    } else {
        return reply;
    };
    Reply {
        kind,
        bytes: Bytes::from_static(bytes),
    }
}

fn parse(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Keys are bytes; format them losslessly for ASCII keys (memcached keys have no spaces
/// or control characters).
struct Latin<'a>(&'a [u8]);

impl std::fmt::Display for Latin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &c in self.0 {
            std::fmt::Write::write_char(f, c as char)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(b: &'static [u8]) -> Reply {
        Reply {
            kind: ReplyKind::Hit,
            bytes: Bytes::from_static(b),
        }
    }

    #[test]
    fn meta_replies_translate() {
        let (r, t) = meta_get_reply(b"k", reply(b"VA 2 f5 c9\r\nhi\r\n"));
        assert_eq!(&r.bytes[..], b"VALUE k 5 2\r\nhi\r\nEND\r\n");
        assert_eq!(t, None);
        let (r, t) = meta_get_reply(b"k", reply(b"VA 0 f0 c9 W\r\n\r\n"));
        assert_eq!(&r.bytes[..], b"LVALUE k 10 0 0\r\n\r\nEND\r\n");
        assert_eq!(t, Some(10));
        let (r, t) = meta_get_reply(b"k", reply(b"VA 0 f0 c9 Z\r\n\r\n"));
        assert_eq!(&r.bytes[..], b"LVALUE k 1 0 0\r\n\r\nEND\r\n");
        assert_eq!(t, None);
        let (r, _) = meta_get_reply(b"k", reply(b"VA 3 f7 c9 Z X\r\nold\r\n"));
        assert_eq!(&r.bytes[..], b"LVALUE k 1 7 3\r\nold\r\nEND\r\n");
        let (r, t) = meta_get_reply(b"k", reply(b"VA 3 f7 c9 W X\r\nold\r\n"));
        assert_eq!(&r.bytes[..], b"LVALUE k 10 7 3\r\nold\r\nEND\r\n");
        assert_eq!(t, Some(10));
        assert_eq!(
            &meta_set_reply(reply(b"EX\r\n")).bytes[..],
            b"NOT_STORED\r\n"
        );
        assert_eq!(&meta_set_reply(reply(b"HD\r\n")).bytes[..], b"STORED\r\n");
        assert_eq!(
            meta_lease_set(b"k", 10, 3, 0, b"v"),
            b"ms k 1 F3 T0 C9\r\nv\r\n"
        );
    }

    #[test]
    fn hot_miss_rewrite() {
        let r = as_hot_miss(&reply(b"LVALUE k 77 3 2\r\nhi\r\nEND\r\n"));
        assert_eq!(&r.bytes[..], b"LVALUE k 1 3 2\r\nhi\r\nEND\r\n");
        assert_eq!(
            parse_lvalue(b"LVALUE k 77 3 2\r\nhi\r\nEND\r\n").map(|x| x.1),
            Some(77)
        );
    }
}
