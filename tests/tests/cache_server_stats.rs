//! `stats` compatibility: every field the real memcached prints (general, settings, slabs,
//! items) is printed by cache-server too, with the same kind of value, so tools that parse
//! memcached's stats (the Prometheus memcached_exporter, memcstat, pymemcache's `stats()`) read
//! ours unchanged. Fields that describe memcached internals we don't have are listed, each
//! with the reason.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

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
