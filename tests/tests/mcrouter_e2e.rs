//! mcrouter end to end: the real binary in front of real `memcached` servers (and mock
//! backends that count requests), driven by raw sockets, pymemcache and the
//! libmemcached tools. Skips (with a printed reason) only when a tool is missing.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::bins::{bin_path, OurServer};
use e2e_tests::external::{
    find_program, memcacheds, python_has_module, run_python, skip, Memcached,
};
use e2e_tests::router_support::{
    pool_config, refused_config, wait_until, Client, MockBackend, Router,
};

fn servers(ms: &[Memcached]) -> Vec<String> {
    ms.iter().map(|m| m.server_string()).collect()
}

#[test]
fn commands_through_three_memcached() -> Result<()> {
    let Some(ms) = memcacheds("commands_through_three_memcached", 3) else {
        return Ok(());
    };
    check_commands(&servers(&ms))
}

#[test]
fn commands_through_three_cache_servers() -> Result<()> {
    if bin_path("cache-server").is_err() {
        skip(
            "commands_through_three_cache_servers",
            "cache-server binary not built (run `cargo test --workspace`)",
        );
        return Ok(());
    }
    let cs: Vec<OurServer> = (0..3)
        .map(|_| OurServer::start("cache-server", &["-p", "0", "-U", "0"]))
        .collect::<Result<_>>()?;
    check_commands(&cs.iter().map(|s| s.addr().to_string()).collect::<Vec<_>>())
}

/// Whether the server at `addr` holds `key` (asked directly, not through the router).
fn holds(addr: &str, key: &str) -> Result<bool> {
    let mut c = Client::connect(addr.parse()?)?;
    Ok(c.get(key)?.is_some())
}

/// Every command through a router in front of `servers`.
fn check_commands(servers: &[String]) -> Result<()> {
    let router = Router::start(&pool_config(servers), &[])?;
    let mut c = router.client()?;

    // Single-key commands land where `__mcrouter__.route` says, and only there.
    let keys: Vec<String> = (0..60).map(|i| format!("key:{i}")).collect();
    for k in &keys {
        assert_eq!(c.set(k, &format!("v-{k}"))?, "STORED\r\n");
    }
    for k in &keys {
        let route = c
            .get(&format!("__mcrouter__.route(get,{k})"))?
            .context("route")?;
        assert!(servers.contains(&route), "{route}");
        for s in servers {
            assert_eq!(holds(s, k)?, *s == route, "{k} on {s}, routed to {route}");
        }
    }
    let per_server: Vec<usize> = servers
        .iter()
        .map(|s| keys.iter().filter(|k| holds(s, k).unwrap()).count())
        .collect();
    assert!(per_server.iter().all(|&n| n > 5), "{per_server:?}");

    // Multi-get: client key order, duplicates and misses.
    let r = c.call("get key:3 nope key:1 key:3 key:2\r\n")?;
    assert_eq!(
        r,
        "VALUE key:3 0 7\r\nv-key:3\r\nVALUE key:1 0 7\r\nv-key:1\r\nVALUE key:3 0 7\r\nv-key:3\r\nVALUE key:2 0 7\r\nv-key:2\r\nEND\r\n"
    );
    let r = c.call("gets key:1 key:2\r\n")?;
    assert!(
        r.starts_with("VALUE key:1 0 7 ") && r.contains("VALUE key:2 0 7 "),
        "{r}"
    );

    // Other single-key commands, noreply, meta commands with base64 keys.
    assert_eq!(c.call("add key:1 0 0 1\r\nx\r\n")?, "NOT_STORED\r\n");
    assert_eq!(c.call("set n 0 0 1\r\n5\r\n")?, "STORED\r\n");
    assert_eq!(c.call("incr n 10\r\n")?, "15\r\n");
    assert_eq!(c.call("decr n 1\r\n")?, "14\r\n");
    assert_eq!(c.call("touch n 100\r\n")?, "TOUCHED\r\n");
    c.send("set quiet 0 0 2 noreply\r\nhi\r\n")?;
    c.send("delete key:0 noreply\r\n")?;
    assert_eq!(
        c.call("get quiet key:0\r\n")?,
        "VALUE quiet 0 2\r\nhi\r\nEND\r\n"
    );
    // "Zm9v" is base64 for "foo": routed (and stored) as foo.
    assert_eq!(c.call("ms Zm9v 3 b\r\nbar\r\n")?, "HD\r\n");
    assert_eq!(c.get("foo")?.as_deref(), Some("bar"));
    assert_eq!(c.call("mg Zm9v b v\r\n")?, "VA 3\r\nbar\r\n");
    c.send("mg missing v q\r\n")?;
    assert_eq!(c.call("mn\r\n")?, "MN\r\n");
    assert_eq!(c.call("md foo q\r\nmn\r\n")?, "MN\r\n");

    // Answered locally; parse errors get memcached's exact replies.
    assert!(c.call("version\r\n")?.starts_with("VERSION "));
    assert_eq!(c.call("verbosity 1\r\n")?, "OK\r\n");
    assert_eq!(c.call("bogus\r\n")?, "ERROR\r\n");
    assert_eq!(
        c.call("set k 0 0 notanumber\r\n")?,
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(c.call("get\r\n")?, "ERROR\r\n");
    let stats = c.stats()?;
    assert_eq!(stats.get("num_servers").map(String::as_str), Some("3"));
    assert!(stats["cmd_get"].parse::<u64>()? > 60);

    // Admin keys.
    assert!(c
        .get("__mcrouter__.version")?
        .context("version")?
        .starts_with("mcrouter"));
    assert!(c
        .get("__mcrouter__.config")?
        .context("config")?
        .contains("PoolRoute|A"));
    assert_eq!(
        c.get("__mcrouter__.config_file")?.as_deref(),
        Some(router.config_path.display().to_string().as_str())
    );
    assert!(c
        .get("__mcrouter__.config_age")?
        .context("age")?
        .parse::<u64>()
        .is_ok());
    assert!(c
        .get("__mcrouter__.options")?
        .context("options")?
        .contains("num_proxies 1"));
    let pools: serde_json::Value =
        serde_json::from_str(&c.get("__mcrouter__.pools")?.context("pools")?)?;
    assert_eq!(pools["A"].as_array().map(Vec::len), Some(3));
    let handles = c
        .get("__mcrouter__.route_handles(set,key:1)")?
        .context("handles")?;
    assert!(
        handles.contains("PoolRoute|A") && handles.contains("DestinationRoute|"),
        "{handles}"
    );
    let all = c
        .get("__mcrouter__.route(flush_all,x)")?
        .context("flush route")?;
    assert_eq!(all.split("\r\n").count(), 3);

    // flush_all reaches every server.
    assert_eq!(c.call("flush_all\r\n")?, "OK\r\n");
    for s in servers {
        assert!(keys.iter().all(|k| !holds(s, k).unwrap()));
    }
    // quit closes after the replies before it.
    c.send("set last 0 0 1\r\nx\r\nquit\r\n")?;
    assert_eq!(c.read_reply()?, "STORED\r\n");
    assert!(c.read_reply().is_err());
    Ok(())
}

/// Items each server has stored so far (`total_items`, asked directly).
fn stored(servers: &[String]) -> Result<Vec<u64>> {
    servers
        .iter()
        .map(|s| {
            let stats = Client::connect(s.parse()?)?.stats()?;
            Ok(stats.get("total_items").context("total_items")?.parse()?)
        })
        .collect()
}

/// Rendezvous hashing through the real binary puts keys where mcrouter's own tests say
/// (`RendezvousHashTest.cpp`: `mykey:0`..`mykey:999` split 337/353/310 over the tags
/// `xxx.0.yy`..`xxx.2.yy`), both as a pool's hash and as a FailoverRoute's
/// `RendezvousPolicy` once the primary fails.
#[test]
fn rendezvous_placement_matches_mcrouters_golden_split() -> Result<()> {
    let Some(ms) = memcacheds("rendezvous_placement_matches_mcrouters_golden_split", 3) else {
        return Ok(());
    };
    let s = servers(&ms);
    let tags = r#"["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"]"#;
    let pool = format!(
        r#"{{"pools": {{"A": {{"servers": ["{}", "{}", "{}"],
            "hash": {{"hash_func": "Rendezvous", "tags": {tags}}}}}}},
            "route": "PoolRoute|A"}}"#,
        s[0], s[1], s[2]
    );
    let failover = format!(
        r#"{{"pools": {{"H0": {{"servers": ["{}"]}}, "H1": {{"servers": ["{}"]}},
                "H2": {{"servers": ["{}"]}}}},
            "route": {{"type": "FailoverRoute", "tags": {tags},
                "children": ["ErrorRoute|primary down", "PoolRoute|H0", "PoolRoute|H1",
                             "PoolRoute|H2"],
                "failover_policy": {{"type": "RendezvousPolicy"}}}}}}"#,
        s[0], s[1], s[2]
    );
    for config in [pool, failover] {
        let router = Router::start(&config, &[])?;
        let mut c = router.client()?;
        let before = stored(&s)?;
        for i in 0..1000 {
            assert_eq!(c.set(&format!("mykey:{i}"), "v")?, "STORED\r\n", "{config}");
        }
        let after = stored(&s)?;
        let split: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(split, [337, 353, 310], "{config}");
    }
    Ok(())
}

#[test]
fn ten_key_multiget_is_one_request_per_server() -> Result<()> {
    let mocks: Vec<MockBackend> = (0..3)
        .map(|_| MockBackend::start())
        .collect::<Result<_>>()?;
    let servers: Vec<String> = mocks.iter().map(|m| m.addr().to_string()).collect();
    let router = Router::start(&pool_config(&servers), &[])?;
    let mut c = router.client()?;
    let keys: Vec<String> = (0..10).map(|i| format!("mk{i}")).collect();
    for k in &keys {
        c.set(k, k)?;
    }
    let owners: HashSet<String> = keys
        .iter()
        .map(|k| {
            c.get(&format!("__mcrouter__.route(get,{k})"))
                .unwrap()
                .unwrap()
        })
        .collect();
    let before: Vec<u64> = mocks
        .iter()
        .map(|m| m.get_requests.load(Ordering::SeqCst))
        .collect();
    let r = c.call(&format!("get {}\r\n", keys.join(" ")))?;
    let expected: String = keys
        .iter()
        .map(|k| format!("VALUE {k} 0 {}\r\n{k}\r\n", k.len()))
        .collect();
    assert_eq!(r, format!("{expected}END\r\n"));
    let after: Vec<u64> = mocks
        .iter()
        .map(|m| m.get_requests.load(Ordering::SeqCst))
        .collect();
    let per_server: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(per_server.iter().all(|&n| n <= 1), "{per_server:?}");
    assert_eq!(
        per_server.iter().sum::<u64>() as usize,
        owners.len(),
        "{per_server:?}"
    );
    Ok(())
}

#[test]
fn pymemcache_through_the_router() -> Result<()> {
    if !python_has_module("pymemcache") {
        skip(
            "pymemcache_through_the_router",
            "python3 module pymemcache is not installed",
        );
        return Ok(());
    }
    let Some(ms) = memcacheds("pymemcache_through_the_router", 3) else {
        return Ok(());
    };
    let router = Router::start(&pool_config(&servers(&ms)), &[])?;
    let out = run_python(
        r#"
import sys
from pymemcache.client.base import Client
host, port = sys.argv[1].rsplit(":", 1)
c = Client((host, int(port)))
for i in range(100):
    assert c.set("py:%d" % i, ("value-%d" % i).encode())
assert c.get("py:7") == b"value-7"
got = c.get_many(["py:%d" % i for i in range(100)] + ["absent"])
assert len(got) == 100 and got["py:42"] == b"value-42", got
assert c.add("py:1", b"x", noreply=False) is False
assert c.incr("counter", 1) is None
c.set("counter", b"10")
assert c.incr("counter", 5) == 15
assert c.delete("py:1", noreply=False) is True
assert c.get("py:1") is None
assert c.touch("py:2", 60, noreply=False) is True
c.set_many({"m1": b"1", "m2": b"2"}, noreply=True)
assert c.get_many(["m1", "m2"]) == {"m1": b"1", "m2": b"2"}
v, cas = c.gets("py:3")
assert c.cas("py:3", b"new", cas) is True
assert c.get("py:3") == b"new"
assert c.version()
assert c.flush_all(noreply=False) is True
assert c.get("py:4") is None
print("ok")
"#,
        &[&router.addr().to_string()],
    )?;
    assert_eq!(out.trim(), "ok");
    Ok(())
}

#[test]
fn libmemcached_tools_through_the_router() -> Result<()> {
    let tools = ["memccp", "memccat", "memcstat", "memcflush"];
    if let Some(t) = tools.iter().find(|t| find_program(t).is_none()) {
        skip(
            "libmemcached_tools_through_the_router",
            &format!("{t} is not installed (libmemcached-tools)"),
        );
        return Ok(());
    }
    let Some(ms) = memcacheds("libmemcached_tools_through_the_router", 3) else {
        return Ok(());
    };
    let router = Router::start(&pool_config(&servers(&ms)), &[])?;
    let srv = format!("--servers={}", router.addr());
    let dir = e2e_tests::router_support::TempDir::new("tools")?;
    let file = dir.write("payload.txt", "hello from memccp\n")?;
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new(find_program(args[0]).context("tool")?)
            .args(&args[1..])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()?;
        ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run(&["memccp", &srv, &file.display().to_string()])?;
    assert!(run(&["memccat", &srv, "payload.txt"])?.starts_with("hello from memccp\n"));
    let stats = run(&["memcstat", &srv])?;
    assert!(
        stats.contains("curr_connections") || stats.contains("pid"),
        "{stats}"
    );
    run(&["memcflush", &srv])?;
    let mut c = router.client()?;
    assert_eq!(c.get("payload.txt")?, None);
    Ok(())
}

#[test]
fn killed_backend_fails_only_its_keys_then_recovers() -> Result<()> {
    let Some(mut ms) = memcacheds("killed_backend_fails_only_its_keys_then_recovers", 3) else {
        return Ok(());
    };
    let router = Router::start(
        &pool_config(&servers(&ms)),
        &["--server-timeout", "300", "--num-proxies", "2"],
    )?;
    let mut c = router.client()?;
    let keys: Vec<String> = (0..60).map(|i| format!("kill:{i}")).collect();
    let mut owner = Vec::new();
    for k in &keys {
        c.set(k, "v")?;
        owner.push(
            c.get(&format!("__mcrouter__.route(get,{k})"))?
                .context("route")?,
        );
    }
    let victim = ms.remove(1);
    let victim_addr = victim.addr();
    drop(victim);
    let dead = victim_addr.to_string();
    for _round in 0..3 {
        for (k, o) in keys.iter().zip(&owner) {
            let r = c.call(&format!("get {k}\r\n"))?;
            if *o == dead {
                assert!(r.starts_with("SERVER_ERROR"), "{k}: {r:?}");
            } else {
                assert_eq!(r, format!("VALUE {k} 0 1\r\nv\r\nEND\r\n"));
            }
        }
    }
    // A multi-get spanning all servers fails as a whole, as in mcrouter: the dead
    // server's keys must not look like misses.
    let r = c.call(&format!("get {}\r\n", keys.join(" ")))?;
    assert!(
        r.starts_with("SERVER_ERROR") && !r.contains("VALUE "),
        "{r:?}"
    );
    // One spanning only the live servers returns their keys.
    let live: Vec<&str> = keys
        .iter()
        .zip(&owner)
        .filter(|(_, o)| **o != dead)
        .map(|(k, _)| k.as_str())
        .collect();
    let r = c.call(&format!("get {}\r\n", live.join(" ")))?;
    assert_eq!(r.matches("VALUE ").count(), live.len());
    // `stats servers` shows the dead one as TKO, the others up, with their counters.
    let servers_stats = c.call("stats servers\r\n")?;
    let lines: Vec<&str> = servers_stats.lines().collect();
    assert_eq!(lines.len(), 4, "{servers_stats}");
    for l in &lines[..3] {
        let up = !l.starts_with(&format!("STAT {dead} "));
        let want = if up { "state:up" } else { "state:tko" };
        assert!(l.contains(want) && l.contains(" requests:"), "{l}");
    }
    assert_eq!(c.call("stats nonsense\r\n")?, "ERROR\r\n");
    let restarted = Memcached::start_on(victim_addr)?;
    let dead_key = keys
        .iter()
        .zip(&owner)
        .find(|(_, o)| **o == dead)
        .map(|(k, _)| k.clone())
        .context("a dead key")?;
    assert!(
        wait_until(Duration::from_secs(10), || c
            .set(&dead_key, "back")
            .map(|r| r == "STORED\r\n")
            .unwrap_or(false)),
        "destination did not recover"
    );
    assert_eq!(c.get(&dead_key)?.as_deref(), Some("back"));
    drop(restarted);
    Ok(())
}

#[test]
fn config_reload_under_traffic_fails_no_request() -> Result<()> {
    let Some(ms) = memcacheds("config_reload_under_traffic_fails_no_request", 3) else {
        return Ok(());
    };
    let all = servers(&ms);
    let router = Router::start(&pool_config(&all), &[])?;
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let traffic: Vec<_> = (0..4)
        .map(|t| {
            let (stop, errors, done, addr) =
                (stop.clone(), errors.clone(), done.clone(), router.addr());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).expect("connect");
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("t{t}:{}", i % 200);
                    let ok = c.set(&k, "x").map(|r| r == "STORED\r\n").unwrap_or(false)
                        && c.call(&format!("get {k} t{t}:0 t{t}:1\r\n"))
                            .map(|r| r.ends_with("END\r\n"))
                            .unwrap_or(false);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let mut admin = router.client()?;
    let progressed = |n: u64| {
        wait_until(Duration::from_secs(10), || {
            done.load(Ordering::Relaxed) >= n
        })
    };
    assert!(progressed(200));
    // 1: a new pool (two of the three servers) with comments and a trailing comma.
    let two = format!(
        "// reloaded\n{{\"pools\": {{\"B\": {{\"servers\": [\"{}\", \"{}\",]}}}}, \"route\": \"PoolRoute|B\",}}",
        all[0], all[2]
    );
    // Connections to servers that stay in the config are kept across reloads.
    let conns = |addr: &str| -> Result<u64> {
        let mut direct = Client::connect(addr.parse()?)?;
        Ok(direct.stats()?["total_connections"].parse()?)
    };
    let before = conns(&all[0])?;
    router.rewrite_config(&two)?;
    assert!(wait_until(Duration::from_secs(10), || {
        admin
            .get("__mcrouter__.config")
            .ok()
            .flatten()
            .is_some_and(|c| c.contains("reloaded"))
    }));
    let n = done.load(Ordering::Relaxed);
    assert!(progressed(n + 200));
    // Only our own second `stats` connection is new.
    assert_eq!(conns(&all[0])?, before + 1);
    // 2: an invalid config is counted and the old one stays.
    router.rewrite_config("{\"pools\": {}, \"route\": \"PoolRoute|Nope\"}")?;
    assert!(wait_until(Duration::from_secs(10), || {
        admin
            .stats()
            .ok()
            .and_then(|s| s.get("config_failures").cloned())
            .is_some_and(|v| v != "0")
    }));
    assert!(admin
        .get("__mcrouter__.config")?
        .context("config")?
        .contains("reloaded"));
    let n = done.load(Ordering::Relaxed);
    assert!(progressed(n + 200));
    // 3: back to all three servers.
    router.rewrite_config(&pool_config(&all))?;
    assert!(wait_until(Duration::from_secs(10), || {
        admin
            .get("__mcrouter__.pools")
            .ok()
            .flatten()
            .is_some_and(|p| p.contains("\"A\""))
    }));
    let n = done.load(Ordering::Relaxed);
    assert!(progressed(n + 200));
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.join().expect("traffic thread");
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "failed requests during reloads"
    );
    let stats = admin.stats()?;
    assert_eq!(stats["config_reloads"], "2");
    Ok(())
}

#[test]
fn invalid_config_is_reported_with_file_and_path() -> Result<()> {
    let (path, err) = refused_config(
        r#"{"pools": {"A": {"servers": ["127.0.0.1:1"]}},
            "route": {"type": "OperationSelectorRoute", "operation_policies": {"get": "FooRoute|x"}}}"#,
    )?;
    assert!(
        err.contains(&format!(
            "{path}: route.operation_policies.get: unknown route type \"FooRoute\""
        )),
        "{err}"
    );
    Ok(())
}

#[test]
fn local_tier_without_a_config() -> Result<()> {
    let router = OurServer::start("mcrouter", &["-p", "0"])?;
    let banner = router.next_line(Duration::from_secs(5)).unwrap_or_default();
    assert!(banner.contains("local tier"), "{banner}");
    let mut c = Client::connect(router.addr())?;
    for i in 0..30 {
        assert_eq!(c.set(&format!("local:{i}"), "v")?, "STORED\r\n");
    }
    let pools: serde_json::Value =
        serde_json::from_str(&c.get("__mcrouter__.pools")?.context("pools")?)?;
    let servers = pools["local"].as_array().context("local pool")?.clone();
    assert_eq!(servers.len(), 3);
    let owners: HashSet<String> = (0..30)
        .map(|i| {
            c.get(&format!("__mcrouter__.route(get,local:{i})"))
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(owners.len(), 3, "keys spread over the three servers");
    assert_eq!(c.get("local:7")?.as_deref(), Some("v"));
    Ok(())
}

#[test]
fn sigterm_drains_and_exits_zero() -> Result<()> {
    let backend = MockBackend::start()?;
    let mut router = Router::start(&pool_config(&[backend.addr().to_string()]), &[])?;
    let mut c = router.client()?;
    assert_eq!(c.set("k", "v")?, "STORED\r\n");
    router.server.signal(libc::SIGTERM);
    let status = router
        .server
        .wait_exit(Duration::from_secs(10))
        .context("router did not exit")?;
    assert!(status.success(), "{status}");
    Ok(())
}
