//! The router's view of a request: the wire bytes to forward (shared, zero-copy slices of
//! the client's read buffer), the operation, and where the key is.
//!
//! A [`Req`] is built once per client request by [`Req::from_parsed`] from the protocol
//! crate's [`Request`]. Most requests are forwarded verbatim (`raw`); the few that must be
//! rewritten (`noreply` stripped so the backend answers, meta `q` stripped, a route that
//! modifies the key or exptime) are re-encoded with the protocol crate.

use std::ops::Range;

use bytes::Bytes;
use protocol::{meta, Limits, Request, RetrievalKind};

/// The operation of a request, as route handles see it (mcrouter operation names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Get,
    Gets,
    Gat,
    Gats,
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
    Delete,
    Incr,
    Decr,
    Touch,
    MetaGet,
    MetaSet,
    MetaDelete,
    MetaArithmetic,
    MetaDebug,
    LeaseGet,
    LeaseSet,
    FlushAll,
}

/// Every operation name accepted by `OperationSelectorRoute` and admin `route(op,key)`.
pub const OP_NAMES: &[&str] = &[
    "get",
    "gets",
    "gat",
    "gats",
    "set",
    "add",
    "replace",
    "append",
    "prepend",
    "cas",
    "delete",
    "incr",
    "decr",
    "touch",
    "metaget",
    "metaset",
    "metadelete",
    "metaarithmetic",
    "metadebug",
    "lease-get",
    "lease-set",
    "flush_all",
];

impl Op {
    /// The mcrouter operation name (`OperationSelectorRoute` keys).
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Gets => "gets",
            Op::Gat => "gat",
            Op::Gats => "gats",
            Op::Set => "set",
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Append => "append",
            Op::Prepend => "prepend",
            Op::Cas => "cas",
            Op::Delete => "delete",
            Op::Incr => "incr",
            Op::Decr => "decr",
            Op::Touch => "touch",
            Op::MetaGet => "metaget",
            Op::MetaSet => "metaset",
            Op::MetaDelete => "metadelete",
            Op::MetaArithmetic => "metaarithmetic",
            Op::MetaDebug => "metadebug",
            Op::LeaseGet => "lease-get",
            Op::LeaseSet => "lease-set",
            Op::FlushAll => "flush_all",
        }
    }

    /// Parse an operation name (as in [`OP_NAMES`]; the meta ones also as `mg ms md ma me`).
    pub fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "get" => Op::Get,
            "gets" => Op::Gets,
            "gat" => Op::Gat,
            "gats" => Op::Gats,
            "set" => Op::Set,
            "add" => Op::Add,
            "replace" => Op::Replace,
            "append" => Op::Append,
            "prepend" => Op::Prepend,
            "cas" => Op::Cas,
            "delete" => Op::Delete,
            "incr" => Op::Incr,
            "decr" => Op::Decr,
            "touch" => Op::Touch,
            "metaget" | "mg" => Op::MetaGet,
            "metaset" | "ms" => Op::MetaSet,
            "metadelete" | "md" => Op::MetaDelete,
            "metaarithmetic" | "ma" => Op::MetaArithmetic,
            "metadebug" | "me" => Op::MetaDebug,
            "lease-get" => Op::LeaseGet,
            "lease-set" => Op::LeaseSet,
            "flush_all" | "flushall" => Op::FlushAll,
            _ => return None,
        })
    }

    /// Reads (misses are meaningful: `MissFailoverRoute`, shadow and rate-limit classes).
    pub fn is_get(self) -> bool {
        matches!(
            self,
            Op::Get | Op::Gets | Op::Gat | Op::Gats | Op::MetaGet | Op::LeaseGet | Op::MetaDebug
        )
    }

    /// Writes that store a value.
    pub fn is_update(self) -> bool {
        matches!(
            self,
            Op::Set
                | Op::Add
                | Op::Replace
                | Op::Append
                | Op::Prepend
                | Op::Cas
                | Op::MetaSet
                | Op::LeaseSet
                | Op::Incr
                | Op::Decr
                | Op::Touch
                | Op::MetaArithmetic
        )
    }

    /// Deletes.
    pub fn is_delete(self) -> bool {
        matches!(self, Op::Delete | Op::MetaDelete)
    }

    /// Whether the backend reply is a `VALUE ...`* `END` sequence.
    pub fn reply_until_end(self) -> bool {
        matches!(self, Op::Get | Op::Gets | Op::Gat | Op::Gats)
    }

    fn of_retrieval(kind: RetrievalKind) -> Op {
        match kind {
            RetrievalKind::Get => Op::Get,
            RetrievalKind::Gets => Op::Gets,
            RetrievalKind::Gat => Op::Gat,
            RetrievalKind::Gats => Op::Gats,
        }
    }
}

/// A request on its way through the route tree. Cheap to clone (`Bytes` is shared).
#[derive(Debug, Clone)]
pub struct Req {
    op: Op,
    /// The request exactly as it is sent to a backend (line, and data block if any).
    raw: Bytes,
    /// The key as sent (base64 for meta `b`), inside `raw`; for multi-key gets, all keys.
    key: Range<usize>,
    /// The decoded key of a base64 meta request (what routing hashes).
    decoded: Option<Bytes>,
    /// Suppress the reply to the client (`noreply`); the backend still answers.
    noreply: bool,
    /// Meta `q`: the backend was asked without `q`; suppress the "uninteresting" replies.
    quiet: bool,
    /// A quiet `ma` with `N`: memcached answers a vivify even under `q` but not an update,
    /// and only the backend knows which happened. So it goes with its `q` and an `mn`
    /// after it, and its reply is whatever comes before the `MN` (maybe nothing).
    until_mn: bool,
    /// A delete from the invalidation intake (a database tailer), not from a client.
    invalidation: bool,
    /// A delete under an `AsynclogRoute`: spooled on failure even where the pool opted out.
    asynclog: bool,
}

/// How a client request maps onto the router.
#[derive(Debug)]
pub enum Classified {
    /// Routed through the tree.
    Routed(Req),
    /// `flush_all`: to every destination of the routed pools.
    FlushAll(Req),
    /// Answered by the router itself.
    Local(LocalCmd),
}

/// Commands the router answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCmd {
    Version,
    Verbosity { noreply: bool },
    MetaNoop,
    Quit,
    Stats(StatsGroup),
    Unsupported,
}

/// What `stats [group]` asks the router for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsGroup {
    /// `stats`, `stats all`, `stats detailed`: the router's own counters.
    General,
    /// `stats servers`: one line per destination.
    Servers,
    /// Anything else: `ERROR`, as memcached answers an unknown group.
    Unknown,
}

fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - outer.as_ptr() as usize
}

impl Req {
    /// Build from a request parsed out of `buf[..consumed]`; `take` splits those bytes off
    /// the client buffer (zero-copy) when the request is forwarded verbatim.
    pub fn classify(
        parsed: &Request<'_>,
        buf: &[u8],
        consumed: usize,
        take: impl FnOnce() -> Bytes,
    ) -> Classified {
        let op = match *parsed {
            Request::Storage { kind, .. } => match kind {
                protocol::StorageKind::Set => Op::Set,
                protocol::StorageKind::Add => Op::Add,
                protocol::StorageKind::Replace => Op::Replace,
                protocol::StorageKind::Append => Op::Append,
                protocol::StorageKind::Prepend => Op::Prepend,
                protocol::StorageKind::Cas => Op::Cas,
            },
            Request::Retrieval { kind, .. } => Op::of_retrieval(kind),
            Request::Delete { .. } => Op::Delete,
            Request::Arith { kind, .. } => match kind {
                protocol::ArithKind::Incr => Op::Incr,
                protocol::ArithKind::Decr => Op::Decr,
            },
            Request::Touch { .. } => Op::Touch,
            Request::MetaGet { .. } => Op::MetaGet,
            Request::MetaSet { .. } => Op::MetaSet,
            Request::MetaDelete { .. } => Op::MetaDelete,
            Request::MetaArithmetic { .. } => Op::MetaArithmetic,
            Request::MetaDebug { .. } => Op::MetaDebug,
            Request::LeaseGet { .. } => Op::LeaseGet,
            Request::LeaseSet { .. } => Op::LeaseSet,
            Request::FlushAll { .. } => Op::FlushAll,
            Request::Version => return Classified::Local(LocalCmd::Version),
            Request::Verbosity { noreply, .. } => {
                return Classified::Local(LocalCmd::Verbosity { noreply })
            }
            Request::MetaNoop => return Classified::Local(LocalCmd::MetaNoop),
            Request::Quit => return Classified::Local(LocalCmd::Quit),
            Request::Stats { args } => {
                let group = match args.trim_ascii() {
                    b"" | b"all" | b"detailed" => StatsGroup::General,
                    b"servers" => StatsGroup::Servers,
                    _ => StatsGroup::Unknown,
                };
                return Classified::Local(LocalCmd::Stats(group));
            }
            Request::Shutdown { .. }
            | Request::CacheMemlimit { .. }
            | Request::Slabs(_)
            | Request::LruCrawler(_)
            | Request::Lru { .. }
            | Request::Watch { .. } => return Classified::Local(LocalCmd::Unsupported),
        };
        let noreply = parsed.noreply();
        let meta_flags = match *parsed {
            Request::MetaGet { flags, .. }
            | Request::MetaSet { flags, .. }
            | Request::MetaDelete { flags, .. }
            | Request::MetaArithmetic { flags, .. } => Some(flags),
            _ => None,
        };
        let quiet = meta_flags.is_some_and(|f| f.quiet());
        let decoded = match (*parsed, meta_flags) {
            (Request::MetaDebug { key, base64: true }, _) => decode_b64(key),
            (_, Some(f)) if f.base64_key() => parsed.key().and_then(decode_b64),
            _ => None,
        };
        let until_mn = quiet && op == Op::MetaArithmetic && meta_flags.is_some_and(|f| f.has(b'N'));
        if noreply || quiet {
            // Re-encode so that the backend answers (we must match replies to requests).
            let mut out = Vec::with_capacity(consumed + 8);
            if until_mn {
                out.extend_from_slice(&buf[..consumed]);
                out.extend_from_slice(b"mn\r\n");
            } else if quiet {
                strip_quiet(&buf[..consumed], &mut out);
            } else {
                let mut copy = *parsed;
                clear_noreply(&mut copy);
                copy.encode(&mut out);
            }
            // The key is the second token of every line we produce.
            let key_off = memchr::memchr(b' ', &out).map(|i| i + 1).unwrap_or(0);
            let key_len = parsed.key().map(|k| k.len()).unwrap_or(0);
            drop(take());
            let req = Req {
                op,
                raw: Bytes::from(out),
                key: key_off..key_off + key_len,
                decoded,
                noreply,
                quiet: quiet && !until_mn,
                until_mn,
                invalidation: false,
                asynclog: false,
            };
            return if op == Op::FlushAll {
                Classified::FlushAll(req)
            } else {
                Classified::Routed(req)
            };
        }
        let key = match *parsed {
            Request::Retrieval { keys, .. } => {
                let mut it = keys.iter();
                match it.next() {
                    Some(first) => {
                        let start = offset_in(buf, first);
                        let last = it.last().unwrap_or(first);
                        start..offset_in(buf, last) + last.len()
                    }
                    None => 0..0,
                }
            }
            _ => match parsed.key() {
                Some(k) => {
                    let s = offset_in(buf, k);
                    s..s + k.len()
                }
                None => 0..0,
            },
        };
        let req = Req {
            op,
            raw: take(),
            key,
            decoded,
            noreply,
            quiet,
            until_mn: false,
            invalidation: false,
            asynclog: false,
        };
        if op == Op::FlushAll {
            Classified::FlushAll(req)
        } else {
            Classified::Routed(req)
        }
    }

    /// A request from its wire form (admin tools, tests, routes that build requests).
    /// `None` when `raw` is not exactly one complete routable request.
    pub fn from_wire(raw: &[u8]) -> Option<Req> {
        let (parsed, consumed) = protocol::parse_request(raw, &Limits::default()).ok()??;
        if consumed != raw.len() {
            return None;
        }
        match Req::classify(&parsed, raw, consumed, || Bytes::copy_from_slice(raw)) {
            Classified::Routed(r) | Classified::FlushAll(r) => Some(r),
            Classified::Local(_) => None,
        }
    }

    pub fn op(&self) -> Op {
        self.op
    }

    /// The wire bytes forwarded to a backend.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The bytes before the key (`get `, `gat 10 `): a multi-get's command prefix.
    pub fn command_prefix(&self) -> &[u8] {
        &self.raw[..self.key.start]
    }

    /// The key as sent (for multi-key gets: all keys, space separated).
    pub fn key(&self) -> &[u8] {
        &self.raw[self.key.clone()]
    }

    /// [`Req::key`] as a shared slice of the request (no copy).
    pub fn key_bytes(&self) -> Bytes {
        self.raw.slice(self.key.clone())
    }

    /// The key that routing and hashing see (base64 meta keys decoded).
    pub fn routing_key(&self) -> &[u8] {
        match &self.decoded {
            Some(d) => d,
            None => self.key(),
        }
    }

    /// Whether this is a meta request with a base64 key (`b`).
    pub fn base64_key(&self) -> bool {
        self.decoded.is_some()
    }

    /// Whether the client asked for no reply.
    pub fn noreply(&self) -> bool {
        self.noreply
    }

    /// Whether the client sent meta `q` (and the router, not the backend, hides replies).
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Where the backend's reply to this request ends.
    pub fn reply_end(&self) -> crate::destination::ReplyEnd {
        use crate::destination::ReplyEnd;
        if self.until_mn {
            ReplyEnd::Mn
        } else if self.op.reply_until_end() {
            ReplyEnd::Values
        } else {
            ReplyEnd::One
        }
    }

    /// Whether this is a delete from the invalidation intake (see [`crate::intake`]).
    pub fn invalidation(&self) -> bool {
        self.invalidation
    }

    /// This request marked as coming from the invalidation intake.
    pub fn into_invalidation(mut self) -> Req {
        self.invalidation = true;
        self
    }

    /// Whether an `AsynclogRoute` above asked for this delete to be spooled on failure.
    pub fn asynclog(&self) -> bool {
        self.asynclog
    }

    /// This request marked by an `AsynclogRoute`.
    pub fn into_asynclog(mut self) -> Req {
        self.asynclog = true;
        self
    }

    /// Number of keys (multi-key gets may have many).
    pub fn key_count(&self) -> usize {
        if self.op.reply_until_end() {
            protocol::Keys::from_raw(self.key()).count()
        } else {
            1
        }
    }

    /// The keys of a multi-key get.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        protocol::Keys::from_raw(self.key()).iter()
    }

    /// The same request with one key of a multi-get (`get <key>`, `gat <exptime> <key>`).
    pub fn single_get(&self, key: &[u8]) -> Req {
        let mut out = Vec::with_capacity(key.len() + 24);
        let line_start = &self.raw[..self.key.start];
        out.extend_from_slice(line_start);
        let start = out.len();
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
        Req {
            op: self.op,
            raw: Bytes::from(out),
            key: start..start + key.len(),
            decoded: None,
            noreply: false,
            quiet: false,
            until_mn: false,
            invalidation: self.invalidation,
            asynclog: self.asynclog,
        }
    }

    /// Re-parse the wire form (routes that rewrite a request).
    pub fn parsed(&self) -> Option<Request<'_>> {
        let limits = Limits {
            max_line_len: usize::MAX / 2,
            max_get_line_len: usize::MAX / 2,
            max_value_size: usize::MAX / 2,
            ..Limits::default()
        };
        protocol::parse_request(&self.raw, &limits)
            .ok()
            .flatten()
            .map(|(r, _)| r)
    }

    /// This request with its routing key replaced: a base64 meta request (`b`) gets the new
    /// key base64-encoded on the wire and keeps its `b` semantics; others as
    /// [`Req::with_key`].
    pub fn with_routing_key(&self, new_key: &[u8]) -> Req {
        if self.decoded.is_none() {
            return self.with_key(new_key);
        }
        use base64::Engine as _;
        let wire = base64::engine::general_purpose::STANDARD.encode(new_key);
        let mut r = self.with_key(wire.as_bytes());
        r.decoded = Some(Bytes::copy_from_slice(new_key));
        r
    }

    /// This request with the key replaced (text commands only; meta keys are replaced as
    /// sent, so a base64 request gets a plain key and loses its `b` semantics only if the
    /// route asked for a key that is not base64 itself).
    pub fn with_key(&self, new_key: &[u8]) -> Req {
        let mut out = Vec::with_capacity(self.raw.len() + new_key.len());
        out.extend_from_slice(&self.raw[..self.key.start]);
        let start = out.len();
        out.extend_from_slice(new_key);
        out.extend_from_slice(&self.raw[self.key.end..]);
        Req {
            op: self.op,
            raw: Bytes::from(out),
            key: start..start + new_key.len(),
            decoded: None,
            noreply: self.noreply,
            quiet: self.quiet,
            until_mn: self.until_mn,
            invalidation: self.invalidation,
            asynclog: self.asynclog,
        }
    }

    /// This request with its exptime replaced (storage, touch, gat; meta `T` flag).
    /// Requests without an exptime are returned unchanged.
    pub fn with_exptime(&self, exptime: i64) -> Req {
        let Some(parsed) = self.parsed() else {
            return self.clone();
        };
        if let Request::MetaSet { .. } = parsed {
            return self.with_meta_ttl(exptime);
        }
        let mut p = parsed;
        match &mut p {
            Request::Storage { exptime: e, .. }
            | Request::Touch { exptime: e, .. }
            | Request::LeaseSet { exptime: e, .. } => *e = exptime,
            Request::Retrieval {
                exptime: Some(e), ..
            } => *e = exptime,
            _ => return self.clone(),
        }
        let mut out = Vec::with_capacity(self.raw.len() + 8);
        p.encode(&mut out);
        let key = p.key().map(|k| k.len()).unwrap_or(0);
        let key_start = match p {
            Request::Retrieval { .. } => {
                // gat <exptime> <keys...>
                let first = memchr::memchr(b' ', &out).unwrap_or(0) + 1;
                memchr::memchr(b' ', &out[first..]).map_or(first, |i| first + i + 1)
            }
            _ => memchr::memchr(b' ', &out).map(|i| i + 1).unwrap_or(0),
        };
        let key_end = if key == 0 {
            key_start + self.key.len()
        } else {
            key_start + key
        };
        Req {
            op: self.op,
            raw: Bytes::from(out),
            key: key_start..key_end,
            decoded: self.decoded.clone(),
            noreply: self.noreply,
            quiet: self.quiet,
            until_mn: self.until_mn,
            invalidation: self.invalidation,
            asynclog: self.asynclog,
        }
    }

    /// `ms` with its `T` flag replaced by (or given) `T<exptime>`; the key stays in place.
    fn with_meta_ttl(&self, exptime: i64) -> Req {
        let eol = memchr::memchr(b'\n', &self.raw).unwrap_or(self.raw.len() - 1);
        let line = &self.raw[..eol];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut out = Vec::with_capacity(self.raw.len() + 12);
        for (i, tok) in line
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            // ms <key> <datalen> then flags
            if i >= 3 && tok[0] == b'T' {
                continue;
            }
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(tok);
        }
        out.extend_from_slice(format!(" T{exptime}\r\n").as_bytes());
        out.extend_from_slice(&self.raw[eol + 1..]);
        Req {
            op: self.op,
            raw: Bytes::from(out),
            key: self.key.clone(),
            decoded: self.decoded.clone(),
            noreply: self.noreply,
            quiet: self.quiet,
            until_mn: self.until_mn,
            invalidation: self.invalidation,
            asynclog: self.asynclog,
        }
    }

    /// The exptime of the request, if it has one (`ms` without `T`: 0, never expires).
    pub fn exptime(&self) -> Option<i64> {
        match self.parsed()? {
            Request::MetaSet { flags, .. } => Some(flags.ttl.unwrap_or(0)),
            Request::Storage { exptime, .. }
            | Request::Touch { exptime, .. }
            | Request::LeaseSet { exptime, .. } => Some(exptime),
            Request::Retrieval { exptime, .. } => exptime,
            _ => None,
        }
    }
}

fn decode_b64(key: &[u8]) -> Option<Bytes> {
    let mut out = [0u8; 256];
    meta::decode_key(key, &mut out)
        .ok()
        .map(|n| Bytes::copy_from_slice(&out[..n]))
}

fn clear_noreply(r: &mut Request<'_>) {
    match r {
        Request::Storage { noreply, .. }
        | Request::Delete { noreply, .. }
        | Request::Arith { noreply, .. }
        | Request::Touch { noreply, .. }
        | Request::FlushAll { noreply, .. }
        | Request::LeaseSet { noreply, .. } => *noreply = false,
        _ => {}
    }
}

/// Copy a meta request dropping the `q` flag token from its first line.
fn strip_quiet(raw: &[u8], out: &mut Vec<u8>) {
    let line_end = memchr::memchr(b'\n', raw)
        .map(|i| i + 1)
        .unwrap_or(raw.len());
    let line = &raw[..line_end];
    let body = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line);
    let mut first = true;
    for tok in body.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        if tok == b"q" {
            continue;
        }
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(tok);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&raw[line_end..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Req {
        Req::from_wire(s.as_bytes()).unwrap()
    }

    #[test]
    fn verbatim_and_key() {
        let r = req("set foo 0 0 3\r\nbar\r\n");
        assert_eq!(r.op(), Op::Set);
        assert_eq!(r.key(), b"foo");
        assert_eq!(&r.raw()[..], b"set foo 0 0 3\r\nbar\r\n");
        assert!(!r.noreply());
    }

    #[test]
    fn noreply_is_stripped_for_the_backend() {
        let r = req("set foo 0 0 3 noreply\r\nbar\r\n");
        assert!(r.noreply());
        assert_eq!(&r.raw()[..], b"set foo 0 0 3\r\nbar\r\n");
        assert_eq!(r.key(), b"foo");
        let d = req("delete k noreply\r\n");
        assert_eq!(&d.raw()[..], b"delete k\r\n");
        assert_eq!(d.key(), b"k");
    }

    #[test]
    fn meta_quiet_and_base64() {
        let r = req("mg Zm9v b q v\r\n");
        assert!(r.quiet());
        assert_eq!(&r.raw()[..], b"mg Zm9v b v\r\n");
        assert_eq!(r.key(), b"Zm9v");
        assert_eq!(r.routing_key(), b"foo");
    }

    #[test]
    fn multi_get_keys_and_single() {
        let r = req("gat 10 a bb ccc\r\n");
        assert_eq!(r.key_count(), 3);
        assert_eq!(r.keys().collect::<Vec<_>>(), vec![&b"a"[..], b"bb", b"ccc"]);
        let s = r.single_get(b"bb");
        assert_eq!(&s.raw()[..], b"gat 10 bb\r\n");
        assert_eq!(s.key(), b"bb");
    }

    #[test]
    fn rewrite_key_and_exptime() {
        let r = req("set foo 0 5 3\r\nbar\r\n");
        let k = r.with_key(b"pre:foo");
        assert_eq!(&k.raw()[..], b"set pre:foo 0 5 3\r\nbar\r\n");
        assert_eq!(k.key(), b"pre:foo");
        let e = r.with_exptime(60);
        assert_eq!(&e.raw()[..], b"set foo 0 60 3\r\nbar\r\n");
        assert_eq!(e.key(), b"foo");
        assert_eq!(e.exptime(), Some(60));
        let g = req("gat 5 a b\r\n").with_exptime(7);
        assert_eq!(&g.raw()[..], b"gat 7 a b\r\n");
        assert_eq!(g.key(), b"a b");
    }

    #[test]
    fn meta_set_ttl_is_read_and_rewritten() {
        let m = req("ms foo 3 T3600 F5\r\nbar\r\n");
        assert_eq!(m.exptime(), Some(3600));
        let c = m.with_exptime(10);
        assert_eq!(&c.raw()[..], b"ms foo 3 F5 T10\r\nbar\r\n");
        assert_eq!((c.key(), c.exptime()), (&b"foo"[..], Some(10)));
        let n = req("ms foo 3\r\nbar\r\n");
        assert_eq!(n.exptime(), Some(0));
        assert_eq!(&n.with_exptime(2).raw()[..], b"ms foo 3 T2\r\nbar\r\n");
        let b = req("ms Zm9v 3 b T0\r\nbar\r\n").with_exptime(4);
        assert_eq!(&b.raw()[..], b"ms Zm9v 3 b T4\r\nbar\r\n");
        assert_eq!(b.routing_key(), b"foo");
    }
}
