//! `WarmUpRoute` end to end (NSDI'13 "Scaling Memcache at Facebook", section 4.3): the
//! real router in front of a warm server pre-filled directly with N keys and an empty cold
//! server. Every get through the router is a hit from the first pass on (zero client-visible
//! misses), the cold server's own hit ratio goes from 0% (pass 1) to 100% (pass 2, once the
//! background `add`s have landed), and the copies keep the warm items' flags and remaining
//! TTLs (`mg k t`), including "never expires" and TTLs over 30 days.
//!
//! Run against our cache-server and against stock memcached 1.6 (warm and cold both
//! memcached: the `mg k s v f t` path and the absolute-exptime adds on a stock server);
//! the memcached run is skipped with a printed reason when memcached is not installed.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e_tests::bins::{bin_path, OurServer};
use e2e_tests::external::{memcached_path, skip, Memcached};
use e2e_tests::observability_support::http_get;
use e2e_tests::router_support::{wait_until, Client, Router};
use protocol::Response;

/// Keys pre-filled in the warm server.
const N: usize = 2000;
/// Requests per pipelined batch.
const BATCH: usize = 100;
/// Slack allowed between the warm and the cold TTL of a copy (clocks tick per second).
const TTL_SLACK: i64 = 3;
const FORTY_DAYS: i64 = 40 * 86_400;

/// A backend of either kind, stopped on drop.
enum Backend {
    Ours(OurServer),
    Stock(Memcached),
}

impl Backend {
    fn addr(&self) -> SocketAddr {
        match self {
            Backend::Ours(s) => s.addr(),
            Backend::Stock(m) => m.addr(),
        }
    }
}

fn start(kind: &str) -> Result<Backend> {
    Ok(match kind {
        "cache-server" => Backend::Ours(OurServer::start("cache-server", &["-p", "0", "-U", "0"])?),
        _ => Backend::Stock(Memcached::start()?),
    })
}

/// Printed even for passing tests (the harness captures `eprintln!`).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One pre-filled item.
struct Item {
    key: String,
    value: String,
    flags: u32,
    /// The exptime it was stored with (0, 1000 s, or an absolute time 40 days ahead).
    exptime: i64,
}

fn items(now: i64) -> Vec<Item> {
    (0..N)
        .map(|i| {
            // Mostly short values, some of 100 KB (several reads on the router's side).
            let len = if i % 500 == 7 { 100_000 } else { i % 60 };
            Item {
                key: format!("wu:{i}"),
                value: format!(
                    "v{i}:{}",
                    (0..len)
                        .map(|j| (b'a' + (j % 26) as u8) as char)
                        .collect::<String>()
                ),
                flags: (i as u32).wrapping_mul(2_654_435_761),
                exptime: match i % 3 {
                    0 => 0,
                    1 => 1000,
                    _ => now + FORTY_DAYS,
                },
            }
        })
        .collect()
}

/// Send `reqs` pipelined in batches, returning every reply in order.
fn pipelined(c: &mut Client, reqs: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(reqs.len());
    for batch in reqs.chunks(BATCH) {
        c.send(&batch.concat())?;
        for _ in batch {
            out.push(c.read_reply()?);
        }
    }
    Ok(out)
}

fn stat(c: &mut Client, name: &str) -> Result<u64> {
    c.stats()?
        .get(name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no stat {name}"))
}

/// `(get_hits, get_misses)` of a server.
fn hits_misses(c: &mut Client) -> Result<(u64, u64)> {
    let s = c.stats()?;
    let n = |k: &str| -> Result<u64> {
        s.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no stat {k}"))
    };
    Ok((n("get_hits")?, n("get_misses")?))
}

/// `(flags, ttl, value)` of `key` by `mg key f t v` (asked directly), `None` on a miss.
fn meta_item(c: &mut Client, key: &str) -> Result<Option<(u32, i64, Vec<u8>)>> {
    let r = c.call(&format!("mg {key} f t v\r\n"))?;
    match protocol::parse_response(r.as_bytes()) {
        Ok(Some((Response::Meta { data: None, .. }, _))) if r.starts_with("EN") => Ok(None),
        Ok(Some((m @ Response::Meta { data: Some(d), .. }, _))) => {
            let num = |f: u8| -> Result<i64> {
                let v = m
                    .meta_flag(f)
                    .ok_or_else(|| anyhow!("no {} in {r:?}", f as char))?;
                Ok(std::str::from_utf8(v)?.parse()?)
            };
            Ok(Some((num(b'f')? as u32, num(b't')?, d.to_vec())))
        }
        _ => bail!("mg {key}: {r:?}"),
    }
}

/// A counter of the router's Prometheus exposition with `result="<result>"`.
fn router_counter(metrics: SocketAddr, name: &str, result: &str) -> Result<u64> {
    let (status, body) = http_get(metrics, "/metrics")?;
    ensure!(status == 200, "scrape: HTTP {status}");
    let label = format!("result=\"{result}\"");
    Ok(body
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// The router's metrics address (the line it prints after `listening on`).
fn metrics_addr(router: &Router) -> Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = router
            .server
            .next_line(left)
            .ok_or_else(|| anyhow!("router printed no `metrics on` line"))?;
        if let Some(a) = line
            .strip_prefix("metrics on http://")
            .and_then(|r| r.strip_suffix("/metrics"))
        {
            return a.parse().with_context(|| format!("metrics line {line:?}"));
        }
    }
}

fn warm_up_config(cold: SocketAddr, warm: SocketAddr, holdoff_ms: u64) -> String {
    format!(
        r#"{{
  "pools": {{"cold": {{"servers": ["{cold}"]}}, "warm": {{"servers": ["{warm}"]}}}},
  "route": {{"type": "WarmUpRoute", "cold": "PoolRoute|cold", "warm": "PoolRoute|warm",
             "delete_holdoff_ms": {holdoff_ms}}}
}}"#
    )
}

fn start_router(
    cold: SocketAddr,
    warm: SocketAddr,
    holdoff_ms: u64,
) -> Result<(Router, SocketAddr)> {
    let router = Router::start(
        &warm_up_config(cold, warm, holdoff_ms),
        &["--metrics-listen", "127.0.0.1:0"],
    )?;
    let metrics = metrics_addr(&router)?;
    Ok((router, metrics))
}

/// The whole scenario with `kind` servers (`cache-server` or `memcached`) as warm and cold.
fn warm_up_scenario(kind: &str) -> Result<()> {
    let t_start = Instant::now();
    let warm = start(kind)?;
    let cold = start(kind)?;
    let now = unix_now();
    let items = items(now);

    // Pre-fill the warm server directly (not through the router).
    let mut w = Client::connect(warm.addr())?;
    let sets: Vec<String> = items
        .iter()
        .map(|it| {
            format!(
                "set {} {} {} {}\r\n{}\r\n",
                it.key,
                it.flags,
                it.exptime,
                it.value.len(),
                it.value
            )
        })
        .collect();
    for (it, r) in items.iter().zip(pipelined(&mut w, &sets)?) {
        ensure!(r == "STORED\r\n", "warm set {}: {r:?}", it.key);
    }
    ensure!(
        stat(&mut w, "curr_items")? == N as u64,
        "warm holds every key"
    );

    let (router, metrics) = start_router(cold.addr(), warm.addr(), 0)?;
    let mut c = router.client()?;
    let mut cc = Client::connect(cold.addr())?;
    let gets: Vec<String> = items
        .iter()
        .map(|it| format!("get {}\r\n", it.key))
        .collect();
    let check_pass = |pass: usize, replies: Vec<String>| -> Result<()> {
        for (it, r) in items.iter().zip(replies) {
            match protocol::parse_response(r.as_bytes()) {
                Ok(Some((
                    Response::Value {
                        key, flags, data, ..
                    },
                    _,
                ))) => {
                    ensure!(
                        key == it.key.as_bytes(),
                        "pass {pass}: {}: key of {r:?}",
                        it.key
                    );
                    ensure!(
                        flags == it.flags,
                        "pass {pass}: {}: flags {flags} != {}",
                        it.key,
                        it.flags
                    );
                    ensure!(
                        data == it.value.as_bytes(),
                        "pass {pass}: {}: wrong value",
                        it.key
                    );
                    ensure!(
                        r.ends_with("\r\nEND\r\n"),
                        "pass {pass}: {}: no END",
                        it.key
                    );
                }
                _ => bail!(
                    "pass {pass}: {}: client-visible miss or error: {:?}",
                    it.key,
                    &r[..r.len().min(80)]
                ),
            }
        }
        Ok(())
    };

    // Pass 1: every key misses in cold and is answered from warm.
    let (h0, m0) = hits_misses(&mut cc)?;
    let (wh0, _) = hits_misses(&mut w)?;
    let t1 = Instant::now();
    let replies = pipelined(&mut c, &gets)?;
    let pass1 = t1.elapsed();
    check_pass(1, replies)?;
    let (h1, m1) = hits_misses(&mut cc)?;
    let (wh1, _) = hits_misses(&mut w)?;
    ensure!(
        (h1 - h0, m1 - m0) == (0, N as u64),
        "pass 1 on cold: {} hits, {} misses",
        h1 - h0,
        m1 - m0
    );
    ensure!(wh1 - wh0 == N as u64, "pass 1: warm hits {}", wh1 - wh0);
    ensure!(router_counter(metrics, "mcrouter_warmup_gets_total", "warm_hit")? == N as u64);

    // The background adds land.
    let t_fill = Instant::now();
    let landed = wait_until(Duration::from_secs(15), || {
        stat(&mut cc, "curr_items").is_ok_and(|n| n == N as u64)
    });
    ensure!(
        landed,
        "cold holds {} of {N} keys",
        stat(&mut cc, "curr_items")?
    );
    let fill_wait = t_fill.elapsed();
    ensure!(
        wait_until(Duration::from_secs(5), || router_counter(
            metrics,
            "mcrouter_warmup_fills_total",
            "stored"
        )
        .is_ok_and(|n| n == N as u64)),
        "fills stored: {}",
        router_counter(metrics, "mcrouter_warmup_fills_total", "stored")?
    );

    // Pass 2: every key hits in cold; warm is not asked.
    let t2 = Instant::now();
    let replies = pipelined(&mut c, &gets)?;
    let pass2 = t2.elapsed();
    check_pass(2, replies)?;
    let (h2, m2) = hits_misses(&mut cc)?;
    let (wh2, _) = hits_misses(&mut w)?;
    ensure!(
        (h2 - h1, m2 - m1) == (N as u64, 0),
        "pass 2 on cold: {} hits, {} misses",
        h2 - h1,
        m2 - m1
    );
    ensure!(wh2 == wh1, "pass 2 asked warm {} times", wh2 - wh1);
    ensure!(router_counter(metrics, "mcrouter_warmup_gets_total", "cold_hit")? == N as u64);
    ensure!(router_counter(metrics, "mcrouter_warmup_gets_total", "miss")? == 0);

    // The copies: same value and flags, TTL within a few seconds of the warm one.
    let mut per_class: HashMap<&str, usize> = HashMap::new();
    for it in items.iter().step_by(17) {
        let (wf, wt, wv) = meta_item(&mut w, &it.key)?.context("warm lost a key")?;
        let (cf, ct, cv) = meta_item(&mut cc, &it.key)?
            .with_context(|| format!("cold does not hold {}", it.key))?;
        ensure!(
            (cf, &cv) == (wf, &wv),
            "{}: cold flags/value differ",
            it.key
        );
        ensure!(cf == it.flags, "{}: flags {cf} != {}", it.key, it.flags);
        let class = match it.exptime {
            0 => {
                ensure!(
                    (wt, ct) == (-1, -1),
                    "{}: no-expiry TTLs {wt} / {ct}",
                    it.key
                );
                "never"
            }
            1000 => {
                ensure!((900..=1000).contains(&wt), "{}: warm ttl {wt}", it.key);
                "1000s"
            }
            _ => {
                ensure!(wt > 30 * 86_400, "{}: warm ttl {wt}", it.key);
                "40d"
            }
        };
        ensure!(
            (ct - wt).abs() <= TTL_SLACK,
            "{} ({class}): cold ttl {ct}, warm ttl {wt}",
            it.key
        );
        *per_class.entry(class).or_default() += 1;
    }
    ensure!(
        per_class.len() == 3,
        "sampled every TTL class: {per_class:?}"
    );

    // A key in neither: a miss; a set through the router lands on cold only.
    ensure!(c.get("wu:absent")?.is_none(), "absent key");
    ensure!(
        meta_item(&mut cc, "wu:absent")?.is_none(),
        "absent key copied to cold"
    );
    ensure!(c.set("wu:new", "fresh")? == "STORED\r\n");
    ensure!(
        cc.get("wu:new")?.as_deref() == Some("fresh"),
        "set reached cold"
    );
    ensure!(w.get("wu:new")?.is_none(), "set must not reach warm");
    // An update through the router wins over the warm value from then on.
    ensure!(c.set("wu:0", "updated")? == "STORED\r\n");
    ensure!(c.get("wu:0")?.as_deref() == Some("updated"));

    let ratio = |h: u64| 100.0 * h as f64 / N as f64;
    report(&format!(
        "warm_up_e2e [{kind}]: N={N}; pass 1: cold hit ratio {:.1}%, client hits {N}/{N}, {:?}; \
         adds landed {:?} after pass 1; pass 2: cold hit ratio {:.1}%, client hits {N}/{N}, {:?}; \
         sampled TTLs {per_class:?}; total {:?}",
        ratio(h1 - h0),
        pass1,
        fill_wait,
        ratio(h2 - h1),
        pass2,
        t_start.elapsed()
    ));
    Ok(())
}

#[test]
fn warm_up_with_cache_servers() -> Result<()> {
    bin_path("cache-server")?;
    warm_up_scenario("cache-server")
}

#[test]
fn warm_up_with_stock_memcached() -> Result<()> {
    if memcached_path().is_none() {
        skip("warm_up_with_stock_memcached", "memcached is not installed");
        return Ok(());
    }
    warm_up_scenario("memcached")
}

/// With `delete_holdoff_ms`, a key deleted through the router is answered from warm but
/// not copied into cold during the window; other keys are.
#[test]
fn delete_holdoff_keeps_deleted_keys_out_of_cold() -> Result<()> {
    let warm = start("cache-server")?;
    let cold = start("cache-server")?;
    let mut w = Client::connect(warm.addr())?;
    let mut cc = Client::connect(cold.addr())?;
    for k in ["ho:deleted", "ho:other"] {
        ensure!(w.set(k, "old")? == "STORED\r\n");
    }
    // 60 s: the window cannot end during the test.
    let (router, metrics) = start_router(cold.addr(), warm.addr(), 60_000)?;
    let mut c = router.client()?;

    ensure!(c.call("delete ho:deleted\r\n")? == "NOT_FOUND\r\n");
    ensure!(
        c.get("ho:deleted")?.as_deref() == Some("old"),
        "answered from warm"
    );
    ensure!(router_counter(metrics, "mcrouter_warmup_fills_total", "held_off")? == 1);
    ensure!(c.get("ho:other")?.as_deref() == Some("old"));
    ensure!(
        wait_until(Duration::from_secs(10), || cc
            .get("ho:other")
            .is_ok_and(|v| v.is_some())),
        "the key not deleted is copied"
    );
    ensure!(
        wait_until(Duration::from_secs(5), || router_counter(
            metrics,
            "mcrouter_warmup_fills_total",
            "stored"
        )
        .is_ok_and(|n| n == 1)),
        "one fill stored"
    );
    ensure!(
        cc.get("ho:deleted")?.is_none(),
        "held-off key copied to cold"
    );
    ensure!(router_counter(metrics, "mcrouter_warmup_fills_total", "held_off")? == 1);
    Ok(())
}
