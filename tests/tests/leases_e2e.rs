//! Leases end to end: `lease-get`/`lease-set` on the cache-server binary, through the
//! router (native pass-through, token -> server memory across a config reload), and the
//! router's meta-command emulation in front of a stock `memcached`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::bins::OurServer;
use e2e_tests::external::{memcached_path, skip, Memcached};
use e2e_tests::router_support::{pool_config, wait_until, Client, Router};

/// A raw client that reads a reply up to its terminator (`END`, or one line).
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Result<Raw> {
        let s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Raw { s, buf: Vec::new() })
    }

    fn call(&mut self, req: &str, until_end: bool) -> Result<String> {
        self.s.write_all(req.as_bytes())?;
        loop {
            let done = if until_end {
                self.buf.ends_with(b"END\r\n") || self.buf.starts_with(b"SERVER_ERROR")
            } else {
                self.buf.ends_with(b"\r\n")
            };
            if done {
                let out = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                return Ok(out);
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).context("read")?;
            if n == 0 {
                bail!("closed; have {:?}", String::from_utf8_lossy(&self.buf));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// `lease-get`: `Ok((token, data))` on a miss (`LVALUE`), `Err` text otherwise.
    fn lease_get(&mut self, key: &str) -> Result<LeaseReply> {
        let r = self.call(&format!("lease-get {key}\r\n"), true)?;
        if r.starts_with("VALUE ") {
            let data = r.split("\r\n").nth(1).unwrap_or("").to_string();
            return Ok(LeaseReply::Hit(data));
        }
        let Some(rest) = r.strip_prefix("LVALUE ") else {
            bail!("lease-get {key}: {r:?}");
        };
        let mut lines = rest.split("\r\n");
        let head: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
        ensure!(head.len() == 4 && head[0] == key, "bad LVALUE {r:?}");
        Ok(LeaseReply::Miss {
            token: head[1].parse()?,
            flags: head[2].parse()?,
            data: lines.next().unwrap_or("").to_string(),
        })
    }

    fn lease_set(&mut self, key: &str, token: u64, value: &str) -> Result<String> {
        self.call(
            &format!("lease-set {key} {token} 0 0 {}\r\n{value}\r\n", value.len()),
            false,
        )
    }
}

#[derive(Debug, PartialEq)]
enum LeaseReply {
    Hit(String),
    Miss {
        token: u64,
        flags: u32,
        data: String,
    },
}

impl LeaseReply {
    fn token(&self) -> u64 {
        match self {
            LeaseReply::Miss { token, .. } => *token,
            LeaseReply::Hit(_) => 0,
        }
    }
}

fn cache_server(extra: &[&str]) -> Result<OurServer> {
    let mut args = vec!["-p", "0", "-U", "0"];
    args.extend_from_slice(extra);
    OurServer::start("cache-server", &args)
}

/// `n` clients, each on its own socket, lease-get `key` at the same moment.
fn concurrent_tokens(addr: SocketAddr, key: &str, n: usize) -> Result<Vec<u64>> {
    let mut conns = (0..n)
        .map(|_| Raw::connect(addr))
        .collect::<Result<Vec<_>>>()?;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = conns
        .drain(..)
        .map(|mut c| {
            let (b, key) = (barrier.clone(), key.to_string());
            std::thread::spawn(move || {
                b.wait();
                c.lease_get(&key).map(|r| r.token())
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect()
}

fn winners(tokens: &[u64]) -> usize {
    tokens.iter().filter(|&&t| t > 1).count()
}

#[test]
fn one_fill_token_under_200_concurrent_lease_gets() -> Result<()> {
    let s = cache_server(&[])?;
    let tokens = concurrent_tokens(s.addr(), "hot", 200)?;
    ensure!(winners(&tokens) == 1, "tokens: {tokens:?}");
    ensure!(tokens.iter().all(|&t| t >= 1), "hits? {tokens:?}");
    let t = *tokens.iter().find(|&&t| t > 1).expect("one winner");
    let mut c = Raw::connect(s.addr())?;
    assert_eq!(c.lease_set("hot", 1, "nope")?, "NOT_STORED\r\n");
    assert_eq!(c.lease_set("hot", t, "filled")?, "STORED\r\n");
    assert_eq!(c.lease_get("hot")?, LeaseReply::Hit("filled".into()));
    // The token is spent: a second fill is refused.
    assert_eq!(c.lease_set("hot", t, "again")?, "NOT_STORED\r\n");
    let stats = Client::connect(s.addr())?.stats()?;
    assert_eq!(stats["lease_tokens_issued"], "1");
    assert_eq!(stats["lease_hot_misses"], "199");
    Ok(())
}

#[test]
fn writes_invalidate_tokens_and_delete_keeps_a_stale_value() -> Result<()> {
    let s = cache_server(&["-o", "lease_stale_ttl=30"])?;
    let mut c = Raw::connect(s.addr())?;
    let mut plain = Client::connect(s.addr())?;
    // set invalidates.
    let t = c.lease_get("k")?.token();
    ensure!(t > 1);
    plain.set("k", "fresh")?;
    assert_eq!(c.lease_set("k", t, "old fill")?, "NOT_STORED\r\n");
    assert_eq!(plain.get("k")?.as_deref(), Some("fresh"));
    // delete invalidates; the deleted value is served as stale to lease-get only.
    plain.call("set k 7 0 3\r\nold\r\n")?;
    let t1 = c.lease_get("j")?.token();
    assert_eq!(plain.call("delete k\r\n")?, "DELETED\r\n");
    assert_eq!(plain.get("k")?, None, "stale copies are invisible to get");
    assert_eq!(plain.call("add k 0 0 1\r\nx\r\n")?, "STORED\r\n");
    assert_eq!(plain.call("delete k\r\n")?, "DELETED\r\n");
    // The add replaced the stale copy ("x" was deleted last).
    let r = c.lease_get("k")?;
    let LeaseReply::Miss { token, flags, data } = r else {
        bail!("expected a miss: {r:?}");
    };
    ensure!(
        token > 1 && flags == 0 && data == "x",
        "{token} {flags} {data}"
    );
    let r2 = c.lease_get("k")?;
    assert_eq!(
        r2,
        LeaseReply::Miss {
            token: 1,
            flags: 0,
            data: "x".into()
        }
    );
    // One fill per invalidation: a delete between two lease-gets gives a fresh token.
    plain.call("delete k\r\n")?;
    let t3 = c.lease_get("k")?.token();
    ensure!(t3 > 1 && t3 != token);
    assert_eq!(c.lease_set("k", token, "stale fill")?, "NOT_STORED\r\n");
    assert_eq!(c.lease_set("k", t3, "good")?, "STORED\r\n");
    // Unrelated key's token still valid.
    assert_eq!(c.lease_set("j", t1, "j")?, "STORED\r\n");
    let stats = plain.stats()?;
    ensure!(
        stats["lease_stale_answers"] == "2",
        "{:?}",
        stats["lease_stale_answers"]
    );
    Ok(())
}

#[test]
fn expired_and_wrong_tokens_are_refused() -> Result<()> {
    let s = cache_server(&["-o", "lease_ttl=1"])?;
    let mut c = Raw::connect(s.addr())?;
    let t1 = c.lease_get("k")?.token();
    ensure!(t1 > 1);
    assert_eq!(c.lease_set("k", t1 + 12345, "wrong")?, "NOT_STORED\r\n");
    assert_eq!(c.lease_set("k", 0, "zero")?, "NOT_STORED\r\n");
    // Poll until the window ends and a new token is handed out.
    let mut t2 = 0;
    ensure!(
        wait_until(Duration::from_secs(5), || {
            t2 = c.lease_get("k").map(|r| r.token()).unwrap_or(0);
            t2 > 1
        }),
        "no new window"
    );
    ensure!(t2 != t1);
    assert_eq!(c.lease_set("k", t1, "expired")?, "NOT_STORED\r\n");
    assert_eq!(c.lease_set("k", t2, "ok")?, "STORED\r\n");
    Ok(())
}

fn router_config(servers: &[String], pool_opts: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [{}]{pool_opts}}}}}, \"route\": \"PoolRoute|A\"}}",
        list.join(", ")
    )
}

#[test]
fn leases_through_the_router_one_winner_and_sticky_lease_set() -> Result<()> {
    let servers: Vec<OurServer> = (0..3).map(|_| cache_server(&[])).collect::<Result<_>>()?;
    let names: Vec<String> = servers.iter().map(|s| s.addr().to_string()).collect();
    let router = Router::start(&pool_config(&names), &["--num-proxies", "2"])?;
    let tokens = concurrent_tokens(router.addr(), "hot", 200)?;
    ensure!(winners(&tokens) == 1, "tokens: {tokens:?}");
    let t = *tokens.iter().find(|&&t| t > 1).expect("winner");
    let mut c = Raw::connect(router.addr())?;
    assert_eq!(c.lease_set("hot", t, "v")?, "STORED\r\n");
    assert_eq!(c.lease_get("hot")?, LeaseReply::Hit("v".into()));

    // Token -> server memory: lease-get on the config [s0], reload to [s1], lease-set
    // still reaches s0.
    let one = |i: usize| router_config(&names[i..=i], "");
    router.rewrite_config(&one(0))?;
    let mut admin = router.client()?;
    ensure!(wait_until(Duration::from_secs(10), || admin
        .stats()
        .is_ok_and(|s| s["config_reloads"] == "1")));
    let t = c.lease_get("moving")?.token();
    ensure!(t > 1);
    router.rewrite_config(&one(1))?;
    ensure!(wait_until(Duration::from_secs(10), || admin
        .stats()
        .is_ok_and(|s| s["config_reloads"] == "2")));
    assert_eq!(c.lease_set("moving", t, "filled")?, "STORED\r\n");
    assert_eq!(
        Client::connect(servers[0].addr())?
            .get("moving")?
            .as_deref(),
        Some("filled")
    );
    assert_eq!(Client::connect(servers[1].addr())?.get("moving")?, None);
    Ok(())
}

#[test]
fn leases_emulated_with_meta_commands_on_stock_memcached() -> Result<()> {
    if memcached_path().is_none() {
        skip(
            "leases_emulated_with_meta_commands_on_stock_memcached",
            "memcached is not installed",
        );
        return Ok(());
    }
    let ms: Vec<Memcached> = (0..2).map(|_| Memcached::start()).collect::<Result<_>>()?;
    let names: Vec<String> = ms.iter().map(|m| m.server_string()).collect();
    let cfg = router_config(&names, ", \"lease_mode\": \"meta\", \"lease_ttl\": 30");
    let router = Router::start(&cfg, &["--num-proxies", "2"])?;
    let tokens = concurrent_tokens(router.addr(), "hot", 100)?;
    ensure!(winners(&tokens) == 1, "tokens: {tokens:?}");
    let t = *tokens.iter().find(|&&t| t > 1).expect("winner");
    let mut c = Raw::connect(router.addr())?;
    assert_eq!(c.lease_set("hot", t + 1, "wrong")?, "NOT_STORED\r\n");
    assert_eq!(c.lease_set("hot", t, "v")?, "STORED\r\n");
    assert_eq!(c.lease_get("hot")?, LeaseReply::Hit("v".into()));
    let mut plain = router.client()?;
    assert_eq!(plain.get("hot")?.as_deref(), Some("v"));

    // A write between lease-get and lease-set voids the token.
    let t = c.lease_get("k")?.token();
    ensure!(t > 1);
    assert_eq!(c.lease_get("k")?.token(), 1, "hot miss");
    plain.set("k", "newer")?;
    assert_eq!(c.lease_set("k", t, "stale fill")?, "NOT_STORED\r\n");
    assert_eq!(plain.get("k")?.as_deref(), Some("newer"));

    // `md k I` (memcached's invalidation) keeps a stale value: one client wins the
    // refill and sees it, the others get token 1 with the stale value.
    let mut direct = Client::connect(
        ms.iter()
            .find(|m| {
                Client::connect(m.addr())
                    .and_then(|mut x| x.get("k"))
                    .is_ok_and(|v| v.is_some())
            })
            .expect("k lives somewhere")
            .addr(),
    )?;
    assert_eq!(direct.call("md k I\r\n")?, "HD\r\n");
    let LeaseReply::Miss { token, data, .. } = c.lease_get("k")? else {
        bail!("stale item should be a lease miss");
    };
    ensure!(token > 1 && data == "newer", "{token} {data}");
    let LeaseReply::Miss {
        token: t2, data, ..
    } = c.lease_get("k")?
    else {
        bail!("expected a hot miss");
    };
    ensure!(t2 == 1 && data == "newer");
    assert_eq!(c.lease_set("k", token, "refilled")?, "STORED\r\n");
    assert_eq!(plain.get("k")?.as_deref(), Some("refilled"));
    Ok(())
}
