//! Requests: every command a memcached client or an mcrouter may send, parsed incrementally
//! from a byte buffer, and encoded back to the wire.
//!
//! Grammar (one line each, `\r\n` or bare `\n` terminated; storage commands are followed by a
//! data block of exactly `<bytes>` bytes and `\r\n`):
//!
//! ```text
//! set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]
//! cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
//! get|gets <key>+            gat|gats <exptime> <key>+
//! delete <key> [0] [noreply] incr|decr <key> <delta> [noreply]   touch <key> <exptime> [noreply]
//! flush_all [delay] [noreply]  version  verbosity <n> [noreply]  quit  shutdown [graceful]
//! cache_memlimit <MB> [noreply]  stats [args]  slabs reassign <src> <dst>  slabs automove <n>
//! lru_crawler <enable|disable|crawl <ids>|sleep <us>|tocrawl <n>|metadump <ids>|mgdump <ids>>
//! lru <tune <hot%> <warm%> <hot factor> <warm factor>|mode <flat|segmented>|temp_ttl <ttl>> [noreply]
//! mg <key> <flags>*   ms <key> <datalen> <flags>*   md <key> <flags>*   ma <key> <flags>*
//! me <key> [b]   mn   watch [fetchers|mutations|evictions|connevents|sysevents|...]*
//! lease-get <key>     lease-set <key> <token> <flags> <exptime> <bytes> [noreply]
//! ```
//!
//! Token-count errors answer `ERROR`, bad numbers and keys `CLIENT_ERROR bad command line
//! format` (with the command-specific variants memcached uses), exactly as memcached 1.6.

use crate::error::{ErrorKind, ParseError};
use crate::limits::Limits;
use crate::meta::{self, MetaCommand, MetaFlags};
use crate::number::{mc_strtol, mc_strtoul, mc_strtoul_flags, mc_strtoull, push_i64, push_u64};
use crate::{split_line, tokens, valid_key};

/// The log types of `watch` (memcached's `LOG_*` bits).
pub mod watch {
    pub const RAWCMDS: u16 = 1;
    pub const EVICTIONS: u16 = 2;
    pub const FETCHERS: u16 = 4;
    pub const MUTATIONS: u16 = 8;
    pub const SYSEVENTS: u16 = 16;
    pub const CONNEVENTS: u16 = 32;
    pub const PROXYREQS: u16 = 64;
    pub const PROXYEVENTS: u16 = 128;
    pub const PROXYUSER: u16 = 256;
    /// The words `watch` takes, in memcached's order.
    pub const NAMES: [(&str, u16); 9] = [
        ("rawcmds", RAWCMDS),
        ("evictions", EVICTIONS),
        ("fetchers", FETCHERS),
        ("mutations", MUTATIONS),
        ("sysevents", SYSEVENTS),
        ("connevents", CONNEVENTS),
        ("proxyreqs", PROXYREQS),
        ("proxyevents", PROXYEVENTS),
        ("proxyuser", PROXYUSER),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

impl StorageKind {
    pub fn name(self) -> &'static str {
        match self {
            StorageKind::Set => "set",
            StorageKind::Add => "add",
            StorageKind::Replace => "replace",
            StorageKind::Append => "append",
            StorageKind::Prepend => "prepend",
            StorageKind::Cas => "cas",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrievalKind {
    Get,
    Gets,
    Gat,
    Gats,
}

impl RetrievalKind {
    pub fn name(self) -> &'static str {
        match self {
            RetrievalKind::Get => "get",
            RetrievalKind::Gets => "gets",
            RetrievalKind::Gat => "gat",
            RetrievalKind::Gats => "gats",
        }
    }

    /// Whether replies carry the CAS unique.
    pub fn with_cas(self) -> bool {
        matches!(self, RetrievalKind::Gets | RetrievalKind::Gats)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithKind {
    Incr,
    Decr,
}

/// `slabs ...` admin commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabsCommand {
    /// `slabs reassign <src> <dst>`; `src` may be -1 (any class).
    Reassign { src: i64, dst: i64 },
    /// `slabs automove <0|1|2>`.
    Automove(u64),
}

/// `lru_crawler ...` admin commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LruCrawlerCommand<'a> {
    Enable,
    Disable,
    /// `crawl <classid,classid,...|all>`
    Crawl(&'a [u8]),
    Sleep(u64),
    ToCrawl(u64),
    /// `metadump <classid,...|all|hash>`
    Metadump(&'a [u8]),
    /// `mgdump <classid,...|all|hash>`
    Mgdump(&'a [u8]),
}

/// The keys of a multi-key retrieval: an iterator over the request line, so parsing a get
/// of many keys allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    raw: &'a [u8],
}

impl<'a> Keys<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + Clone + 'a {
        tokens(self.raw)
    }

    pub fn count(&self) -> usize {
        self.iter().count()
    }

    /// Keys from a space-separated list (used by encoders and tests).
    pub fn from_raw(raw: &'a [u8]) -> Self {
        Keys { raw }
    }
}

impl PartialEq for Keys<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Keys<'_> {}

/// A parsed request. Keys and data borrow from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Storage {
        kind: StorageKind,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        /// The data block without its trailing `\r\n`.
        data: &'a [u8],
        /// The compared CAS unique (`cas` only; 0 otherwise).
        cas: u64,
        noreply: bool,
    },
    Retrieval {
        kind: RetrievalKind,
        /// The exptime of `gat`/`gats`.
        exptime: Option<i64>,
        keys: Keys<'a>,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    Arith {
        kind: ArithKind,
        key: &'a [u8],
        delta: u64,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    FlushAll {
        delay: Option<i64>,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u64,
        noreply: bool,
    },
    Quit,
    /// `shutdown [graceful]`; `bad_mode`: other arguments (memcached answers
    /// `CLIENT_ERROR invalid shutdown mode` when shutdown is enabled).
    Shutdown {
        graceful: bool,
        bad_mode: bool,
    },
    CacheMemlimit {
        megabytes: u64,
        noreply: bool,
    },
    /// `stats [args]`: `args` is the rest of the line (empty for plain `stats`); which
    /// sub-commands exist is the server's business.
    Stats {
        args: &'a [u8],
    },
    Slabs(SlabsCommand),
    LruCrawler(LruCrawlerCommand<'a>),
    /// `lru <tune|mode|temp_ttl> ...`: `args` is the rest of the line (at least one word);
    /// the server checks the arguments (memcached answers `ERROR` for most mistakes).
    Lru {
        args: &'a [u8],
    },
    /// `mg`: `key` as sent (base64 when `flags.base64_key()`).
    MetaGet {
        key: &'a [u8],
        flags: MetaFlags<'a>,
    },
    MetaSet {
        key: &'a [u8],
        flags: MetaFlags<'a>,
        data: &'a [u8],
    },
    MetaDelete {
        key: &'a [u8],
        flags: MetaFlags<'a>,
    },
    MetaArithmetic {
        key: &'a [u8],
        flags: MetaFlags<'a>,
    },
    /// `watch [type ...]`: turn the connection into a log stream. `flags` are the
    /// [`watch`] bits (plain `watch` = [`watch::FETCHERS`]).
    Watch {
        flags: u16,
    },
    /// `me <key> [b]`
    MetaDebug {
        key: &'a [u8],
        base64: bool,
    },
    MetaNoop,
    /// mcrouter's `lease-get <key>`.
    LeaseGet {
        key: &'a [u8],
    },
    /// mcrouter's `lease-set <key> <token> <flags> <exptime> <bytes> [noreply]`.
    LeaseSet {
        key: &'a [u8],
        token: u64,
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        noreply: bool,
    },
}

impl<'a> Request<'a> {
    /// The single key this request addresses, if it has exactly one (as sent: base64 for
    /// meta commands with `b`).
    pub fn key(&self) -> Option<&'a [u8]> {
        match *self {
            Request::Storage { key, .. }
            | Request::Delete { key, .. }
            | Request::Arith { key, .. }
            | Request::Touch { key, .. }
            | Request::MetaGet { key, .. }
            | Request::MetaSet { key, .. }
            | Request::MetaDelete { key, .. }
            | Request::MetaArithmetic { key, .. }
            | Request::MetaDebug { key, .. }
            | Request::LeaseGet { key }
            | Request::LeaseSet { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The `noreply` flag of the commands that take one.
    fn noreply_flag(&mut self) -> Option<&mut bool> {
        match self {
            Request::Storage { noreply, .. }
            | Request::Delete { noreply, .. }
            | Request::Arith { noreply, .. }
            | Request::Touch { noreply, .. }
            | Request::FlushAll { noreply, .. }
            | Request::Verbosity { noreply, .. }
            | Request::CacheMemlimit { noreply, .. }
            | Request::LeaseSet { noreply, .. } => Some(noreply),
            _ => None,
        }
    }

    /// The same request with `noreply` cleared (for tracing what the reply would have been).
    pub fn with_reply(mut self) -> Self {
        if let Some(n) = self.noreply_flag() {
            *n = false;
        }
        self
    }

    /// Whether the client asked for no reply (`noreply`; meta `q` is per-reply, not here).
    pub fn noreply(&self) -> bool {
        let mut r = *self;
        r.noreply_flag().is_some_and(|n| *n)
    }

    /// Append the wire form of this request to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn noreply(out: &mut Vec<u8>, nr: bool) {
            if nr {
                out.extend_from_slice(b" noreply");
            }
        }
        fn sp_u(out: &mut Vec<u8>, v: u64) {
            out.push(b' ');
            push_u64(out, v);
        }
        fn sp_i(out: &mut Vec<u8>, v: i64) {
            out.push(b' ');
            push_i64(out, v);
        }
        fn sp(out: &mut Vec<u8>, s: &[u8]) {
            out.push(b' ');
            out.extend_from_slice(s);
        }
        match *self {
            Request::Storage {
                kind,
                key,
                flags,
                exptime,
                data,
                cas,
                noreply: nr,
            } => {
                out.extend_from_slice(kind.name().as_bytes());
                sp(out, key);
                sp_u(out, flags as u64);
                sp_i(out, exptime);
                sp_u(out, data.len() as u64);
                if kind == StorageKind::Cas {
                    sp_u(out, cas);
                }
                noreply(out, nr);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
            }
            Request::Retrieval {
                kind,
                exptime,
                keys,
            } => {
                out.extend_from_slice(kind.name().as_bytes());
                if let Some(e) = exptime {
                    sp_i(out, e);
                }
                for k in keys.iter() {
                    sp(out, k);
                }
            }
            Request::Delete { key, noreply: nr } => {
                out.extend_from_slice(b"delete");
                sp(out, key);
                noreply(out, nr);
            }
            Request::Arith {
                kind,
                key,
                delta,
                noreply: nr,
            } => {
                out.extend_from_slice(match kind {
                    ArithKind::Incr => b"incr",
                    ArithKind::Decr => b"decr",
                });
                sp(out, key);
                sp_u(out, delta);
                noreply(out, nr);
            }
            Request::Touch {
                key,
                exptime,
                noreply: nr,
            } => {
                out.extend_from_slice(b"touch");
                sp(out, key);
                sp_i(out, exptime);
                noreply(out, nr);
            }
            Request::FlushAll { delay, noreply: nr } => {
                out.extend_from_slice(b"flush_all");
                if let Some(d) = delay {
                    sp_i(out, d);
                }
                noreply(out, nr);
            }
            Request::Version => out.extend_from_slice(b"version"),
            Request::Verbosity { level, noreply: nr } => {
                out.extend_from_slice(b"verbosity");
                sp_u(out, level);
                noreply(out, nr);
            }
            Request::Quit => out.extend_from_slice(b"quit"),
            Request::Shutdown { graceful, bad_mode } => {
                out.extend_from_slice(b"shutdown");
                if bad_mode {
                    out.extend_from_slice(b" invalid");
                } else if graceful {
                    out.extend_from_slice(b" graceful");
                }
            }
            Request::CacheMemlimit {
                megabytes,
                noreply: nr,
            } => {
                out.extend_from_slice(b"cache_memlimit");
                sp_u(out, megabytes);
                noreply(out, nr);
            }
            Request::Stats { args } => {
                out.extend_from_slice(b"stats");
                if !args.is_empty() {
                    sp(out, args);
                }
            }
            Request::Slabs(SlabsCommand::Reassign { src, dst }) => {
                out.extend_from_slice(b"slabs reassign");
                sp_i(out, src);
                sp_i(out, dst);
            }
            Request::Slabs(SlabsCommand::Automove(n)) => {
                out.extend_from_slice(b"slabs automove");
                sp_u(out, n);
            }
            Request::Lru { args } => {
                out.extend_from_slice(b"lru");
                sp(out, args);
            }
            Request::Watch { flags } => {
                out.extend_from_slice(b"watch");
                for (name, bit) in watch::NAMES {
                    if flags & bit != 0 {
                        sp(out, name.as_bytes());
                    }
                }
            }
            Request::LruCrawler(c) => {
                out.extend_from_slice(b"lru_crawler ");
                match c {
                    LruCrawlerCommand::Enable => out.extend_from_slice(b"enable"),
                    LruCrawlerCommand::Disable => out.extend_from_slice(b"disable"),
                    LruCrawlerCommand::Crawl(a) => {
                        out.extend_from_slice(b"crawl");
                        sp(out, a)
                    }
                    LruCrawlerCommand::Sleep(n) => {
                        out.extend_from_slice(b"sleep");
                        sp_u(out, n)
                    }
                    LruCrawlerCommand::ToCrawl(n) => {
                        out.extend_from_slice(b"tocrawl");
                        sp_u(out, n)
                    }
                    LruCrawlerCommand::Metadump(a) => {
                        out.extend_from_slice(b"metadump");
                        sp(out, a)
                    }
                    LruCrawlerCommand::Mgdump(a) => {
                        out.extend_from_slice(b"mgdump");
                        sp(out, a)
                    }
                }
            }
            Request::MetaGet { key, flags } => meta_line(out, b"mg", key, None, &flags),
            Request::MetaSet { key, flags, data } => {
                meta_line(out, b"ms", key, Some(data.len()), &flags);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
            }
            Request::MetaDelete { key, flags } => meta_line(out, b"md", key, None, &flags),
            Request::MetaArithmetic { key, flags } => meta_line(out, b"ma", key, None, &flags),
            Request::MetaDebug { key, base64 } => {
                out.extend_from_slice(b"me");
                sp(out, key);
                if base64 {
                    out.extend_from_slice(b" b");
                }
            }
            Request::MetaNoop => out.extend_from_slice(b"mn"),
            Request::LeaseGet { key } => {
                out.extend_from_slice(b"lease-get");
                sp(out, key);
            }
            Request::LeaseSet {
                key,
                token,
                flags,
                exptime,
                data,
                noreply: nr,
            } => {
                out.extend_from_slice(b"lease-set");
                sp(out, key);
                sp_u(out, token);
                sp_u(out, flags as u64);
                sp_i(out, exptime);
                sp_u(out, data.len() as u64);
                noreply(out, nr);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn meta_line(out: &mut Vec<u8>, cmd: &[u8], key: &[u8], len: Option<usize>, flags: &MetaFlags) {
    out.extend_from_slice(cmd);
    out.push(b' ');
    out.extend_from_slice(key);
    if let Some(n) = len {
        out.push(b' ');
        push_u64(out, n as u64);
    }
    for (c, tok) in flags.iter() {
        out.push(b' ');
        out.push(c);
        out.extend_from_slice(tok);
    }
}

/// The rest of `line` from its token number `idx` on (empty if there are fewer tokens).
fn rest_from(line: &[u8], idx: usize) -> &[u8] {
    match tokens(line).nth(idx) {
        Some(t) => &line[t.as_ptr() as usize - line.as_ptr() as usize..],
        None => &[],
    }
}

fn is_get_line(buf: &[u8]) -> bool {
    let lead = buf.iter().take_while(|&&b| b == b' ').count();
    if lead > 100 {
        return false;
    }
    let s = &buf[lead..];
    // memcached 1.6.18 lets only these grow past 2048 bytes (not gat/gats).
    s.starts_with(b"get ") || s.starts_with(b"gets ")
}

/// Parse one request from the front of `buf`.
///
/// - `Ok(Some((request, consumed)))`: a complete request occupying `consumed` bytes.
/// - `Ok(None)`: incomplete; read more and call again with the same bytes (nothing consumed).
/// - `Err(e)`: invalid; answer `e.reply_line()`, skip `e.consumed` bytes plus `e.swallow`
///   more, and close the connection if `e.close`.
pub fn parse_request<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(Request<'a>, usize)>, ParseError> {
    let Some((line, line_len)) = split_line(buf) else {
        let cap = if is_get_line(buf) {
            limits.max_get_line_len
        } else {
            limits.max_line_len
        };
        if buf.len() > cap {
            // memcached closes the connection without a reply.
            return Err(ParseError::new(ErrorKind::LineTooLong, buf.len())
                .closing()
                .noreply(true));
        }
        return Ok(None);
    };
    // A complete line is executed whatever its length, as memcached does with a line that
    // arrives whole in its 16 KiB read buffer; a longer one never does there (it closes).
    if line.len() > limits.max_line_len.max(Limits::MAX_WHOLE_LINE)
        && !(is_get_line(line) && line.len() <= limits.max_get_line_len)
    {
        return Err(ParseError::new(ErrorKind::LineTooLong, line_len)
            .closing()
            .noreply(true));
    }
    // memcached tokenizes the line as a C string: a NUL byte ends it (`get a\0b` is `get a`).
    let line = match memchr::memchr(0, line) {
        Some(i) => &line[..i],
        None => line,
    };
    let mut toks = tokens(line);
    let Some(cmd) = toks.next() else {
        return Err(ParseError::new(ErrorKind::Error, line_len));
    };
    let err = |kind| ParseError::new(kind, line_len);
    // Fast path for the most common requests: one pass over the keys, no argument table.
    if cmd == b"get" || cmd == b"gets" {
        let keys = Keys {
            raw: &line[cmd.as_ptr() as usize - line.as_ptr() as usize + cmd.len()..],
        };
        if keys.raw.iter().all(|&b| b == b' ') {
            return Err(err(ErrorKind::Error));
        }
        // When the whole key list fits in one key's length no key can be too long, so the
        // common single-key get needs no second pass.
        if (keys.raw.len() > limits.max_key_len || limits.strict_keys)
            && !keys.iter().all(|k| valid_key(k, limits))
        {
            return Err(err(ErrorKind::BadCommandLineFormat));
        }
        let kind = if cmd.len() == 3 {
            RetrievalKind::Get
        } else {
            RetrievalKind::Gets
        };
        return Ok(Some((
            Request::Retrieval {
                kind,
                exptime: None,
                keys,
            },
            line_len,
        )));
    }
    // Tokens after the command, counted once (bounded by the line length).
    let args: ArgBuf = ArgBuf::collect(toks.clone());
    let nargs = args.len;
    let a = |i: usize| args.get(i);
    let key_ok = |k: &[u8]| valid_key(k, limits);

    let req = match cmd {
        b"get" | b"gets" | b"gat" | b"gats" => {
            let kind = match cmd {
                b"get" => RetrievalKind::Get,
                b"gets" => RetrievalKind::Gets,
                b"gat" => RetrievalKind::Gat,
                _ => RetrievalKind::Gats,
            };
            let touch = matches!(kind, RetrievalKind::Gat | RetrievalKind::Gats);
            let first_key = if touch { 2 } else { 1 };
            if nargs < 1 {
                return Err(err(ErrorKind::Error));
            }
            let exptime = if touch {
                Some(mc_strtol(a(0)).ok_or_else(|| err(ErrorKind::InvalidExptime))? as i64)
            } else {
                None
            };
            let raw = rest_from(line, first_key);
            let keys = Keys { raw };
            if !keys.iter().all(key_ok) {
                return Err(err(ErrorKind::BadCommandLineFormat));
            }
            Request::Retrieval {
                kind,
                exptime,
                keys,
            }
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let kind = match cmd {
                b"set" => StorageKind::Set,
                b"add" => StorageKind::Add,
                b"replace" => StorageKind::Replace,
                b"append" => StorageKind::Append,
                b"prepend" => StorageKind::Prepend,
                _ => StorageKind::Cas,
            };
            let base = if kind == StorageKind::Cas { 5 } else { 4 };
            if nargs != base && nargs != base + 1 {
                return Err(err(ErrorKind::Error));
            }
            // memcached's `set_noreply_maybe`: the last token, whatever its place.
            let noreply = a(nargs - 1) == b"noreply";
            let bad = || err(ErrorKind::BadCommandLineFormat).noreply(noreply);
            let key = a(0);
            if !key_ok(key) {
                return Err(bad());
            }
            let flags = mc_strtoul_flags(a(1)).ok_or_else(bad)?;
            let exptime = mc_strtol(a(2)).ok_or_else(bad)? as i64;
            let vlen = data_len(a(3)).ok_or_else(bad)?;
            let cas = if kind == StorageKind::Cas {
                mc_strtoull(a(4)).ok_or_else(bad)?
            } else {
                0
            };
            let Some((data, consumed)) = data_block(buf, line_len, vlen, noreply, limits)? else {
                return Ok(None);
            };
            return Ok(Some((
                Request::Storage {
                    kind,
                    key,
                    flags,
                    exptime,
                    data,
                    cas,
                    noreply,
                },
                consumed,
            )));
        }
        b"lease-set" => {
            if nargs != 5 && nargs != 6 {
                return Err(err(ErrorKind::Error));
            }
            let noreply = nargs == 6 && a(5) == b"noreply";
            let bad = || err(ErrorKind::BadCommandLineFormat).noreply(noreply);
            let key = a(0);
            if !key_ok(key) {
                return Err(bad());
            }
            let token = mc_strtoull(a(1)).ok_or_else(bad)?;
            let flags = mc_strtoul_flags(a(2)).ok_or_else(bad)?;
            let exptime = mc_strtol(a(3)).ok_or_else(bad)? as i64;
            let vlen = data_len(a(4)).ok_or_else(bad)?;
            let Some((data, consumed)) = data_block(buf, line_len, vlen, noreply, limits)? else {
                return Ok(None);
            };
            return Ok(Some((
                Request::LeaseSet {
                    key,
                    token,
                    flags,
                    exptime,
                    data,
                    noreply,
                },
                consumed,
            )));
        }
        b"lease-get" => {
            if nargs != 1 {
                return Err(err(ErrorKind::Error));
            }
            if !key_ok(a(0)) {
                return Err(err(ErrorKind::BadCommandLineFormat));
            }
            Request::LeaseGet { key: a(0) }
        }
        b"delete" => {
            if !(1..=3).contains(&nargs) {
                return Err(err(ErrorKind::Error));
            }
            let noreply = nargs >= 2 && a(nargs - 1) == b"noreply";
            let hold_zero = nargs >= 2 && a(1) == b"0";
            let valid = nargs == 1
                || (nargs == 2 && (hold_zero || noreply))
                || (nargs == 3 && hold_zero && noreply);
            if !valid {
                return Err(err(ErrorKind::BadDeleteFormat).noreply(noreply));
            }
            if !key_ok(a(0)) {
                return Err(err(ErrorKind::BadCommandLineFormat).noreply(noreply));
            }
            Request::Delete { key: a(0), noreply }
        }
        b"incr" | b"decr" => {
            if nargs != 2 && nargs != 3 {
                return Err(err(ErrorKind::Error));
            }
            let noreply = a(nargs - 1) == b"noreply";
            if !key_ok(a(0)) {
                return Err(err(ErrorKind::BadCommandLineFormat).noreply(noreply));
            }
            let delta =
                mc_strtoull(a(1)).ok_or_else(|| err(ErrorKind::InvalidDelta).noreply(noreply))?;
            Request::Arith {
                kind: if cmd == b"incr" {
                    ArithKind::Incr
                } else {
                    ArithKind::Decr
                },
                key: a(0),
                delta,
                noreply,
            }
        }
        b"touch" => {
            if nargs != 2 && nargs != 3 {
                return Err(err(ErrorKind::Error));
            }
            let noreply = a(nargs - 1) == b"noreply";
            if !key_ok(a(0)) {
                return Err(err(ErrorKind::BadCommandLineFormat).noreply(noreply));
            }
            let exptime = mc_strtol(a(1))
                .ok_or_else(|| err(ErrorKind::InvalidExptime).noreply(noreply))?
                as i64;
            Request::Touch {
                key: a(0),
                exptime,
                noreply,
            }
        }
        b"flush_all" => {
            if nargs > 2 {
                return Err(err(ErrorKind::Error));
            }
            let noreply = nargs >= 1 && a(nargs - 1) == b"noreply";
            // memcached: a delay is there unless the only argument is `noreply`, so in
            // `flush_all noreply 5` the delay is `noreply` (invalid).
            let delay = if nargs > usize::from(noreply) {
                Some(
                    mc_strtol(a(0))
                        .ok_or_else(|| err(ErrorKind::InvalidFlushDelay).noreply(noreply))?
                        as i64,
                )
            } else {
                None
            };
            Request::FlushAll { delay, noreply }
        }
        b"version" => Request::Version,
        b"quit" => Request::Quit,
        b"mn" => Request::MetaNoop,
        b"verbosity" => {
            if nargs != 1 && nargs != 2 {
                return Err(err(ErrorKind::Error));
            }
            let noreply = a(nargs - 1) == b"noreply";
            // memcached: `safe_strtoul` into 32 bits; the request keeps all 64 (so it
            // re-encodes as sent) and the server truncates.
            let level = mc_strtoull(a(0))
                .ok_or_else(|| err(ErrorKind::BadCommandLineFormat).noreply(noreply))?;
            Request::Verbosity { level, noreply }
        }
        b"shutdown" => match (nargs, a(0)) {
            (0, _) => Request::Shutdown {
                graceful: false,
                bad_mode: false,
            },
            (1, b"graceful") => Request::Shutdown {
                graceful: true,
                bad_mode: false,
            },
            _ => Request::Shutdown {
                graceful: false,
                bad_mode: true,
            },
        },
        b"cache_memlimit" => {
            if nargs != 1 && nargs != 2 {
                return Err(err(ErrorKind::Error));
            }
            let noreply = a(nargs - 1) == b"noreply";
            // memcached: `safe_strtoul` into 32 bits (the server truncates, as for
            // `verbosity`); `ERROR` obeys `noreply`.
            let megabytes =
                mc_strtoull(a(0)).ok_or_else(|| err(ErrorKind::Error).noreply(noreply))?;
            Request::CacheMemlimit { megabytes, noreply }
        }
        b"stats" => Request::Stats {
            args: trim_end(rest_from(line, 1)),
        },
        b"slabs" => match (nargs, a(0)) {
            (3, b"reassign") => {
                let num = |t| mc_strtol(t).ok_or_else(|| err(ErrorKind::BadCommandLineFormat));
                let src = num(a(1))? as i64;
                let dst = num(a(2))? as i64;
                Request::Slabs(SlabsCommand::Reassign { src, dst })
            }
            (2, b"automove") => {
                // memcached: `safe_strtoul` (so `4294967298` is 2), `bad command line
                // format` for a non-number and `ERROR` for a level above 2.
                let n = mc_strtoul(a(1)).ok_or_else(|| err(ErrorKind::BadCommandLineFormat))?;
                if n > 2 {
                    return Err(err(ErrorKind::Error));
                }
                Request::Slabs(SlabsCommand::Automove(u64::from(n)))
            }
            _ => return Err(err(ErrorKind::Error)),
        },
        b"lru" => {
            if nargs < 1 {
                return Err(err(ErrorKind::Error));
            }
            Request::Lru {
                args: trim_end(rest_from(line, 1)),
            }
        }
        b"lru_crawler" => {
            // `safe_strtoul` into 32 bits: truncated by the server.
            let num = || mc_strtoull(a(1)).ok_or_else(|| err(ErrorKind::BadCommandLineFormat));
            let c = match (nargs, a(0)) {
                (1, b"enable") => LruCrawlerCommand::Enable,
                (1, b"disable") => LruCrawlerCommand::Disable,
                (2, b"crawl") => LruCrawlerCommand::Crawl(a(1)),
                (2, b"sleep") => LruCrawlerCommand::Sleep(num()?),
                (2, b"tocrawl") => LruCrawlerCommand::ToCrawl(num()?),
                (2, b"metadump") => LruCrawlerCommand::Metadump(a(1)),
                (2, b"mgdump") => LruCrawlerCommand::Mgdump(a(1)),
                _ => return Err(err(ErrorKind::Error)),
            };
            Request::LruCrawler(c)
        }
        b"watch" => {
            // memcached 1.6.18: every word must name a log type, else `ERROR` (kept from the
            // client by a trailing `noreply`, which is itself no type).
            let mut flags = 0;
            for i in 0..nargs {
                match watch::NAMES.iter().find(|(n, _)| n.as_bytes() == a(i)) {
                    Some((_, bit)) => flags |= bit,
                    None => {
                        let noreply = a(nargs - 1) == b"noreply";
                        return Err(err(ErrorKind::Error).noreply(noreply));
                    }
                }
            }
            if nargs == 0 {
                flags = watch::FETCHERS;
            }
            Request::Watch { flags }
        }
        b"me" => {
            if nargs < 1 {
                return Err(err(ErrorKind::BadCommandLineFormat));
            }
            if a(0).len() > limits.max_key_len {
                return Err(err(ErrorKind::BadCommandLineFormat));
            }
            let base64 = nargs >= 2 && a(1) == b"b";
            if base64 {
                let mut tmp = [0u8; 256];
                // memcached 1.6.18's `me` words a bad key encoding as a bad command line.
                meta::decode_key(a(0), &mut tmp)
                    .map_err(|_| err(ErrorKind::BadCommandLineFormat))?;
            } else if !key_ok(a(0)) {
                return Err(err(ErrorKind::BadCommandLineFormat));
            }
            Request::MetaDebug { key: a(0), base64 }
        }
        b"mg" | b"md" | b"ma" => {
            if nargs < 1 {
                return Err(err(ErrorKind::Error));
            }
            let mcmd = match cmd {
                b"mg" => MetaCommand::Get,
                b"md" => MetaCommand::Delete,
                _ => MetaCommand::Arithmetic,
            };
            let key = a(0);
            // memcached checks the key length before anything else.
            if key.len() > limits.max_key_len {
                return Err(err(ErrorKind::BadCommandLineFormat));
            }
            let flags = MetaFlags::parse(mcmd, key, rest_from(line, 2), 2, limits).map_err(err)?;
            meta_key_check(key, &flags, limits).map_err(err)?;
            match mcmd {
                MetaCommand::Get => Request::MetaGet { key, flags },
                MetaCommand::Delete => Request::MetaDelete { key, flags },
                _ => Request::MetaArithmetic { key, flags },
            }
        }
        b"ms" => {
            if nargs < 1 {
                return Err(err(ErrorKind::Error));
            }
            let key = a(0);
            if key.len() > limits.max_key_len || nargs < 2 {
                return Err(err(ErrorKind::BadCommandLineFormat));
            }
            // memcached counts the tokens before it reads the data length.
            if 3 + crate::tokens(rest_from(line, 3)).count() > limits.max_meta_tokens {
                return Err(err(ErrorKind::TooManyFlags));
            }
            let vlen = data_len(a(1)).ok_or_else(|| err(ErrorKind::BadCommandLineFormat))?;
            // Every later error swallows the data block, as memcached does.
            let swallow = vlen + 2;
            let flags = MetaFlags::parse(MetaCommand::Set, key, rest_from(line, 3), 3, limits)
                .map_err(|k| err(k).swallowing(swallow))?;
            meta_key_check(key, &flags, limits).map_err(|k| err(k).swallowing(swallow))?;
            // Meta errors are never suppressed by `q`.
            let Some((data, consumed)) = data_block(buf, line_len, vlen, false, limits)? else {
                return Ok(None);
            };
            return Ok(Some((Request::MetaSet { key, flags, data }, consumed)));
        }
        _ => {
            if nargs >= 1 && args.get(nargs - 1).starts_with(b"HTTP/") {
                return Err(err(ErrorKind::Http).closing());
            }
            return Err(err(ErrorKind::Error));
        }
    };
    Ok(Some((req, line_len)))
}

fn trim_end(s: &[u8]) -> &[u8] {
    let mut e = s.len();
    while e > 0 && s[e - 1] == b' ' {
        e -= 1;
    }
    &s[..e]
}

/// The key checks left after the flags: a base64 key was decoded by the flag scan (memcached
/// takes any bytes once decoded); a plain one must pass the strict-keys rule if enabled.
fn meta_key_check(key: &[u8], flags: &MetaFlags, limits: &Limits) -> Result<(), ErrorKind> {
    if flags.base64_key() || valid_key(key, limits) {
        Ok(())
    } else {
        Err(ErrorKind::BadCommandLineFormat)
    }
}

/// A data length (`set`.., `ms`): memcached's `safe_strtol` (so `4294967297` is 1), then
/// refused when negative or when `vlen + 2` would pass `INT_MAX`.
#[inline]
fn data_len(tok: &[u8]) -> Option<usize> {
    mc_strtol(tok)
        .filter(|v| (0..=i32::MAX - 2).contains(v))
        .map(|v| v as usize)
}

/// The data block after a storage command line: `vlen` bytes then `\r\n`.
fn data_block<'a>(
    buf: &'a [u8],
    line_len: usize,
    vlen: usize,
    noreply: bool,
    limits: &Limits,
) -> Result<Option<(&'a [u8], usize)>, ParseError> {
    if vlen > limits.max_value_size {
        return Err(ParseError::new(ErrorKind::TooLarge, line_len)
            .swallowing(vlen + 2)
            .noreply(noreply));
    }
    let end = line_len + vlen + 2;
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[line_len + vlen..end] != b"\r\n" {
        return Err(ParseError::new(ErrorKind::BadDataChunk, end).noreply(noreply));
    }
    Ok(Some((&buf[line_len..line_len + vlen], end)))
}

/// Up to 8 argument tokens kept for random access (commands never need more; multi-key gets
/// iterate the line instead), plus the count, which stops at 9 ("more than any command takes")
/// so a get of many keys is not scanned twice.
struct ArgBuf<'a> {
    toks: [&'a [u8]; 8],
    len: usize,
}

impl<'a> ArgBuf<'a> {
    fn collect(it: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut toks: [&[u8]; 8] = [&[]; 8];
        let mut len = 0;
        for t in it {
            if len == 8 {
                len += 1;
                break;
            }
            toks[len] = t;
            len += 1;
        }
        ArgBuf { toks, len }
    }

    fn get(&self, i: usize) -> &'a [u8] {
        if i < 8 {
            self.toks[i]
        } else {
            &[]
        }
    }
}
