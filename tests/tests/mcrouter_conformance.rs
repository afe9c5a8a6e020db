//! mcrouter end to end: behaviours checked against Facebook mcrouter's sources, with the
//! router in front of real `memcached` backends (skipped, with a printed reason, only
//! when memcached is missing).
//!
//! - meta replies with `k` echo the client's key when a route rewrote it
//!   (ModifyKeyRoute, a `/region/cluster/` routing prefix), byte for byte as memcached
//!   answers the client's key itself;
//! - PoolRoute `shadows` (per destination `index_range`, `key_fraction_range`) and
//!   `rates` (`McRouteHandleProvider-inl.h` `makePoolRoute`, `PoolRouteUtils.h`);
//! - FailoverWithExptimeRoute's default `failover_exptime` is 60 s;
//! - an admin key inside a multi-get is answered in place (`get` only);
//! - an `OperationSelectorRoute` policy catches exactly its operation;
//! - the routing prefix is stripped at the destination unless `keep_routing_prefix`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::external::{free_port, memcacheds, Memcached};
use e2e_tests::router_support::{wait_until, Client, Router};

fn list(servers: &[&Memcached]) -> String {
    servers
        .iter()
        .map(|m| format!("\"{}\"", m.server_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn direct(m: &Memcached) -> Result<Client> {
    Client::connect(m.addr())
}

#[test]
fn meta_k_flag_echoes_the_clients_key() -> Result<()> {
    let Some(mc) = memcacheds("meta_k_flag_echoes_the_clients_key", 2) else {
        return Ok(());
    };
    let config = format!(
        r#"{{"pools": {{"A": {{"servers": [{}]}}}},
            "routes": [{{"aliases": ["/r/a/"],
                         "route": {{"type": "ModifyKeyRoute", "target": "PoolRoute|A",
                                    "ensure_key_prefix": "app:"}}}}]}}"#,
        list(&[&mc[0]])
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    // The reference: the same keys and values stored under the client's own keys in a
    // second memcached, asked directly.
    let mut reference = direct(&mc[1])?;
    for key in ["k", "/r/a/k", "foo"] {
        ensure!(c.set(key, "vv")? == "STORED\r\n");
        ensure!(reference.set(key, "vv")? == "STORED\r\n");
    }
    // What reached the backend: the rewritten key ("app:k"; the routing prefix stripped).
    ensure!(direct(&mc[0])?.get("app:k")?.as_deref() == Some("vv"));
    for req in [
        "mg k k v\r\n",
        "mg k s k f O42 v\r\n",
        "mg /r/a/k k v\r\n",
        "mg k k\r\n",
        // Base64 "Zm9v" is "foo": the echo is the client's base64 key.
        "mg Zm9v b k v\r\n",
        "mg L3IvYS9r b k v\r\n",
        "ms k 2 k\r\nzz\r\n",
        "md k k q\r\nmn\r\n",
        "mg k k v\r\n",
    ] {
        let ours = c.call(req)?;
        let want = reference.call(req)?;
        ensure!(ours == want, "{req:?}: router {ours:?}, memcached {want:?}");
    }
    // VALUE lines carry the client's keys too (both reach the backend as "app:k").
    ensure!(c.set("/r/a/k", "vv")? == "STORED\r\n");
    assert_eq!(
        c.call("get k /r/a/k\r\n")?,
        "VALUE k 0 2\r\nvv\r\nVALUE /r/a/k 0 2\r\nvv\r\nEND\r\n"
    );
    Ok(())
}

#[test]
fn pool_shadows_copy_the_destinations_in_index_range() -> Result<()> {
    let Some(mc) = memcacheds("pool_shadows_copy_the_destinations_in_index_range", 3) else {
        return Ok(());
    };
    let (a0, a1, shadow) = (&mc[0], &mc[1], &mc[2]);
    let config = format!(
        r#"{{"pools": {{"A": {{"servers": [{}]}}, "S": {{"servers": [{}]}}}},
            "route": {{"type": "PoolRoute", "pool": "A",
                       "shadows": [{{"target": "PoolRoute|S", "index_range": [0, 1],
                                     "key_fraction_range": [0, 1]}}]}}}}"#,
        list(&[a0, a1]),
        list(&[shadow])
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    let keys: Vec<String> = (0..40).map(|i| format!("shadow:{i}")).collect();
    for k in &keys {
        ensure!(c.set(k, "v")? == "STORED\r\n", "set {k}");
    }
    let on_first: Vec<bool> = {
        let mut d0 = direct(a0)?;
        keys.iter()
            .map(|k| d0.get(k).map(|v| v.is_some()))
            .collect::<Result<_>>()?
    };
    ensure!(
        on_first.iter().any(|&b| b) && on_first.iter().any(|&b| !b),
        "the keys spread over both servers: {on_first:?}"
    );
    // The shadow copies are sent in request order on one connection: once the last
    // copied key is there, every earlier copy has landed too.
    let last = on_first.iter().rposition(|&b| b).unwrap();
    let mut s = direct(shadow)?;
    ensure!(
        wait_until(Duration::from_secs(10), || s
            .get(&keys[last])
            .is_ok_and(|v| v.is_some())),
        "{} never reached the shadow pool",
        keys[last]
    );
    for (i, k) in keys.iter().enumerate().take(last) {
        let copied = s.get(k)?.is_some();
        ensure!(
            copied == on_first[i],
            "{k}: on index 0: {}, copied: {copied}",
            on_first[i]
        );
    }
    Ok(())
}

#[test]
fn pool_rates_limit_the_pool() -> Result<()> {
    let Some(mc) = memcacheds("pool_rates_limit_the_pool", 1) else {
        return Ok(());
    };
    let config = format!(
        r#"{{"pools": {{"A": {{"servers": [{}]}}}},
            "route": {{"type": "PoolRoute", "pool": "A",
                       "rates": {{"sets_rate": 0.001, "sets_burst": 2}}}}}}"#,
        list(&[&mc[0]])
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    // mcrouter's buckets start empty (folly `TokenBucket(rate, burst, now)`), and this
    // one gets its first token after 1000 s: the default reply, nothing sent on.
    assert_eq!(c.set("r1", "v")?, "NOT_STORED\r\n");
    assert_eq!(direct(&mc[0])?.get("r1")?, None, "not sent on");
    // Gets have no limit here.
    assert_eq!(direct(&mc[0])?.set("r2", "v")?, "STORED\r\n");
    for _ in 0..5 {
        assert_eq!(c.get("r2")?.as_deref(), Some("v"));
    }
    Ok(())
}

#[test]
fn failover_with_exptime_defaults_to_60_seconds() -> Result<()> {
    let Some(mc) = memcacheds("failover_with_exptime_defaults_to_60_seconds", 1) else {
        return Ok(());
    };
    let dead = format!("127.0.0.1:{}", free_port()?);
    let config = format!(
        r#"{{"pools": {{"main": {{"servers": ["{dead}"]}}, "gutter": {{"servers": [{}]}}}},
            "route": {{"type": "FailoverWithExptimeRoute", "normal": "PoolRoute|main",
                       "failover": "PoolRoute|gutter"}}}}"#,
        list(&[&mc[0]])
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    assert_eq!(c.set("g", "v")?, "STORED\r\n");
    let r = direct(&mc[0])?.call("mg g t\r\n")?;
    let ttl: i64 = r
        .trim_end()
        .strip_prefix("HD t")
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("mg g t: {r:?}"))?;
    ensure!((55..=60).contains(&ttl), "gutter TTL {ttl}, want 60");
    Ok(())
}

#[test]
fn admin_keys_are_answered_inside_a_multiget() -> Result<()> {
    let Some(mc) = memcacheds("admin_keys_are_answered_inside_a_multiget", 2) else {
        return Ok(());
    };
    let config = format!(
        r#"{{"pools": {{"A": {{"servers": [{}]}}}}, "route": "PoolRoute|A"}}"#,
        list(&[&mc[0], &mc[1]])
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    let version = c.get("__mcrouter__.version")?.context("version")?;
    assert_eq!(c.set("a", "1")?, "STORED\r\n");
    assert_eq!(c.set("b", "22")?, "STORED\r\n");
    let r = c.call("get a __mcrouter__.version missing b __mcrouter__.nope\r\n")?;
    assert_eq!(
        r,
        format!(
            "VALUE a 0 1\r\n1\r\nVALUE __mcrouter__.version 0 {}\r\n{version}\r\n\
             VALUE b 0 2\r\n22\r\nEND\r\n",
            version.len()
        )
    );
    let r = c.call("get __mcrouter__.version __mcrouter__.config_file\r\n")?;
    ensure!(
        r.starts_with(&format!(
            "VALUE __mcrouter__.version 0 {}\r\n",
            version.len()
        )) && r.contains("VALUE __mcrouter__.config_file ")
            && r.ends_with("END\r\n"),
        "{r:?}"
    );
    // Only `get` asks the router (mcrouter's processGetServiceInfoRequest): `gets` of
    // an admin key goes to a server like any key.
    assert_eq!(c.call("gets __mcrouter__.version\r\n")?, "END\r\n");
    Ok(())
}

#[test]
fn operation_policies_catch_only_their_operation() -> Result<()> {
    let Some(mc) = memcacheds("operation_policies_catch_only_their_operation", 2) else {
        return Ok(());
    };
    let (g, x) = (&mc[0], &mc[1]);
    let config = format!(
        r#"{{"pools": {{"G": {{"servers": [{}]}}, "X": {{"servers": [{}]}}}},
            "route": {{"type": "OperationSelectorRoute",
                       "operation_policies": {{"get": "PoolRoute|G", "delete": "PoolRoute|G"}},
                       "default_policy": "PoolRoute|X"}}}}"#,
        list(&[g]),
        list(&[x])
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    assert_eq!(c.set("k", "x")?, "STORED\r\n", "set: default policy");
    ensure!(direct(x)?.get("k")?.is_some());
    ensure!(direct(g)?.set("k", "g")? == "STORED\r\n");
    // `get` has its own policy; gets, gat, mg and md do not.
    assert_eq!(c.get("k")?.as_deref(), Some("g"));
    let r = c.call("gets k\r\n")?;
    ensure!(
        r.starts_with("VALUE k 0 1 ") && r.contains("\r\nx\r\n"),
        "{r:?}"
    );
    assert_eq!(c.call("gat 100 k\r\n")?, "VALUE k 0 1\r\nx\r\nEND\r\n");
    assert_eq!(c.call("mg k v\r\n")?, "VA 1\r\nx\r\n");
    assert_eq!(c.call("md k\r\n")?, "HD\r\n");
    ensure!(
        direct(x)?.get("k")?.is_none(),
        "md went to the default policy"
    );
    assert_eq!(c.call("delete k\r\n")?, "DELETED\r\n");
    ensure!(direct(g)?.get("k")?.is_none(), "delete went to G");
    Ok(())
}

/// mcrouter's DestinationRoute strips the routing prefix just before the server, unless
/// the pool says `keep_routing_prefix`; a prefix set by ModifyKeyRoute's
/// `set_routing_prefix` is stripped there too.
#[test]
fn routing_prefix_is_stripped_at_the_destination() -> Result<()> {
    let Some(mc) = memcacheds("routing_prefix_is_stripped_at_the_destination", 2) else {
        return Ok(());
    };
    let (plain, keep) = (&mc[0], &mc[1]);
    let config = format!(
        r#"{{"pools": {{"A": {{"servers": [{}]}},
                       "K": {{"servers": [{}], "keep_routing_prefix": true}}}},
            "routes": [
              {{"aliases": ["/r/a/"], "route": "PoolRoute|A"}},
              {{"aliases": ["/r/k/"], "route": "PoolRoute|K"}},
              {{"aliases": ["/r/m/"], "route": {{"type": "ModifyKeyRoute",
                  "set_routing_prefix": "/s/t/", "target": "PoolRoute|A"}}}}]}}"#,
        list(&[plain]),
        list(&[keep])
    );
    let router = Router::start(&config, &[])?;
    let mut c = router.client()?;
    for key in ["/r/a/x", "/r/k/y", "/r/m/z", "w"] {
        ensure!(c.set(key, "v")? == "STORED\r\n", "set {key}");
    }
    let mut p = direct(plain)?;
    let mut k = direct(keep)?;
    ensure!(p.get("x")?.is_some(), "the prefix is stripped for pool A");
    ensure!(k.get("/r/k/y")?.is_some(), "pool K keeps it");
    ensure!(k.get("y")?.is_none());
    ensure!(
        p.get("z")?.is_some() && p.get("/s/t/z")?.is_none(),
        "set_routing_prefix: stripped at the destination too"
    );
    ensure!(p.get("w")?.is_some(), "no prefix: the default route");
    // Every reply carries the client's key.
    assert_eq!(c.call("mg /r/k/y k v\r\n")?, "VA 1 k/r/k/y\r\nv\r\n");
    assert_eq!(c.call("mg /r/m/z k v\r\n")?, "VA 1 k/r/m/z\r\nv\r\n");
    assert_eq!(
        c.call("get /r/a/x /r/k/y /r/m/z w\r\n")?,
        "VALUE /r/a/x 0 1\r\nv\r\nVALUE /r/k/y 0 1\r\nv\r\nVALUE /r/m/z 0 1\r\nv\r\n\
         VALUE w 0 1\r\nv\r\nEND\r\n"
    );
    Ok(())
}
