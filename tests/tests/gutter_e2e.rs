//! Gutter pools end to end ("Scaling Memcache at Facebook", NSDI'13, section 3.3): the
//! mcrouter binary with a `FailoverWithExptimeRoute` in front of three main cache-servers
//! and one gutter cache-server, all real processes on ephemeral ports.
//!
//! - `killed_main_server_is_covered_by_the_gutter_under_load`: client threads do
//!   set+get through the router while one main server is killed with SIGKILL; once the
//!   router has marked it TKO, no request fails any more, and the dead server's keys live
//!   in the gutter.
//! - `gutter_exptime_is_capped`: what goes to the gutter expires after at most
//!   `failover_exptime`; what goes to a live main server keeps its own exptime.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::bins::OurServer;
use e2e_tests::observability_support::MetricsServer;
use e2e_tests::router_support::{wait_until, Client, Router, TempDir};

/// Router flags: a dead server is TKO after 3 failures, each taking at most 200 ms.
const ROUTER_FLAGS: &[&str] = &[
    "--server-timeout",
    "200",
    "--timeouts-until-tko",
    "3",
    "--num-proxies",
    "2",
];
/// Time after the kill by which every request must succeed again: the TKO detection
/// time (3 x 200 ms) plus a margin for a loaded machine.
const RECOVERY: Duration = Duration::from_millis(1500);
/// How long the error rate must stay at zero after `RECOVERY`.
const CLEAN_WINDOW: Duration = Duration::from_secs(2);
const BUCKET: Duration = Duration::from_millis(50);
const LOAD_THREADS: usize = 2;

/// Written straight to stderr so the report shows for passing tests too.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn cache_server() -> Result<OurServer> {
    OurServer::start("cache-server", &["-p", "0", "-U", "0", "-t", "1"])
}

/// Three main servers and one gutter server.
fn servers() -> Result<(Vec<OurServer>, OurServer)> {
    let main = (0..3).map(|_| cache_server()).collect::<Result<Vec<_>>>()?;
    Ok((main, cache_server()?))
}

/// Everything but deletes through a FailoverWithExptimeRoute (as `examples/gutter.json`).
fn gutter_config(main: &[OurServer], gutter: &OurServer, extra: &str) -> String {
    let list: Vec<String> = main.iter().map(|s| format!("\"{}\"", s.addr())).collect();
    format!(
        r#"{{
          "pools": {{
            "main": {{"servers": [{}]}},
            "gutter": {{"servers": ["{}"]}}
          }},
          "route": {{
            "type": "OperationSelectorRoute",
            "operation_policies": {{
              "delete": {{"type": "AllSyncRoute", "children": ["PoolRoute|main", "PoolRoute|gutter"]}}
            }},
            "default_policy": {{
              "type": "FailoverWithExptimeRoute",
              "normal": "PoolRoute|main",
              "failover": "PoolRoute|gutter"{extra}
            }}
          }}
        }}"#,
        list.join(", "),
        gutter.addr()
    )
}

/// The main server `key` is stored on (the first destination the router lists).
fn owner(c: &mut Client, key: &str) -> Result<String> {
    let r = c
        .get(&format!("__mcrouter__.route(set,{key})"))?
        .with_context(|| format!("no route for {key}"))?;
    Ok(r.lines().next().unwrap_or_default().to_string())
}

/// `n` keys named `{prefix}{i}` whose main server is (or, with `!on`, is not) `server`.
fn keys_owned(
    c: &mut Client,
    prefix: &str,
    server: &str,
    on: bool,
    n: usize,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..10_000 {
        let k = format!("{prefix}{i}");
        if (owner(c, &k)? == server) == on {
            out.push(k);
            if out.len() == n {
                return Ok(out);
            }
        }
    }
    bail!("fewer than {n} keys {prefix}* on/off {server}")
}

/// `mg <key> t v` straight to a server: `None` on `EN`, else (TTL, value).
fn meta_ttl(addr: SocketAddr, key: &str) -> Result<Option<(i64, String)>> {
    let mut c = Client::connect(addr)?;
    let r = c.call(&format!("mg {key} t v\r\n"))?;
    if r == "EN\r\n" {
        return Ok(None);
    }
    let (head, rest) = r
        .split_once("\r\n")
        .with_context(|| format!("mg {key}: {r:?}"))?;
    let ttl = head
        .split(' ')
        .find_map(|t| t.strip_prefix('t'))
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("mg {key}: no TTL in {r:?}"))?;
    ensure!(head.starts_with("VA "), "mg {key}: {r:?}");
    Ok(Some((ttl, rest.trim_end_matches("\r\n").to_string())))
}

fn stat(addr: SocketAddr, name: &str) -> Result<u64> {
    let s = Client::connect(addr)?.stats()?;
    s.get(name)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no stat {name} from {addr}"))
}

/// Requests and errors per `BUCKET` since the start of the run, for one load thread.
#[derive(Default)]
struct Buckets(Vec<[u64; 2]>, Kinds);

/// Errors by kind: error replies, other wrong replies (a get missing or returning another
/// value, a set not stored), broken connections.
#[derive(Default, Debug)]
struct Kinds {
    error_replies: u64,
    wrong_replies: u64,
    io_errors: u64,
}

impl Buckets {
    /// Record the reply to one request; `want`: the reply it should have got.
    fn record(&mut self, at: Duration, reply: &Result<String>, want: &str) {
        let i = (at.as_millis() / BUCKET.as_millis()) as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, [0, 0]);
        }
        self.0[i][0] += 1;
        match reply {
            Ok(r) if r == want => return,
            Ok(r)
                if ["SERVER_ERROR", "CLIENT_ERROR", "ERROR"]
                    .iter()
                    .any(|p| r.starts_with(p)) =>
            {
                self.1.error_replies += 1
            }
            Ok(_) => self.1.wrong_replies += 1,
            Err(_) => self.1.io_errors += 1,
        }
        self.0[i][1] += 1;
    }

    fn merge(&mut self, other: &Buckets) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), [0, 0]);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a[0] += b[0];
            a[1] += b[1];
        }
        self.1.error_replies += other.1.error_replies;
        self.1.wrong_replies += other.1.wrong_replies;
        self.1.io_errors += other.1.io_errors;
    }

    /// (requests, errors) in buckets `from..to`.
    fn sum(&self, from: usize, to: usize) -> (u64, u64) {
        self.0
            .iter()
            .take(to)
            .skip(from)
            .fold((0, 0), |(r, e), b| (r + b[0], e + b[1]))
    }
}

/// set+get of random keys of this thread's own key space (so a get must return the value
/// this thread set last), until `stop`. Counts every reply; an error reply, an unexpected
/// reply or a get returning another value is an error.
fn load(
    router: SocketAddr,
    id: usize,
    start: Instant,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> JoinHandle<Result<Buckets>> {
    std::thread::spawn(move || {
        let mut b = Buckets::default();
        let mut c = Client::connect(router)?;
        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64 + 1);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            n += 1;
            let key = format!("load:{id}:{}", rng % 600);
            let value = format!("v{id}-{n}");
            let set = c.call(&format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()));
            b.record(start.elapsed(), &set, "STORED\r\n");
            let get = c.call(&format!("get {key}\r\n"));
            let want = format!("VALUE {key} 0 {}\r\n{value}\r\nEND\r\n", value.len());
            b.record(start.elapsed(), &get, &want);
            done.fetch_add(2, Ordering::Relaxed);
            if set.is_err() || get.is_err() {
                // The connection to the router is broken (never expected): start afresh.
                c = Client::connect(router)?;
            }
        }
        Ok(b)
    })
}

#[test]
fn killed_main_server_is_covered_by_the_gutter_under_load() -> Result<()> {
    let (mut main, gutter) = servers()?;
    let dir = TempDir::new("gutter")?;
    let config = dir.write("router.json", &gutter_config(&main, &gutter, ""))?;
    let config = config.display().to_string();
    let mut args = vec!["--config-file", config.as_str(), "-p", "0"];
    args.extend_from_slice(ROUTER_FLAGS);
    let router = MetricsServer::start("mcrouter", &args)?;
    let addr = router.server.addr();
    let mut c = Client::connect(addr)?;
    let victim = main[1].addr().to_string();

    // Warm period: every request succeeds and nothing reaches the gutter.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..LOAD_THREADS)
        .map(|id| load(addr, id, start, stop.clone(), done.clone()))
        .collect();
    let warm = wait_until(Duration::from_secs(10), || {
        start.elapsed() >= Duration::from_millis(500) && done.load(Ordering::Relaxed) >= 200
    });
    ensure!(
        warm,
        "load did not get going: {} requests",
        done.load(Ordering::Relaxed)
    );
    let failovers_before = router.scrape()?.total("mcrouter_gutter_failovers_total");
    let gutter_sets_before = stat(gutter.addr(), "cmd_set")?;

    // SIGKILL one main server; let the load run through detection and the clean window.
    let kill_at = start.elapsed();
    main[1].signal(9);
    ensure!(
        main[1].wait_exit(Duration::from_secs(5)).is_some(),
        "main server did not die"
    );
    let end = kill_at + RECOVERY + CLEAN_WINDOW;
    let left = end.saturating_sub(start.elapsed());
    wait_until(left + Duration::from_secs(1), || start.elapsed() >= end);
    stop.store(true, Ordering::Relaxed);
    let mut buckets = Buckets::default();
    for t in threads {
        let b = t.join().expect("load thread panicked")?;
        buckets.merge(&b);
    }

    let kill_bucket = (kill_at.as_millis() / BUCKET.as_millis()) as usize;
    // First bucket wholly after the recovery time; last bucket wholly before the end.
    let clean_from = ((kill_at + RECOVERY).as_millis()).div_ceil(BUCKET.as_millis()) as usize;
    let clean_to = (end.as_millis() / BUCKET.as_millis()) as usize;
    let (req_before, err_before) = buckets.sum(0, kill_bucket);
    let (req_after, err_after) = buckets.sum(kill_bucket, clean_from);
    let (req_clean, err_clean) = buckets.sum(clean_from, clean_to);
    let last_error = buckets.0[kill_bucket..]
        .iter()
        .rposition(|b| b[1] > 0)
        .map(|i| (kill_bucket + i + 1) as u128 * BUCKET.as_millis() - kill_at.as_millis());
    let failovers = router.scrape()?.total("mcrouter_gutter_failovers_total");
    let gutter_sets = stat(gutter.addr(), "cmd_set")?;
    report(&format!(
        "gutter under load: before kill {req_before} requests / {err_before} errors; \
         kill..+{}ms {req_after} / {err_after}; clean window {}ms {req_clean} / {err_clean}; \
         errors stopped {} after the kill ({:?}); gutter failovers {failovers}, \
         gutter sets {gutter_sets}",
        RECOVERY.as_millis(),
        CLEAN_WINDOW.as_millis(),
        last_error.map_or("0ms (none)".to_string(), |ms| format!("<= {ms}ms")),
        buckets.1,
    ));

    ensure!(req_before > 0 && err_before == 0, "errors before the kill");
    ensure!(
        failovers_before == 0.0 && gutter_sets_before == 0,
        "the gutter was used while all servers were up ({failovers_before} failovers, \
         {gutter_sets_before} sets)"
    );
    ensure!(
        err_clean == 0,
        "{err_clean} errors more than {}ms after the kill",
        RECOVERY.as_millis()
    );
    // At 1/3 of the keys on the dead server, hundreds of requests is a sure sign the load
    // kept running (and went to the gutter) through the whole window.
    ensure!(
        req_clean >= 100,
        "only {req_clean} requests in the clean window"
    );
    ensure!(
        failovers >= 1.0 && gutter_sets >= 1,
        "nothing went to the gutter ({failovers} failovers, {gutter_sets} sets)"
    );

    // Keys of the dead server set now live in the gutter and read back through the router;
    // the other keys still go to their live main server, not to the gutter.
    let dead_keys = keys_owned(&mut c, "after:", &victim, true, 10)?;
    let live_keys = keys_owned(&mut c, "after:", &victim, false, 10)?;
    for k in dead_keys.iter().chain(&live_keys) {
        ensure!(c.set(k, &format!("val-{k}"))? == "STORED\r\n", "set {k}");
        ensure!(
            c.get(k)? == Some(format!("val-{k}")),
            "get {k} through the router"
        );
    }
    let mut g = Client::connect(gutter.addr())?;
    for k in &dead_keys {
        ensure!(
            g.get(k)? == Some(format!("val-{k}")),
            "{k} is not in the gutter"
        );
    }
    for k in &live_keys {
        ensure!(g.get(k)?.is_none(), "{k} (live server) is in the gutter");
        let o: SocketAddr = owner(&mut c, k)?.parse()?;
        ensure!(
            Client::connect(o)?.get(k)? == Some(format!("val-{k}")),
            "{k} is not on its main server {o}"
        );
    }
    Ok(())
}

#[test]
fn gutter_exptime_is_capped() -> Result<()> {
    const CAP: i64 = 2;
    let (mut main, gutter) = servers()?;
    let config = gutter_config(&main, &gutter, &format!(", \"failover_exptime\": {CAP}"));
    let router = Router::start(&config, ROUTER_FLAGS)?;
    let mut c = router.client()?;
    let victim = main[0].addr().to_string();
    let dead = keys_owned(&mut c, "ttl:", &victim, true, 2)?;
    let live = keys_owned(&mut c, "ttl:", &victim, false, 1)?;

    main[0].signal(9);
    ensure!(
        main[0].wait_exit(Duration::from_secs(5)).is_some(),
        "main server did not die"
    );
    // Exptime 0 ("never") and one hour: both capped in the gutter.
    let set_at = Instant::now();
    for (k, exptime) in dead.iter().zip([0, 3600]) {
        let r = c.call(&format!("set {k} 0 {exptime} 1\r\nv\r\n"))?;
        ensure!(r == "STORED\r\n", "set {k} (server down): {r:?}");
    }
    // One hour on a live main server: not capped, and not in the gutter.
    let k = &live[0];
    ensure!(c.call(&format!("set {k} 0 3600 1\r\nv\r\n"))? == "STORED\r\n");
    let o: SocketAddr = owner(&mut c, k)?.parse()?;
    let (ttl, v) = meta_ttl(o, k)?.with_context(|| format!("{k} not on {o}"))?;
    ensure!(ttl > CAP && v == "v", "{k} on its main server: TTL {ttl}");
    ensure!(
        meta_ttl(gutter.addr(), k)?.is_none(),
        "{k} is in the gutter"
    );

    let mut ttls = Vec::new();
    for k in &dead {
        let (ttl, v) =
            meta_ttl(gutter.addr(), k)?.with_context(|| format!("{k} not in the gutter"))?;
        ensure!(
            ttl > 0 && ttl <= CAP && v == "v",
            "{k} in the gutter: TTL {ttl}, value {v:?}"
        );
        ensure!(c.get(k)?.as_deref() == Some("v"), "{k} through the router");
        ttls.push(ttl);
    }
    // Gone after the cap (the server's clock has a 1 s resolution: allow cap + 3 s).
    let gone = wait_until(Duration::from_secs(CAP as u64 + 3), || {
        dead.iter()
            .all(|k| matches!(meta_ttl(gutter.addr(), k), Ok(None)))
    });
    let elapsed = set_at.elapsed();
    report(&format!(
        "gutter TTL cap {CAP}s: gutter TTLs {ttls:?} (exptime 0 and 3600), live server TTL {ttl}; \
         expired from the gutter {}ms after the sets",
        elapsed.as_millis()
    ));
    ensure!(
        gone,
        "keys still in the gutter {}ms after the sets",
        elapsed.as_millis()
    );
    for k in &dead {
        ensure!(c.get(k)?.is_none(), "{k} still readable through the router");
    }
    Ok(())
}
