//! Replies flowing back up the route tree: the wire bytes (verbatim from the backend, or
//! made by the router) plus a classification that routes act on (hit, miss, error class).

use bytes::Bytes;
use protocol::{MetaCode, Response};

use crate::request::{Op, Req};

/// Why a request failed, in mcrouter's vocabulary (`failover_errors` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Could not connect (refused, unreachable).
    ConnectError,
    /// Connecting took longer than the server timeout.
    ConnectTimeout,
    /// The reply took longer than the server timeout.
    Timeout,
    /// The destination is marked down; not tried.
    Tko,
    /// The backend answered `SERVER_ERROR`, `CLIENT_ERROR` or `ERROR`.
    RemoteError,
    /// The router itself failed the request (no route, bad reply, connection lost).
    LocalError,
    /// Shed by a limit (in-flight cap, rate limit).
    Busy,
}

impl ErrorClass {
    /// All classes with their config names.
    pub const ALL: &'static [(ErrorClass, &'static str)] = &[
        (ErrorClass::ConnectError, "connect_error"),
        (ErrorClass::ConnectTimeout, "connect_timeout"),
        (ErrorClass::Timeout, "timeout"),
        (ErrorClass::Tko, "tko"),
        (ErrorClass::RemoteError, "remote_error"),
        (ErrorClass::LocalError, "local_error"),
        (ErrorClass::Busy, "busy"),
    ];

    pub fn name(self) -> &'static str {
        ErrorClass::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, n)| *n)
            .unwrap_or("local_error")
    }

    pub fn from_name(name: &str) -> Option<ErrorClass> {
        ErrorClass::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
    }
}

/// What a reply means to the routes above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// A value was returned.
    Hit,
    /// A get found nothing (`END`, `EN`).
    Miss,
    /// Success without a value (`STORED`, `DELETED`, `HD`, a number, ...).
    Ok,
    /// `NOT_STORED` / `NS`.
    NotStored,
    /// `EXISTS` / `EX`.
    Exists,
    /// `NOT_FOUND` / `NF`.
    NotFound,
    /// A failure of some class.
    Error(ErrorClass),
}

/// A complete reply to one routed request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: ReplyKind,
    /// Wire bytes, `\r\n` included.
    pub bytes: Bytes,
}

impl Reply {
    /// A reply made by the router: `SERVER_ERROR <msg>`.
    pub fn error(class: ErrorClass, msg: &str) -> Reply {
        let mut v = Vec::with_capacity(msg.len() + 15);
        v.extend_from_slice(b"SERVER_ERROR ");
        v.extend_from_slice(msg.as_bytes());
        v.extend_from_slice(b"\r\n");
        Reply {
            kind: ReplyKind::Error(class),
            bytes: Bytes::from(v),
        }
    }

    /// A static error reply (no allocation).
    pub fn error_static(class: ErrorClass, line: &'static [u8]) -> Reply {
        Reply {
            kind: ReplyKind::Error(class),
            bytes: Bytes::from_static(line),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self.kind, ReplyKind::Error(_))
    }

    pub fn error_class(&self) -> Option<ErrorClass> {
        match self.kind {
            ReplyKind::Error(c) => Some(c),
            _ => None,
        }
    }

    pub fn is_hit(&self) -> bool {
        self.kind == ReplyKind::Hit
    }

    pub fn is_miss(&self) -> bool {
        self.kind == ReplyKind::Miss
    }

    /// mcrouter's "default reply" for an operation: what `NullRoute` answers and what
    /// asynchronous routes return without waiting (a miss, `NOT_STORED`, `NOT_FOUND`, ...).
    pub fn default_for(req: &Req) -> Reply {
        let (kind, bytes): (ReplyKind, &'static [u8]) = match req.op() {
            Op::Get | Op::Gets | Op::Gat | Op::Gats => (ReplyKind::Miss, b"END\r\n"),
            Op::MetaGet => (ReplyKind::Miss, b"EN\r\n"),
            Op::MetaDebug => (ReplyKind::Miss, b"EN\r\n"),
            Op::MetaSet => (ReplyKind::NotStored, b"NS\r\n"),
            Op::MetaDelete | Op::MetaArithmetic => (ReplyKind::NotFound, b"NF\r\n"),
            Op::LeaseGet => (ReplyKind::Miss, b"END\r\n"),
            Op::Set | Op::Add | Op::Replace | Op::Append | Op::Prepend | Op::Cas | Op::LeaseSet => {
                (ReplyKind::NotStored, b"NOT_STORED\r\n")
            }
            Op::Delete | Op::Incr | Op::Decr | Op::Touch => (ReplyKind::NotFound, b"NOT_FOUND\r\n"),
            Op::FlushAll => (ReplyKind::Ok, b"OK\r\n"),
        };
        Reply {
            kind,
            bytes: Bytes::from_static(bytes),
        }
    }

    /// Severity for "worst reply wins" aggregation (`AllSyncRoute`, flush): errors worst.
    pub fn severity(&self) -> u8 {
        match self.kind {
            ReplyKind::Error(_) => 3,
            ReplyKind::NotStored | ReplyKind::Exists | ReplyKind::NotFound => 2,
            ReplyKind::Miss => 1,
            ReplyKind::Ok | ReplyKind::Hit => 0,
        }
    }

    /// The "value" of the reply used when comparing replies (`AllMajorityRoute`).
    pub fn same_result(&self, other: &Reply) -> bool {
        self.kind == other.kind
    }
}

/// Classify one reply unit from a backend.
pub fn classify(resp: &Response<'_>) -> ReplyKind {
    match resp {
        Response::Value { .. } | Response::LeaseValue { .. } => ReplyKind::Hit,
        Response::End => ReplyKind::Miss,
        Response::Stored | Response::StaleStored => ReplyKind::Ok,
        Response::NotStored => ReplyKind::NotStored,
        Response::Exists => ReplyKind::Exists,
        Response::NotFound => ReplyKind::NotFound,
        Response::Deleted
        | Response::Touched
        | Response::Ok
        | Response::Reset
        | Response::Number(_)
        | Response::Version(_)
        | Response::Stat { .. } => ReplyKind::Ok,
        Response::Meta { code, .. } => match code {
            MetaCode::Va | MetaCode::Me => ReplyKind::Hit,
            MetaCode::Hd | MetaCode::Mn => ReplyKind::Ok,
            MetaCode::En => ReplyKind::Miss,
            MetaCode::Ns => ReplyKind::NotStored,
            MetaCode::Ex => ReplyKind::Exists,
            MetaCode::Nf => ReplyKind::NotFound,
        },
        Response::Error(_) | Response::ClientError(_) | Response::ServerError(_) => {
            ReplyKind::Error(ErrorClass::RemoteError)
        }
    }
}

/// Whether a meta reply is suppressed under `q` (memcached: `EN` for mg, `HD` for ms,
/// `HD`/`NF` for md, `EN`/`NF`/`HD` for ma).
pub fn quiet_suppressed(op: Op, reply: &Reply) -> bool {
    let b = &reply.bytes[..];
    match op {
        Op::MetaGet => b.starts_with(b"EN"),
        Op::MetaSet => b.starts_with(b"HD"),
        Op::MetaDelete => b.starts_with(b"HD") || b.starts_with(b"NF"),
        Op::MetaArithmetic => b.starts_with(b"HD") || b.starts_with(b"NF") || b.starts_with(b"EN"),
        _ => false,
    }
}

/// A get reply (`VALUE <key> ...`* `END`) with every `VALUE` key replaced by `key`: routes
/// that send a different key to the backend (ModifyKeyRoute, routing-prefix stripping)
/// answer the client with the key it asked for.
pub fn rewrite_value_key(reply: Reply, key: &[u8]) -> Reply {
    if !reply.bytes.starts_with(b"VALUE ") {
        return reply;
    }
    let mut out = Vec::with_capacity(reply.bytes.len() + key.len());
    let mut buf = &reply.bytes[..];
    while let Ok(Some((resp, n))) = protocol::parse_response(buf) {
        match resp {
            Response::Value {
                flags, cas, data, ..
            } => Response::Value {
                key,
                flags,
                cas,
                data,
            }
            .encode(&mut out),
            other => other.encode(&mut out),
        }
        buf = &buf[n..];
        if buf.is_empty() {
            break;
        }
    }
    Reply {
        kind: reply.kind,
        bytes: Bytes::from(out),
    }
}
