//! Route handles end to end: `KeySplitRoute` and `L1L2CacheRoute` through the real router
//! (with `--host-id` fixing which copy of a split key this "host" uses) in front of real
//! `memcached` servers, each server checked directly for what landed on it (skipped, with
//! a printed reason, when memcached is not installed); `AsynclogRoute` spooling deletes
//! to a server that is down.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_tests::external::{free_port, memcacheds, Memcached};
use e2e_tests::router_support::{pool_config, wait_until, Client, Router, TempDir};

fn servers(ms: &[Memcached]) -> Vec<String> {
    ms.iter().map(|m| m.server_string()).collect()
}

/// Which servers hold `key`, asked directly.
fn holders(ms: &[Memcached], key: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        if Client::connect(m.addr())?.get(key)?.is_some() {
            out.push(i);
        }
    }
    Ok(out)
}

fn held_anywhere(ms: &[Memcached], key: &str) -> bool {
    !holders(ms, key).unwrap_or_default().is_empty()
}

const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn key_split_spreads_a_key_over_copies_by_host() -> Result<()> {
    let Some(ms) = memcacheds("key_split_spreads_a_key_over_copies_by_host", 3) else {
        return Ok(());
    };
    let s = servers(&ms);
    let pool = format!(
        r#""pools": {{"A": {{"servers": ["{}", "{}", "{}"]}}}}"#,
        s[0], s[1], s[2]
    );
    let split = |all_sync: bool| {
        format!(
            r#"{{{pool}, "route": {{"type": "KeySplitRoute", "destination": "PoolRoute|A",
                "replicas": 4, "all_sync": {all_sync}}}}}"#
        )
    };
    let host3 = Router::start(&split(false), &["--host-id", "3"])?;
    let host4 = Router::start(&split(false), &["--host-id", "4"])?;
    let plain = Router::start(&format!(r#"{{{pool}, "route": "PoolRoute|A"}}"#), &[])?;
    let copies = ["hot", "hot::1", "hot::2", "hot::3"];

    // Host 3 writes and reads copy 3 (placed by its own key), answered under the
    // client's key; host 4 (4 % 4 = 0) uses the key itself.
    let mut c3 = host3.client()?;
    assert_eq!(c3.set("hot", "from3")?, "STORED\r\n");
    let owner = holders(&ms, "hot::3")?;
    assert_eq!(owner.len(), 1);
    assert!(!held_anywhere(&ms, "hot"));
    // The admin key answers where host 3's copy lives.
    assert_eq!(
        c3.get("__mcrouter__.route(get,hot)")?.as_deref(),
        Some(s[owner[0]].as_str())
    );
    assert_eq!(c3.call("get hot\r\n")?, "VALUE hot 0 5\r\nfrom3\r\nEND\r\n");
    let mut c4 = host4.client()?;
    assert_eq!(c4.get("hot")?, None);
    assert_eq!(c4.set("hot", "from0")?, "STORED\r\n");
    assert_eq!(c4.get("hot")?.as_deref(), Some("from0"));
    assert_eq!(c3.get("hot")?.as_deref(), Some("from3"));
    assert_eq!(
        c3.stats()?.get("hostid").map(String::as_str),
        Some("3"),
        "stats shows the host id"
    );

    // A key with no room for a copy suffix under memcached's 250 bytes stays whole.
    let long = "L".repeat(248);
    assert_eq!(c3.set(&long, "whole")?, "STORED\r\n");
    assert_eq!(holders(&ms, &long)?.len(), 1);
    assert_eq!(c3.get(&long)?.as_deref(), Some("whole"));

    // A delete through any host removes every copy.
    let mut p = plain.client()?;
    for k in copies {
        assert_eq!(p.set(k, "x")?, "STORED\r\n");
    }
    assert_eq!(c4.call("delete hot\r\n")?, "DELETED\r\n");
    assert!(
        wait_until(PATIENCE, || copies.iter().all(|k| !held_anywhere(&ms, k))),
        "copies left: {:?}",
        copies
            .iter()
            .filter(|k| held_anywhere(&ms, k))
            .collect::<Vec<_>>()
    );

    // With all_sync a set writes every copy.
    host3.rewrite_config(&split(true))?;
    let reloaded = wait_until(PATIENCE, || {
        c3.get("__mcrouter__.route_handles(set,hot)")
            .ok()
            .flatten()
            .is_some_and(|r| r.contains("all_sync=true"))
    });
    assert!(reloaded, "config reload");
    assert_eq!(c3.set("hot", "all")?, "STORED\r\n");
    assert!(
        wait_until(PATIENCE, || copies.iter().all(|k| p
            .get(k)
            .ok()
            .flatten()
            .as_deref()
            == Some("all"))),
        "every copy set"
    );
    Ok(())
}

/// `mg <key> f t v` straight to a server: (flags, ttl, value), `None` on a miss.
fn item(m: &Memcached, key: &str) -> Result<Option<(u32, i64, String)>> {
    let r = Client::connect(m.addr())?.call(&format!("mg {key} f t v\r\n"))?;
    if r == "EN\r\n" {
        return Ok(None);
    }
    let (head, rest) = r.split_once("\r\n").context("reply line")?;
    let mut flags = None;
    let mut ttl = None;
    for tok in head.split(' ').skip(2) {
        match tok.split_at(1) {
            ("f", v) => flags = v.parse().ok(),
            ("t", v) => ttl = v.parse().ok(),
            _ => {}
        }
    }
    let value = rest.trim_end_matches("\r\n").to_string();
    Ok(Some((flags.context("f")?, ttl.context("t")?, value)))
}

#[test]
fn l1l2_cache_fills_l1_and_remembers_misses() -> Result<()> {
    let Some(ms) = memcacheds("l1l2_cache_fills_l1_and_remembers_misses", 2) else {
        return Ok(());
    };
    let (l1, l2) = (&ms[0], &ms[1]);
    let config = format!(
        r#"{{"pools": {{"L1": {{"servers": ["{}"]}}, "L2": {{"servers": ["{}"]}}}},
            "route": {{"type": "L1L2CacheRoute", "l1": "PoolRoute|L1", "l2": "PoolRoute|L2",
                "upgradingL1Exptime": 100, "ncacheExptime": 50, "ncacheUpdatePeriod": 2}}}}"#,
        l1.server_string(),
        l2.server_string()
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    let mut direct_l2 = Client::connect(l2.addr())?;

    // An l2 hit answers and is copied into l1 with its flags and upgradingL1Exptime.
    direct_l2.call("set k 7 0 5\r\nvalue\r\n")?;
    assert_eq!(c.call("get k\r\n")?, "VALUE k 7 5\r\nvalue\r\nEND\r\n");
    assert!(wait_until(PATIENCE, || item(l1, "k")
        .ok()
        .flatten()
        .is_some()));
    let (flags, ttl, value) = item(l1, "k")?.context("k in l1")?;
    assert_eq!((flags, value.as_str()), (7, "value"));
    assert!((95..=100).contains(&ttl), "ttl {ttl}");
    // Now l1 answers, even once l2 has lost the key.
    direct_l2.call("delete k\r\n")?;
    assert_eq!(c.get("k")?.as_deref(), Some("value"));

    // An l2 miss is remembered in l1 as mcrouter writes it.
    assert_eq!(c.get("gone")?, None);
    assert!(wait_until(PATIENCE, || item(l1, "gone")
        .ok()
        .flatten()
        .is_some()));
    let (flags, ttl, value) = item(l1, "gone")?.context("gone in l1")?;
    assert_eq!((flags, value.as_str()), (0x10000, "ncache"));
    assert!((45..=50).contains(&ttl), "ttl {ttl}");
    // While it is there the router answers misses without asking l2; every 2nd such
    // miss re-reads l2, and once l2 has the value l1 gets it.
    direct_l2.call("set gone 3 0 4\r\nback\r\n")?;
    assert_eq!(c.get("gone")?, None);
    assert_eq!(c.get("gone")?, None);
    assert!(wait_until(PATIENCE, || item(l1, "gone")
        .ok()
        .flatten()
        .is_some_and(|(_, _, v)| v == "back")));
    assert_eq!(c.call("get gone\r\n")?, "VALUE gone 3 4\r\nback\r\nEND\r\n");

    // Writes go to l1 only.
    assert_eq!(c.set("w", "x")?, "STORED\r\n");
    assert!(item(l1, "w")?.is_some());
    assert!(item(l2, "w")?.is_none());
    Ok(())
}

/// A delete to a server that is down is spooled (and answered `NOT_FOUND`) under an
/// `AsynclogRoute` even though its pool opted out of the asynclog; without the route the
/// client gets the error.
#[test]
fn asynclog_route_spools_deletes_of_pools_that_opted_out() -> Result<()> {
    let spool = TempDir::new("asynclog-route")?;
    let dead = format!("127.0.0.1:{}", free_port()?);
    let pool = format!(r#""pools": {{"A": {{"servers": ["{dead}"], "asynclog": false}}}}"#);
    let dir = spool.path().display().to_string();
    for (route, want, spooled) in [
        (r#""PoolRoute|A""#, "SERVER_ERROR", 0),
        (
            r#"{"type": "AsynclogRoute", "name": "A", "target": "PoolRoute|A"}"#,
            "NOT_FOUND\r\n",
            1,
        ),
    ] {
        let config = format!(r#"{{{pool}, "route": {route}}}"#);
        let router = Router::start(&config, &["--async-dir", &dir])?;
        let mut c = router.client()?;
        let r = c.call("delete k\r\n")?;
        assert!(r.starts_with(want), "{route}: {r:?}");
        let stats = c.stats()?;
        assert_eq!(stats["asynclog_spooled"], spooled.to_string(), "{route}");
    }
    Ok(())
}

/// `--big-value-split-threshold`: a value three times memcached's 1 MiB item limit is
/// stored as chunks spread over the pool and read back whole; the on-server layout is
/// mcrouter's (an index `1-<n>-<suffix>` with flags | 0x8000, chunks `<key>:<i>:<suffix>`),
/// so a value laid out by hand as mcrouter's own tests do reads back too; `gets` then `cas`
/// works; deleting the key removes the value.
#[test]
fn big_values_are_split_over_the_pool_and_joined() -> Result<()> {
    let Some(ms) = memcacheds("big_values_are_split_over_the_pool_and_joined", 3) else {
        return Ok(());
    };
    let s = servers(&ms);
    let pool = pool_config(&s);
    let big = Router::start(
        &pool,
        &[
            "--big-value-split-threshold",
            "100000",
            "--big-value-batch-size",
            "4",
        ],
    )?;
    let plain = Router::start(&pool, &[])?;
    let mut c = big.client()?;
    let mut p = plain.client()?;
    // The route sits on top of the tree (mcrouter's test_use_big_value).
    let handles = |c: &mut Client| -> Result<String> {
        Ok(c.get("__mcrouter__.route_handles(get,test)")?
            .unwrap_or_default())
    };
    assert_eq!(handles(&mut c)?.matches("BigValueRoute").count(), 1);
    assert_eq!(handles(&mut p)?.matches("BigValueRoute").count(), 0);

    let value: String = (0..3_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let set = format!("set big 7 0 {}\r\n{value}\r\n", value.len());
    assert!(
        p.call(&set)?.starts_with("SERVER_ERROR"),
        "too large without the option"
    );
    assert_eq!(c.call(&set)?, "STORED\r\n");
    let want = format!(
        "VALUE big {} {}\r\n{value}\r\nEND\r\n",
        7 | 0x8000,
        value.len()
    );
    assert!(c.call("get big\r\n")? == want, "the value reads back whole");

    // On the servers: the index and 30 chunks, spread over all three.
    let index = p.call("get big\r\n")?;
    let (head, rest) = index.split_once("\r\n").context("index")?;
    assert!(head.starts_with("VALUE big 32775 "), "{head}");
    let info = rest.trim_end_matches("\r\nEND\r\n");
    let parts: Vec<&str> = info.split('-').collect();
    assert_eq!(parts[..2], ["1", "30"], "{info}");
    let mut per_server = [0usize; 3];
    for i in 0..30 {
        let k = format!("big:{i}:{}", parts[2]);
        let h = holders(&ms, &k)?;
        assert_eq!(h.len(), 1, "{k}");
        per_server[h[0]] += 1;
    }
    assert!(per_server.iter().all(|&n| n > 0), "{per_server:?}");

    // mcrouter's test_bigvalue.py layout, written by hand, reads back.
    let a = "a".repeat(100_001);
    p.call("set key 32768 0 8\r\n1-2-1234\r\n")?;
    p.call(&format!(
        "set key:0:1234 0 0 100000\r\n{}\r\n",
        &a[..100_000]
    ))?;
    p.call("set key:1:1234 0 0 1\r\na\r\n")?;
    assert_eq!(c.get("key")?.as_deref(), Some(a.as_str()));
    // A lost chunk makes it a miss.
    p.call("delete key:1:1234\r\n")?;
    assert_eq!(c.get("key")?, None);

    // gets answers the index's CAS unique, which a cas of a new big value matches.
    let r = c.call("gets big\r\n")?;
    let cas: u64 = r
        .split("\r\n")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .context("cas")?
        .parse()?;
    let v2 = "z".repeat(250_000);
    let cas_req = format!("cas big 1 0 {} {cas}\r\n{v2}\r\n", v2.len());
    assert_eq!(c.call(&cas_req)?, "STORED\r\n");
    assert_eq!(c.call(&cas_req)?, "EXISTS\r\n");
    assert_eq!(c.get("big")?.as_deref(), Some(v2.as_str()));
    assert_eq!(c.call("delete big\r\n")?, "DELETED\r\n");
    assert_eq!(c.get("big")?, None);
    Ok(())
}

/// `L1L2SizeSplitRoute` (mcrouter's test_basic.py cases, threshold 8 there, 100 here):
/// a small value lives in l1 only; a big one in l2, with an empty sentinel flagged 0x20 in
/// l1, and reads back whole; a sentinel whose l2 value is gone reads as a miss and is
/// removed from l1.
#[test]
fn l1l2_size_split_keeps_big_values_in_l2() -> Result<()> {
    let Some(ms) = memcacheds("l1l2_size_split_keeps_big_values_in_l2", 2) else {
        return Ok(());
    };
    let (l1, l2) = (&ms[0], &ms[1]);
    let config = format!(
        r#"{{"pools": {{"L1": {{"servers": ["{}"]}}, "L2": {{"servers": ["{}"]}}}},
            "route": {{"type": "L1L2SizeSplitRoute", "l1": "PoolRoute|L1",
                "l2": "PoolRoute|L2", "threshold": 100}}}}"#,
        l1.server_string(),
        l2.server_string()
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    assert_eq!(c.set("small", "value1")?, "STORED\r\n");
    assert_eq!(item(l1, "small")?.map(|i| i.2), Some("value1".to_string()));
    assert!(item(l2, "small")?.is_none());

    let big = "foo".repeat(200);
    assert_eq!(
        c.call(&format!("set big 5 0 600\r\n{big}\r\n"))?,
        "STORED\r\n"
    );
    assert_eq!(item(l1, "big")?, Some((5 | 0x20, -1, String::new())));
    assert_eq!(item(l2, "big")?, Some((5, -1, big.clone())));
    assert_eq!(
        c.call("get big\r\n")?,
        format!("VALUE big 5 600\r\n{big}\r\nEND\r\n")
    );

    Client::connect(l2.addr())?.call("delete big\r\n")?;
    assert_eq!(c.get("big")?, None);
    assert!(item(l1, "big")?.is_none(), "the sentinel is removed");
    Ok(())
}

/// `--miss-on-get-errors` (mcrouter's default, RootRoute): a get whose server is down is
/// a miss, also inside a multi-get whose other keys hit; writes still get the error.
/// Without the flag the client gets the error.
#[test]
fn miss_on_get_errors_turns_failed_gets_into_misses() -> Result<()> {
    let Some(ms) = memcacheds("miss_on_get_errors_turns_failed_gets_into_misses", 1) else {
        return Ok(());
    };
    let dead = format!("127.0.0.1:{}", free_port()?);
    let config = format!(
        r#"{{"pools": {{"Up": {{"servers": ["{}"]}}, "Down": {{"servers": ["{dead}"]}}}},
            "route": {{"type": "PrefixSelectorRoute", "policies": {{"d:": "PoolRoute|Down"}},
                "wildcard": "PoolRoute|Up"}}}}"#,
        ms[0].server_string()
    );
    let on = Router::start(&config, &["--miss-on-get-errors"])?;
    let off = Router::start(&config, &[])?;
    let mut c = on.client()?;
    assert_eq!(c.set("u:1", "one")?, "STORED\r\n");
    assert_eq!(c.call("get d:1\r\n")?, "END\r\n");
    assert_eq!(c.call("mg d:1 v\r\n")?, "EN\r\n");
    assert_eq!(
        c.call("get u:1 d:1 u:2\r\n")?,
        "VALUE u:1 0 3\r\none\r\nEND\r\n"
    );
    assert!(c.set("d:1", "x")?.starts_with("SERVER_ERROR"));
    let mut e = off.client()?;
    assert!(e.call("get d:1\r\n")?.starts_with("SERVER_ERROR"));
    assert!(e.call("get u:1 d:1\r\n")?.starts_with("SERVER_ERROR"));
    Ok(())
}

/// mcrouter's command line for a config with `routes`: `-R` picks the default route (an
/// alias that is not in the config is refused, at start and by `--validate-config`),
/// `--send-invalid-route-to-default` routes unknown prefixes there, and the config can
/// be given inline (`--config-str`, `--config '<json>'`).
#[test]
fn route_prefix_and_config_sources_as_mcrouter() -> Result<()> {
    let Some(ms) = memcacheds("route_prefix_and_config_sources_as_mcrouter", 2) else {
        return Ok(());
    };
    let config = format!(
        r#"{{"pools": {{"A": {{"servers": ["{}"]}}, "B": {{"servers": ["{}"]}}}},
            "routes": [{{"aliases": ["/r/a/"], "route": "PoolRoute|A"}},
                       {{"aliases": ["/r/b/"], "route": "PoolRoute|B"}}]}}"#,
        ms[0].server_string(),
        ms[1].server_string()
    );
    let on = |i: usize, key: &str| -> Result<bool> {
        Ok(Client::connect(ms[i].addr())?.get(key)?.is_some())
    };
    // Without -R the first alias is the default; -R r/b (slashes added) picks B.
    let first = Router::start(&config, &[])?;
    first.client()?.set("k1", "x")?;
    assert!(on(0, "k1")? && !on(1, "k1")?);
    let b = Router::start(&config, &["-R", "r/b"])?;
    let mut c = b.client()?;
    c.set("k2", "x")?;
    assert!(!on(0, "k2")? && on(1, "k2")?);
    assert!(c.call("get /x/y/k2\r\n")?.starts_with("SERVER_ERROR"));
    let lenient = Router::start(&config, &["-R", "/r/b/", "--send-invalid-route-to-default"])?;
    // (The server sees the key without its prefix: the k2 set above.)
    assert_eq!(lenient.client()?.get("/x/y/k2")?.as_deref(), Some("x"));

    // A prefix the config does not have.
    assert!(Router::start(&config, &["-R", "/r/c/"]).is_err());
    let mcrouter = e2e_tests::bins::bin_path("mcrouter")?;
    let validate = |extra: &[&str]| -> Result<(Option<i32>, String)> {
        let out = std::process::Command::new(&mcrouter)
            .args(["--config-str", &config, "--validate-config"])
            .args(extra)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        Ok((out.status.code(), text))
    };
    let (code, text) = validate(&["-R", "/r/a/"])?;
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = validate(&["-R", "/r/c/"])?;
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("invalid default route \"/r/c/\""), "{text}");

    // The config inline, both ways.
    for flag in ["--config-str", "--config"] {
        let s = e2e_tests::bins::OurServer::start(
            "mcrouter",
            &[flag, &config, "-p", "0", "-R", "/r/b/"],
        )?;
        let mut c = Client::connect(s.addr())?;
        c.set("k3", flag)?;
        assert_eq!(
            Client::connect(ms[1].addr())?.get("k3")?.as_deref(),
            Some(flag)
        );
    }
    Ok(())
}

/// `--max-conns N`: the connection over the limit is told `ERROR Too many open
/// connections` and closed (memcached's `-c`); `stats` counts it; once a client leaves,
/// a new one is served.
#[test]
fn max_conns_refuses_the_connection_over_the_limit() -> Result<()> {
    use std::io::Read;
    let config = r#"{"pools": {"A": {"servers": ["127.0.0.1:1"]}}, "route": "NullRoute"}"#;
    let router = Router::start(config, &["--max-conns", "2"])?;
    let mut a = router.client()?;
    let b = router.client()?;
    assert_eq!(a.call("get k\r\n")?, "END\r\n");
    let mut over = std::net::TcpStream::connect(router.addr())?;
    over.set_read_timeout(Some(PATIENCE))?;
    let mut got = String::new();
    over.read_to_string(&mut got)?;
    assert_eq!(got, "ERROR Too many open connections\r\n");
    let stats = a.stats()?;
    assert_eq!(stats["rejected_connections"], "1");
    assert_eq!(stats["curr_connections"], "2");
    drop(b);
    assert!(wait_until(PATIENCE, || a
        .stats()
        .is_ok_and(|s| s["curr_connections"] == "1")));
    let mut c = router.client()?;
    assert_eq!(c.call("get k\r\n")?, "END\r\n");
    Ok(())
}

/// pymemcache through `--big-value-split-threshold` over 3 memcached: its default
/// `noreply` sets of values up to 5 MB read back at once (the get right behind the set on
/// the same connection), overwrites and deletes too.
#[test]
fn pymemcache_big_values_read_back_behind_noreply_sets() -> Result<()> {
    let test = "pymemcache_big_values_read_back_behind_noreply_sets";
    if !e2e_tests::external::python_has_module("pymemcache") {
        e2e_tests::external::skip(test, "pymemcache not installed (pip install pymemcache)");
        return Ok(());
    }
    let Some(ms) = memcacheds(test, 3) else {
        return Ok(());
    };
    let s = servers(&ms);
    let pool = pool_config(&s);
    let router = Router::start(&pool, &["--big-value-split-threshold", "65536"])?;
    let out = e2e_tests::external::run_python(
        r#"
import sys, random
from pymemcache.client.base import Client
host, port = sys.argv[1].rsplit(":", 1)
c = Client((host, int(port)), default_noreply=True)
rng = random.Random(7)
for i, size in enumerate([10, 65536, 65537, 300000, 5 * 1024 * 1024]):
    v = bytes(rng.getrandbits(8) for _ in range(min(size, 4096))) * (size // 4096 + 1)
    v = v[:size]
    c.set("big:%d" % i, v)
    got = c.get("big:%d" % i)
    assert got == v, (size, None if got is None else len(got))
    c.set("big:%d" % i, v[::-1])
    assert c.get("big:%d" % i) == v[::-1], size
    c.delete("big:%d" % i)
    assert c.get("big:%d" % i) is None, size
print("ok")
"#,
        &[&router.addr().to_string()],
    )?;
    assert_eq!(out.trim(), "ok");
    Ok(())
}

/// `LoggingRoute` logs each request at `info`, and `-L` sends the log to a file:
/// with `-v -L FILE`, a hit through the route shows up in the file with its key and
/// result.
#[test]
fn logging_route_writes_requests_to_the_log_path() -> Result<()> {
    let Some(ms) = memcacheds("logging_route_writes_requests_to_the_log_path", 1) else {
        return Ok(());
    };
    let dir = TempDir::new("log-path")?;
    let log = dir.path().join("mcrouter.log");
    let config = format!(
        r#"{{"pools": {{"A": {{"servers": ["{}"]}}}},
            "route": {{"type": "LoggingRoute", "target": "PoolRoute|A"}}}}"#,
        ms[0].server_string()
    );
    let path = log.display().to_string();
    let router = Router::start(&config, &["-v", "-L", &path])?;
    let mut c = router.client()?;
    assert_eq!(c.set("logged:key", "v")?, "STORED\r\n");
    assert_eq!(c.get("logged:key")?.as_deref(), Some("v"));
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(PATIENCE, || read()
            .lines()
            .any(|l| l.contains("op=\"get\"")
                && l.contains("logged:key")
                && l.contains("found"))),
        "{}",
        read()
    );
    Ok(())
}
