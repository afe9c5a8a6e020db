//! Command execution: a parsed [`Request`] -> storage engine calls -> memcached's exact
//! reply bytes, appended to the connection's output buffer.
//!
//! Retrieval hits are written straight from the engine into the output buffer while the
//! shard lock is held (no intermediate copy of the value).

use std::io::Write as _;
use std::sync::atomic::Ordering;

use protocol::meta::decode_key;
use protocol::{
    encode_value_header, ArithKind, LruCrawlerCommand, MetaFlags, MetaMode, Request, RetrievalKind,
    SlabsCommand, StorageKind,
};

use crate::dump::{self, ClassSpec, DumpKind};
use crate::server::Shared;
use crate::stats::ThreadStats;
use crate::storage::{
    ArithOutcome, ArithRequest, DeleteOptions, DeleteOutcome, GetOptions, ItemView, LeaseView,
    ReassignOutcome, StoreMode, StoreRequest, StoreStatus, HOT_MISS_TOKEN,
};

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// Close after flushing what is buffered (`quit`).
    Close,
}

const CRLF: &[u8] = b"\r\n";
const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";

#[inline]
fn line(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
}

#[inline]
fn push_num(out: &mut Vec<u8>, v: impl itoa_like::Int) {
    v.push(out);
}

mod itoa_like {
    /// Decimal formatting without going through `fmt` on the hot path.
    pub trait Int {
        fn push(self, out: &mut Vec<u8>);
    }

    impl Int for u64 {
        #[inline]
        fn push(mut self, out: &mut Vec<u8>) {
            let mut buf = [0u8; 20];
            let mut i = buf.len();
            loop {
                i -= 1;
                buf[i] = b'0' + (self % 10) as u8;
                self /= 10;
                if self == 0 {
                    break;
                }
            }
            out.extend_from_slice(&buf[i..]);
        }
    }

    impl Int for i64 {
        #[inline]
        fn push(self, out: &mut Vec<u8>) {
            if self < 0 {
                out.push(b'-');
            }
            self.unsigned_abs().push(out);
        }
    }

    impl Int for u32 {
        #[inline]
        fn push(self, out: &mut Vec<u8>) {
            (self as u64).push(out);
        }
    }
}

fn write_value(out: &mut Vec<u8>, it: &ItemView<'_>) {
    match it.value() {
        Some(v) => out.extend_from_slice(v),
        None => it.copy_value_into(out),
    }
}

/// Count a store's outcome: memcached's cas_* stats for CAS stores, and the per-result
/// counters behind `cache_server_command_results_total{command="set"}`.
fn count_store(ts: &ThreadStats, status: StoreStatus, cas: bool) {
    if cas {
        match status {
            StoreStatus::Stored => ThreadStats::incr(&ts.cas_hits),
            StoreStatus::Exists => ThreadStats::incr(&ts.cas_badval),
            StoreStatus::NotFound => ThreadStats::incr(&ts.cas_misses),
            _ => {}
        }
    }
    match status {
        StoreStatus::Stored => ThreadStats::incr(&ts.set_stored),
        StoreStatus::NotStored => ThreadStats::incr(&ts.set_not_stored),
        StoreStatus::Exists => ThreadStats::incr(&ts.set_exists),
        StoreStatus::NotFound => ThreadStats::incr(&ts.set_not_found),
        // Counted where the error reply is written (store_too_large, store_no_memory).
        StoreStatus::TooLarge | StoreStatus::OutOfMemory => {}
    }
}

/// Execute one request, appending its reply to `out`.
pub fn execute(req: &Request<'_>, sh: &Shared, ts: &ThreadStats, out: &mut Vec<u8>) -> Outcome {
    let engine = &sh.engine;
    match *req {
        Request::Retrieval {
            kind,
            exptime,
            keys,
        } => {
            let with_cas = kind.with_cas();
            let touch = matches!(kind, RetrievalKind::Gat | RetrievalKind::Gats);
            let opts = match exptime {
                Some(e) => GetOptions::touch(e),
                None => GetOptions::get(),
            };
            for key in keys.iter() {
                ThreadStats::incr(&ts.cmd_get);
                if touch {
                    ThreadStats::incr(&ts.cmd_touch);
                }
                let hit = engine
                    .get(key, &opts, |it| {
                        encode_value_header(
                            out,
                            key,
                            it.flags(),
                            it.value_len(),
                            with_cas.then(|| it.cas()),
                        );
                        write_value(out, it);
                        out.extend_from_slice(CRLF);
                    })
                    .is_some();
                if sh.admin.prefix.enabled() {
                    sh.admin.prefix.record_get(key, hit);
                }
                match (hit, touch) {
                    (true, false) => ThreadStats::incr(&ts.get_hits),
                    (false, false) => ThreadStats::incr(&ts.get_misses),
                    (true, true) => ThreadStats::incr(&ts.touch_hits),
                    (false, true) => ThreadStats::incr(&ts.touch_misses),
                }
            }
            line(out, b"END\r\n");
        }
        Request::Storage {
            kind,
            key,
            flags,
            exptime,
            data,
            cas,
            noreply,
        } => {
            ThreadStats::incr(&ts.cmd_set);
            if sh.admin.prefix.enabled() {
                sh.admin.prefix.record_set(key);
            }
            let mode = match kind {
                StorageKind::Set => StoreMode::Set,
                StorageKind::Add => StoreMode::Add,
                StorageKind::Replace => StoreMode::Replace,
                StorageKind::Append => StoreMode::Append,
                StorageKind::Prepend => StoreMode::Prepend,
                StorageKind::Cas => StoreMode::Cas,
            };
            let r = engine.store(&StoreRequest::new(mode, key, data, flags, exptime).with_cas(cas));
            count_store(ts, r.status, kind == StorageKind::Cas);
            let reply: &[u8] = match r.status {
                StoreStatus::Stored => b"STORED\r\n",
                StoreStatus::NotStored => b"NOT_STORED\r\n",
                StoreStatus::Exists => b"EXISTS\r\n",
                StoreStatus::NotFound => b"NOT_FOUND\r\n",
                StoreStatus::TooLarge => {
                    ThreadStats::incr(&ts.store_too_large);
                    TOO_LARGE
                }
                StoreStatus::OutOfMemory => {
                    ThreadStats::incr(&ts.store_no_memory);
                    NO_MEMORY
                }
            };
            if !noreply {
                line(out, reply);
            }
        }
        Request::Delete { key, noreply } => {
            if sh.admin.prefix.enabled() {
                sh.admin.prefix.record_delete(key);
            }
            let opts = DeleteOptions {
                keep_stale: sh.settings.lease_stale_ttl,
                ..DeleteOptions::default()
            };
            let r = engine.delete(key, &opts);
            let reply: &[u8] = match r {
                DeleteOutcome::Deleted => {
                    ThreadStats::incr(&ts.delete_hits);
                    b"DELETED\r\n"
                }
                _ => {
                    ThreadStats::incr(&ts.delete_misses);
                    b"NOT_FOUND\r\n"
                }
            };
            if !noreply {
                line(out, reply);
            }
        }
        Request::Arith {
            kind,
            key,
            delta,
            noreply,
        } => {
            let incr = kind == ArithKind::Incr;
            let r = engine.arith(&ArithRequest::new(key, incr, delta));
            let (hits, misses) = if incr {
                (&ts.incr_hits, &ts.incr_misses)
            } else {
                (&ts.decr_hits, &ts.decr_misses)
            };
            let mut reply = Vec::new();
            match r {
                ArithOutcome::Ok { value, .. } => {
                    ThreadStats::incr(hits);
                    push_num(&mut reply, value);
                    reply.extend_from_slice(CRLF);
                }
                ArithOutcome::NotFound => {
                    ThreadStats::incr(misses);
                    reply.extend_from_slice(b"NOT_FOUND\r\n");
                }
                ArithOutcome::NonNumeric => reply.extend_from_slice(NON_NUMERIC),
                ArithOutcome::Exists => reply.extend_from_slice(b"EXISTS\r\n"),
                ArithOutcome::OutOfMemory => {
                    reply.extend_from_slice(b"SERVER_ERROR out of memory\r\n")
                }
            }
            if !noreply {
                out.extend_from_slice(&reply);
            }
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            ThreadStats::incr(&ts.cmd_touch);
            let reply: &[u8] = if engine.touch(key, exptime) {
                ThreadStats::incr(&ts.touch_hits);
                b"TOUCHED\r\n"
            } else {
                ThreadStats::incr(&ts.touch_misses);
                b"NOT_FOUND\r\n"
            };
            if !noreply {
                line(out, reply);
            }
        }
        Request::FlushAll { delay, noreply } => {
            // memcached counts refused flushes too, and checks -F before the delay.
            ThreadStats::incr(&ts.cmd_flush);
            if sh.settings.disable_flush {
                if !noreply {
                    line(out, b"CLIENT_ERROR flush_all not allowed\r\n");
                }
                return Outcome::Continue;
            }
            engine.flush_all(delay.unwrap_or(0));
            if !noreply {
                line(out, b"OK\r\n");
            }
        }
        Request::Version => {
            line(out, b"VERSION ");
            line(out, crate::VERSION.as_bytes());
            line(out, CRLF);
        }
        Request::Verbosity { level, noreply } => {
            // memcached: `settings.verbose = min(level, MAX_VERBOSITY_LEVEL)`, which is 2
            // (`-vvv` at start-up can still set 3).
            sh.verbosity
                .store((level as u32).min(2) as u8, Ordering::Relaxed);
            if !noreply {
                line(out, b"OK\r\n");
            }
        }
        Request::Quit => return Outcome::Close,
        Request::Shutdown { bad_mode, .. } => {
            if !sh.settings.enable_shutdown {
                line(out, b"ERROR: shutdown not enabled\r\n");
            } else if bad_mode {
                line(out, b"CLIENT_ERROR invalid shutdown mode\r\n");
            } else {
                sh.shutdown.trigger();
                return Outcome::Close;
            }
        }
        Request::CacheMemlimit { megabytes, noreply } => {
            // memcached reads the number into 32 bits.
            let megabytes = megabytes as u32 as u64;
            if megabytes < 8 {
                if !noreply {
                    line(
                        out,
                        b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
                    );
                }
            } else if megabytes > 1_000_000_000 {
                if !noreply {
                    line(
                        out,
                        b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
                    );
                }
            } else {
                engine.set_memory_limit((megabytes as usize).saturating_mul(1024 * 1024));
                if !noreply {
                    line(out, b"OK\r\n");
                }
            }
        }
        Request::Stats { args } => crate::stats_reply::stats(sh, args, out),
        Request::Lru { args } => crate::admin::lru(sh, args, out),
        Request::Slabs(SlabsCommand::Reassign { src, dst }) => {
            let r = engine.slabs_reassign(src as i32, dst as i32);
            line(
                out,
                match r {
                    ReassignOutcome::Ok => b"OK\r\n",
                    ReassignOutcome::Busy => b"BUSY currently processing reassign request\r\n",
                    ReassignOutcome::BadClass => b"BADCLASS invalid src or dst class id\r\n",
                    ReassignOutcome::NoSpare => b"NOSPARE source class has no spare pages\r\n",
                    ReassignOutcome::Same => b"SAME src and dst class are identical\r\n",
                    ReassignOutcome::Disabled => b"CLIENT_ERROR slab reassignment disabled\r\n",
                },
            );
        }
        Request::Slabs(SlabsCommand::Automove(n)) => {
            engine.set_automove(n as u8);
            line(out, b"OK\r\n");
        }
        Request::LruCrawler(c) => match c {
            LruCrawlerCommand::Enable => {
                sh.crawler.enabled.store(true, Ordering::Relaxed);
                line(out, b"OK\r\n");
            }
            LruCrawlerCommand::Disable => {
                sh.crawler.enabled.store(false, Ordering::Relaxed);
                line(out, b"OK\r\n");
            }
            LruCrawlerCommand::Crawl(arg) => {
                // memcached's order of checks (proto_text.c, crawler.c `lru_crawler_crawl`).
                let reply: &[u8] = if !sh.crawler.enabled.load(Ordering::Relaxed) {
                    b"CLIENT_ERROR lru crawler disabled\r\n"
                } else {
                    match dump::parse_classes(arg) {
                        None => b"BADCLASS invalid class id\r\n",
                        Some(_) if sh.crawler.dump_active.load(Ordering::Relaxed) => {
                            b"BUSY currently processing crawler request\r\n"
                        }
                        // Only dumps walk the hash table.
                        Some(ClassSpec::Hash) => b"ERROR an unknown error happened\r\n",
                        Some(ClassSpec::Classes(0)) => b"NOTSTARTED no items to crawl\r\n",
                        Some(ClassSpec::Classes(_)) => {
                            sh.crawler.requested.store(true, Ordering::Relaxed);
                            b"OK\r\n"
                        }
                    }
                };
                line(out, reply);
            }
            // memcached reads both numbers into 32 bits.
            LruCrawlerCommand::Sleep(us) if us as u32 > 1_000_000 => {
                line(out, b"CLIENT_ERROR sleep must be one second or less\r\n");
            }
            LruCrawlerCommand::Sleep(us) => {
                sh.crawler
                    .sleep_us
                    .store(us as u32 as u64, Ordering::Relaxed);
                line(out, b"OK\r\n");
            }
            LruCrawlerCommand::ToCrawl(n) => {
                sh.crawler.tocrawl.store(n as u32 as u64, Ordering::Relaxed);
                line(out, b"OK\r\n");
            }
            // TCP connections stream dumps themselves (conn.rs); this is UDP, where a reply
            // of unbounded size cannot be framed (memcached wedges the UDP thread).
            LruCrawlerCommand::Metadump(arg) | LruCrawlerCommand::Mgdump(arg) => {
                let kind = if matches!(c, LruCrawlerCommand::Metadump(_)) {
                    DumpKind::Meta
                } else {
                    DumpKind::Mg
                };
                if let Some(d) = dump::start(sh, kind, arg, false, out) {
                    drop(d);
                    line(out, b"SERVER_ERROR dumps are not available over UDP\r\n");
                }
            }
        },
        Request::MetaNoop => line(out, b"MN\r\n"),
        // TCP connections turn into log streams themselves (conn.rs); a datagram cannot.
        Request::Watch { .. } => line(out, b"SERVER_ERROR watch is not available over UDP\r\n"),
        Request::MetaDebug { key, base64 } => {
            ThreadStats::incr(&ts.cmd_meta);
            let mut kb = [0u8; 256];
            let Some(k) = meta_key(key, base64, &mut kb, out) else {
                return Outcome::Continue;
            };
            let opts = GetOptions {
                no_bump: true,
                ..GetOptions::default()
            };
            let found = engine
                .get(k, &opts, |it| {
                    // memcached prints the item's key: in base64 when it was stored with a
                    // base64 key, as sent otherwise (whatever this request's `b`).
                    line(out, b"ME ");
                    if it.binary_key() {
                        protocol::meta::encode_key(it.key(), out);
                    } else {
                        line(out, it.key());
                    }
                    let _ = write!(
                        out,
                        " exp={} la={} cas={} fetch={} cls={} size={}\r\n",
                        // memcached prints `current_time - exptime`: minus the seconds
                        // left (-1 for no exptime).
                        match it.ttl() {
                            -1 => -1,
                            left => -left,
                        },
                        it.last_access(),
                        it.cas(),
                        if it.fetched_before() { "yes" } else { "no" },
                        it.class_id(),
                        // memcached's size for the item, whatever our own layout takes.
                        crate::storage::memcached_item_size(
                            it.key().len(),
                            it.flags(),
                            it.value_len(),
                            engine.config().cas_enabled,
                        ),
                    );
                })
                .is_some();
            if !found {
                line(out, b"EN\r\n");
            }
        }
        Request::MetaGet { key, flags } => meta_get(sh, ts, key, &flags, out),
        Request::MetaSet { key, flags, data } => meta_set(sh, ts, key, &flags, data, out),
        Request::MetaDelete { key, flags } => meta_delete(sh, ts, key, &flags, out),
        Request::MetaArithmetic { key, flags } => meta_arith(sh, ts, key, &flags, out),
        Request::LeaseGet { key } => lease_get(sh, ts, key, out),
        Request::LeaseSet {
            key,
            token,
            flags,
            exptime,
            data,
            noreply,
        } => {
            ThreadStats::incr(&ts.cmd_set);
            let req = StoreRequest::new(StoreMode::Set, key, data, flags, exptime);
            let reply: &[u8] = match engine.lease_set(token, &req).map(|r| r.status) {
                Some(StoreStatus::Stored) => b"STORED\r\n",
                None | Some(StoreStatus::NotStored) => b"NOT_STORED\r\n",
                Some(StoreStatus::Exists) => b"EXISTS\r\n",
                Some(StoreStatus::NotFound) => b"NOT_FOUND\r\n",
                Some(StoreStatus::TooLarge) => {
                    ThreadStats::incr(&ts.store_too_large);
                    TOO_LARGE
                }
                Some(StoreStatus::OutOfMemory) => {
                    ThreadStats::incr(&ts.store_no_memory);
                    NO_MEMORY
                }
            };
            if !noreply {
                line(out, reply);
            }
        }
    }
    Outcome::Continue
}

/// The reply to a request the parser rejected, appended to `out`. memcached counts a
/// `flush_all` and checks `-F` before it parses the delay, so `flush_all <bad delay>`
/// counts in `cmd_flush` and, under `-F`, answers `CLIENT_ERROR flush_all not allowed`
/// rather than the exptime error. Runs only on the error path.
pub fn parse_error_reply(
    e: &protocol::ParseError,
    sh: &Shared,
    ts: &ThreadStats,
    out: &mut Vec<u8>,
) {
    if e.kind == protocol::ErrorKind::InvalidFlushDelay {
        ThreadStats::incr(&ts.cmd_flush);
        if sh.settings.disable_flush {
            if !e.noreply {
                line(out, b"CLIENT_ERROR flush_all not allowed\r\n");
            }
            return;
        }
    }
    if let Some(reply) = e.reply_line() {
        out.extend_from_slice(reply.as_bytes());
    }
}

/// `lease-get <key>` (mcrouter's leases, see `storage::lease`): a hit answers as `get`;
/// a miss answers `LVALUE <key> <token> <flags> <bytes>\r\n<data>\r\nEND\r\n`, where the
/// token is fresh (> 1, this client may fill with `lease-set`) for the first miss of the
/// window and 1 (hot miss: back off and retry) for the others, and the data is the stale
/// copy a `delete` kept (empty, flags 0, when there is none).
fn lease_get(sh: &Shared, ts: &ThreadStats, key: &[u8], out: &mut Vec<u8>) {
    ThreadStats::incr(&ts.cmd_get);
    sh.engine
        .lease_get(key, sh.settings.lease_ttl, |view| match view {
            LeaseView::Hit(it) => {
                ThreadStats::incr(&ts.get_hits);
                encode_value_header(out, key, it.flags(), it.value_len(), None);
                write_value(out, it);
                out.extend_from_slice(CRLF);
            }
            LeaseView::Miss(m) => {
                ThreadStats::incr(&ts.get_misses);
                if m.token == HOT_MISS_TOKEN {
                    ThreadStats::incr(&ts.lease_hot_misses);
                } else {
                    ThreadStats::incr(&ts.lease_tokens);
                }
                if m.stale.is_some() {
                    ThreadStats::incr(&ts.lease_stale_answers);
                }
                let (flags, data) = m.stale.unwrap_or((0, &[]));
                out.extend_from_slice(b"LVALUE ");
                out.extend_from_slice(key);
                out.push(b' ');
                push_num(out, m.token);
                out.push(b' ');
                push_num(out, flags);
                out.push(b' ');
                push_num(out, data.len() as u64);
                out.extend_from_slice(CRLF);
                out.extend_from_slice(data);
                out.extend_from_slice(CRLF);
            }
        });
    line(out, b"END\r\n");
}

/// The key a meta command addresses: the raw token, or its base64 decoding with `b`.
fn meta_key<'k>(
    raw: &'k [u8],
    base64: bool,
    buf: &'k mut [u8; 256],
    out: &mut Vec<u8>,
) -> Option<&'k [u8]> {
    if !base64 {
        return Some(raw);
    }
    match decode_key(raw, buf) {
        Ok(n) => Some(&buf[..n]),
        Err(e) => {
            line(out, e.reply().as_bytes());
            line(out, CRLF);
            None
        }
    }
}

/// ` k<key>` and ` O<opaque>`: echoed by every meta reply. `key` is the decoded key; with
/// `base64` it is echoed re-encoded (`Zm9vYh==` comes back as `Zm9vYg==`) + ` b`. As in
/// memcached, that is the request's `b` flag, except for an `mg` hit, which goes by how the
/// item was stored (`ms <base64 key> b` marks it).
fn echo_key_opaque(out: &mut Vec<u8>, flag: u8, token: &[u8], key: &[u8], base64: bool) {
    match flag {
        b'k' => {
            line(out, b" k");
            if base64 {
                protocol::meta::encode_key(key, out);
                line(out, b" b");
            } else {
                line(out, key);
            }
        }
        b'O' => {
            line(out, b" O");
            line(out, token);
        }
        _ => {}
    }
}

fn meta_get(
    sh: &Shared,
    ts: &ThreadStats,
    raw_key: &[u8],
    flags: &MetaFlags<'_>,
    out: &mut Vec<u8>,
) {
    let mut kb = [0u8; 256];
    let Some(key) = meta_key(raw_key, flags.base64_key(), &mut kb, out) else {
        return;
    };
    let pos = |c: u8| flag_pos(flags, c);
    if flags.opaque_too_long {
        // memcached finds out while writing the reply: the fetch, an `N` vivify and a `T`
        // touch that came before the `O` are done, only a miss is counted, the reply is the
        // error.
        // No win token is handed out: a vivified item is left without one, so the next `mg`
        // sees neither `W` nor `Z`; a stale item still offers its win to the next fetch.
        // The `N` TTL applies only when `N` came before the `O` (else the item never expires).
        let touch_first = pos(b'T') < pos(b'O');
        let vivify_first = pos(b'N') < pos(b'O');
        let opts = GetOptions {
            touch: flags.ttl.filter(|_| touch_first),
            no_bump: flags.has(b'u'),
            vivify: flags.vivify.map(|t| if vivify_first { t } else { 0 }),
            recache: None,
            recache_before_touch: false,
            no_token: true,
            vivify_ttl_last: vivify_first && pos(b'T') < pos(b'N'),
        };
        if sh.engine.get(key, &opts, |_| ()).is_none() {
            // A miss is counted before memcached notices the opaque.
            ThreadStats::incr(&ts.cmd_get);
            ThreadStats::incr(&ts.get_misses);
        }
        return opaque_too_long(out);
    }
    let opts = GetOptions {
        touch: flags.ttl,
        no_bump: flags.has(b'u'),
        vivify: flags.vivify,
        recache: flags.recache,
        recache_before_touch: pos(b'R') < pos(b'T'),
        no_token: false,
        vivify_ttl_last: flags.has(b'N') && pos(b'T') < pos(b'N'),
    };
    let want_value = flags.has(b'v');
    let hit = sh.engine.get(key, &opts, |it| {
        let mut ttls = TtlByFlagOrder::new(flags, it.vivified(), it.ttl_before(), it.ttl());
        if want_value {
            line(out, b"VA ");
            push_num(out, it.value_len() as u64);
        } else {
            line(out, b"HD");
        }
        for (i, (flag, token)) in flags.iter().enumerate() {
            let ttl = ttls.step(sh, i, flag, token);
            match flag {
                b'c' => {
                    line(out, b" c");
                    push_num(out, it.cas());
                }
                b'f' => {
                    line(out, b" f");
                    push_num(out, it.flags());
                }
                b'h' => line(out, if it.fetched_before() { b" h1" } else { b" h0" }),
                b'l' => {
                    line(out, b" l");
                    push_num(out, it.last_access());
                }
                b's' => {
                    line(out, b" s");
                    push_num(out, it.value_len() as u64);
                }
                b't' => push_ttl(out, ttl),
                b'k' | b'O' => echo_key_opaque(out, flag, token, key, it.binary_key()),
                _ => {}
            }
        }
        if it.token_sent() && !it.win() {
            line(out, b" Z");
        }
        if it.stale() {
            line(out, b" X");
        }
        if it.win() {
            line(out, b" W");
        }
        line(out, CRLF);
        if want_value {
            write_value(out, it);
            line(out, CRLF);
        }
    });
    // As memcached 1.6.18 counts an mg: an item found (or just created by `N`) is a touch
    // with `T` and a get without; a miss is a get miss, `T` or not.
    match hit {
        Some(()) => {
            if flags.ttl.is_some() {
                ThreadStats::incr(&ts.cmd_touch);
                ThreadStats::incr(&ts.touch_hits);
            } else {
                ThreadStats::incr(&ts.cmd_get);
                ThreadStats::incr(&ts.get_hits);
            }
        }
        None => {
            ThreadStats::incr(&ts.cmd_get);
            ThreadStats::incr(&ts.get_misses);
            if !flags.quiet() {
                line(out, b"EN");
                for (flag, token) in flags.iter() {
                    echo_key_opaque(out, flag, token, key, flags.base64_key());
                }
                line(out, CRLF);
            }
        }
    }
}

/// The TTL a meta `t` flag reports. memcached applies `T` (and `N`, to an item the request
/// just created) where they stand among the flags, so a `t` before them reports the TTL as
/// it was then; after the last of them, the TTL the item ends up with.
struct TtlByFlagOrder {
    created: bool,
    /// Position of the last `T`/`N` that sets the TTL, when a `t` comes before it (else
    /// every `t` reports the final TTL and no token needs parsing).
    last_set: Option<usize>,
    /// The TTL as of the flags seen so far.
    now: i64,
    /// The TTL after the request.
    after: i64,
}

impl TtlByFlagOrder {
    fn new(flags: &MetaFlags<'_>, created: bool, before: i64, after: i64) -> Self {
        let mut t = TtlByFlagOrder {
            created,
            last_set: None,
            now: before,
            after,
        };
        let first_t = flag_pos(flags, b't');
        t.last_set = flags
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| t.sets(*f))
            .map(|(i, _)| i)
            .last()
            .filter(|&l| first_t.is_some_and(|f| f < l));
        t
    }

    fn sets(&self, flag: u8) -> bool {
        flag == b'T' || (flag == b'N' && self.created)
    }

    /// Take in flag `i`; returns the TTL a `t` there reports.
    fn step(&mut self, sh: &Shared, i: usize, flag: u8, token: &[u8]) -> i64 {
        match self.last_set {
            Some(l) if i <= l => {
                if self.sets(flag) {
                    let exptime = std::str::from_utf8(token).ok().and_then(|t| t.parse().ok());
                    if let Some(e) = exptime {
                        self.now = sh.engine.ttl_for(e);
                    }
                }
                self.now
            }
            _ => self.after,
        }
    }
}

/// Where flag `c` stands among the flags (`None`: absent, which sorts before any place).
fn flag_pos(flags: &MetaFlags<'_>, c: u8) -> Option<usize> {
    flags.iter().position(|(f, _)| f == c)
}

/// ` t<seconds left>` for `mg`/`ma`: `-1` for no exptime, else memcached's unsigned 32-bit
/// `exptime - current_time`, so an already-expired item (`T-1`) wraps to `t4294967235`-style
/// values rather than printing a negative number.
fn push_ttl(out: &mut Vec<u8>, ttl: i64) {
    line(out, b" t");
    if ttl == -1 {
        line(out, b"-1");
    } else {
        push_num(out, ttl as u32);
    }
}

/// `HD`/`NS`/`EX`/`NF` + the echoed flags, with `q` hiding `HD`.
fn meta_status(
    out: &mut Vec<u8>,
    code: &[u8],
    key: &[u8],
    flags: &MetaFlags<'_>,
    cas: Option<u64>,
) {
    if code == b"HD" && flags.quiet() {
        return;
    }
    line(out, code);
    for (flag, token) in flags.iter() {
        match flag {
            b'c' => {
                if let Some(c) = cas {
                    line(out, b" c");
                    push_num(out, c);
                }
            }
            b'k' | b'O' => echo_key_opaque(out, flag, token, key, flags.base64_key()),
            _ => {}
        }
    }
    line(out, CRLF);
}

fn opaque_too_long(out: &mut Vec<u8>) {
    line(out, protocol::ErrorKind::OpaqueTooLong.reply().as_bytes());
    line(out, CRLF);
}

fn meta_set(
    sh: &Shared,
    ts: &ThreadStats,
    raw_key: &[u8],
    flags: &MetaFlags<'_>,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    let mut kb = [0u8; 256];
    let Some(key) = meta_key(raw_key, flags.base64_key(), &mut kb, out) else {
        return;
    };
    ThreadStats::incr(&ts.cmd_set);
    let mode = flags.mode.unwrap_or(MetaMode::Set);
    let compare = flags.compare_cas;
    let store_mode = match (mode, compare) {
        (MetaMode::Set | MetaMode::Replace, Some(_)) => StoreMode::Cas,
        (MetaMode::Set, None) => StoreMode::Set,
        (MetaMode::Replace, None) => StoreMode::Replace,
        (MetaMode::Add, _) => StoreMode::Add,
        (MetaMode::Append, _) => StoreMode::Append,
        (MetaMode::Prepend, _) => StoreMode::Prepend,
        (MetaMode::Incr | MetaMode::Decr, _) => StoreMode::Set,
    };
    let cas_compare = if matches!(store_mode, StoreMode::Add) {
        0
    } else {
        compare.unwrap_or(0)
    };
    let req = StoreRequest::new(
        store_mode,
        key,
        data,
        flags.client_flags.unwrap_or(0),
        flags.ttl.unwrap_or(0),
    )
    .with_cas(cas_compare)
    .with_invalidate(flags.has(b'I'))
    // memcached 1.6.18's ms ignores `N` (newer ones vivify an append/prepend miss with it).
    .with_explicit_cas(flags.new_cas)
    .with_binary_key(flags.base64_key());
    let r = sh.engine.store(&req);
    count_store(ts, r.status, store_mode == StoreMode::Cas);
    let code: &[u8] = match r.status {
        StoreStatus::Stored => b"HD",
        StoreStatus::NotStored => b"NS",
        StoreStatus::Exists => b"EX",
        StoreStatus::NotFound => b"NF",
        StoreStatus::TooLarge => {
            ThreadStats::incr(&ts.store_too_large);
            return line(out, TOO_LARGE);
        }
        StoreStatus::OutOfMemory => {
            ThreadStats::incr(&ts.store_no_memory);
            return line(out, NO_MEMORY);
        }
    };
    meta_status(out, code, key, flags, Some(r.cas));
}

fn meta_delete(
    sh: &Shared,
    ts: &ThreadStats,
    raw_key: &[u8],
    flags: &MetaFlags<'_>,
    out: &mut Vec<u8>,
) {
    let mut kb = [0u8; 256];
    let Some(key) = meta_key(raw_key, flags.base64_key(), &mut kb, out) else {
        return;
    };
    let r = if flags.has(b'x') {
        remove_value(sh, key, flags)
    } else {
        sh.engine.delete(
            key,
            &DeleteOptions {
                cas: flags.compare_cas,
                invalidate: flags.has(b'I'),
                new_exptime: flags.ttl,
                keep_stale: sh.settings.lease_stale_ttl,
            },
        )
    };
    let code: &[u8] = match r {
        DeleteOutcome::Deleted => {
            ThreadStats::incr(&ts.delete_hits);
            b"HD"
        }
        DeleteOutcome::NotFound => {
            ThreadStats::incr(&ts.delete_misses);
            b"NF"
        }
        DeleteOutcome::Exists => {
            // memcached counts a CAS mismatch of `md` as a delete miss.
            ThreadStats::incr(&ts.delete_misses);
            b"EX"
        }
    };
    meta_status(out, code, key, flags, None);
}

/// `md <key> x`: keep the item (flags, TTL) but empty its value (newer memcached).
fn remove_value(sh: &Shared, key: &[u8], flags: &MetaFlags<'_>) -> DeleteOutcome {
    let opts = GetOptions {
        no_bump: true,
        ..GetOptions::default()
    };
    let Some((client_flags, ttl, cas)) = sh
        .engine
        .get(key, &opts, |it| (it.flags(), it.ttl(), it.cas()))
    else {
        return DeleteOutcome::NotFound;
    };
    if let Some(c) = flags.compare_cas {
        if c != cas {
            return DeleteOutcome::Exists;
        }
    }
    let exptime = if ttl < 0 { 0 } else { ttl.max(1) };
    let r = sh
        .engine
        .store(&StoreRequest::new(StoreMode::Cas, key, b"", client_flags, exptime).with_cas(cas));
    match r.status {
        StoreStatus::Stored => DeleteOutcome::Deleted,
        StoreStatus::NotFound => DeleteOutcome::NotFound,
        _ => DeleteOutcome::Exists,
    }
}

fn meta_arith(
    sh: &Shared,
    ts: &ThreadStats,
    raw_key: &[u8],
    flags: &MetaFlags<'_>,
    out: &mut Vec<u8>,
) {
    let mut kb = [0u8; 256];
    let Some(key) = meta_key(raw_key, flags.base64_key(), &mut kb, out) else {
        return;
    };
    let incr = flags.mode != Some(MetaMode::Decr);
    let req = ArithRequest {
        key,
        incr,
        delta: flags.delta.unwrap_or(1),
        // Unlike md, memcached's ma takes `C0` as no compare (`do_add_delta`).
        cas: flags.compare_cas.filter(|&c| c != 0),
        vivify: flags.vivify.map(|ttl| (flags.initial.unwrap_or(0), ttl)),
        touch: flags.ttl,
        vivify_ttl_last: flags.has(b'N') && flag_pos(flags, b'T') < flag_pos(flags, b'N'),
    };
    let (hits, misses) = if incr {
        (&ts.incr_hits, &ts.incr_misses)
    } else {
        (&ts.decr_hits, &ts.decr_misses)
    };
    let outcome = sh.engine.arith(&req);
    match outcome {
        ArithOutcome::Ok {
            value,
            cas,
            ttl,
            ttl_before,
            created,
        } => {
            // memcached counts an item `N` created as neither hit nor miss.
            if !created {
                ThreadStats::incr(hits);
            }
            let mut digits = Vec::with_capacity(20);
            push_num(&mut digits, value);
            if flags.opaque_too_long {
                return opaque_too_long(out);
            }
            let want_value = flags.has(b'v');
            // memcached's `q` hides the reply to an update (`HD`, and `VA` too with `v`),
            // not the one for an item `N` just created.
            if flags.quiet() && !created {
                return;
            }
            if want_value {
                line(out, b"VA ");
                push_num(out, digits.len() as u64);
            } else {
                line(out, b"HD");
            }
            let mut ttls = TtlByFlagOrder::new(flags, created, ttl_before, ttl);
            for (i, (flag, token)) in flags.iter().enumerate() {
                let ttl = ttls.step(sh, i, flag, token);
                match flag {
                    b't' => push_ttl(out, ttl),
                    b'c' => {
                        line(out, b" c");
                        push_num(out, cas);
                    }
                    b'k' | b'O' => echo_key_opaque(out, flag, token, key, flags.base64_key()),
                    _ => {}
                }
            }
            line(out, CRLF);
            if want_value {
                line(out, &digits);
                line(out, CRLF);
            }
        }
        ArithOutcome::NotFound | ArithOutcome::Exists if flags.opaque_too_long => {
            if matches!(outcome, ArithOutcome::NotFound) {
                ThreadStats::incr(misses);
            }
            opaque_too_long(out)
        }
        ArithOutcome::NotFound => {
            ThreadStats::incr(misses);
            meta_status(out, b"NF", key, flags, None);
        }
        ArithOutcome::Exists => meta_status(out, b"EX", key, flags, None),
        ArithOutcome::NonNumeric => line(out, NON_NUMERIC),
        ArithOutcome::OutOfMemory => line(out, arith_oom_reply(sh, key, req.vivify.is_some())),
    }
}

/// memcached's `ma` has two out-of-memory replies: one when creating the item on a miss
/// (`N`), one when a grown value needs a new item. The engine reports both the same way;
/// the item's presence tells them apart (a vivify only allocates on a miss, a grow only
/// for an existing item).
fn arith_oom_reply(sh: &Shared, key: &[u8], vivify: bool) -> &'static [u8] {
    let peek = GetOptions {
        no_bump: true,
        ..GetOptions::default()
    };
    if vivify && sh.engine.get(key, &peek, |_| ()).is_none() {
        b"SERVER_ERROR Out of memory allocating new item\r\n"
    } else {
        b"SERVER_ERROR out of memory\r\n"
    }
}
