//! `lru_crawler metadump <classes|all|hash>` and `lru_crawler mgdump <...>`: every live
//! item, one line each, streamed to the client as it reads.
//!
//! ```text
//!  metadump: key=<uri-encoded key> exp=<unix time|-1> la=<unix time> cas=<n> fetch=<yes|no> cls=<id> size=<bytes>\n
//!            ... END\r\n
//!  mgdump:   mg <key>\r\n   (or  mg <base64 key> b\r\n  for keys that are not plain text)
//!            ... EN\r\n
//! ```
//!
//! The connection holds a [`Dump`] (an engine [`DumpCursor`]: shard + position in hash
//! order, a few words) instead of a reply: whenever its output buffer drains below the
//! high-water mark it asks for the next stretch ([`Dump::fill`], one shard lock for a few
//! hundred hash slots). Memory stays bounded by the output buffer however many items there
//! are and however slowly the client reads, and the shards are never locked for long.
//! Requests pipelined after the dump wait until it ends, as in memcached.
//!
//! As memcached: one dump at a time per server (`BUSY currently processing crawler
//! request`), refused while the crawler is disabled (`-o no_lru_crawler`, `lru_crawler
//! disable`) or dumps are (`-X`), refused when replies to earlier pipelined commands are
//! still queued, expired and flushed items left out. `all`, a class list and `hash` list
//! the same items (the walk is in hash order in every mode, which is what makes it
//! duplicate-free and miss-free across hash table resizes; memcached walks the LRUs for the
//! first two and may repeat or miss items that move between them).
//!
//! `mgdump` arrived in memcached 1.6.19 (1.6.18 answers `ERROR`); it is implemented as
//! later releases do it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::server::Shared;
use crate::storage::{DumpCursor, DumpItem, ALL_CLASSES};

/// Hash slots visited per engine step (one shard lock). At the default load this is
/// ~100-400 items, 10-40 KiB of output, a few tens of microseconds of lock time.
const SLOTS_PER_STEP: usize = 512;

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`: class ids must be below it.
const MAX_NUMBER_OF_SLAB_CLASSES: u64 = 64;

/// Which dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpKind {
    /// `lru_crawler metadump`.
    Meta,
    /// `lru_crawler mgdump`.
    Mg,
}

impl DumpKind {
    fn name(self) -> &'static str {
        match self {
            DumpKind::Meta => "metadump",
            DumpKind::Mg => "mgdump",
        }
    }
}

/// Marks the server's one dump slot taken; frees it when dropped (dump finished, or its
/// connection closed midway).
#[derive(Debug)]
struct Slot(Arc<AtomicBool>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A dump in progress on one connection.
#[derive(Debug)]
pub struct Dump {
    kind: DumpKind,
    cursor: DumpCursor,
    _slot: Slot,
}

/// The outcome of parsing `<classes|all|hash>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassSpec {
    /// `hash`: walk the hash table.
    Hash,
    /// `all` or a list: bit `i` selects class id `i` (possibly none, e.g. `,`).
    Classes(u64),
}

/// Parses `all`, `hash` or `1,2,...` as memcached's `lru_crawler_crawl` does: `strtok`
/// on commas (empty items are skipped), each id by `safe_strtoul` (optional `+`, decimal
/// digits, nothing after) and below 64. `None` = `BADCLASS invalid class id`.
pub fn parse_classes(arg: &[u8]) -> Option<ClassSpec> {
    match arg {
        b"all" => return Some(ClassSpec::Classes(ALL_CLASSES)),
        b"hash" => return Some(ClassSpec::Hash),
        _ => {}
    }
    let mut mask = 0u64;
    for item in arg.split(|&b| b == b',').filter(|i| !i.is_empty()) {
        let digits = item.strip_prefix(b"+").unwrap_or(item);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let id = digits.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        if !(1..MAX_NUMBER_OF_SLAB_CLASSES).contains(&id) {
            return None;
        }
        mask |= 1 << id;
    }
    Some(ClassSpec::Classes(mask))
}

/// `lru_crawler metadump|mgdump <arg>`: either a dump to stream (and nothing written yet)
/// or the error reply written to `out`. `pipelined`: replies to earlier commands of the
/// same batch are still queued (memcached refuses the dump then). The caller counts the
/// start (`lru_crawler_starts`) if it streams the dump.
pub fn start(
    sh: &Shared,
    kind: DumpKind,
    arg: &[u8],
    pipelined: bool,
    out: &mut Vec<u8>,
) -> Option<Dump> {
    let fail = |out: &mut Vec<u8>, msg: &str| {
        out.extend_from_slice(msg.as_bytes());
        out.extend_from_slice(b"\r\n");
        None
    };
    if !sh.crawler.enabled.load(Ordering::Relaxed) {
        return fail(out, "CLIENT_ERROR lru crawler disabled");
    }
    if !sh.settings.dump_enabled {
        return fail(
            out,
            match kind {
                DumpKind::Meta => "ERROR metadump not allowed",
                DumpKind::Mg => "ERROR key dump not allowed",
            },
        );
    }
    if pipelined {
        let msg = format!(
            "ERROR cannot pipeline other commands before {}",
            kind.name()
        );
        return fail(out, &msg);
    }
    let classes = match parse_classes(arg) {
        None => return fail(out, "BADCLASS invalid class id"),
        Some(ClassSpec::Hash) => ALL_CLASSES,
        Some(ClassSpec::Classes(m)) => m,
    };
    let slot = sh.crawler.dump_active.clone();
    if slot
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return fail(out, "BUSY currently processing crawler request");
    }
    let slot = Slot(slot);
    if classes == 0 {
        return fail(out, "NOTSTARTED no items to crawl");
    }
    Some(Dump {
        kind,
        cursor: DumpCursor::new(classes),
        _slot: slot,
    })
}

impl Dump {
    /// Appends the next stretch of the dump to `out` (one engine step); at the end appends
    /// the terminator and returns `false`.
    pub fn fill(&mut self, sh: &Shared, out: &mut Vec<u8>) -> bool {
        let kind = self.kind;
        let more = sh
            .engine
            .dump_step(&mut self.cursor, SLOTS_PER_STEP, |it| match kind {
                DumpKind::Meta => metadump_line(it, out),
                DumpKind::Mg => mgdump_line(it.key, out),
            });
        if !more {
            out.extend_from_slice(match kind {
                DumpKind::Meta => b"END\r\n",
                DumpKind::Mg => b"EN\r\n",
            });
        }
        more
    }
}

/// `key=... exp=... la=... cas=... fetch=... cls=... size=...\n` (memcached 1.6.18's
/// `crawler_metadump_eval`; the line ends in `\n` only).
pub fn metadump_line(it: &DumpItem<'_>, out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.extend_from_slice(b"key=");
    uri_encode(it.key, out);
    let _ = writeln!(
        out,
        " exp={} la={} cas={} fetch={} cls={} size={}",
        it.exptime,
        it.last_access,
        it.cas,
        if it.fetched { "yes" } else { "no" },
        it.class_id,
        it.size
    );
}

/// `mg <key>\r\n`, or `mg <base64> b\r\n` when the key could not be sent back as a plain
/// text-protocol token (memcached marks keys stored in base64 form; we do not keep that
/// bit, so any key with a space, control or non-ASCII byte is encoded).
pub fn mgdump_line(key: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"mg ");
    if key.iter().all(|&b| b > b' ' && b < 0x7f) {
        out.extend_from_slice(key);
    } else {
        protocol::meta::encode_key(key, out);
        out.extend_from_slice(b" b");
    }
    out.extend_from_slice(b"\r\n");
}

/// memcached's `uriencode`: letters, digits and `-._~` as they are, every other byte
/// `%XX` (upper-case hex).
pub fn uri_encode(key: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists_like_memcached() {
        use ClassSpec::*;
        assert_eq!(parse_classes(b"all"), Some(Classes(ALL_CLASSES)));
        assert_eq!(parse_classes(b"hash"), Some(Hash));
        assert_eq!(parse_classes(b"1"), Some(Classes(1 << 1)));
        assert_eq!(parse_classes(b"1,2"), Some(Classes(0b110)));
        assert_eq!(parse_classes(b"1,,2,"), Some(Classes(0b110)));
        assert_eq!(parse_classes(b",1"), Some(Classes(0b10)));
        assert_eq!(parse_classes(b"01"), Some(Classes(0b10)));
        assert_eq!(parse_classes(b"+1"), Some(Classes(0b10)));
        assert_eq!(parse_classes(b"63"), Some(Classes(1 << 63)));
        assert_eq!(parse_classes(b","), Some(Classes(0)));
        for bad in [
            &b"0"[..],
            b"64",
            b"200",
            b"-1",
            b"abc",
            b"1,abc",
            b"1,0",
            b"ALL",
            b"hash,1",
            b"0x1",
            b"1x",
            b"99999999999999999999999",
            b"+",
        ] {
            assert_eq!(parse_classes(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn uri_encoding_matches_memcached() {
        let mut out = Vec::new();
        uri_encode(b"a-b.c_d~e!f", &mut out);
        assert_eq!(out, b"a-b.c_d~e%21f");
        out.clear();
        uri_encode(b"\xff\x80z %\x00\x7f\x1f\t:/", &mut out);
        assert_eq!(out, b"%FF%80z%20%25%00%7F%1F%09%3A%2F");
    }

    #[test]
    fn line_formats() {
        let it = DumpItem {
            key: b"b%20ar",
            exptime: -1,
            last_access: 1_700_000_000,
            cas: 7,
            fetched: true,
            class_id: 3,
            size: 69,
        };
        let mut out = Vec::new();
        metadump_line(&it, &mut out);
        assert_eq!(
            out,
            b"key=b%2520ar exp=-1 la=1700000000 cas=7 fetch=yes cls=3 size=69\n"
        );
        out.clear();
        mgdump_line(b"foo", &mut out);
        mgdump_line(b"\x00\x01\x02", &mut out);
        mgdump_line(b"a b", &mut out);
        assert_eq!(out, b"mg foo\r\nmg AAEC b\r\nmg YSBi b\r\n");
    }
}
