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
    /// The backend answered `SERVER_ERROR`.
    RemoteError,
    /// The backend rejected the request itself (`CLIENT_ERROR`, `ERROR`). A reply to pass
    /// on, not a sign of a sick server: mcrouter's `isFailoverErrorResult` leaves
    /// `client_error` out, so failover routes do not retry it by default and it never
    /// counts towards TKO.
    ClientError,
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
        (ErrorClass::ClientError, "client_error"),
        (ErrorClass::LocalError, "local_error"),
        (ErrorClass::Busy, "busy"),
    ];

    /// mcrouter's other error result names (`mc_res_*` between `ooo` and
    /// `remote_error`), accepted in `failover_errors` so that mcrouter configs load.
    /// This router never produces these results (no UDP, no server-side shutdown or
    /// try-again replies, requests with bad keys or flags are answered before routing),
    /// so each one stands for a class that never occurs: it is accepted and then
    /// matches nothing.
    pub const NEVER_PRODUCED: &'static [&'static str] = &[
        "ooo",
        "try_again",
        "shutdown",
        "bad_command",
        "bad_key",
        "bad_flags",
        "bad_exptime",
        "bad_lease_id",
        "bad_cas_id",
        "bad_value",
        "aborted",
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

    /// A `failover_errors` name: `Some(Some(class))` for a class we produce,
    /// `Some(None)` for an mcrouter error name that never occurs here, `None` for a
    /// name mcrouter does not know either.
    pub fn from_config_name(name: &str) -> Option<Option<ErrorClass>> {
        if let Some(c) = ErrorClass::from_name(name) {
            return Some(Some(c));
        }
        ErrorClass::NEVER_PRODUCED.contains(&name).then_some(None)
    }

    /// Every name `failover_errors` accepts.
    pub fn config_names() -> Vec<&'static str> {
        ErrorClass::ALL
            .iter()
            .map(|(_, n)| *n)
            .chain(ErrorClass::NEVER_PRODUCED.iter().copied())
            .collect()
    }

    /// mcrouter's `isFailoverErrorResult`: what failover routes retry when
    /// `failover_errors` does not say otherwise. Every failure of the destination or
    /// the path to it, but not a backend rejecting the request itself.
    pub fn is_failover_default(self) -> bool {
        !matches!(self, ErrorClass::ClientError)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of error classes (a `failover_errors` list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorSet(u16);

impl ErrorSet {
    pub fn of(classes: &[ErrorClass]) -> ErrorSet {
        let mut s = ErrorSet::default();
        for c in classes {
            s.insert(*c);
        }
        s
    }

    pub fn insert(&mut self, c: ErrorClass) {
        self.0 |= c.bit();
    }

    pub fn contains(self, c: ErrorClass) -> bool {
        self.0 & c.bit() != 0
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
        Self::default_for_op(req.op())
    }

    /// [`Reply::default_for`] by operation.
    pub fn default_for_op(op: Op) -> Reply {
        let (kind, bytes): (ReplyKind, &'static [u8]) = match op {
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
        // mcrouter's reply parser: `SERVER_ERROR` is remote_error, `CLIENT_ERROR`
        // client_error. A bare `ERROR` (unknown command) is the request's fault too.
        Response::ServerError(_) => ReplyKind::Error(ErrorClass::RemoteError),
        Response::Error(_) | Response::ClientError(_) => ReplyKind::Error(ErrorClass::ClientError),
    }
}

/// Whether a meta reply is suppressed under `q`. memcached (doc/protocol.txt, "noreply
/// semantics for return codes") hides only the uninteresting outcome: the miss `EN` for
/// mg, the success `HD` for ms and md, and success (`HD`, or `VA` with `v`) for ma.
/// Everything else (`NS`, `EX`, `NF`, a hit, errors) is still sent.
pub fn quiet_suppressed(op: Op, reply: &Reply) -> bool {
    let b = &reply.bytes[..];
    let code = |c: &[u8]| b.starts_with(c) && matches!(b.get(2), Some(b' ' | b'\r'));
    match op {
        Op::MetaGet => code(b"EN"),
        Op::MetaSet | Op::MetaDelete => code(b"HD"),
        Op::MetaArithmetic => code(b"HD") || code(b"VA"),
        _ => false,
    }
}

/// The key of a request as the client sent it, for [`restore_client_key`].
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// As on the wire (base64 for a meta request with `b`).
    pub wire: Vec<u8>,
    /// The decoded key of a base64 meta request.
    pub decoded: Option<Vec<u8>>,
}

impl ClientKey {
    pub fn of(req: &Req) -> ClientKey {
        ClientKey {
            wire: req.key().to_vec(),
            decoded: (req.routing_key() != req.key()).then(|| req.routing_key().to_vec()),
        }
    }

    /// The key as a backend echoes it: base64 (the wire form) when the reply says `b`,
    /// else the plain key. memcached up to 1.6.18 echoes `k` decoded and without `b`,
    /// later versions in base64 followed by `b`; either way the client sees its own key
    /// in the form its backend would have used.
    fn echo(&self, base64: bool) -> &[u8] {
        match &self.decoded {
            Some(d) if !base64 => d,
            _ => &self.wire,
        }
    }
}

/// A reply with the backend's key replaced by the client's: routes that send a
/// different key to the backend (ModifyKeyRoute, routing-prefix stripping) answer the
/// client with the key it asked for. In a get reply (`VALUE <key> ...`* `END`) every
/// `VALUE` key; in a meta reply the `k` flag's key (`VA 1 kKEY`, `HD kKEY`, ...) and the
/// key of an `ME <key> ...` debug reply.
pub fn restore_client_key(reply: Reply, client: &ClientKey) -> Reply {
    if reply.bytes.starts_with(b"LVALUE ") {
        return rewrite_lvalue_key(reply, &client.wire);
    }
    if !reply.bytes.starts_with(b"VALUE ") {
        return rewrite_meta_key(reply, client);
    }
    let key = &client.wire[..];
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

/// A lease-get miss (`LVALUE <key> <token> <flags> <bytes>` + data + `END`) with `key`.
fn rewrite_lvalue_key(reply: Reply, key: &[u8]) -> Reply {
    let b = &reply.bytes[..];
    let start = b"LVALUE ".len();
    let Some(end) = memchr::memchr(b' ', &b[start..]).map(|i| start + i) else {
        return reply;
    };
    let mut out = Vec::with_capacity(b.len() + key.len());
    out.extend_from_slice(&b[..start]);
    out.extend_from_slice(key);
    out.extend_from_slice(&b[end..]);
    Reply {
        kind: reply.kind,
        bytes: Bytes::from(out),
    }
}

/// A meta reply with the key it echoes (`k` flag, `ME <key>`) replaced by `key`; any
/// other reply unchanged.
fn rewrite_meta_key(reply: Reply, client: &ClientKey) -> Reply {
    let b = &reply.bytes[..];
    let code = match b.get(..2) {
        Some(c) if matches!(b.get(2), Some(b' ' | b'\r')) => c,
        _ => return reply,
    };
    if !matches!(code, b"VA" | b"HD" | b"EN" | b"NS" | b"EX" | b"NF" | b"ME") {
        return reply;
    }
    let Some(eol) = memchr::memchr(b'\n', b) else {
        return reply;
    };
    let line = b[..eol].strip_suffix(b"\r").unwrap_or(&b[..eol]);
    // Tokens after the code that are not flags: `VA <size>`, `ME <key>`.
    let fixed = match code {
        b"VA" => 1,
        b"ME" => 1,
        _ => 0,
    };
    let base64 = line
        .split(|&c| c == b' ')
        .skip(1 + fixed)
        .any(|t| t == b"b");
    let key = client.echo(base64);
    let mut out = Vec::with_capacity(b.len() + key.len());
    let mut changed = false;
    for (i, tok) in line.split(|&c| c == b' ').enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if code == b"ME" && i == 1 && !tok.is_empty() {
            out.extend_from_slice(key);
            changed = true;
        } else if i > fixed && tok.first() == Some(&b'k') {
            out.push(b'k');
            out.extend_from_slice(key);
            changed = true;
        } else {
            out.extend_from_slice(tok);
        }
    }
    if !changed {
        return reply;
    }
    out.extend_from_slice(&b[line.len()..]);
    Reply {
        kind: reply.kind,
        bytes: Bytes::from(out),
    }
}

/// The `VALUE` units at the start of a get reply, in order: `(key range, whole unit
/// range)` (a unit is the `VALUE` line and its data block).
pub fn value_units(b: &[u8]) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        match protocol::parse_response(&b[pos..]) {
            Ok(Some((protocol::Response::Value { key, .. }, n))) => {
                let ks = key.as_ptr() as usize - b.as_ptr() as usize;
                out.push((ks..ks + key.len(), pos..pos + n));
                pos += n;
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meta replies echo the client's key in their `k` flag (and `ME` in its key token),
    /// not the key the backend saw; the value and other flags are kept.
    #[test]
    fn meta_replies_echo_the_clients_key() {
        let fix = |w: &str, key: &str| {
            let client = ClientKey {
                wire: key.as_bytes().to_vec(),
                decoded: None,
            };
            let r = restore_client_key(reply(w), &client);
            String::from_utf8(r.bytes.to_vec()).unwrap()
        };
        assert_eq!(fix("VA 1 kapp:k\r\nv\r\n", "k"), "VA 1 kk\r\nv\r\n");
        assert_eq!(
            fix("VA 2 s2 kapp:k O7 f0\r\nkk\r\n", "k"),
            "VA 2 s2 kk O7 f0\r\nkk\r\n"
        );
        assert_eq!(fix("HD kapp:k c9\r\n", "/r/c/k"), "HD k/r/c/k c9\r\n");
        assert_eq!(fix("EN\r\n", "k"), "EN\r\n");
        assert_eq!(fix("NF kx Oq\r\n", "k"), "NF kk Oq\r\n");
        // Base64 ("Zm9v" = "foo"): the client's own key, base64 when the backend echoes
        // in base64 (it says `b`), else decoded (memcached <= 1.6.18).
        let b64 = ClientKey {
            wire: b"Zm9v".to_vec(),
            decoded: Some(b"foo".to_vec()),
        };
        let fix64 = |w: &str| {
            let r = restore_client_key(reply(w), &b64);
            String::from_utf8(r.bytes.to_vec()).unwrap()
        };
        assert_eq!(
            fix64("VA 1 kYXBwOmZvbw== b\r\nv\r\n"),
            "VA 1 kZm9v b\r\nv\r\n"
        );
        assert_eq!(fix64("VA 1 kapp:foo\r\nv\r\n"), "VA 1 kfoo\r\nv\r\n");
        assert_eq!(fix64("HD b kYXBwOmZvbw==\r\n"), "HD b kZm9v\r\n");
        // A VA whose size is not a k flag, and a value starting with k, are left alone.
        assert_eq!(fix("VA 1 t-1\r\nk\r\n", "z"), "VA 1 t-1\r\nk\r\n");
        assert_eq!(
            fix("ME app:k exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n", "k"),
            "ME k exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n"
        );
        assert_eq!(fix("STORED\r\n", "k"), "STORED\r\n");
        // A lease-get miss names the key too.
        assert_eq!(
            fix("LVALUE app:k 77 0 0\r\n\r\nEND\r\n", "/r/c/k"),
            "LVALUE /r/c/k 77 0 0\r\n\r\nEND\r\n"
        );
    }

    fn reply(wire: &str) -> Reply {
        let (resp, _) = protocol::parse_response(wire.as_bytes()).unwrap().unwrap();
        Reply {
            kind: classify(&resp),
            bytes: Bytes::from(wire.to_string()),
        }
    }

    #[test]
    fn backend_errors_are_classified_like_mcrouter() {
        let c = |w: &str| reply(w).error_class();
        assert_eq!(
            c("SERVER_ERROR out of memory\r\n"),
            Some(ErrorClass::RemoteError)
        );
        assert_eq!(
            c("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
            Some(ErrorClass::ClientError)
        );
        assert_eq!(c("ERROR\r\n"), Some(ErrorClass::ClientError));
        assert!(ErrorClass::RemoteError.is_failover_default());
        assert!(!ErrorClass::ClientError.is_failover_default());
        assert_eq!(
            ErrorClass::from_name("client_error"),
            Some(ErrorClass::ClientError)
        );
        assert_eq!(ErrorClass::from_config_name("shutdown"), Some(None));
        assert_eq!(ErrorClass::from_config_name("nope"), None);
    }

    /// What memcached 1.6 sends for each meta command with `q` (checked against a real
    /// memcached; the e2e test `meta_quiet_mode_matches_memcached` compares bytes).
    #[test]
    fn quiet_hides_only_the_uninteresting_reply() {
        let hidden = |op: Op, w: &str| quiet_suppressed(op, &reply(w));
        assert!(hidden(Op::MetaGet, "EN\r\n"));
        assert!(!hidden(Op::MetaGet, "HD\r\n"));
        assert!(!hidden(Op::MetaGet, "HD s3\r\n"));
        assert!(!hidden(Op::MetaGet, "VA 1\r\nx\r\n"));
        assert!(hidden(Op::MetaSet, "HD\r\n"));
        assert!(hidden(Op::MetaSet, "HD c5\r\n"));
        for shown in ["NS\r\n", "EX\r\n", "NF\r\n"] {
            assert!(!hidden(Op::MetaSet, shown), "{shown}");
        }
        assert!(hidden(Op::MetaDelete, "HD\r\n"));
        assert!(!hidden(Op::MetaDelete, "NF\r\n"));
        assert!(!hidden(Op::MetaDelete, "EX\r\n"));
        assert!(hidden(Op::MetaArithmetic, "HD\r\n"));
        assert!(hidden(Op::MetaArithmetic, "VA 1\r\n6\r\n"));
        assert!(!hidden(Op::MetaArithmetic, "NF\r\n"));
        assert!(!hidden(Op::MetaArithmetic, "NS\r\n"));
        assert!(!hidden(Op::MetaArithmetic, "EX\r\n"));
        for op in [Op::MetaGet, Op::MetaSet, Op::MetaDelete, Op::MetaArithmetic] {
            assert!(!hidden(op, "SERVER_ERROR x\r\n"));
            assert!(!hidden(op, "CLIENT_ERROR bad command line format\r\n"));
        }
    }
}
