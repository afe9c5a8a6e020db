//! Replies: everything a memcached server (or mcrouter) answers, parsed incrementally and
//! encoded. A multi-get reply is a sequence of [`Response::Value`]s closed by
//! [`Response::End`]; `stats` is [`Response::Stat`]s closed by `END`.

use crate::number::{parse_u32, parse_u64, push_u64};
use crate::{split_line, tokens};
use thiserror::Error;

/// Two-letter meta reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCode {
    /// Value follows.
    Va,
    /// Success, no value.
    Hd,
    /// Miss.
    En,
    /// Not stored.
    Ns,
    /// Exists (CAS mismatch).
    Ex,
    /// Not found.
    Nf,
    /// No-op (end of a pipelined batch).
    Mn,
    /// Debug line (`me`).
    Me,
}

impl MetaCode {
    pub fn as_bytes(self) -> &'static [u8; 2] {
        match self {
            MetaCode::Va => b"VA",
            MetaCode::Hd => b"HD",
            MetaCode::En => b"EN",
            MetaCode::Ns => b"NS",
            MetaCode::Ex => b"EX",
            MetaCode::Nf => b"NF",
            MetaCode::Mn => b"MN",
            MetaCode::Me => b"ME",
        }
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        Some(match b {
            b"VA" => MetaCode::Va,
            b"HD" => MetaCode::Hd,
            b"EN" => MetaCode::En,
            b"NS" => MetaCode::Ns,
            b"EX" => MetaCode::Ex,
            b"NF" => MetaCode::Nf,
            b"MN" => MetaCode::Mn,
            b"ME" => MetaCode::Me,
            _ => return None,
        })
    }
}

/// One reply unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// `VALUE <key> <flags> <bytes> [<cas>]` + data.
    Value {
        key: &'a [u8],
        flags: u32,
        cas: Option<u64>,
        data: &'a [u8],
    },
    /// mcrouter's lease miss: `LVALUE <key> <token> <flags> <bytes>` + data (stale or empty).
    LeaseValue {
        key: &'a [u8],
        token: u64,
        flags: u32,
        data: &'a [u8],
    },
    End,
    Stored,
    NotStored,
    /// `lease-set` with a token that is no longer the newest, stored as stale.
    StaleStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    /// `stats reset` answers `RESET`.
    Reset,
    /// `incr`/`decr` result.
    Number(u64),
    Version(&'a [u8]),
    Stat {
        name: &'a [u8],
        value: &'a [u8],
    },
    /// Meta reply: `code [flags]` (+ data for `VA <len> [flags]`). `flags` is the rest of the
    /// line as sent (for `ME`, the debug text after the key).
    Meta {
        code: MetaCode,
        flags: &'a [u8],
        data: Option<&'a [u8]>,
    },
    /// `ERROR` followed by `msg` verbatim (e.g. `" Too many open connections"`, or `": shutdown
    /// not enabled"`); empty for a plain `ERROR`.
    Error(&'a [u8]),
    /// `CLIENT_ERROR <msg>`
    ClientError(&'a [u8]),
    /// `SERVER_ERROR <msg>`
    ServerError(&'a [u8]),
}

/// A reply the parser does not understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("malformed reply ({reason}) in the first {consumed} bytes")]
pub struct ResponseError {
    pub consumed: usize,
    pub reason: &'static str,
}

impl<'a> Response<'a> {
    /// The value of a meta reply flag (e.g. `c` -> the CAS digits), if present.
    pub fn meta_flag(&self, flag: u8) -> Option<&'a [u8]> {
        match self {
            Response::Meta { flags, .. } => tokens(flags).find(|t| t[0] == flag).map(|t| &t[1..]),
            _ => None,
        }
    }

    /// Whether this reply ends a retrieval (a multi-get's `END`, or any single reply).
    pub fn is_end(&self) -> bool {
        !matches!(
            self,
            Response::Value { .. } | Response::LeaseValue { .. } | Response::Stat { .. }
        )
    }

    /// Append the wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Response::Value {
                key,
                flags,
                cas,
                data,
            } => {
                encode_value_header(out, key, flags, data.len(), cas);
                out.extend_from_slice(data);
            }
            Response::LeaseValue {
                key,
                token,
                flags,
                data,
            } => {
                out.extend_from_slice(b"LVALUE ");
                out.extend_from_slice(key);
                out.push(b' ');
                push_u64(out, token);
                out.push(b' ');
                push_u64(out, flags as u64);
                out.push(b' ');
                push_u64(out, data.len() as u64);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
            }
            Response::End => out.extend_from_slice(b"END"),
            Response::Stored => out.extend_from_slice(b"STORED"),
            Response::NotStored => out.extend_from_slice(b"NOT_STORED"),
            Response::StaleStored => out.extend_from_slice(b"STALE_STORED"),
            Response::Exists => out.extend_from_slice(b"EXISTS"),
            Response::NotFound => out.extend_from_slice(b"NOT_FOUND"),
            Response::Deleted => out.extend_from_slice(b"DELETED"),
            Response::Touched => out.extend_from_slice(b"TOUCHED"),
            Response::Ok => out.extend_from_slice(b"OK"),
            Response::Reset => out.extend_from_slice(b"RESET"),
            Response::Number(n) => push_u64(out, n),
            Response::Version(v) => {
                out.extend_from_slice(b"VERSION ");
                out.extend_from_slice(v);
            }
            Response::Stat { name, value } => {
                out.extend_from_slice(b"STAT ");
                out.extend_from_slice(name);
                out.push(b' ');
                out.extend_from_slice(value);
            }
            Response::Meta { code, flags, data } => {
                out.extend_from_slice(code.as_bytes());
                if let Some(d) = data {
                    out.push(b' ');
                    push_u64(out, d.len() as u64);
                }
                if !flags.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(flags);
                }
                if let Some(d) = data {
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(d);
                }
            }
            Response::Error(msg) => {
                out.extend_from_slice(b"ERROR");
                out.extend_from_slice(msg);
            }
            Response::ClientError(msg) => {
                out.extend_from_slice(b"CLIENT_ERROR ");
                out.extend_from_slice(msg);
            }
            Response::ServerError(msg) => {
                out.extend_from_slice(b"SERVER_ERROR ");
                out.extend_from_slice(msg);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `VALUE <key> <flags> <bytes>[ <cas>]\r\n` — the header of a retrieval hit, shared by the
/// server's hot path (which copies the data straight after it) and [`Response::encode`].
#[inline]
pub fn encode_value_header(
    out: &mut Vec<u8>,
    key: &[u8],
    flags: u32,
    len: usize,
    cas: Option<u64>,
) {
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_u64(out, flags as u64);
    out.push(b' ');
    push_u64(out, len as u64);
    if let Some(c) = cas {
        out.push(b' ');
        push_u64(out, c);
    }
    out.extend_from_slice(b"\r\n");
}

/// Parse one reply unit from the front of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response<'_>, usize)>, ResponseError> {
    let Some((line, line_len)) = split_line(buf) else {
        return Ok(None);
    };
    let bad = |reason| ResponseError {
        consumed: line_len,
        reason,
    };
    let data_after = |len: usize| -> Result<Option<(&[u8], usize)>, ResponseError> {
        let end = line_len + len + 2;
        if buf.len() < end {
            return Ok(None);
        }
        if &buf[line_len + len..end] != b"\r\n" {
            return Err(ResponseError {
                consumed: end,
                reason: "data block not terminated by \\r\\n",
            });
        }
        Ok(Some((&buf[line_len..line_len + len], end)))
    };
    let rest_after = |prefix: &[u8]| -> &[u8] { &line[prefix.len().min(line.len())..] };

    let mut toks = tokens(line);
    let first = toks.next().unwrap_or(b"");
    let simple = |r| Ok(Some((r, line_len)));
    match first {
        b"VALUE" => {
            let key = toks.next().ok_or(bad("VALUE without key"))?;
            let flags = toks.next().and_then(parse_u32).ok_or(bad("VALUE flags"))?;
            let len = toks.next().and_then(parse_u64).ok_or(bad("VALUE length"))? as usize;
            let cas = match toks.next() {
                Some(c) => Some(parse_u64(c).ok_or(bad("VALUE cas"))?),
                None => None,
            };
            if toks.next().is_some() {
                return Err(bad("VALUE with extra tokens"));
            }
            Ok(data_after(len)?.map(|(data, n)| {
                (
                    Response::Value {
                        key,
                        flags,
                        cas,
                        data,
                    },
                    n,
                )
            }))
        }
        b"LVALUE" => {
            let key = toks.next().ok_or(bad("LVALUE without key"))?;
            let token = toks.next().and_then(parse_u64).ok_or(bad("LVALUE token"))?;
            let flags = toks.next().and_then(parse_u32).ok_or(bad("LVALUE flags"))?;
            let len = toks
                .next()
                .and_then(parse_u64)
                .ok_or(bad("LVALUE length"))? as usize;
            Ok(data_after(len)?.map(|(data, n)| {
                (
                    Response::LeaseValue {
                        key,
                        token,
                        flags,
                        data,
                    },
                    n,
                )
            }))
        }
        b"END" if line == b"END" => simple(Response::End),
        b"STORED" if line == b"STORED" => simple(Response::Stored),
        b"NOT_STORED" if line == b"NOT_STORED" => simple(Response::NotStored),
        b"STALE_STORED" if line == b"STALE_STORED" => simple(Response::StaleStored),
        b"EXISTS" if line == b"EXISTS" => simple(Response::Exists),
        b"NOT_FOUND" if line == b"NOT_FOUND" => simple(Response::NotFound),
        b"DELETED" if line == b"DELETED" => simple(Response::Deleted),
        b"TOUCHED" if line == b"TOUCHED" => simple(Response::Touched),
        b"OK" if line == b"OK" => simple(Response::Ok),
        b"RESET" if line == b"RESET" => simple(Response::Reset),
        b"VERSION" => simple(Response::Version(rest_after(b"VERSION "))),
        b"STAT" => {
            let rest = rest_after(b"STAT ");
            let sp = memchr::memchr(b' ', rest).ok_or(bad("STAT without value"))?;
            simple(Response::Stat {
                name: &rest[..sp],
                value: &rest[sp + 1..],
            })
        }
        b"CLIENT_ERROR" => simple(Response::ClientError(rest_after(b"CLIENT_ERROR "))),
        b"SERVER_ERROR" => simple(Response::ServerError(rest_after(b"SERVER_ERROR "))),
        _ if line.starts_with(b"ERROR") && matches!(line.get(5), None | Some(b' ' | b':')) => {
            simple(Response::Error(&line[5..]))
        }
        _ if !line.is_empty() && line.iter().all(u8::is_ascii_digit) => simple(Response::Number(
            parse_u64(line).ok_or(bad("number overflows"))?,
        )),
        _ => {
            let code = MetaCode::from_bytes(first).ok_or(bad("unknown reply"))?;
            if line.len() > 2 && line[2] != b' ' {
                return Err(bad("unknown reply"));
            }
            let rest = if line.len() > 3 { &line[3..] } else { &[][..] };
            if code == MetaCode::Va {
                let len_tok = toks.next().ok_or(bad("VA without length"))?;
                let len = parse_u64(len_tok).ok_or(bad("VA length"))? as usize;
                let flags = &rest[(len_tok.len() + 1).min(rest.len())..];
                Ok(data_after(len)?.map(|(data, n)| {
                    (
                        Response::Meta {
                            code,
                            flags,
                            data: Some(data),
                        },
                        n,
                    )
                }))
            } else {
                simple(Response::Meta {
                    code,
                    flags: rest,
                    data: None,
                })
            }
        }
    }
}
