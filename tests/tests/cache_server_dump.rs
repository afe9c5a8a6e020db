//! `lru_crawler metadump` / `lru_crawler mgdump` end to end: every line of a 200k-item
//! dump parsed and checked against what was stored (all three walk modes), the server's
//! memory staying flat while a slow client reads a dump far larger than its buffers, one
//! dump at a time (`BUSY`), the exact format and error replies next to the real memcached,
//! and `memcached-tool dump` (which is built on metadump) working against cache-server.
//!
//! Run with `--nocapture` to see timings and memory figures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e_tests::bins::OurServer;
use e2e_tests::external::{find_program, skip, Memcached};

const N: usize = 200_000;

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let w = TcpStream::connect(addr).expect("connect");
        w.set_nodelay(true).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let r = BufReader::with_capacity(64 * 1024, w.try_clone().unwrap());
        Client { w, r }
    }

    fn send(&mut self, b: &[u8]) {
        self.w.write_all(b).unwrap();
    }

    fn line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).unwrap();
        assert!(!l.is_empty(), "connection closed");
        l
    }

    /// Sends `cmd` and returns the reply's lines (each with its line end) up to and
    /// excluding `end`; panics on any other terminator-like line.
    fn dump(&mut self, cmd: &str, end: &[u8]) -> Vec<Vec<u8>> {
        self.send(format!("{cmd}\r\n").as_bytes());
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if l == end {
                return out;
            }
            out.push(l);
        }
    }

    fn stats(&mut self, args: &str) -> BTreeMap<String, String> {
        let lines = self.dump(&format!("stats {args}"), b"END\r\n");
        lines
            .iter()
            .map(|l| {
                let l = std::str::from_utf8(l).unwrap().trim_end();
                let rest = l.strip_prefix("STAT ").unwrap_or_else(|| panic!("{l:?}"));
                let (k, v) = rest.split_once(' ').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// How an item was stored.
#[derive(Clone, Debug)]
struct Stored {
    value_len: usize,
    /// 0, a relative TTL, or an absolute Unix time.
    exptime: i64,
    fetched: bool,
}

/// An absolute exptime (> 30 days, so memcached reads it as a Unix time).
const ABS_EXPTIME: i64 = 2_000_000_000;

fn spec(i: usize) -> (String, Stored) {
    let exptime = match i % 3 {
        0 => 0,
        1 => 3600 + (i % 100) as i64,
        _ => ABS_EXPTIME + (i % 1000) as i64,
    };
    (
        format!("key:{i}"),
        Stored {
            value_len: 10 + (i * 7) % 200,
            exptime,
            fetched: i.is_multiple_of(1000),
        },
    )
}

/// Stores `n` items (plus two binary keys via `ms ... b`) and fetches every 1000th.
/// Returns the raw keys with how they were stored, and the Unix time window of the fill.
fn fill(addr: SocketAddr, n: usize) -> (HashMap<Vec<u8>, Stored>, i64, i64) {
    let t0 = unix_now();
    let mut c = Client::connect(addr);
    let mut all = HashMap::new();
    let value = vec![b'v'; 300];
    for start in (0..n).step_by(2000) {
        let end = (start + 2000).min(n);
        let mut batch = Vec::new();
        for i in start..end {
            let (k, s) = spec(i);
            batch.extend_from_slice(
                format!("set {k} {} {} {}\r\n", i % 5, s.exptime, s.value_len).as_bytes(),
            );
            batch.extend_from_slice(&value[..s.value_len]);
            batch.extend_from_slice(b"\r\n");
            all.insert(k.into_bytes(), s);
        }
        c.send(&batch);
        for _ in start..end {
            assert_eq!(c.line(), b"STORED\r\n");
        }
    }
    // Binary keys (base64 on the wire): \x00\x01\x02 and "a b".
    c.send(b"ms AAEC 3 b T0\r\nbin\r\nms YSBi 3 b T0\r\nbin\r\n");
    assert_eq!(c.line(), b"HD\r\n");
    assert_eq!(c.line(), b"HD\r\n");
    for k in [&b"\x00\x01\x02"[..], b"a b"] {
        all.insert(
            k.to_vec(),
            Stored {
                value_len: 3,
                exptime: 0,
                fetched: false,
            },
        );
    }
    let mut req = Vec::new();
    for i in (0..n).step_by(1000) {
        req.extend_from_slice(format!("get key:{i}\r\n").as_bytes());
    }
    c.send(&req);
    for _ in (0..n).step_by(1000) {
        assert!(c.line().starts_with(b"VALUE "));
        c.line();
        assert_eq!(c.line(), b"END\r\n");
    }
    (all, t0, unix_now())
}

fn uri_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).expect("hex digit") as u8;
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            out.push(hex(s[i + 1]) << 4 | hex(s[i + 2]));
            i += 3;
        } else {
            assert!(
                s[i].is_ascii_alphanumeric() || b"-._~".contains(&s[i]),
                "byte {:?} should have been encoded",
                s[i] as char
            );
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
struct Meta {
    exp: i64,
    la: i64,
    cas: u64,
    fetch: bool,
    cls: u32,
    size: u64,
}

/// `key=<uri> exp=<n> la=<n> cas=<n> fetch=<yes|no> cls=<n> size=<n>\n`, exactly.
fn parse_meta(line: &[u8]) -> (Vec<u8>, Meta) {
    let text = line
        .strip_suffix(b"\n")
        .unwrap_or_else(|| panic!("no line end: {:?}", String::from_utf8_lossy(line)));
    assert!(!text.contains(&b'\r'), "metadump lines end in \\n only");
    let fields: Vec<&[u8]> = text.split(|&b| b == b' ').collect();
    let names = ["key=", "exp=", "la=", "cas=", "fetch=", "cls=", "size="];
    assert_eq!(
        fields.len(),
        names.len(),
        "{}",
        String::from_utf8_lossy(line)
    );
    let v: Vec<&[u8]> = fields
        .iter()
        .zip(names)
        .map(|(f, n)| {
            f.strip_prefix(n.as_bytes())
                .unwrap_or_else(|| panic!("expected {n} in {}", String::from_utf8_lossy(line)))
        })
        .collect();
    let num = |b: &[u8]| -> i64 { std::str::from_utf8(b).unwrap().parse().unwrap() };
    let fetch = match v[4] {
        b"yes" => true,
        b"no" => false,
        other => panic!("fetch={}", String::from_utf8_lossy(other)),
    };
    (
        uri_decode(v[0]),
        Meta {
            exp: num(v[1]),
            la: num(v[2]),
            cas: num(v[3]) as u64,
            fetch,
            cls: num(v[5]) as u32,
            size: num(v[6]) as u64,
        },
    )
}

/// Parses and checks a whole metadump against what was stored; returns key -> fields.
fn check_metadump(
    lines: &[Vec<u8>],
    stored: &HashMap<Vec<u8>, Stored>,
    (t0, t1): (i64, i64),
    chunk_sizes: &BTreeMap<u32, u64>,
) -> HashMap<Vec<u8>, Meta> {
    let mut got = HashMap::new();
    for l in lines {
        let (k, m) = parse_meta(l);
        let s = stored
            .get(&k)
            .unwrap_or_else(|| panic!("dumped a key never stored: {k:?}"));
        // The server clock is whole seconds since its start: allow a little slack.
        match s.exptime {
            0 => assert_eq!(m.exp, -1),
            e if e > 30 * 24 * 3600 => assert_eq!(m.exp, e),
            ttl => assert!(
                (t0 + ttl - 3..=t1 + ttl + 3).contains(&m.exp),
                "exp {} for ttl {ttl} set in {t0}..{t1}",
                m.exp
            ),
        }
        assert!(
            (t0 - 3..=t1 + 3).contains(&m.la),
            "la {} not in {t0}..{t1}",
            m.la
        );
        assert_eq!(m.fetch, s.fetched, "fetch for {k:?}");
        assert!(m.cas > 0);
        let min = (k.len() + s.value_len) as u64;
        assert!(
            m.size >= min && m.size <= min + 64,
            "size {} for {} bytes",
            m.size,
            min
        );
        let chunk = chunk_sizes
            .get(&m.cls)
            .unwrap_or_else(|| panic!("cls {} has no pages", m.cls));
        assert!(
            m.size <= *chunk,
            "size {} in class {} ({chunk})",
            m.size,
            m.cls
        );
        assert!(got.insert(k, m).is_none(), "a key was dumped twice");
    }
    assert_eq!(got.len(), stored.len(), "dumped keys != stored keys");
    // Sizes map to classes monotonically (each item in the smallest class it fits).
    let mut by_size: Vec<(u64, u32)> = got.values().map(|m| (m.size, m.cls)).collect();
    by_size.sort_unstable();
    assert!(
        by_size.windows(2).all(|w| w[0].1 <= w[1].1),
        "cls not monotonic in size"
    );
    let cas: HashSet<u64> = got.values().map(|m| m.cas).collect();
    assert_eq!(cas.len(), got.len(), "CAS values are unique");
    got
}

fn chunk_sizes(c: &mut Client) -> BTreeMap<u32, u64> {
    c.stats("slabs")
        .iter()
        .filter_map(|(k, v)| {
            let (cls, f) = k.split_once(':')?;
            (f == "chunk_size").then(|| (cls.parse().unwrap(), v.parse().unwrap()))
        })
        .collect()
}

#[test]
fn dumps_200k_items_in_every_mode() {
    let server = OurServer::start("cache-server", &["-p", "0", "-U", "0", "-m", "64"]).unwrap();
    let addr = server.addr();
    let t = Instant::now();
    let (stored, t0, t1) = fill(addr, N);
    eprintln!("filled {} items in {:?}", stored.len(), t.elapsed());
    let mut c = Client::connect(addr);
    let general = c.stats("");
    assert_eq!(general["curr_items"], stored.len().to_string());
    assert_eq!(general["evictions"], "0");
    let chunks = chunk_sizes(&mut c);

    let mut dumps = Vec::new();
    for mode in ["all", "hash"] {
        let t = Instant::now();
        let lines = c.dump(&format!("lru_crawler metadump {mode}"), b"END\r\n");
        let bytes: usize = lines.iter().map(Vec::len).sum();
        eprintln!(
            "metadump {mode}: {} lines, {} bytes in {:?}",
            lines.len(),
            bytes,
            t.elapsed()
        );
        dumps.push(check_metadump(&lines, &stored, (t0, t1), &chunks));
    }
    assert_eq!(dumps[0], dumps[1], "`all` and `hash` report the same items");

    // Per-class dumps partition the items, as `stats items` counts them.
    let items = c.stats("items");
    let classes: Vec<u32> = items
        .keys()
        .filter_map(|k| {
            k.strip_prefix("items:")?
                .strip_suffix(":number")?
                .parse()
                .ok()
        })
        .collect();
    assert!(classes.len() > 1);
    let (a, b) = classes.split_at(classes.len() / 2);
    let list = |ids: &[u32]| ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut union = HashMap::new();
    for part in [a, b] {
        let lines = c.dump(&format!("lru_crawler metadump {}", list(part)), b"END\r\n");
        let mut per_class: BTreeMap<u32, usize> = BTreeMap::new();
        for l in &lines {
            let (k, m) = parse_meta(l);
            assert!(part.contains(&m.cls));
            *per_class.entry(m.cls).or_default() += 1;
            assert!(union.insert(k, m).is_none(), "a key in two class dumps");
        }
        for (cls, n) in per_class {
            assert_eq!(items[&format!("items:{cls}:number")], n.to_string());
        }
    }
    assert_eq!(union, dumps[0]);

    // mgdump: `mg <key>\r\n` lines, base64 for the binary keys, then EN.
    for mode in ["all", "hash"] {
        let t = Instant::now();
        let lines = c.dump(&format!("lru_crawler mgdump {mode}"), b"EN\r\n");
        eprintln!("mgdump {mode}: {} lines in {:?}", lines.len(), t.elapsed());
        let mut keys = HashSet::new();
        for l in &lines {
            let text = l.strip_suffix(b"\r\n").expect("mgdump lines end in \\r\\n");
            let rest = text.strip_prefix(b"mg ").expect("mg <key>");
            let key = match rest.strip_suffix(b" b") {
                Some(b64) => decode_base64(b64),
                None => rest.to_vec(),
            };
            assert!(keys.insert(key), "a key was dumped twice");
        }
        let want: HashSet<Vec<u8>> = stored.keys().cloned().collect();
        assert_eq!(keys, want);
        assert!(lines.contains(&b"mg AAEC b\r\n".to_vec()));
        assert!(lines.contains(&b"mg YSBi b\r\n".to_vec()));
    }
    // The connection is usable afterwards, and pipelined requests after a dump run
    // after it.
    c.send(b"lru_crawler metadump 1,2\r\nget key:0\r\n");
    loop {
        if c.line() == b"END\r\n" {
            break;
        }
    }
    assert!(c.line().starts_with(b"VALUE key:0 0 10"));
}

fn decode_base64(s: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for &c in s.iter().filter(|&&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

fn set_rcvbuf(s: &TcpStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live i32 and its size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// A client reading a dump slowly holds back only itself: the server's RSS does not grow
/// with the dump, other clients are served meanwhile (one worker thread), a second dump is
/// refused with BUSY, and closing the slow connection midway frees the dump slot.
#[test]
fn slow_dump_reader_keeps_memory_bounded() {
    let server = OurServer::start(
        "cache-server",
        &["-p", "0", "-U", "0", "-m", "64", "-t", "1"],
    )
    .unwrap();
    let addr = server.addr();
    let (stored, _, _) = fill(addr, N);
    let mut other = Client::connect(addr);
    // The full dump's size, read at full speed.
    let full: usize = other
        .dump("lru_crawler metadump all", b"END\r\n")
        .iter()
        .map(Vec::len)
        .sum();
    let base = server.rss_kib().unwrap();

    let mut slow = Client::connect(addr);
    set_rcvbuf(&slow.w, 16 * 1024);
    slow.send(b"lru_crawler metadump all\r\n");
    let mut buf = vec![0u8; 4096];
    let mut raw = Vec::new();
    let mut max_rss = base;
    let started = Instant::now();
    let mut checked_others = false;
    let busy: &[u8] = b"BUSY currently processing crawler request\r\n";
    while started.elapsed() < Duration::from_millis(1500) {
        // 4 KiB per millisecond at most (straight from the socket, no read-ahead).
        let n = (&slow.w).read(&mut buf).unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(1));
        if raw.len() > 256 * 1024 && !checked_others {
            checked_others = true;
            // One dump at a time.
            for cmd in [
                "lru_crawler metadump all",
                "lru_crawler mgdump hash",
                "lru_crawler crawl all",
            ] {
                assert_eq!(other.dump(cmd, busy), Vec::<Vec<u8>>::new(), "{cmd}");
            }
            assert_eq!(other.stats("")["lru_crawler_running"], "1");
            // The (only) worker still serves others.
            other.send(b"get key:3\r\n");
            assert!(other.line().starts_with(b"VALUE key:3 "));
            other.line();
            assert_eq!(other.line(), b"END\r\n");
        }
        max_rss = max_rss.max(server.rss_kib().unwrap());
    }
    assert!(checked_others);
    let read = raw.len();
    assert!(
        read < full / 2,
        "the slow reader got {read} of {full} bytes: not slow enough to test anything"
    );
    let grew = max_rss.saturating_sub(base);
    eprintln!(
        "dump of {} items, {full} bytes; slow reader got {read} bytes in {:?}; \
         RSS {base} KiB before, max {max_rss} KiB during (+{grew} KiB)",
        stored.len(),
        started.elapsed()
    );
    assert!(
        grew < 4 * 1024,
        "RSS grew by {grew} KiB while a {full}-byte dump was being read slowly"
    );
    // Read the rest at full speed: complete.
    while !raw.ends_with(b"\nEND\r\n") {
        let n = (&slow.w).read(&mut buf).unwrap();
        assert!(n > 0, "closed before END");
        raw.extend_from_slice(&buf[..n]);
    }
    let lines = raw.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(lines, stored.len() + 1);
    assert_eq!(other.stats("")["lru_crawler_running"], "0");

    // Closing a connection in the middle of its dump frees the slot.
    let mut quitter = Client::connect(addr);
    set_rcvbuf(&quitter.w, 16 * 1024);
    quitter.send(b"lru_crawler metadump all\r\n");
    assert!(quitter.line().starts_with(b"key="));
    drop(quitter);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        other.send(b"lru_crawler mgdump all\r\n");
        let first = other.line();
        if first == b"BUSY currently processing crawler request\r\n" {
            assert!(
                Instant::now() < deadline,
                "dump slot still taken after the close"
            );
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut n = 1;
        while other.line() != b"EN\r\n" {
            n += 1;
        }
        assert_eq!(n, stored.len());
        break;
    }
}

/// Replaces what differs between servers by design (times, item sizes and class ids:
/// the slab layouts differ) and keeps the rest: the key encoding, exp relative to la, cas,
/// fetch, field order and line ends.
fn normalise(line: &[u8]) -> String {
    let (k, m) = parse_meta(line);
    let exp = match m.exp {
        -1 => "-1".to_string(),
        ABS_EXPTIME => "ABS".to_string(),
        e => format!("la+{}", e - m.la),
    };
    let mut key = Vec::new();
    for b in &k {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            key.push(*b as char);
        } else {
            key.extend(format!("%{b:02X}").chars());
        }
    }
    let key: String = key.into_iter().collect();
    assert_eq!(
        &line[4..4 + key.len()],
        key.as_bytes(),
        "re-encoding the key gives the same text"
    );
    format!(
        "key={key} exp={exp} la=LA cas={} fetch={} cls=C size=S\n",
        m.cas,
        if m.fetch { "yes" } else { "no" }
    )
}

/// One exchange on a fresh connection: send, then read until `end` (inclusive).
fn exchange_until(addr: SocketAddr, input: &[u8], end: &[u8]) -> Vec<u8> {
    let mut c = Client::connect(addr);
    c.w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.send(input);
    let mut out = Vec::new();
    while !out.ends_with(end) {
        let l = c.line();
        out.extend_from_slice(&l);
    }
    out
}

/// Like [`exchange_until`] for a dump command, retrying while the server answers BUSY:
/// memcached's own background crawls (the LRU maintainer schedules them) hold the
/// crawler for a moment now and then.
fn dump_until(addr: SocketAddr, input: &[u8], end: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(addr);
        c.send(input);
        let mut out = c.line();
        if out == b"BUSY currently processing crawler request\r\n" {
            assert!(Instant::now() < deadline, "{addr} stayed BUSY");
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        while !out.ends_with(end) {
            out.extend_from_slice(&c.line());
        }
        return out;
    }
}

#[test]
fn format_and_errors_match_memcached() {
    let mc = match Memcached::start_with(&["-m", "64"]) {
        Ok(m) => m,
        Err(e) => {
            return skip(
                "format_and_errors_match_memcached",
                &format!("memcached unavailable: {e}"),
            )
        }
    };
    let ours = OurServer::start("cache-server", &["-p", "0", "-U", "0", "-m", "64"]).unwrap();
    let setup: &[u8] = b"set plain 5 0 3\r\nabc\r\n\
        set ttl 0 1000 2\r\nhi\r\n\
        set abs 1 2000000000 1\r\nx\r\n\
        set b%20ar 0 0 1\r\ny\r\n\
        set a-b.c_d~e!f 0 0 1\r\nz\r\n\
        set a:b/c*+,;=?@[]\"'`{}|^\\&$# 0 0 1\r\nq\r\n\
        set \x01ctl\x7f\xff 0 0 1\r\nr\r\n\
        ms AAEC 3 b\r\nbin\r\n\
        get plain\r\n";
    let sorted = |raw: Vec<u8>| {
        assert!(raw.ends_with(b"\nEND\r\n"));
        let mut lines: Vec<String> = raw[..raw.len() - 5]
            .split_inclusive(|&b| b == b'\n')
            .map(normalise)
            .collect();
        lines.sort();
        lines
    };
    let mut dumps = Vec::new();
    for addr in [mc.addr(), ours.addr()] {
        let reply = exchange_until(addr, setup, b"END\r\n");
        assert!(reply.starts_with(b"STORED\r\n"));
        // memcached's LRU walk skips an item its maintainer holds at that moment (and
        // can repeat one it moves): retry until the LRU walk and the hash walk agree.
        // Ours must agree the first time.
        let tries = if addr == ours.addr() { 1 } else { 20 };
        let mut agreed = None;
        for _ in 0..tries {
            let all = sorted(dump_until(
                addr,
                b"lru_crawler metadump all\r\n",
                b"END\r\n",
            ));
            let hash = sorted(dump_until(
                addr,
                b"lru_crawler metadump hash\r\n",
                b"END\r\n",
            ));
            if all == hash {
                agreed = Some(all);
                break;
            }
            eprintln!("{addr}: LRU and hash walks differ:\n{all:?}\n{hash:?}");
        }
        dumps.push(agreed.unwrap_or_else(|| panic!("{addr}: `all` and `hash` never agreed")));
    }
    assert_eq!(dumps[0], dumps[1], "metadump differs (memcached first)");
    assert_eq!(dumps[1].len(), 8);

    // Error replies; each case on its own connection, none of them starts a dump.
    let cases: &[&[u8]] = &[
        b"lru_crawler metadump 0\r\n",
        b"lru_crawler metadump 64\r\n",
        b"lru_crawler metadump -1\r\n",
        b"lru_crawler metadump abc\r\n",
        b"lru_crawler metadump 1,abc\r\n",
        b"lru_crawler metadump 1,0\r\n",
        b"lru_crawler metadump ALL\r\n",
        b"lru_crawler metadump hash,1\r\n",
        b"lru_crawler metadump 0x1\r\n",
        b"lru_crawler metadump\r\n",
        b"lru_crawler metadump all extra\r\n",
        b"lru_crawler crawl 1,abc\r\n",
        b"lru_crawler crawl 0\r\n",
        b"mg plain v\r\nlru_crawler metadump all\r\n",
        b"set n 0 0 1 noreply\r\na\r\nlru_crawler metadump all\r\n",
        b"touch nope 1\r\nlru_crawler metadump 1\r\n",
        b"lru_crawler metadump 0\r\nlru_crawler metadump all\r\n",
    ];
    for case in cases {
        let mut input = case.to_vec();
        input.extend_from_slice(b"mn\r\n");
        let theirs = exchange_until(mc.addr(), &input, b"MN\r\n");
        let mine = exchange_until(ours.addr(), &input, b"MN\r\n");
        assert_eq!(
            String::from_utf8_lossy(&mine),
            String::from_utf8_lossy(&theirs),
            "case {:?}",
            String::from_utf8_lossy(case)
        );
    }
    // Flushing replies (get, mn) before a dump is fine; the dump follows them.
    for addr in [mc.addr(), ours.addr()] {
        let mut c = Client::connect(addr);
        c.send(b"get plain\r\nmn\r\nlru_crawler metadump 1\r\n");
        for want in [
            &b"VALUE plain 5 3\r\n"[..],
            b"abc\r\n",
            b"END\r\n",
            b"MN\r\n",
        ] {
            assert_eq!(c.line(), want, "{addr}");
        }
        let mut n = 0;
        loop {
            let l = c.line();
            if l == b"END\r\n" {
                break;
            }
            assert!(
                l.starts_with(b"key="),
                "{addr}: {}",
                String::from_utf8_lossy(&l)
            );
            n += 1;
        }
        assert!(n > 0);
    }
    // Disabled crawler. (memcached's crawler thread clears the setting on its way out,
    // after `disable` has answered: wait for it.)
    for addr in [mc.addr(), ours.addr()] {
        let mut c = Client::connect(addr);
        let setting = |c: &mut Client, want: &str| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.stats("settings")["lru_crawler"] != want {
                assert!(
                    Instant::now() < deadline,
                    "{addr}: lru_crawler never {want}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        assert_eq!(
            c.dump("lru_crawler disable", b"OK\r\n"),
            Vec::<Vec<u8>>::new()
        );
        setting(&mut c, "no");
        for cmd in [
            "lru_crawler metadump all",
            "lru_crawler mgdump all",
            "lru_crawler crawl all",
        ] {
            if cmd.contains("mgdump") && addr == mc.addr() {
                continue; // not in 1.6.18
            }
            c.send(format!("{cmd}\r\n").as_bytes());
            assert_eq!(
                c.line(),
                b"CLIENT_ERROR lru crawler disabled\r\n",
                "{addr}: {cmd}"
            );
        }
        assert_eq!(
            c.dump("lru_crawler enable", b"OK\r\n"),
            Vec::<Vec<u8>>::new()
        );
        setting(&mut c, "yes");
    }
    // Flushed items are not dumped. (memcached 1.6.18 leaves its dump slot taken after
    // NOTSTARTED, so that comes last.)
    for addr in [mc.addr(), ours.addr()] {
        assert_eq!(exchange_until(addr, b"flush_all\r\n", b"OK\r\n"), b"OK\r\n");
        assert_eq!(
            dump_until(addr, b"lru_crawler metadump all\r\n", b"END\r\n"),
            b"END\r\n"
        );
        assert_eq!(
            dump_until(addr, b"lru_crawler metadump ,\r\n", b"\r\n"),
            b"NOTSTARTED no items to crawl\r\n"
        );
    }
    // Ours keeps working after NOTSTARTED (memcached 1.6.18 does not).
    assert_eq!(
        dump_until(ours.addr(), b"lru_crawler metadump all\r\n", b"END\r\n"),
        b"END\r\n"
    );
    // mgdump arrived in memcached 1.6.19: 1.6.18 does not know it.
    assert_eq!(
        exchange_until(mc.addr(), b"lru_crawler mgdump all\r\n", b"\r\n"),
        b"ERROR\r\n"
    );
}

/// `-X` refuses dumps; `-o no_lru_crawler` refuses them until `lru_crawler enable`.
#[test]
fn dump_switches_match_memcached() {
    let cases: &[(&[&str], &[u8], &[u8])] = &[
        (
            &["-X"],
            b"lru_crawler metadump all\r\n",
            b"ERROR metadump not allowed\r\n",
        ),
        (
            &["-o", "no_lru_crawler"],
            b"lru_crawler metadump all\r\nlru_crawler enable\r\n",
            b"CLIENT_ERROR lru crawler disabled\r\nOK\r\n",
        ),
    ];
    for (flags, input, want) in cases {
        let mut args = vec!["-p", "0", "-U", "0"];
        args.extend_from_slice(flags);
        let ours = OurServer::start("cache-server", &args).unwrap();
        let mc = Memcached::start_with(flags);
        if let Err(e) = &mc {
            skip("dump_switches_match_memcached", &format!("memcached: {e}"));
        }
        let addrs = [Some(ours.addr()), mc.as_ref().ok().map(Memcached::addr)];
        for addr in addrs.into_iter().flatten() {
            assert_eq!(
                String::from_utf8_lossy(&exchange_until(addr, input, want)),
                String::from_utf8_lossy(want),
                "{addr} with {flags:?}"
            );
            // After `lru_crawler enable` (a new connection: no pipelining).
            if flags.contains(&"no_lru_crawler") {
                assert_eq!(
                    dump_until(addr, b"lru_crawler metadump all\r\n", b"END\r\n"),
                    b"END\r\n"
                );
            }
        }
    }
    let ours = OurServer::start("cache-server", &["-p", "0", "-U", "0", "-X"]).unwrap();
    assert_eq!(
        exchange_until(ours.addr(), b"lru_crawler mgdump all\r\n", b"\r\n"),
        b"ERROR key dump not allowed\r\n"
    );
    let mut c = Client::connect(ours.addr());
    assert_eq!(c.stats("settings")["dump_enabled"], "no");
}

/// `memcached-tool HOST:PORT dump` (metadump, then a `get` per key) against cache-server.
#[test]
fn memcached_tool_dump_works() {
    let tool = ["/usr/share/memcached/scripts/memcached-tool"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| find_program("memcached-tool"));
    let (Some(tool), Some(perl)) = (tool, find_program("perl")) else {
        return skip(
            "memcached_tool_dump_works",
            "memcached-tool or perl not installed",
        );
    };
    let ours = OurServer::start("cache-server", &["-p", "0", "-U", "0"]).unwrap();
    let mut c = Client::connect(ours.addr());
    let mut want = BTreeMap::new();
    for i in 0..500 {
        let (k, v, flags, exp) = (
            format!("tool:{i}"),
            format!("value-{i}"),
            i % 7,
            if i % 2 == 0 { 0 } else { ABS_EXPTIME },
        );
        c.send(format!("set {k} {flags} {exp} {}\r\n{v}\r\n", v.len()).as_bytes());
        assert_eq!(c.line(), b"STORED\r\n");
        want.insert(k, (flags, exp, v));
    }
    let out = Command::new(perl)
        .arg(tool)
        .arg(ours.addr().to_string())
        .arg("dump")
        .output()
        .expect("run memcached-tool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `add <key> <flags> <exp> <len>\r\n<value>\r\n` per item.
    let mut got = BTreeMap::new();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.split("\r\n");
    while let Some(head) = lines.next() {
        if head.is_empty() {
            continue;
        }
        let f: Vec<&str> = head.split(' ').collect();
        assert_eq!(f[0], "add", "{head:?}");
        let value = lines.next().unwrap().to_string();
        assert_eq!(value.len(), f[4].parse::<usize>().unwrap());
        got.insert(
            f[1].to_string(),
            (f[2].parse().unwrap(), f[3].parse().unwrap(), value),
        );
    }
    assert_eq!(got, want);
}
