//! Operator commands that are neither storage nor plain stats: `lru tune|mode|temp_ttl`,
//! `stats cachedump`, and the per-prefix statistics behind `stats detail on|off|dump`,
//! with memcached 1.6.18's replies (proto_text.c `process_lru_command`,
//! `process_stat` "cachedump", items.c `item_cachedump`, stats_prefix.c).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use parking_lot::Mutex;

use crate::server::Shared;

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES` (63 classes + 1): `stats cachedump` ids at or
/// above it are refused.
const MAX_NUMBER_OF_SLAB_CLASSES: u32 = 64;
/// `stats cachedump` output cap, `END\r\n` included (items.c: 2 MB).
const CACHEDUMP_LIMIT: usize = 2 * 1024 * 1024;
/// memcached's default `temporary_ttl`.
pub const DEFAULT_TEMPORARY_TTL: i64 = 61;

/// Run-time state of the operator commands, shared by every worker.
pub struct AdminState {
    /// `stats detail on|off|dump`.
    pub prefix: PrefixStats,
    /// `lru temp_ttl`: whether short-lived items would go to a TEMP LRU (reported in
    /// `stats settings`; the engine has no TEMP LRU, so items still enter HOT).
    pub temp_lru: AtomicBool,
    pub temporary_ttl: AtomicI64,
}

impl AdminState {
    pub fn new(delimiter: u8, temp_lru: bool, temporary_ttl: i64) -> Self {
        AdminState {
            prefix: PrefixStats::new(delimiter),
            temp_lru: AtomicBool::new(temp_lru),
            temporary_ttl: AtomicI64::new(temporary_ttl),
        }
    }
}

fn words(args: &[u8]) -> impl Iterator<Item = &[u8]> {
    args.split(|&b| b == b' ').filter(|w| !w.is_empty())
}

/// memcached's `safe_strtoul` into a `uint32_t`: decimal with an optional sign, the whole
/// token; a negative value is refused; an unsigned long that does not fit 32 bits is
/// truncated, as the C assignment does.
fn safe_strtoul(t: &[u8]) -> Option<u32> {
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        v = v.wrapping_neg();
        if (v as i64) < 0 {
            return None;
        }
    }
    Some(v as u32)
}

/// memcached's `safe_strtol` into an `int32_t`.
fn safe_strtol(t: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(t).ok()?;
    s.parse::<i64>().ok().and_then(|v| i32::try_from(v).ok())
}

/// memcached's `safe_strtod`: the whole token as a floating-point number.
fn safe_strtod(t: &[u8]) -> Option<f64> {
    std::str::from_utf8(t).ok()?.parse::<f64>().ok()
}

/// `lru tune <hot pct> <warm pct> <hot factor> <warm factor>`, `lru mode flat|segmented`,
/// `lru temp_ttl <ttl>`, each with an optional trailing `noreply` (memcached's
/// `set_noreply_maybe`: the last word). `args` has at least one word.
pub fn lru(sh: &Shared, args: &[u8], out: &mut Vec<u8>) {
    let w: Vec<&[u8]> = words(args).collect();
    let noreply = w.last() == Some(&&b"noreply"[..]);
    // memcached's token count: the command, the words, the terminating empty token.
    let ntokens = w.len() + 2;
    let maintainer = sh.settings.lru_maintainer;
    let reply: &[u8] = match w.first().copied().unwrap_or_default() {
        b"tune" if ntokens >= 7 => {
            match (
                safe_strtoul(w[1]),
                safe_strtoul(w[2]),
                safe_strtod(w[3]),
                safe_strtod(w[4]),
            ) {
                (Some(hot), Some(warm), Some(hot_factor), Some(warm_factor)) => {
                    // `uint32_t` addition, wrapping as in C.
                    if hot.wrapping_add(warm) > 80 {
                        b"ERROR hot and warm pcts must not exceed 80"
                    } else if warm_factor <= 0.0 || hot_factor <= 0.0 {
                        b"ERROR hot/warm age factors must be greater than 0"
                    } else {
                        sh.engine.set_lru_tune(
                            hot.min(80) as u8,
                            warm.min(80) as u8,
                            hot_factor,
                            warm_factor,
                        );
                        b"OK"
                    }
                }
                _ => b"ERROR",
            }
        }
        b"mode" if ntokens >= 4 && maintainer => match w[1] {
            b"flat" => {
                sh.engine.set_lru_segmented(false);
                b"OK"
            }
            b"segmented" => {
                sh.engine.set_lru_segmented(true);
                b"OK"
            }
            _ => b"ERROR",
        },
        b"temp_ttl" if ntokens >= 4 && maintainer => match safe_strtol(w[1]) {
            Some(ttl) if ttl < 0 => {
                sh.admin.temp_lru.store(false, Ordering::Relaxed);
                b"OK"
            }
            Some(ttl) => {
                sh.admin.temp_lru.store(true, Ordering::Relaxed);
                sh.admin
                    .temporary_ttl
                    .store(i64::from(ttl), Ordering::Relaxed);
                b"OK"
            }
            None => b"ERROR",
        },
        _ => b"ERROR",
    };
    if !noreply {
        out.extend_from_slice(reply);
        out.extend_from_slice(b"\r\n");
    }
}

/// `stats cachedump <class id> <limit> [...]`: `ITEM <key> [<bytes> b; <exptime> s]` lines
/// for the items of the class's COLD LRU (exptime absolute, 0 for none), at most `limit`
/// (0: no limit) and at most 2 MB with the closing `END`. `rest` is what follows
/// `cachedump`.
pub fn cachedump(sh: &Shared, rest: &[u8], out: &mut Vec<u8>) {
    if !sh.settings.dump_enabled {
        out.extend_from_slice(b"CLIENT_ERROR stats cachedump not allowed\r\n");
        return;
    }
    let mut w = words(rest);
    let (Some(id), Some(limit)) = (w.next(), w.next()) else {
        out.extend_from_slice(b"CLIENT_ERROR bad command line\r\n");
        return;
    };
    let (Some(id), Some(limit)) = (safe_strtoul(id), safe_strtoul(limit)) else {
        out.extend_from_slice(b"CLIENT_ERROR bad command line format\r\n");
        return;
    };
    if id >= MAX_NUMBER_OF_SLAB_CLASSES {
        out.extend_from_slice(b"CLIENT_ERROR Illegal slab id\r\n");
        return;
    }
    let start = out.len();
    let mut shown = 0u32;
    let mut line = Vec::with_capacity(300);
    sh.engine.cachedump(id as usize, |key, bytes, exptime| {
        if limit != 0 && shown >= limit {
            return false;
        }
        line.clear();
        line.extend_from_slice(b"ITEM ");
        line.extend_from_slice(key);
        let _ = write!(line, " [{bytes} b; {exptime} s]\r\n");
        // memcached reserves room for "END\r\n" and its NUL.
        if out.len() - start + line.len() + 6 > CACHEDUMP_LIMIT {
            return false;
        }
        out.extend_from_slice(&line);
        shown += 1;
        true
    });
    out.extend_from_slice(b"END\r\n");
}

/// Per-prefix counters (`stats detail`), as memcached's stats_prefix.c keeps them: a
/// 256-bucket table hashed with MurmurHash3 (memcached's default hash), newest prefix
/// first within a bucket, so `stats detail dump` lists prefixes in memcached's order.
///
/// Costs nothing while off: callers test [`PrefixStats::enabled`] (one relaxed load)
/// before recording. While on, a key's prefix is found through an exact-match index with a
/// per-process random hash, so a client cannot make lookups slow by choosing prefixes that
/// share a bucket (MurmurHash3 with seed 0 is public); the buckets are scanned only the
/// first time a prefix is seen.
pub struct PrefixStats {
    enabled: AtomicBool,
    delimiter: u8,
    table: Mutex<PrefixTable>,
}

#[derive(Default)]
struct PrefixTable {
    /// Entry numbers per MurmurHash3 bucket, oldest first.
    buckets: Vec<Vec<u32>>,
    entries: Vec<PrefixEntry>,
    /// A prefix as seen in keys -> its entry. Besides every entry's own prefix, holds the
    /// shorter prefixes memcached's `strncmp` lets match a longer entry (at most
    /// [`MAX_PREFIXES`] of those).
    index: HashMap<Box<[u8]>, u32, ahash::RandomState>,
}

struct PrefixEntry {
    prefix: Box<[u8]>,
    gets: u64,
    hits: u64,
    sets: u64,
    deletes: u64,
}

const PREFIX_HASH_SIZE: usize = 256;
/// At most this many prefixes are tracked (memcached has no cap); keys with a prefix first
/// seen after that are not counted, so `stats detail on` under high-cardinality prefixes
/// costs at most about 2 MiB.
pub const MAX_PREFIXES: usize = 4096;

impl PrefixTable {
    /// The entry counting `prefix`, created if the table has room.
    fn entry(&mut self, prefix: &[u8]) -> Option<&mut PrefixEntry> {
        if let Some(&i) = self.index.get(prefix) {
            return Some(&mut self.entries[i as usize]);
        }
        if self.entries.len() >= MAX_PREFIXES {
            // Full: no bucket scan for prefixes never seen, so the cost stays one lookup.
            return None;
        }
        if self.buckets.is_empty() {
            self.buckets.resize_with(PREFIX_HASH_SIZE, Vec::new);
        }
        let bucket = &mut self.buckets[murmur3_32(prefix) as usize % PREFIX_HASH_SIZE];
        // Searched newest first. memcached compares with `strncmp` over the new prefix's
        // length, so a stored longer prefix that starts with it matches too.
        let entries = &self.entries;
        let found = bucket.iter().rev().copied().find(|&i| {
            let p = &entries[i as usize].prefix;
            p.len() >= prefix.len() && &p[..prefix.len()] == prefix
        });
        let i = match found {
            Some(i) => {
                if self.index.len() < 2 * MAX_PREFIXES {
                    self.index.insert(prefix.into(), i);
                }
                i
            }
            None => {
                let i = self.entries.len() as u32;
                bucket.push(i);
                self.entries.push(PrefixEntry {
                    prefix: prefix.into(),
                    gets: 0,
                    hits: 0,
                    sets: 0,
                    deletes: 0,
                });
                self.index.insert(prefix.into(), i);
                i
            }
        };
        Some(&mut self.entries[i as usize])
    }
}

impl PrefixStats {
    pub fn new(delimiter: u8) -> Self {
        PrefixStats {
            enabled: AtomicBool::new(false),
            delimiter,
            table: Mutex::new(PrefixTable::default()),
        }
    }

    /// Whether recording is on (`stats detail on`).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// The delimiter (`-D`, default `:`).
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// `stats reset` forgets every prefix (memcached's `stats_prefix_clear`).
    pub fn clear(&self) {
        *self.table.lock() = PrefixTable::default();
    }

    /// Applies `f` to the entry of `key`'s prefix (the bytes before the first delimiter;
    /// keys without one are not counted).
    fn with_entry(&self, key: &[u8], f: impl FnOnce(&mut PrefixEntry)) {
        let mut len = None;
        for (i, &b) in key.iter().enumerate() {
            if b == 0 {
                break;
            }
            if b == self.delimiter {
                len = Some(i);
                break;
            }
        }
        let Some(len) = len else {
            return;
        };
        if let Some(e) = self.table.lock().entry(&key[..len]) {
            f(e);
        }
    }

    pub fn record_get(&self, key: &[u8], hit: bool) {
        self.with_entry(key, |e| {
            e.gets += 1;
            e.hits += u64::from(hit);
        });
    }

    pub fn record_set(&self, key: &[u8]) {
        self.with_entry(key, |e| e.sets += 1);
    }

    pub fn record_delete(&self, key: &[u8]) {
        self.with_entry(key, |e| e.deletes += 1);
    }

    /// `stats detail dump`: `PREFIX <p> get <n> hit <n> set <n> del <n>` lines, `END`.
    pub fn dump(&self, out: &mut Vec<u8>) {
        let t = self.table.lock();
        for list in t.buckets.iter() {
            for e in list.iter().rev().map(|&i| &t.entries[i as usize]) {
                out.extend_from_slice(b"PREFIX ");
                out.extend_from_slice(&e.prefix);
                let _ = write!(
                    out,
                    " get {} hit {} set {} del {}\r\n",
                    e.gets, e.hits, e.sets, e.deletes
                );
            }
        }
        out.extend_from_slice(b"END\r\n");
    }
}

/// MurmurHash3 x86_32 with seed 0 (memcached's `MurmurHash3_x86_32`, its default hash).
fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, &b) in tail.iter().enumerate() {
            k |= u32::from(b) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_buckets_match_memcached_order() {
        // Bucket numbers of these prefixes, as memcached 1.6.18 orders `stats detail dump`.
        let b = |p: &[u8]| murmur3_32(p) as usize % PREFIX_HASH_SIZE;
        assert_eq!(b(b""), 0);
        assert_eq!(b(b"zz"), 24);
        assert_eq!(b(b"x"), 27);
        assert_eq!(b(b"ab"), 95);
        assert_eq!(b(b"c"), 95);
        assert_eq!(b(b"a"), 178);
        assert_eq!(b(b"abc"), 250);
    }

    #[test]
    fn prefix_stats_count_and_dump_in_memcached_order() {
        let p = PrefixStats::new(b':');
        p.record_get(b"c:1", false);
        p.record_set(b"ab:1");
        p.record_set(b"a:1");
        p.record_get(b"a:1", true);
        p.record_delete(b"a:2");
        p.record_set(b"nodelimiter");
        let mut out = Vec::new();
        p.dump(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PREFIX ab get 0 hit 0 set 1 del 0\r\nPREFIX c get 1 hit 0 set 0 del 0\r\n\
             PREFIX a get 1 hit 1 set 1 del 1\r\nEND\r\n"
        );
        p.clear();
        let mut out = Vec::new();
        p.dump(&mut out);
        assert_eq!(out, b"END\r\n");
    }

    #[test]
    fn same_prefix_accumulates_with_another_delimiter() {
        let p = PrefixStats::new(b'/');
        p.record_set(b"abc/1");
        p.record_set(b"abc/2");
        let mut out = Vec::new();
        p.dump(&mut out);
        assert_eq!(out, b"PREFIX abc get 0 hit 0 set 2 del 0\r\nEND\r\n");
    }

    #[test]
    fn prefix_count_is_capped() {
        let p = PrefixStats::new(b':');
        for i in 0..MAX_PREFIXES + 10 {
            p.record_set(format!("p{i}:k").as_bytes());
        }
        p.record_set(b"p0:again");
        let mut out = Vec::new();
        p.dump(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), MAX_PREFIXES + 1, "prefixes + END");
        assert!(text.contains("PREFIX p0 get 0 hit 0 set 2 del 0\r\n"));
        assert!(!text.contains(&format!("PREFIX p{} ", MAX_PREFIXES)));
    }

    #[test]
    fn shorter_prefix_in_the_same_bucket_counts_for_the_longer_one_as_in_memcached() {
        // memcached compares with strncmp over the new prefix's length: a new prefix that
        // starts a stored one in its bucket is counted as that one. Find such a pair.
        let bucket = |p: &[u8]| murmur3_32(p) as usize % PREFIX_HASH_SIZE;
        let (long, short) = (0..10_000)
            .map(|i| format!("q{i}xyzw"))
            .find_map(|l| {
                (1..l.len())
                    .find(|&n| bucket(&l.as_bytes()[..n]) == bucket(l.as_bytes()))
                    .map(|n| (l.clone(), l[..n].to_string()))
            })
            .expect("a pair in 10k strings");
        let p = PrefixStats::new(b':');
        p.record_set(format!("{long}:1").as_bytes());
        p.record_set(format!("{short}:1").as_bytes());
        p.record_get(format!("{short}:2").as_bytes(), true);
        let mut out = Vec::new();
        p.dump(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("PREFIX {long} get 1 hit 1 set 2 del 0\r\nEND\r\n")
        );
    }

    #[test]
    fn many_prefixes_in_one_bucket_are_each_counted() {
        let bucket = |p: &[u8]| murmur3_32(p) as usize % PREFIX_HASH_SIZE;
        let same: Vec<String> = (0..200_000)
            .map(|i| format!("b{i}"))
            .filter(|s| bucket(s.as_bytes()) == 7)
            .take(300)
            .collect();
        assert_eq!(same.len(), 300);
        let p = PrefixStats::new(b':');
        for s in &same {
            p.record_set(format!("{s}:k").as_bytes());
            p.record_delete(format!("{s}:k").as_bytes());
        }
        let mut out = Vec::new();
        p.dump(&mut out);
        let text = String::from_utf8(out).unwrap();
        // Newest first within the bucket, as memcached lists them.
        let listed: Vec<&str> = text.lines().filter_map(|l| l.split(' ').nth(1)).collect();
        let expected: Vec<&str> = same.iter().rev().map(String::as_str).collect();
        assert_eq!(listed[..300], expected[..]);
        assert!(text.lines().take(300).all(|l| l.ends_with(" set 1 del 1")));
    }

    #[test]
    fn strtoul_like_memcached() {
        assert_eq!(safe_strtoul(b"12"), Some(12));
        assert_eq!(safe_strtoul(b"-1"), None);
        assert_eq!(safe_strtoul(b"-0"), Some(0));
        assert_eq!(safe_strtoul(b"x"), None);
        assert_eq!(safe_strtoul(b""), None);
        assert_eq!(safe_strtoul(b"4294967297"), Some(1));
        assert_eq!(safe_strtoul(b"99999999999999999999999"), None);
        assert_eq!(safe_strtol(b"-5"), Some(-5));
        assert_eq!(safe_strtol(b"2147483648"), None);
        assert_eq!(safe_strtod(b"0.1"), Some(0.1));
        assert_eq!(safe_strtod(b"x"), None);
    }
}
