//! Differential tests of the operator commands against the real `memcached` 1.6.18:
//! `stats cachedump` (and libmemcached's `memcdump`, which uses it), `flush_all` under
//! `-F`, `stats detail on|off|dump` with `-D`, the `lru` command, and the names in
//! `stats settings`. Same script to both servers, byte-identical replies where the values
//! are deterministic.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::differential::{exchange, start_pair, stat_value};
use e2e_tests::external::{find_program, skip};

/// Polls `stats items` until class `class` has `n` items in COLD (memcached moves new
/// items there from HOT in its LRU maintainer thread, so this takes a moment there).
fn wait_cold(addr: SocketAddr, class: u32, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = exchange(addr, b"stats items\r\n", false);
        let cold = stat_value(&r, &format!("items:{class}:number_cold"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if cold >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: class {class} has {cold} of {n} items in COLD after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn cachedump_errors_like_memcached() {
    let Some((mc, ours)) = start_pair("cachedump_errors_like_memcached", &["-t", "1"]) else {
        return;
    };
    let script =
        b"stats cachedump\r\nstats cachedump 1\r\nstats cachedump x 1\r\nstats cachedump 1 x\r\n\
stats cachedump -1 0\r\nstats cachedump 1 -1\r\nstats cachedump 63 0\r\nstats cachedump 64 0\r\n\
stats cachedump 0 0\r\nstats cachedump 5 0 extra\r\nstats cachedump 4294967297 0\r\n";
    assert_eq!(
        text(&exchange(ours.addr(), script, false)),
        text(&exchange(mc.addr(), script, false))
    );
}

#[test]
fn cachedump_disabled_with_x_like_memcached() {
    let Some((mc, ours)) = start_pair("cachedump_disabled_with_x_like_memcached", &["-X"]) else {
        return;
    };
    let script = b"stats cachedump 1 0\r\nstats cachedump\r\n";
    let want = exchange(mc.addr(), script, false);
    assert!(text(&want).starts_with("CLIENT_ERROR stats cachedump not allowed\r\n"));
    assert_eq!(text(&exchange(ours.addr(), script, false)), text(&want));
}

/// Items in COLD are listed as `ITEM <key> [<bytes> b; <exptime> s]`, exptime 0 for none
/// and the absolute Unix time otherwise; `limit` caps the lines.
#[test]
fn cachedump_lists_cold_items_like_memcached() {
    let Some((mc, ours)) = start_pair("cachedump_lists_cold_items_like_memcached", &["-t", "1"])
    else {
        return;
    };
    let mut script = Vec::new();
    for i in 0..5 {
        script.extend_from_slice(
            format!("set cd:{i} 0 0 {}\r\n{}\r\n", i + 1, "v".repeat(i + 1)).as_bytes(),
        );
    }
    script.extend_from_slice(b"set cd:ttl 0 1000 2\r\nab\r\n");
    for addr in [mc.addr(), ours.addr()] {
        exchange(addr, &script, false);
        wait_cold(addr, 1, 6);
    }
    let dump = |addr, limit: u32| {
        let r = text(&exchange(
            addr,
            format!("stats cachedump 1 {limit}\r\n").as_bytes(),
            false,
        ));
        r.strip_suffix("MN\r\n").unwrap().to_string()
    };
    let (want, got) = (dump(mc.addr(), 0), dump(ours.addr(), 0));
    assert!(
        want.ends_with("END\r\n") && got.ends_with("END\r\n"),
        "{got}"
    );
    let fixed = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| !l.starts_with("ITEM cd:ttl "))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(fixed(&got), fixed(&want));
    assert!(want.contains("ITEM cd:0 [1 b; 0 s]\r\n"), "{want}");
    // The item with a TTL shows its absolute expiry time.
    let now = stat_value(&exchange(ours.addr(), b"stats\r\n", false), "time")
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let exp = got
        .lines()
        .find_map(|l| l.strip_prefix("ITEM cd:ttl [2 b; "))
        .and_then(|r| r.strip_suffix(" s]"))
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no cd:ttl line in {got}"));
    assert!(
        (now + 990..=now + 1000).contains(&exp),
        "exptime {exp}, now {now}"
    );
    // A limit.
    for (addr, r) in [
        (mc.addr(), dump(mc.addr(), 2)),
        (ours.addr(), dump(ours.addr(), 2)),
    ] {
        assert_eq!(r.matches("ITEM ").count(), 2, "{addr}: {r}");
    }
    // An empty class.
    assert_eq!(
        text(&exchange(ours.addr(), b"stats cachedump 30 0\r\n", false)),
        text(&exchange(mc.addr(), b"stats cachedump 30 0\r\n", false))
    );
}

/// libmemcached's `memcdump` lists the keys (it walks `stats items` + `stats cachedump`).
/// Items stored with a base64 key are left out, as memcached does (their keys may hold
/// spaces or line ends). Flat mode puts new items straight into COLD on both servers.
#[test]
fn cachedump_leaves_out_binary_keys_like_memcached() {
    let Some((mc, ours)) = start_pair(
        "cachedump_leaves_out_binary_keys_like_memcached",
        &["-t", "1"],
    ) else {
        return;
    };
    let script = b"lru mode flat\r\nms YSBiDQo= 1 b\r\ny\r\nms AAo= 1 b\r\nx\r\nset plain 0 0 1\r\nz\r\nstats cachedump 1 0\r\n";
    let want = text(&exchange(mc.addr(), script, false));
    assert!(want.contains("ITEM plain [1 b; 0 s]\r\nEND\r\n"), "{want}");
    assert_eq!(text(&exchange(ours.addr(), script, false)), want);
}

#[test]
fn memcdump_lists_our_keys() {
    let Some(prog) = find_program("memcdump") else {
        return skip(
            "memcdump_lists_our_keys",
            "memcdump (libmemcached-tools) not installed",
        );
    };
    let Some((mc, ours)) = start_pair("memcdump_lists_our_keys", &["-t", "1"]) else {
        return;
    };
    let mut script = Vec::new();
    let mut keys = Vec::new();
    for i in 0..20 {
        let key = format!("md:{i}");
        // Several classes.
        let len = 10 + i * 300;
        script.extend_from_slice(
            format!("set {key} 0 0 {len}\r\n{}\r\n", "x".repeat(len)).as_bytes(),
        );
        keys.push(key);
    }
    keys.sort();
    let mut lists = Vec::new();
    for addr in [mc.addr(), ours.addr()] {
        exchange(addr, &script, false);
        // Every class's items in COLD.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = text(&exchange(addr, b"stats items\r\n", false));
            let hot: u64 = r
                .lines()
                .filter(|l| l.contains(":number_hot ") || l.contains(":number_warm "))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            if hot == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{addr}: items stay in HOT/WARM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = Command::new(&prog)
            .arg(format!("--servers={addr}"))
            .output()
            .expect("run memcdump");
        assert!(out.status.success(), "memcdump against {addr}: {out:?}");
        let mut listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        listed.sort();
        lists.push(listed);
    }
    assert_eq!(lists[0], keys, "memcached");
    assert_eq!(lists[1], keys, "cache-server");
}

/// `flush_all <bad delay>`: memcached counts it in `cmd_flush`, and under `-F` refuses it
/// as any other flush (the `-F` check comes before the delay is parsed).
#[test]
fn flush_all_bad_delay_like_memcached() {
    for args in [&["-F", "-t", "1"][..], &["-t", "1"][..]] {
        let Some((mc, ours)) = start_pair("flush_all_bad_delay_like_memcached", args) else {
            return;
        };
        let script = b"flush_all abc\r\nflush_all abc noreply\r\nflush_all x y\r\nflush_all -\r\n";
        let want = exchange(mc.addr(), script, false);
        assert_eq!(
            text(&exchange(ours.addr(), script, false)),
            text(&want),
            "{args:?}"
        );
        let flushes = |addr| stat_value(&exchange(addr, b"stats\r\n", false), "cmd_flush");
        assert_eq!(
            flushes(ours.addr()),
            flushes(mc.addr()),
            "cmd_flush {args:?}"
        );
        assert_eq!(flushes(mc.addr()).as_deref(), Some("4"));
    }
}

const DETAIL_SCRIPT: &[u8] = b"stats detail\r\nstats detail bogus\r\nstats detail dump\r\nstats detail on\r\n\
stats detail dump\r\nset a:1 0 0 1\r\nx\r\nset a:2 0 0 1\r\ny\r\nget a:1 a:2 b c:3\r\ngets a:1\r\ngat 0 a:1\r\n\
add a:1 0 0 1\r\nx\r\ncas a:1 0 0 1 1\r\nx\r\nappend a:1 0 0 1\r\nx\r\nincr a:1 1\r\ntouch a:1 0\r\n\
delete a:1\r\ndelete zz:1\r\nmg m:1 v\r\nset ab:1 0 0 1\r\nx\r\nset abc:1 0 0 1\r\nx\r\nset :x 0 0 1\r\nx\r\n\
set x::y 0 0 1\r\nx\r\nset k/1 0 0 1\r\nx\r\nstats detail dump\r\nstats detail off\r\nget a:2\r\n\
stats detail dump\r\nstats detail on extra\r\nstats reset\r\nstats detail dump\r\n";

#[test]
fn stats_detail_like_memcached() {
    let Some((mc, ours)) = start_pair("stats_detail_like_memcached", &["-t", "1"]) else {
        return;
    };
    let want = exchange(mc.addr(), DETAIL_SCRIPT, false);
    assert!(
        text(&want).contains("PREFIX a get 4 hit 4 set 5 del 1\r\n"),
        "{}",
        text(&want)
    );
    assert_eq!(
        text(&exchange(ours.addr(), DETAIL_SCRIPT, false)),
        text(&want)
    );
    let setting = |addr, name| stat_value(&exchange(addr, b"stats settings\r\n", false), name);
    assert_eq!(
        setting(ours.addr(), "detail_enabled").as_deref(),
        Some("yes")
    );
    for name in ["detail_enabled", "stat_key_prefix"] {
        assert_eq!(
            setting(ours.addr(), name),
            setting(mc.addr(), name),
            "{name}"
        );
    }
}

#[test]
fn stats_detail_delimiter_flag_like_memcached() {
    let Some((mc, ours)) = start_pair(
        "stats_detail_delimiter_flag_like_memcached",
        &["-D", "/", "-t", "1"],
    ) else {
        return;
    };
    let want = exchange(mc.addr(), DETAIL_SCRIPT, false);
    assert!(
        text(&want).contains("PREFIX k get 0 hit 0 set 1 del 0\r\n"),
        "{}",
        text(&want)
    );
    assert_eq!(
        text(&exchange(ours.addr(), DETAIL_SCRIPT, false)),
        text(&want)
    );
    let setting = |addr| {
        stat_value(
            &exchange(addr, b"stats settings\r\n", false),
            "stat_key_prefix",
        )
    };
    assert_eq!(setting(ours.addr()).as_deref(), Some("/"));
    assert_eq!(setting(ours.addr()), setting(mc.addr()));
}

const LRU_SETTINGS: [&str; 7] = [
    "lru_segmented",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temp_lru",
    "temporary_ttl",
];

fn lru_settings(addr: SocketAddr) -> Vec<Option<String>> {
    let r = exchange(addr, b"stats settings\r\n", false);
    LRU_SETTINGS.iter().map(|n| stat_value(&r, n)).collect()
}

#[test]
fn lru_command_like_memcached() {
    let Some((mc, ours)) = start_pair("lru_command_like_memcached", &["-t", "1"]) else {
        return;
    };
    assert_eq!(
        lru_settings(ours.addr()),
        lru_settings(mc.addr()),
        "defaults"
    );
    let script = b"lru\r\nlru tune\r\nlru tune 10 20 0.1 2.0\r\nlru tune 50 40 0.1 2\r\nlru tune 10 20 0 2\r\n\
lru tune 10 20 0.1 -1\r\nlru tune x 20 0.1 2\r\nlru tune 10 20 0.1 2 noreply\r\nlru tune 10 20 0.1 noreply\r\n\
lru mode flat\r\nlru mode bogus\r\nlru mode\r\nlru temp_ttl 30\r\nlru temp_ttl x\r\nlru temp_ttl 45 noreply\r\n\
lru bogus 1\r\nlru tune -1 20 0.1 2\r\nlru tune 15 25 0.30 2.5 extra\r\n";
    let want = exchange(mc.addr(), script, false);
    assert_eq!(text(&exchange(ours.addr(), script, false)), text(&want));
    let after = lru_settings(mc.addr());
    assert_eq!(after[0].as_deref(), Some("no"), "flat mode");
    assert_eq!(after[1].as_deref(), Some("15"));
    assert_eq!(lru_settings(ours.addr()), after, "after lru commands");
    let script = b"lru mode segmented\r\nlru temp_ttl -1\r\n";
    assert_eq!(
        text(&exchange(ours.addr(), script, false)),
        text(&exchange(mc.addr(), script, false))
    );
    assert_eq!(lru_settings(ours.addr()), lru_settings(mc.addr()), "back");
}

/// In flat mode new items enter COLD directly (memcached's compat mode), so
/// `stats cachedump` sees them at once.
#[test]
fn lru_flat_mode_puts_new_items_in_cold() {
    let Some((_mc, ours)) = start_pair("lru_flat_mode_puts_new_items_in_cold", &["-t", "1"]) else {
        return;
    };
    let r = exchange(
        ours.addr(),
        b"lru mode flat\r\nset fl:1 0 0 1\r\nx\r\nstats cachedump 1 0\r\n",
        false,
    );
    assert_eq!(
        text(&r),
        "OK\r\nSTORED\r\nITEM fl:1 [1 b; 0 s]\r\nEND\r\nMN\r\n"
    );
}

/// `stats settings` names in memcached's order, except the sections of features memcached
/// was built with and we do not have (extstore `ext_*`, TLS `ssl_*`, NAPI, memory file)
/// and our own lease settings at the end.
#[test]
fn stats_settings_names_like_memcached() {
    let Some((mc, ours)) = start_pair("stats_settings_names_like_memcached", &["-t", "1"]) else {
        return;
    };
    let names = |addr| {
        text(&exchange(addr, b"stats settings\r\n", false))
            .lines()
            .filter_map(|l| {
                l.strip_prefix("STAT ")?
                    .split(' ')
                    .next()
                    .map(str::to_string)
            })
            .filter(|n| {
                !(n.starts_with("ext_")
                    || n.starts_with("ssl_")
                    || n.starts_with("lease_")
                    || ["slab_automove_freeratio", "num_napi_ids", "memory_file"]
                        .contains(&n.as_str()))
            })
            .collect::<Vec<_>>()
    };
    let want = names(mc.addr());
    assert!(want.contains(&"worker_logbuf_size".to_string()));
    assert_eq!(names(ours.addr()), want);
    let r = exchange(ours.addr(), b"stats settings\r\n", false);
    assert_eq!(stat_value(&r, "maxconns_fast").as_deref(), Some("yes"));
}
