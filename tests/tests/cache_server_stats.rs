//! `stats` compatibility: every field the real memcached prints (general, settings, slabs,
//! items) is printed by cache-server too, with the same kind of value, so tools that parse
//! memcached's stats (the Prometheus memcached_exporter, memcstat, pymemcache's `stats()`) read
//! ours unchanged. Fields that describe memcached internals we don't have are listed, each
//! with the reason. `stats reset` zeroes the same fields as memcached's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use e2e_tests::bins::OurServer;
use e2e_tests::external::{skip, Memcached};

/// memcached fields with no counterpart here, and why.
const NOT_OURS: &[(&str, &str)] = &[
    ("libevent", "we use mio, not libevent"),
    ("response_obj_oom", "memcached's response object pool"),
    ("response_obj_count", "memcached's response object pool"),
    ("response_obj_bytes", "memcached's response object pool"),
    ("read_buf_count", "memcached's shared read buffer pool"),
    ("read_buf_bytes", "memcached's shared read buffer pool"),
    ("read_buf_bytes_free", "memcached's shared read buffer pool"),
    ("read_buf_oom", "memcached's shared read buffer pool"),
    ("reserved_fds", "memcached's fd reservation"),
    ("log_worker_dropped", "memcached's watcher log"),
    ("log_worker_written", "memcached's watcher log"),
    ("log_watcher_skipped", "memcached's watcher log"),
    ("log_watcher_sent", "memcached's watcher log"),
    ("log_watchers", "memcached's watcher log"),
    ("unexpected_napi_ids", "NAPI id steering"),
    ("round_robin_fallback", "NAPI id steering"),
    ("num_napi_ids", "NAPI id steering"),
    ("watcher_logbuf_size", "memcached's watcher log"),
    ("worker_logbuf_size", "memcached's watcher log"),
    ("read_buf_mem_limit", "memcached's shared read buffer pool"),
    ("memory_file", "memcached's restartable memory file"),
    ("ext_item_size", "extstore"),
    ("ext_item_age", "extstore"),
    ("ext_low_ttl", "extstore"),
    ("ext_recache_rate", "extstore"),
    ("ext_wbuf_size", "extstore"),
    ("ext_compact_under", "extstore"),
    ("ext_drop_under", "extstore"),
    ("ext_max_sleep", "extstore"),
    ("ext_max_frag", "extstore"),
    ("ext_drop_unread", "extstore"),
    ("slab_automove_freeratio", "extstore's automover"),
    ("ssl_enabled", "TLS"),
    ("ssl_chain_cert", "TLS"),
    ("ssl_key", "TLS"),
    ("ssl_verify_mode", "TLS"),
    ("ssl_keyformat", "TLS"),
    ("ssl_ciphers", "TLS"),
    ("ssl_ca_cert", "TLS"),
    ("ssl_wbuf_size", "TLS"),
    ("ssl_session_cache", "TLS"),
    ("ssl_kernel_tls", "TLS"),
    ("ssl_min_version", "TLS"),
];

fn stats(addr: SocketAddr, args: &str) -> BTreeMap<String, String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(
        format!(
            "stats{}{}\r\n",
            if args.is_empty() { "" } else { " " },
            args
        )
        .as_bytes(),
    )
    .unwrap();
    let mut out = BTreeMap::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l == "END" {
            return out;
        }
        let rest = l
            .strip_prefix("STAT ")
            .unwrap_or_else(|| panic!("stats {args}: bad line {l:?}"));
        let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
        // Per-class fields ("1:chunk_size", "items:1:number") are compared by field name.
        let field = k.rsplit(':').next().unwrap().to_string();
        out.insert(field, v.to_string());
    }
}

fn load(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for i in 0..50 {
        s.write_all(
            format!("set k{i} 1 0 5\r\nhello\r\nget k{i} nope\r\nincr k{i} 1\r\n").as_bytes(),
        )
        .unwrap();
    }
    s.write_all(b"mn\r\n").unwrap();
    let mut line = String::new();
    while line != "MN\r\n" {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
}

fn kind(v: &str) -> &'static str {
    if v.parse::<f64>().is_ok() {
        "number"
    } else if v == "yes" || v == "no" || v == "on" || v == "off" {
        "switch"
    } else {
        "text"
    }
}

#[test]
fn stats_fields_are_a_superset_of_memcacheds() {
    let mc = match Memcached::start_with(&["-m", "64", "-t", "2"]) {
        Ok(m) => m,
        Err(e) => {
            return skip(
                "stats_fields_are_a_superset_of_memcacheds",
                &format!("memcached unavailable: {e}"),
            )
        }
    };
    let ours = OurServer::start(
        "cache-server",
        &["-p", "0", "-U", "0", "-m", "64", "-t", "2"],
    )
    .unwrap();
    load(mc.addr());
    load(ours.addr());
    let allowed: BTreeMap<&str, &str> = NOT_OURS.iter().copied().collect();
    let mut problems = Vec::new();
    for args in ["", "settings", "slabs", "items"] {
        let theirs = stats(mc.addr(), args);
        let mine = stats(ours.addr(), args);
        assert!(!mine.is_empty(), "stats {args} is empty");
        for (field, value) in &theirs {
            if allowed.contains_key(field.as_str()) {
                continue;
            }
            match mine.get(field) {
                None => problems.push(format!(
                    "stats {args}: missing {field} (memcached: {value})"
                )),
                Some(v) if kind(v) != kind(value) => problems.push(format!(
                    "stats {args}: {field} is {v:?}, memcached prints {value:?}"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The formats tools rely on.
    let general = stats(ours.addr(), "");
    for f in ["rusage_user", "rusage_system"] {
        let (sec, usec) = general[f].split_once('.').expect("sec.usec");
        assert!(
            sec.parse::<u64>().is_ok() && usec.len() == 6,
            "{f} = {}",
            general[f]
        );
    }
    assert!(general["version"].starts_with("1.6."));
    assert_eq!(general["get_hits"], "50");
    assert_eq!(general["get_misses"], "50");
    assert_eq!(general["incr_misses"], "0");
    let settings = stats(ours.addr(), "settings");
    assert_eq!(settings["cas_enabled"], "yes");
    assert_eq!(settings["evictions"], "on");
}

// ------------------------------------------------------------------ stats reset

/// A connection with line reading.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Conn { w, r }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        assert!(!l.is_empty(), "connection closed");
        l
    }

    /// Sends `req` followed by `mn` and reads until `MN`: replies are not looked at.
    fn run(&mut self, req: &[u8]) {
        self.w.write_all(req).unwrap();
        self.w.write_all(b"mn\r\n").unwrap();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            self.r.read_until(b'\n', &mut buf).unwrap();
            assert!(!buf.is_empty(), "connection closed");
            if buf == b"MN\r\n" {
                return;
            }
            // Skip value bodies, which could contain "MN\r\n".
            if let Some(rest) = buf.strip_prefix(b"VALUE ") {
                let len: usize = std::str::from_utf8(rest)
                    .unwrap()
                    .split_whitespace()
                    .nth(2)
                    .unwrap()
                    .parse()
                    .unwrap();
                let mut data = vec![0u8; len + 2];
                self.r.read_exact(&mut data).unwrap();
            }
        }
    }

    /// One `stats <args>` reply, in order, full names ("3:cmd_set").
    fn stats_reply(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        loop {
            let l = self.line();
            let l = l.trim_end();
            if l == "END" {
                return out;
            }
            let (k, v) = l
                .strip_prefix("STAT ")
                .and_then(|r| r.split_once(' '))
                .unwrap_or_else(|| panic!("bad stats line {l:?}"));
            out.push((k.to_string(), v.to_string()));
        }
    }

    fn stat(&mut self, name: &str) -> u64 {
        self.w.write_all(b"stats\r\n").unwrap();
        let s = self.stats_reply();
        s.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or_else(|| panic!("no stat {name}"))
    }
}

/// Class ids with the most and the fewest pages (`stats slabs`).
fn richest_and_poorest(c: &mut Conn) -> (u32, u32) {
    c.w.write_all(b"stats slabs\r\n").unwrap();
    let mut pages: Vec<(u64, u32)> = c
        .stats_reply()
        .into_iter()
        .filter_map(|(k, v)| {
            let (cls, f) = k.split_once(':')?;
            (f == "total_pages").then(|| (v.parse().unwrap(), cls.parse().unwrap()))
        })
        .collect();
    pages.sort_unstable();
    (pages.last().unwrap().1, pages.first().unwrap().1)
}

/// Polls `stats` until `name` is non-zero (up to 10 s); false if it never is.
fn wait_for_stat(c: &mut Conn, name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if c.stat(name) > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Exercises as many counters as possible: commands of every kind, expired and flushed
/// fetches, crawler reclaims, evictions, LRU moves, a page move, rejected connections,
/// oversized values, a metadump.
fn reset_workload(addr: SocketAddr, max_conns: usize) {
    let mut c = Conn::new(addr);
    let mut req = Vec::new();
    for i in 0..2000 {
        req.extend_from_slice(
            format!("set k{i} 1 0 5\r\nhello\r\nget k{i} nope{i}\r\nincr k{i} 1\r\n").as_bytes(),
        );
    }
    c.run(&req);
    c.w.write_all(b"set n 0 0 2\r\n10\r\nincr n 1\r\ndecr n 1\r\ndecr nx 1\r\ngets n\r\n")
        .unwrap();
    for _ in 0..4 {
        c.line();
    }
    let cas: u64 = c.line().split_whitespace().nth(4).unwrap().parse().unwrap();
    c.line();
    c.line();
    c.run(
        format!(
            "cas n 0 0 1 {cas}\r\nx\r\ncas n 0 0 1 1\r\ny\r\ncas nx 0 0 1 1\r\nx\r\n\
             touch n 100\r\ntouch nx 1\r\ngat 100 n\r\ngats 100 nx\r\ndelete n\r\ndelete n\r\n\
             ms m 1\r\nx\r\nmg m v\r\nmd m\r\nma nn\r\nme k1\r\n\
             set exp 0 -1 1\r\nx\r\nget exp\r\n\
             set fl 0 0 1\r\nx\r\nflush_all\r\nget fl k1\r\n"
        )
        .as_bytes(),
    );
    let mut big = b"set big 0 0 2000000\r\n".to_vec();
    big.resize(big.len() + 2_000_000, b'x');
    big.extend_from_slice(b"\r\n");
    c.run(&big);
    // The crawler reclaims expired items that are not at an LRU tail (the LRU maintainers
    // take those): short-lived items between long-lived ones.
    let mut req = Vec::new();
    for (prefix, ttl) in [("cr_old", 0), ("cr_dead", 1), ("cr_new", 0)] {
        for i in 0..3000 {
            req.extend_from_slice(format!("set {prefix}{i} 0 {ttl} 1 noreply\r\nx\r\n").as_bytes());
        }
    }
    c.run(&req);
    // Their one-second TTL runs out (both clocks tick in whole seconds).
    std::thread::sleep(Duration::from_millis(2200));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.w.write_all(b"lru_crawler crawl all\r\n").unwrap();
        if c.line() == "OK\r\n" || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_stat(&mut c, "crawler_reclaimed");
    // Fill past the memory limit (evictions, or out of memory with -M), re-fetching some.
    for round in 0..4 {
        let mut req = Vec::new();
        for i in 0..40_000 {
            // Mostly one class (so it has pages to spare for a reassignment).
            let v = vec![
                b'v';
                if i % 10 == 0 {
                    100 + (i % 7) * 300
                } else {
                    100
                }
            ];
            let ttl = if i % 2 == 0 { 0 } else { 1000 };
            req.extend_from_slice(
                format!("set ev{round}_{i} 0 {ttl} {} noreply\r\n", v.len()).as_bytes(),
            );
            req.extend_from_slice(&v);
            req.extend_from_slice(b"\r\n");
        }
        c.run(&req);
        let mut req = Vec::new();
        for i in (0..40_000).step_by(10) {
            req.extend_from_slice(format!("get ev{round}_{i}\r\nget ev{round}_{i}\r\n").as_bytes());
        }
        c.run(&req);
    }
    // A page move.
    let (rich, poor) = richest_and_poorest(&mut c);
    c.w.write_all(format!("slabs reassign {rich} {poor}\r\n").as_bytes())
        .unwrap();
    let l = c.line();
    eprintln!("{addr} slabs reassign {rich} {poor}: {l:?}");
    if l == "OK\r\n" {
        wait_for_stat(&mut c, "slabs_moved");
    }
    // A dump (lru_crawler_starts); memcached may be busy crawling for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = Conn::new(addr);
        d.w.write_all(b"lru_crawler metadump 1\r\n").unwrap();
        let first = d.line();
        if first.starts_with("BUSY") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let mut l = first;
        while l != "END\r\n" {
            l = d.line();
        }
        break;
    }
    // Rejected connections: more than -c at once.
    let extra: Vec<TcpStream> = (0..max_conns + 8)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    for mut s in extra {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"mn\r\n");
        let mut buf = [0u8; 64];
        // Either "MN" or "ERROR Too many open connections" (then EOF).
        let _ = s.read(&mut buf);
    }
    assert!(wait_for_stat(&mut c, "rejected_connections"));
    // Live items again, some fetched.
    let mut req = Vec::new();
    for i in 0..1000 {
        req.extend_from_slice(
            format!("set live{i} 0 0 3\r\nabc\r\nget live{}\r\n", i / 2).as_bytes(),
        );
    }
    c.run(&req);
}

/// `stats`, `stats slabs`, `stats items`, then `stats reset` and the three again, in one
/// pipelined request (so nothing moves in between). Per field name (classes summed):
/// (before, after).
fn reset_snapshot(addr: SocketAddr) -> BTreeMap<(String, String), (f64, f64)> {
    let mut c = Conn::new(addr);
    c.w.write_all(
        b"stats\r\nstats slabs\r\nstats items\r\nstats reset\r\nstats\r\nstats slabs\r\nstats items\r\n",
    )
    .unwrap();
    let sections = ["general", "slabs", "items"];
    let mut before = Vec::new();
    for _ in sections {
        before.push(c.stats_reply());
    }
    assert_eq!(c.line(), "RESET\r\n");
    let mut out: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for (i, section) in sections.iter().enumerate() {
        let after = c.stats_reply();
        for (rows, slot) in [(&before[i], 0), (&after, 1)] {
            for (k, v) in rows.iter() {
                let Ok(v) = v.parse::<f64>() else { continue };
                let field = k.rsplit(':').next().unwrap().to_string();
                let e = out.entry((section.to_string(), field)).or_default();
                if slot == 0 {
                    e.0 += v;
                } else {
                    e.1 += v;
                }
            }
        }
    }
    out
}

/// Whether a field went (back) to zero: it had counted something and now shows no more
/// than the few bytes or ticks that arrive after the reset itself.
fn went_to_zero(before: f64, after: f64) -> bool {
    after < before && after <= 100.0
}

/// `stats reset` zeroes exactly the fields memcached 1.6.18 zeroes (`stats_reset()`:
/// `struct stats`, every thread's counters and per-class `slab_stats`/`lru_hits`, and
/// `item_stats_reset()`), and keeps the rest: the same workload on both servers, then
/// `stats reset`, then field by field. Fields the workload left at zero on either server
/// say nothing and are listed, not compared.
#[test]
fn stats_reset_zeroes_what_memcached_zeroes() {
    let allowed: BTreeMap<&str, &str> = NOT_OURS.iter().copied().collect();
    let mut compared_total = BTreeSet::new();
    for flags in [&["-m", "16"][..], &["-m", "16", "-M"]] {
        // No automove: it would spread the few pages of -m 16 over the classes, leaving
        // none to reassign by hand.
        let mut mc_args = vec!["-t", "2", "-c", "32", "-o", "slab_automove=0"];
        mc_args.extend_from_slice(flags);
        let mc = match Memcached::start_with(&mc_args) {
            Ok(m) => m,
            Err(e) => {
                return skip(
                    "stats_reset_zeroes_what_memcached_zeroes",
                    &format!("memcached unavailable: {e}"),
                )
            }
        };
        let mut our_args = vec!["-p", "0", "-U", "0"];
        our_args.extend_from_slice(&mc_args);
        let ours = OurServer::start("cache-server", &our_args).unwrap();
        reset_workload(mc.addr(), 32);
        reset_workload(ours.addr(), 32);
        let theirs = reset_snapshot(mc.addr());
        let mine = reset_snapshot(ours.addr());
        let mut problems = Vec::new();
        let mut skipped = Vec::new();
        for ((section, field), &(tb, ta)) in &theirs {
            if allowed.contains_key(field.as_str()) {
                continue;
            }
            let Some(&(mb, ma)) = mine.get(&(section.clone(), field.clone())) else {
                continue; // a missing field is the other test's business
            };
            if tb == 0.0 || mb == 0.0 {
                skipped.push(format!("{section}:{field} ({tb}/{mb})"));
                continue;
            }
            compared_total.insert(format!("{section}:{field}"));
            let (t, m) = (went_to_zero(tb, ta), went_to_zero(mb, ma));
            if t != m {
                problems.push(format!(
                    "{flags:?} stats {section} {field}: memcached {tb} -> {ta}, ours {mb} -> {ma}"
                ));
            }
        }
        eprintln!("{flags:?}: not compared (zero before the reset on one side): {skipped:?}");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
    eprintln!("compared: {compared_total:?}");
    // The counters that matter most were exercised (and so compared).
    for f in [
        "general:total_items",
        "general:total_connections",
        "general:rejected_connections",
        "general:evictions",
        "general:get_expired",
        "general:get_flushed",
        "general:crawler_reclaimed",
        "general:crawler_items_checked",
        "general:expired_unfetched",
        "general:slabs_moved",
        "general:moves_to_cold",
        "general:lru_crawler_starts",
        "general:bytes_read",
        "general:cmd_get",
        "general:store_too_large",
        "general:curr_items",
        "slabs:cmd_set",
        "slabs:get_hits",
        "slabs:total_pages",
        "items:evicted",
        "items:evicted_nonzero",
        "items:number",
        "items:mem_requested",
    ] {
        assert!(
            compared_total.contains(f),
            "{f} was not exercised on both servers"
        );
    }
}

// ------------------------------------------------------------------ stats conns

/// `stats conns` states, side by side with memcached: a connection that has sent
/// nothing (`conn_new_cmd`), one idle after a command (`conn_read`), one in the middle of
/// a storage command's data block (`conn_nread`), one skipping the data of a value too
/// large to store (`conn_swallow`), and the one asking (`conn_parse_cmd`).
#[test]
fn stats_conns_states_match_memcacheds() {
    let mc = match Memcached::start() {
        Ok(m) => m,
        Err(e) => return skip("stats_conns_states_match_memcacheds", &e.to_string()),
    };
    let ours = OurServer::start("cache-server", &["-p", "0", "-U", "0"]).unwrap();
    for addr in [mc.addr(), ours.addr()] {
        let fresh = TcpStream::connect(addr).unwrap();
        let mut idle = Conn::new(addr);
        idle.w.write_all(b"version\r\n").unwrap();
        assert!(idle.line().starts_with("VERSION "));
        let mut nread = TcpStream::connect(addr).unwrap();
        nread.write_all(b"set k 0 0 100\r\nxx").unwrap();
        // Over the 1 MB item size limit (memcached answers once the data is skipped).
        let mut swallow = Conn::new(addr);
        swallow.w.write_all(b"set big 0 0 2000000\r\nxx").unwrap();
        let mut asking = Conn::new(addr);
        let port_of = |s: &TcpStream| s.local_addr().unwrap().port();
        let want = [
            (port_of(&fresh), "conn_new_cmd"),
            (port_of(&idle.w), "conn_read"),
            (port_of(&nread), "conn_nread"),
            (port_of(&swallow.w), "conn_swallow"),
            (port_of(&asking.w), "conn_parse_cmd"),
        ];
        // The partial set reaches the server in its own time: ask until it shows.
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = loop {
            asking.w.write_all(b"stats conns\r\n").unwrap();
            let reply = asking.stats_reply();
            let mut by_id: BTreeMap<String, (u16, String)> = BTreeMap::new();
            for (k, v) in &reply {
                let (id, field) = k.split_once(':').unwrap();
                let e = by_id.entry(id.to_string()).or_default();
                match field {
                    "addr" => {
                        e.0 = v.rsplit(':').next().unwrap().parse().unwrap_or(0);
                    }
                    "state" => e.1 = v.clone(),
                    _ => {}
                }
            }
            let got: Vec<(u16, String)> = want
                .iter()
                .map(|(port, _)| {
                    let state = by_id
                        .values()
                        .find(|(p, _)| p == port)
                        .map_or("(missing)", |(_, s)| s.as_str());
                    (*port, state.to_string())
                })
                .collect();
            let same = got.iter().zip(&want).all(|(g, w)| g.1 == w.1);
            if same || Instant::now() > deadline {
                break got;
            }
        };
        let want: Vec<(u16, String)> = want.iter().map(|(p, s)| (*p, s.to_string())).collect();
        assert_eq!(got, want, "stats conns states at {addr}");
    }
}
