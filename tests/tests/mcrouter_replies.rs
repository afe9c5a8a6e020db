//! mcrouter end to end: which backend replies the router passes on, and how, compared
//! with what mcrouter and memcached do. Real `memcached` backends; skips (with a printed
//! reason) only when memcached is missing.
//!
//! - a `CLIENT_ERROR` is a reply, not a reason to fail over (mcrouter's
//!   `isFailoverErrorResult`);
//! - `failover_errors` in both of mcrouter's forms (a list, or per operation kind);
//! - meta commands with `q` hide exactly what memcached hides;
//! - a multi-get with a failed destination answers the error, not a partial hit list;
//! - single-key gets joined into one multi-key line per server answer as memcached does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::external::{free_port, memcacheds};
use e2e_tests::router_support::{pool_config, refused_config, Client, Router};

/// A pool config with pools `A` and `B` and the given route (JSON).
fn two_pool_config(a: &[String], b: &[String], route: &str) -> String {
    let list = |s: &[String]| {
        s.iter()
            .map(|x| format!("\"{x}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [{}]}}, \"B\": {{\"servers\": [{}]}}}}, \
         \"route\": {route}}}",
        list(a),
        list(b)
    )
}

/// Send `session` (pipelined, ending in `mn`) and read everything up to the final `MN`.
fn session(addr: SocketAddr, session: &str) -> Result<String> {
    ensure!(session.ends_with("mn\r\n"), "a session ends with mn");
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(session.as_bytes())?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while !out.ends_with(b"MN\r\n") {
        let n = s.read(&mut chunk).context("read session replies")?;
        if n == 0 {
            bail!("closed; have {:?}", String::from_utf8_lossy(&out));
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn client_error_is_returned_not_failed_over() -> Result<()> {
    let Some(ms) = memcacheds("client_error_is_returned_not_failed_over", 2) else {
        return Ok(());
    };
    let (a, b) = (ms[0].server_string(), ms[1].server_string());
    let router = Router::start(
        &two_pool_config(
            std::slice::from_ref(&a),
            std::slice::from_ref(&b),
            r#"{"type": "FailoverRoute", "children": ["PoolRoute|A", "PoolRoute|B"]}"#,
        ),
        &[],
    )?;
    let mut direct_a = Client::connect(ms[0].addr())?;
    assert_eq!(direct_a.set("t", "abc")?, "STORED\r\n");
    let mut c = router.client()?;
    const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
    // More client errors than the TKO threshold: none of them marks A down.
    for _ in 0..5 {
        assert_eq!(c.call("incr t 1\r\n")?, NON_NUMERIC);
        assert_eq!(c.call("ma t\r\n")?, NON_NUMERIC);
        assert_eq!(c.call("decr t 1\r\n")?, NON_NUMERIC);
    }
    // B was never asked.
    let mut direct_b = Client::connect(ms[1].addr())?;
    let stats_b = direct_b.stats()?;
    assert_eq!(stats_b.get("incr_misses").map(String::as_str), Some("0"));
    assert_eq!(stats_b.get("decr_misses").map(String::as_str), Some("0"));
    // A is still up and serving.
    let servers = c.call("stats servers\r\n")?;
    let line = servers
        .lines()
        .find(|l| l.starts_with(&format!("STAT {a} ")))
        .context("A in stats servers")?;
    assert!(line.contains("state:up"), "{servers}");
    assert_eq!(c.get("t")?.as_deref(), Some("abc"));
    Ok(())
}

#[test]
fn failover_errors_per_operation_kind() -> Result<()> {
    let Some(ms) = memcacheds("failover_errors_per_operation_kind", 1) else {
        return Ok(());
    };
    let dead = format!("127.0.0.1:{}", free_port()?);
    let live = ms[0].server_string();
    let mut direct = Client::connect(ms[0].addr())?;
    assert_eq!(direct.set("k", "gutter")?, "STORED\r\n");
    // Gets fail over on connect errors, updates never (an empty list), deletes keep the
    // default; mcrouter names we never produce are accepted.
    let router = Router::start(
        &two_pool_config(
            &[dead],
            &[live],
            r#"{"type": "FailoverRoute", "children": ["PoolRoute|A", "PoolRoute|B"],
                "failover_errors": {"gets": ["connect_error", "tko", "try_again", "shutdown"],
                                    "updates": []}}"#,
        ),
        &[],
    )?;
    let mut c = router.client()?;
    assert_eq!(c.get("k")?.as_deref(), Some("gutter"));
    let r = c.set("k", "new")?;
    assert!(r.starts_with("SERVER_ERROR"), "{r:?}");
    assert_eq!(direct.get("k")?.as_deref(), Some("gutter"));
    assert_eq!(c.call("delete k\r\n")?, "DELETED\r\n");
    assert_eq!(direct.get("k")?, None);

    // A bad name is reported with its JSON path.
    let bad = pool_config(&["127.0.0.1:1".to_string()]).replace(
        "\"route\": \"PoolRoute|A\"",
        r#""route": {"type": "FailoverRoute", "children": ["PoolRoute|A"],
                     "failover_errors": {"gets": ["timeout", "nope"]}}"#,
    );
    let (_, err) = refused_config(&bad)?;
    assert!(
        err.contains("route.failover_errors.gets[1]: unknown error \"nope\""),
        "{err}"
    );
    Ok(())
}

#[test]
fn meta_quiet_mode_matches_memcached() -> Result<()> {
    let Some(ms) = memcacheds("meta_quiet_mode_matches_memcached", 2) else {
        return Ok(());
    };
    let router = Router::start(&pool_config(&[ms[1].server_string()]), &[])?;
    // Hits, misses, NS/EX/NF outcomes of mg/ms/md/ma with `q`, pipelined, then `mn`.
    let steps = [
        // misses
        "mg a q\r\n",
        "mg a q v k\r\n",
        "md zz q\r\n",
        "ma zz q\r\n",
        "ma zz q v\r\n",
        "ms zz 1 q MR\r\nx\r\n",
        "ms zz 1 q MA\r\nx\r\n",
        // stores
        "ms a 3 q\r\nabc\r\n",
        "ms n 1 q T0\r\n5\r\n",
        "ms a 1 q ME\r\nx\r\n",
        "ms a 1 q C99999\r\nx\r\n",
        "ms a 1 q MP\r\n<\r\n",
        // hits
        "mg a q\r\n",
        "mg a q s\r\n",
        "mg a q v k O77\r\n",
        "ma n q\r\n",
        "ma n q v\r\n",
        "ma n q MD D2 v\r\n",
        "ma a q\r\n",
        "ma n q C99999\r\n",
        // vivify: memcached answers the item it creates even under `q`, not an update
        "ma v1 q N0 J5\r\n",
        "ma v1 q N0 J5\r\n",
        "ma v2 q N0 J7 v t\r\n",
        "ma v2 q N0 v\r\n",
        "ma v3 q N0 MZ\r\n",
        // deletes
        "md a q C99999\r\n",
        "md a q\r\n",
        "md a q\r\n",
        "mg a q v\r\n",
        "md n q I\r\n",
        "mg n q v\r\n",
        "mg n q\r\n",
        // not quiet, for reference
        "md n\r\n",
        "mg zz v\r\n",
    ];
    let text: String = steps.concat() + "mn\r\n";
    let direct = session(ms[0].addr(), &text)?;
    let routed = session(router.addr(), &text)?;
    assert_eq!(routed, direct, "session:\n{text}");
    // The session is not trivially quiet: memcached showed NF, NS, EX and hits.
    for shown in [
        "NF\r\n",
        "NS\r\n",
        "EX\r\n",
        "VA 4 ka O77\r\n<abc\r\n",
        "VA 1 t-1\r\n7\r\n",
    ] {
        assert!(direct.contains(shown), "{shown:?} in {direct:?}");
    }
    // One by one, too (nothing left to be paired with a later reply).
    let mut c = router.client()?;
    assert_eq!(c.call("md zz q\r\nmn\r\n")?, "NF\r\n");
    assert_eq!(c.read_reply()?, "MN\r\n");
    Ok(())
}

#[test]
fn multiget_with_a_failed_destination_is_an_error() -> Result<()> {
    let Some(ms) = memcacheds("multiget_with_a_failed_destination_is_an_error", 1) else {
        return Ok(());
    };
    let live = ms[0].server_string();
    let dead = format!("127.0.0.1:{}", free_port()?);
    let router = Router::start(&pool_config(&[live.clone(), dead.clone()]), &[])?;
    let mut c = router.client()?;
    // Keys on both servers.
    let mut live_keys = Vec::new();
    let mut dead_keys = Vec::new();
    for i in 0.. {
        let k = format!("k{i}");
        let owner = c
            .get(&format!("__mcrouter__.route(get,{k})"))?
            .context("route")?;
        if owner == live {
            live_keys.push(k);
        } else {
            ensure!(owner == dead, "{owner}");
            dead_keys.push(k);
        }
        if live_keys.len() >= 3 && dead_keys.len() >= 3 {
            break;
        }
    }
    let mut direct = Client::connect(ms[0].addr())?;
    for k in &live_keys {
        assert_eq!(direct.set(k, "v")?, "STORED\r\n");
    }
    let mixed: Vec<&str> = live_keys
        .iter()
        .zip(&dead_keys)
        .flat_map(|(l, d)| [l.as_str(), d.as_str()])
        .collect();
    // First with a refused connect, then with the dead server marked TKO: the whole
    // reply is the one error line, no values, no END.
    for round in 0..3 {
        for op in ["get", "gets"] {
            let r = c.call(&format!("{op} {}\r\n", mixed.join(" ")))?;
            assert!(
                r.starts_with("SERVER_ERROR ") && r.ends_with("\r\n") && r.lines().count() == 1,
                "round {round} {op}: {r:?}"
            );
        }
    }
    // Only live keys: the values, in order.
    let r = c.call(&format!("get {}\r\n", live_keys.join(" ")))?;
    let expected: String = live_keys
        .iter()
        .map(|k| format!("VALUE {k} 0 1\r\nv\r\n"))
        .collect();
    assert_eq!(r, format!("{expected}END\r\n"));
    Ok(())
}

/// Single-key gets pipelined to one server go out joined into multi-key `get` (and `gets`)
/// lines and their replies are split back: each request still gets exactly the reply
/// memcached gives it directly (hits, misses, a key asked twice, a key with a control
/// byte, a value that looks like a reply, keys long enough to overflow a line, a large
/// value, CAS values of `gets`).
#[test]
fn joined_gets_answer_exactly_as_memcached() -> Result<()> {
    let Some(ms) = memcacheds("joined_gets_answer_exactly_as_memcached", 1) else {
        return Ok(());
    };
    let server = ms[0].server_string();
    let router = Router::start(&pool_config(std::slice::from_ref(&server)), &[])?;
    let mut direct = Client::connect(ms[0].addr())?;
    let mut keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    keys.push("\x10bin\x1a".into());
    keys.extend((0..12).map(|i| format!("{}{i:02}", "L".repeat(240))));
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            assert_eq!(direct.set(k, &format!("v{i}"))?, "STORED\r\n");
        }
    }
    let tricky = "END\r\nVALUE k1 0 2\r\nv1";
    assert_eq!(direct.set("tricky", tricky)?, "STORED\r\n");
    let big = "b".repeat(200_000);
    assert_eq!(direct.set("big", &big)?, "STORED\r\n");
    let mut order: Vec<&str> = keys.iter().map(String::as_str).collect();
    order.extend(["k1", "tricky", "k0", "big", "k1", "k2"]);
    // Runs of five `get`s and five `gets`: each run joins, and a run never joins the other.
    let pipelined: String = order
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let cmd = if (i / 5) % 2 == 0 { "get" } else { "gets" };
            format!("{cmd} {k}\r\n")
        })
        .collect();
    let s = format!("{pipelined}mn\r\n");
    let want = session(ms[0].addr(), &s)?;
    ensure!(
        want.matches("VALUE ").count() > 40,
        "memcached has the values"
    );
    for round in 0..3 {
        let got = session(router.addr(), &s)?;
        assert!(
            got == want,
            "round {round}: the router's replies differ from memcached's"
        );
    }
    // The gets did go out joined.
    let joined = router.client()?.server_counter("joined")?;
    // Each session arrives in one read, so most of its gets share a line.
    let sent = 3 * order.len() as u64;
    ensure!(joined >= sent / 2, "only {joined} of {sent} gets joined");
    Ok(())
}
