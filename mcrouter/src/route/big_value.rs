//! `BigValueRoute` (mcrouter's, on with `--big-value-split-threshold N`): stores values
//! larger than N bytes as chunks under keys of their own, so values beyond a server's
//! item size limit (memcached's `-I`, 1 MiB by default) fit, and a big value's load is
//! spread over the pool. It sits above the whole route tree: every chunk is routed like a
//! request of its own key.
//!
//! ```text
//!  set k <flags> <exptime> <L > N bytes>
//!    ├─ set k:0:<S> 0 <exptime> <N bytes>      chunks, --big-value-batch-size at a time
//!    ├─ ...                                     (the next batch once the previous answered)
//!    ├─ set k:<n-1>:<S> 0 <exptime> <rest>
//!    └─ then, if every chunk was STORED: the client's own command on k with
//!       <flags | 0x8000> and the value "1-<n>-<S>"; its reply answers the client
//!       (else the worst chunk reply does, and nothing is written under k)
//!  get k ──> VALUE k <flags with 0x8000> ... "1-<n>-<S>"
//!              └─ get k:0:<S> ... k:<n-1>:<S> ──> VALUE k <flags> <L> [<cas>] <joined chunks>
//! ```
//!
//! - As in mcrouter: `n = ceil(L / N)`; a value of exactly N bytes is not split; `S` is
//!   the low 32 bits of SpookyHash V2 (seeds 0, 0) of the whole value, so the same value
//!   always gets the same chunk keys and mcrouter reads what this router writes, and the
//!   other way round; chunks are plain `set`s with flags 0 and the request's exptime;
//!   0x8000 is `MC_MSG_FLAG_BIG_VALUE` (hidden from readers with
//!   `--big-value-hide-reply-flag`).
//! - Split: `set`, `add`, `replace`, `cas`, `lease-set` (`add`, `replace` and `cas` are
//!   decided by the index write, after the chunks). An `append`/`prepend` of more than
//!   the threshold is refused (`SERVER_ERROR`): mcrouter appends the index text to the
//!   item, which then reads as that text. A small one onto a big value makes it
//!   unreadable (a miss), as in mcrouter. Reassembled:
//!   `get`, `gets` (the CAS unique is the index's, so `gets` then `cas` works), `gat`,
//!   `gats` (only the index is touched) and `lease-get`. A missing chunk makes the read a
//!   miss; for `lease-get` the stale index is removed (`gets` + `cas` with exptime -1) and
//!   the lease-get tried once more, so the client gets a lease token and refills.
//! - Everything else, including `delete`, `touch` and the meta commands, acts on the key
//!   alone: removing the index removes the value; chunks are left to expire or be evicted.
//! - Differences from mcrouter: an index that does not parse answers a plain miss to
//!   `lease-get` too (mcrouter: a miss with lease token -1); a key too long to take a
//!   chunk suffix (`:<i>:<S>`, up to 16 bytes more) gets `SERVER_ERROR` instead of
//!   chunks the server refuses; meta `ms` is not split.
//! - Multi-key gets go one key at a time under this route (each may need its chunks).
//! - Order: while a split write of a key is under way (its chunks out, its index not yet
//!   written), later requests for that key wait for it and then run one after the other
//!   in the order they came, so a pipelined `set` (or `set noreply`) then `get` or
//!   `delete` of the key keeps its order. mcrouter runs a
//!   client's requests concurrently and gives no such order.
//! - While it is on, clients may send values up to [`MAX_BIG_VALUE`] (128 MiB) instead of
//!   1 MiB; the threshold is at most 1 MiB (each chunk is one item).

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use protocol::{Request, Response};

use super::key_order::KeyOrder;
use super::warm_up::storage_request;
use super::{join_all, ready, worst, Ctx, Route, RouteFuture, RouteRef};
use crate::reply::{ErrorClass, Reply, ReplyKind};
use crate::request::{Op, Req};

/// mcrouter's `MC_MSG_FLAG_BIG_VALUE`: the client flags of an index item.
pub const BIG_VALUE_FLAG: u32 = 0x8000;
/// Largest value a client may send while big values are on (the router holds a value
/// whole while it splits or joins it).
pub const MAX_BIG_VALUE: usize = 128 * 1024 * 1024;
/// Largest split threshold: a chunk is one item, so it must fit a server's default item
/// size limit (and the router's request limits).
pub const MAX_THRESHOLD: usize = protocol::Limits::DEFAULT_MAX_VALUE_SIZE;
/// The index format version mcrouter writes and reads.
const INDEX_VERSION: u32 = 1;

/// `--big-value-*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigValueOptions {
    /// Values longer than this are split (bytes; > 0).
    pub threshold: usize,
    /// Chunks written or read at once (0: all).
    pub batch_size: usize,
    /// Clear 0x8000 in the flags of reassembled replies.
    pub hide_reply_flag: bool,
}

impl BigValueOptions {
    pub const DEFAULT_BATCH_SIZE: usize = 10;
}

#[derive(Debug, Clone)]
pub struct BigValueRoute {
    child: RouteRef,
    opts: BigValueOptions,
    order: Arc<KeyOrder>,
}

/// What the index value says: chunk count and suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunksInfo {
    pub chunks: u32,
    pub suffix: u64,
}

impl ChunksInfo {
    /// `1-<chunks>-<suffix>`, digits only, the whole value (mcrouter's
    /// `parseChunksInfo`); no chunks is not a value either.
    pub fn parse(v: &[u8]) -> Option<ChunksInfo> {
        let s = std::str::from_utf8(v).ok()?;
        let mut it = s.split('-');
        let num = |t: Option<&str>| -> Option<u64> {
            let t = t?;
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        let version = num(it.next())?;
        let chunks = u32::try_from(num(it.next())?).ok()?;
        let suffix = num(it.next())?;
        if it.next().is_some() || version != u64::from(INDEX_VERSION) || chunks == 0 {
            return None;
        }
        Some(ChunksInfo { chunks, suffix })
    }

    pub fn encode(&self) -> String {
        format!("{INDEX_VERSION}-{}-{}", self.chunks, self.suffix)
    }
}

/// The chunk suffix of `value`: SpookyHash V2, seeds 0 and 0, first half, low 32 bits.
pub fn suffix_of(value: &[u8]) -> u64 {
    crate::hash::spooky::hash128(value, 0, 0).0 & 0xffff_ffff
}

/// The key of chunk `i`: `<key>:<i>:<suffix>`.
pub fn chunk_key(key: &[u8], i: u32, suffix: u64) -> Vec<u8> {
    let mut k = key.to_vec();
    k.extend_from_slice(format!(":{i}:{suffix}").as_bytes());
    k
}

fn too_long() -> Reply {
    Reply::error(
        ErrorClass::LocalError,
        "BigValueRoute: key too long to store a big value",
    )
}

/// The parts of a `VALUE` reply.
pub(crate) struct Hit<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    pub cas: Option<u64>,
    pub data: &'a [u8],
}

/// `VALUE <key> <flags> <len> [<cas>]`, the data and `END`, as a hit.
pub(crate) fn value_reply(key: &[u8], flags: u32, cas: Option<u64>, data: &[u8]) -> Reply {
    let mut out = Vec::with_capacity(data.len() + key.len() + 48);
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.extend_from_slice(format!(" {flags} {}", data.len()).as_bytes());
    if let Some(cas) = cas {
        out.extend_from_slice(format!(" {cas}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\nEND\r\n");
    Reply {
        kind: ReplyKind::Hit,
        bytes: Bytes::from(out),
    }
}

/// A hit's `VALUE` line and data.
pub(crate) fn value_of(reply: &Reply) -> Option<Hit<'_>> {
    match protocol::parse_response(&reply.bytes).ok()??.0 {
        Response::Value {
            key,
            flags,
            cas,
            data,
        } => Some(Hit {
            key,
            flags,
            cas,
            data,
        }),
        _ => None,
    }
}

impl BigValueRoute {
    pub fn new(child: RouteRef, opts: BigValueOptions) -> Self {
        BigValueRoute {
            child,
            opts,
            order: Arc::default(),
        }
    }

    /// `queued`: the request already holds its key's place in the queue (see [`KeyOrder`]).
    fn dispatch(&self, req: Req, ctx: &Rc<Ctx>, queued: bool) -> RouteFuture {
        match req.op() {
            Op::Set | Op::Add | Op::Replace | Op::Append | Op::Prepend | Op::Cas | Op::LeaseSet => {
                self.write(req, ctx, queued)
            }
            Op::Get | Op::Gets | Op::Gat | Op::Gats if req.key_count() == 1 => self.read(req, ctx),
            Op::LeaseGet => self.lease_get(req, ctx),
            _ => self.child.route(req, ctx),
        }
    }

    /// The client's write, split when its value is over the threshold.
    fn write(&self, req: Req, ctx: &Rc<Ctx>, queued: bool) -> RouteFuture {
        let Some(parsed) = req.parsed() else {
            return self.child.route(req, ctx);
        };
        let (key, data) = match parsed {
            Request::Storage { key, data, .. } | Request::LeaseSet { key, data, .. } => (key, data),
            _ => return self.child.route(req, ctx),
        };
        if data.len() <= self.opts.threshold {
            return self.child.route(req, ctx);
        }
        if matches!(req.op(), Op::Append | Op::Prepend) {
            // mcrouter appends the index text to the item, which then reads as that
            // text under the item's own flags: refuse instead.
            return ready(Reply::error(
                ErrorClass::LocalError,
                "BigValueRoute: cannot append or prepend more than the split threshold",
            ));
        }
        let suffix = suffix_of(data);
        let exptime = req.exptime().unwrap_or(0);
        let mut chunks = Vec::new();
        for (i, piece) in data.chunks(self.opts.threshold).enumerate() {
            let head = format!(" 0 {exptime} {}\r\n", piece.len());
            let k = chunk_key(key, i as u32, suffix);
            match storage_request(b"set ", &k, head.as_bytes(), piece) {
                Some(r) => chunks.push(r),
                None => return ready(too_long()),
            }
        }
        let info = ChunksInfo {
            chunks: chunks.len() as u32,
            suffix,
        };
        let Some(index) = index_request(&parsed, &info) else {
            return ready(too_long());
        };
        let (child, ctx, batch) = (self.child.clone(), ctx.clone(), self.opts.batch_size);
        let guard = (!queued).then(|| self.order.begin(req.key()));
        Box::pin(async move {
            let _guard = guard;
            let replies = in_batches(&child, chunks, batch, &ctx).await;
            match worst(replies) {
                Some(w) if w.kind != ReplyKind::Ok => w,
                _ => child.route(index, &ctx).await,
            }
        })
    }

    /// `get`/`gets`/`gat`/`gats`: the reply, with a big value's chunks joined.
    fn read(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let first = self.child.route(req.clone(), ctx);
        let (child, ctx, opts) = (self.child.clone(), ctx.clone(), self.opts);
        Box::pin(async move {
            let initial = first.await;
            match Assembly::of(&initial, &req, opts) {
                None => initial,
                Some(None) => Reply::default_for(&req),
                Some(Some(a)) => a.fetch(&child, &ctx).await.unwrap_or_else(|r| r),
            }
        })
    }

    /// `lease-get`: as [`Self::read`]; a value with a chunk missing has its index removed
    /// and is asked for once more (the second answer is normally a lease miss).
    fn lease_get(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let first = self.child.route(req.clone(), ctx);
        let (child, ctx, opts) = (self.child.clone(), ctx.clone(), self.opts);
        Box::pin(async move {
            let mut initial = first.await;
            for attempt in 0..2 {
                if attempt > 0 {
                    initial = child.route(req.clone(), &ctx).await;
                }
                let a = match Assembly::of(&initial, &req, opts) {
                    None => return initial,
                    Some(None) => return Reply::default_for(&req),
                    Some(Some(a)) => a,
                };
                let key = a.key_str();
                let gets = Req::from_wire(format!("gets {key}\r\n").as_bytes())
                    .map(|g| child.route(g, &ctx));
                let chunk_miss = match a.fetch(&child, &ctx).await {
                    Ok(hit) => return hit,
                    Err(r) if r.is_error() => return r,
                    Err(miss) => miss,
                };
                let meta = match gets {
                    Some(f) => f.await,
                    None => return chunk_miss,
                };
                if let Some(Hit { cas: Some(cas), .. }) = value_of(&meta) {
                    let line = format!("cas {key} 0 -1 0 {cas}\r\n\r\n");
                    if let Some(invalidate) = Req::from_wire(line.as_bytes()) {
                        let r = child.route(invalidate, &ctx).await;
                        if r.is_error() {
                            return r;
                        }
                    }
                } else if meta.is_error() && attempt > 0 {
                    return meta;
                }
            }
            Reply::error(
                ErrorClass::RemoteError,
                &format!(
                    "BigValueRoute: exhausted retries for lease-get for key {}",
                    String::from_utf8_lossy(req.key())
                ),
            )
        })
    }
}

/// The client's write with `info` as its value and 0x8000 added to its flags.
fn index_request(parsed: &Request<'_>, info: &ChunksInfo) -> Option<Req> {
    let value = info.encode();
    let mut r = *parsed;
    match &mut r {
        Request::Storage {
            flags,
            data,
            noreply,
            ..
        }
        | Request::LeaseSet {
            flags,
            data,
            noreply,
            ..
        } => {
            *flags |= BIG_VALUE_FLAG;
            *data = value.as_bytes();
            *noreply = false;
        }
        _ => return None,
    }
    let mut out = Vec::new();
    r.encode(&mut out);
    Req::from_wire(&out)
}

/// Route `reqs` to `child`, `batch` at a time (0: all at once); replies in order.
async fn in_batches(child: &RouteRef, reqs: Vec<Req>, batch: usize, ctx: &Rc<Ctx>) -> Vec<Reply> {
    let size = if batch == 0 { reqs.len().max(1) } else { batch };
    let mut out = Vec::with_capacity(reqs.len());
    let mut it = reqs.into_iter().peekable();
    while it.peek().is_some() {
        let futs: Vec<RouteFuture> = it
            .by_ref()
            .take(size)
            .map(|r| child.route(r, ctx))
            .collect();
        out.extend(join_all(futs).await);
    }
    out
}

/// A big value to put together: the index reply's parts and its chunks' requests.
struct Assembly {
    /// The key as the client sent it (chunk keys are built from it).
    key: Vec<u8>,
    /// `VALUE` line parts of the index reply.
    reply_key: Bytes,
    flags: u32,
    cas: Option<u64>,
    chunks: Vec<Req>,
    batch_size: usize,
}

impl Assembly {
    /// `None`: not a big value (pass the reply on); `Some(None)`: an index that does not
    /// parse or whose chunk keys cannot be asked for (a miss).
    fn of(initial: &Reply, req: &Req, opts: BigValueOptions) -> Option<Option<Assembly>> {
        let Hit {
            key: reply_key,
            flags,
            cas,
            data,
        } = value_of(initial)?;
        if flags & BIG_VALUE_FLAG == 0 {
            return None;
        }
        let Some(info) = ChunksInfo::parse(data) else {
            return Some(None);
        };
        let key = req.key().to_vec();
        let chunks: Option<Vec<Req>> = (0..info.chunks)
            .map(|i| {
                let mut line = b"get ".to_vec();
                line.extend_from_slice(&chunk_key(&key, i, info.suffix));
                line.extend_from_slice(b"\r\n");
                Req::from_wire(&line)
            })
            .collect();
        let Some(chunks) = chunks else {
            return Some(None);
        };
        let flags = if opts.hide_reply_flag {
            flags & !BIG_VALUE_FLAG
        } else {
            flags
        };
        Some(Some(Assembly {
            key,
            reply_key: initial.bytes.slice_ref(reply_key),
            flags,
            cas,
            chunks,
            batch_size: opts.batch_size,
        }))
    }

    fn key_str(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }

    /// The joined value as a hit, or (`Err`) the worst chunk reply: an error, or a miss.
    async fn fetch(self, child: &RouteRef, ctx: &Rc<Ctx>) -> Result<Reply, Reply> {
        let replies = in_batches(child, self.chunks, self.batch_size, ctx).await;
        let mut data = Vec::new();
        let mut bad: Option<Reply> = None;
        for r in replies {
            match value_of(&r) {
                Some(hit) if bad.is_none() => data.extend_from_slice(hit.data),
                Some(_) => {}
                None => {
                    if bad.as_ref().is_none_or(|b| r.severity() > b.severity()) {
                        bad = Some(r);
                    }
                }
            }
        }
        if let Some(b) = bad {
            return Err(if b.is_error() {
                b
            } else {
                Reply::default_for_op(Op::Get)
            });
        }
        Ok(value_reply(&self.reply_key, self.flags, self.cas, &data))
    }
}

impl Route for BigValueRoute {
    fn name(&self) -> String {
        format!(
            "BigValueRoute|threshold={}|batch_size={}",
            self.opts.threshold, self.opts.batch_size
        )
    }

    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let me = self.clone();
        self.order.route(req, ctx, move |req, ctx, queued| {
            me.dispatch(req, ctx, queued)
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        vec![self.child.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, seen, Mock};

    fn opts(threshold: usize, batch_size: usize, hide: bool) -> BigValueOptions {
        BigValueOptions {
            threshold,
            batch_size,
            hide_reply_flag: hide,
        }
    }

    fn first_lines(m: &Mock) -> Vec<String> {
        m.seen()
            .iter()
            .map(|r| {
                let s = String::from_utf8_lossy(r).into_owned();
                s.split("\r\n").next().unwrap_or("").to_string()
            })
            .collect()
    }

    #[test]
    fn index_values_parse_as_mcrouters() {
        // mcrouter's chunksInfoParsing and BigValueRouteTest cases.
        let ok = ChunksInfo::parse(b"1-2-7419256").unwrap();
        assert_eq!((ok.chunks, ok.suffix), (2, 7419256));
        assert_eq!(ok.encode(), "1-2-7419256");
        assert_eq!(ChunksInfo::parse(&b"1-2-3456789"[..7]).unwrap().suffix, 345);
        for bad in [
            "1-2", "1-2-3-4", "1-2-x", "", "1-10", "2-2-5", "1-0-5", "1--5", "1-2-+3",
        ] {
            assert_eq!(ChunksInfo::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn small_values_pass_through() {
        run(|ctx| async move {
            let m = Mock::replying("STORED\r\n");
            let r = BigValueRoute::new(m.r(), opts(128, 0, false));
            let v = "v".repeat(128);
            let got = r
                .route(Mock::req(&format!("set small 0 0 128\r\n{v}\r\n")), &ctx)
                .await;
            assert_eq!(&got.bytes[..], b"STORED\r\n");
            assert_eq!(first_lines(&m), ["set small 0 0 128"]);
        });
    }

    #[test]
    fn big_sets_write_chunks_then_the_index() {
        // mcrouter's BigValueRouteTest: 640 't' + 640 's' over threshold 128.
        run(|ctx| async move {
            let value = format!("{}{}", "t".repeat(640), "s".repeat(640));
            let s = suffix_of(value.as_bytes());
            let index = format!("1-10-{s}");
            let n = index.len();
            for (cmd, last) in [
                (
                    "set bigvalue_set 5 60 1280",
                    format!("set bigvalue_set 32773 60 {n}"),
                ),
                (
                    "add bigvalue_set 5 60 1280",
                    format!("add bigvalue_set 32773 60 {n}"),
                ),
                (
                    "cas bigvalue_set 5 60 1280 77",
                    format!("cas bigvalue_set 32773 60 {n} 77"),
                ),
                (
                    "lease-set bigvalue_set 9 5 60 1280",
                    format!("lease-set bigvalue_set 9 32773 60 {n}"),
                ),
            ] {
                let m = Mock::replying("STORED\r\n");
                let r = BigValueRoute::new(m.r(), opts(128, 3, false));
                let got = r
                    .route(Mock::req(&format!("{cmd}\r\n{value}\r\n")), &ctx)
                    .await;
                assert_eq!(&got.bytes[..], b"STORED\r\n");
                let seen = m.seen();
                assert_eq!(seen.len(), 11, "{cmd}");
                for (i, raw) in seen[..10].iter().enumerate() {
                    let piece = if i < 5 { "t" } else { "s" }.repeat(128);
                    let want = format!("set bigvalue_set:{i}:{s} 0 60 128\r\n{piece}\r\n");
                    assert_eq!(String::from_utf8_lossy(raw), want);
                }
                let want = format!("{last}\r\n{index}\r\n");
                assert_eq!(String::from_utf8_lossy(&seen[10]), want, "{cmd}");
            }
        });
    }

    #[test]
    fn requests_wait_for_a_split_write_of_their_key() {
        run(|ctx| async move {
            let m = Mock::delayed("STORED\r\n", 30);
            let r = BigValueRoute::new(m.r(), opts(4, 1, false));
            let set = r.route(Mock::req("set k 0 0 12\r\n0123456789ab\r\n"), &ctx);
            let del = r.route(Mock::req("delete k\r\n"), &ctx);
            let other = r.route(Mock::req("delete j\r\n"), &ctx);
            // The unrelated delete goes out at once; k's waits for the index write.
            assert_eq!(seen(&m), ["delete j\r\n"]);
            futures_util::future::join3(set, del, other).await;
            let lines: Vec<String> = seen(&m)
                .iter()
                .map(|r| r.split("\r\n").next().unwrap().to_string())
                .collect();
            let s = suffix_of(b"0123456789ab");
            assert_eq!(
                lines,
                [
                    "delete j".to_string(),
                    format!("set k:0:{s} 0 0 4"),
                    format!("set k:1:{s} 0 0 4"),
                    format!("set k:2:{s} 0 0 4"),
                    format!("set k 32768 0 {}", format!("1-3-{s}").len()),
                    "delete k".to_string(),
                ]
            );
            assert!(r.order.is_idle());
        });
    }

    #[test]
    fn requests_after_a_split_write_keep_their_order() {
        run(|ctx| async move {
            let m = Mock::delayed("STORED\r\n", 5);
            m.answer_key("k", "DELETED\r\n");
            let r = BigValueRoute::new(m.r(), opts(4, 0, false));
            let mut futs = Vec::new();
            for req in [
                "set k 0 0 8\r\n01234567\r\n",
                "set k 0 0 8\r\nabcdefgh\r\n",
                "delete k\r\n",
                "set k 0 0 2\r\nxy\r\n",
                "delete k\r\n",
            ] {
                futs.push(r.route(Mock::req(req), &ctx));
            }
            futures_util::future::join_all(futs).await;
            let lines: Vec<String> = seen(&m)
                .iter()
                .map(|r| r.split("\r\n").next().unwrap().to_string())
                .filter(|l| !l.contains(':'))
                .collect();
            let i = |v: &[u8]| format!("set k 32768 0 {}", format!("1-2-{}", suffix_of(v)).len());
            assert_eq!(
                lines,
                [
                    i(b"01234567"),
                    i(b"abcdefgh"),
                    "delete k".to_string(),
                    "set k 0 0 2".to_string(),
                    "delete k".to_string(),
                ]
            );
            assert!(r.order.is_idle());
        });
    }

    #[test]
    fn big_appends_are_refused() {
        run(|ctx| async move {
            let m = Mock::replying("STORED\r\n");
            let r = BigValueRoute::new(m.r(), opts(4, 0, false));
            for cmd in ["append", "prepend"] {
                let got = r
                    .route(Mock::req(&format!("{cmd} k 0 0 5\r\nabcde\r\n")), &ctx)
                    .await;
                assert!(got.is_error(), "{cmd}");
                let small = r
                    .route(Mock::req(&format!("{cmd} k 0 0 4\r\nabcd\r\n")), &ctx)
                    .await;
                assert_eq!(&small.bytes[..], b"STORED\r\n");
            }
            assert_eq!(m.count(), 2);
        });
    }

    #[test]
    fn a_failed_chunk_answers_and_leaves_the_index_alone() {
        run(|ctx| async move {
            let m = Mock::replying("STORED\r\n");
            let value = "x".repeat(300);
            let s = suffix_of(value.as_bytes());
            m.answer_key(&format!("k:1:{s}"), "SERVER_ERROR out of memory\r\n");
            let r = BigValueRoute::new(m.r(), opts(100, 0, false));
            let got = r
                .route(Mock::req(&format!("set k 0 0 300\r\n{value}\r\n")), &ctx)
                .await;
            assert_eq!(&got.bytes[..], b"SERVER_ERROR out of memory\r\n");
            assert_eq!(m.count(), 3, "no index write");
        });
    }

    #[test]
    fn big_gets_join_the_chunks() {
        run(|ctx| async move {
            for (hide, flags) in [(false, 32768 + 4), (true, 4)] {
                let m = Mock::replying("END\r\n");
                m.answer_key("key", "VALUE key 32772 8 99\r\n1-3-1234\r\nEND\r\n");
                for (i, part) in ["aaaa", "bbbb", "c"].iter().enumerate() {
                    let k = format!("key:{i}:1234");
                    m.answer_key(
                        &k,
                        &format!("VALUE {k} 0 {}\r\n{part}\r\nEND\r\n", part.len()),
                    );
                }
                let r = BigValueRoute::new(m.r(), opts(4, 2, hide));
                let got = r.route(Mock::req("gets key\r\n"), &ctx).await;
                let want = format!("VALUE key {flags} 9 99\r\naaaabbbbc\r\nEND\r\n");
                assert_eq!(String::from_utf8_lossy(&got.bytes), want);
                assert_eq!(
                    first_lines(&m),
                    [
                        "gets key",
                        "get key:0:1234",
                        "get key:1:1234",
                        "get key:2:1234"
                    ]
                );
                // A missing chunk is a miss; a bad index too, without chunk reads.
                m.answer_key("key:1:1234", "END\r\n");
                assert!(r.route(Mock::req("get key\r\n"), &ctx).await.is_miss());
                m.answer_key("key", "VALUE key 32768 4\r\n1-10\r\nEND\r\n");
                let before = m.count();
                assert!(r.route(Mock::req("get key\r\n"), &ctx).await.is_miss());
                assert_eq!(m.count(), before + 1);
            }
        });
    }

    #[test]
    fn lease_get_with_a_lost_chunk_drops_the_index_and_asks_again() {
        run(|ctx| async move {
            let m = Mock::replying("END\r\n");
            m.answer_key("key", "VALUE key 32768 8\r\n1-2-1234\r\nEND\r\n");
            m.answer_key("key:0:1234", "VALUE key:0:1234 0 1\r\na\r\nEND\r\n");
            let r = BigValueRoute::new(m.r(), opts(1, 0, false));
            // The second lease-get finds the index still there (the mock ignores the cas):
            // retries run out.
            let got = r.route(Mock::req("lease-get key\r\n"), &ctx).await;
            assert!(got.is_error());
            assert!(String::from_utf8_lossy(&got.bytes).contains("exhausted retries"));
            let lines = first_lines(&m);
            assert_eq!(lines[0], "lease-get key");
            assert!(lines.contains(&"gets key".to_string()), "{lines:?}");
            assert_eq!(lines.iter().filter(|l| *l == "lease-get key").count(), 2);
            // With a gets CAS unique the index is removed by cas with exptime -1.
            let m = Mock::replying("END\r\n");
            m.answer_key("key", "VALUE key 32768 8 42\r\n1-2-1234\r\nEND\r\n");
            let r = BigValueRoute::new(m.r(), opts(1, 0, false));
            r.route(Mock::req("lease-get key\r\n"), &ctx).await;
            assert!(first_lines(&m).contains(&"cas key 0 -1 0 42".to_string()));
        });
    }
}
