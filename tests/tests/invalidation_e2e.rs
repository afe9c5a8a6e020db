//! Invalidation fan-out, cross-region replication and remote markers, end to end: real
//! routers (started with the shipped example configs, ports substituted) in front of
//! real cache-servers on loopback.
//!
//! - `replication_across_regions_reports_lag`: a set through the west router is readable
//!   through the east router; prints the replication lag p50/p99.
//! - `no_invalidation_is_lost_across_kills_hangs_and_a_router_restart`: a stream of
//!   deletes while one replica is hung (SIGSTOP) and another killed (kill -9, restarted
//!   empty on its port), with the router itself killed and restarted in the middle;
//!   after the replay drains, no deleted key is readable on any server.
//! - `intake_batches_reach_each_destination_in_one_write`: the invalidation intake.
//! - `remote_markers_give_read_your_writes_in_a_non_master_region`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use e2e_tests::bins::OurServer;
use e2e_tests::observability_support::http_get;
use e2e_tests::router_support::{wait_until, Client, Router, TempDir};

/// An example config from `mcrouter/examples/` with its placeholder servers replaced.
fn example(name: &str, servers: &[(&str, SocketAddr)]) -> Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mcrouter/examples")
        .join(name);
    let mut text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    for (placeholder, addr) in servers {
        if !text.contains(placeholder) {
            bail!("{name} has no server {placeholder}");
        }
        text = text.replace(placeholder, &addr.to_string());
    }
    Ok(text)
}

fn cache_server() -> Result<OurServer> {
    OurServer::start("cache-server", &["-p", "0", "-t", "1", "-m", "32"])
}

fn cache_server_on(addr: SocketAddr) -> Result<OurServer> {
    let port = addr.port().to_string();
    OurServer::start("cache-server", &["-p", &port, "-t", "1", "-m", "32"])
}

/// Which of `keys` some server still has (one multi-get per 100 keys).
fn readable(addr: SocketAddr, keys: &[String]) -> Result<Vec<String>> {
    let mut c = Client::connect(addr)?;
    let mut found = Vec::new();
    for chunk in keys.chunks(100) {
        let r = c.call(&format!("get {}\r\n", chunk.join(" ")))?;
        for line in r.lines() {
            if let Some(rest) = line.strip_prefix("VALUE ") {
                found.push(rest.split(' ').next().unwrap_or_default().to_string());
            }
        }
    }
    Ok(found)
}

/// Two servers per region, and the example configs' west (`50xx`) and east (`60xx`)
/// placeholders mapped to them.
type RegionMap = [(&'static str, SocketAddr); 4];
fn two_regions() -> Result<(Vec<OurServer>, Vec<SocketAddr>, RegionMap)> {
    let servers: Vec<OurServer> = (0..4).map(|_| cache_server()).collect::<Result<_>>()?;
    let a: Vec<SocketAddr> = servers.iter().map(|s| s.addr()).collect();
    let map = [
        ("127.0.0.1:5001", a[0]),
        ("127.0.0.1:5002", a[1]),
        ("127.0.0.1:6001", a[2]),
        ("127.0.0.1:6002", a[3]),
    ];
    Ok((servers, a, map))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn stat(c: &mut Client, name: &str) -> Result<u64> {
    c.stats()?
        .get(name)
        .ok_or_else(|| anyhow!("no stat {name}"))?
        .parse()
        .context(name.to_string())
}

#[test]
fn replication_across_regions_reports_lag() -> Result<()> {
    let (_servers, a, map) = two_regions()?;
    let west = Router::start(&example("two_regions_west.json", &map)?, &[])?;
    let east = Router::start(&example("two_regions_east.json", &map)?, &[])?;
    let (mut w, mut e) = (west.client()?, east.client()?);

    let n = 300;
    let mut lags = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("repl:{i}");
        let value = format!("v{i}");
        assert_eq!(w.set(&key, &value)?, "STORED\r\n");
        let t = Instant::now();
        let mut seen = false;
        while t.elapsed() < Duration::from_secs(5) {
            if e.get(&key)?.as_deref() == Some(value.as_str()) {
                seen = true;
                break;
            }
        }
        assert!(
            seen,
            "{key} set in the west never became readable in the east"
        );
        lags.push(t.elapsed());
    }
    lags.sort();
    eprintln!(
        "replication west->east: {n} keys, lag p50 {:?}, p99 {:?}, max {:?}",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[n - 1]
    );

    // Reads are local: a key written straight into one east server (not replicated) is
    // visible through the east router only.
    let mut direct = Client::connect(a[2])?;
    let mut direct2 = Client::connect(a[3])?;
    for i in 0..20 {
        let key = format!("only-east:{i}");
        direct.set(&key, "e")?;
        direct2.set(&key, "e")?;
        assert_eq!(e.get(&key)?.as_deref(), Some("e"));
        assert_eq!(w.get(&key)?, None, "west read {key} from the east region");
    }

    // A delete through either region reaches every replica of every region.
    let keys: Vec<String> = (0..n).map(|i| format!("repl:{i}")).collect();
    for k in &keys[..n / 2] {
        assert_eq!(e.call(&format!("delete {k}\r\n"))?, "DELETED\r\n");
    }
    for k in &keys[n / 2..] {
        assert_eq!(w.call(&format!("delete {k}\r\n"))?, "DELETED\r\n");
    }
    for s in &a {
        let left = readable(*s, &keys)?;
        assert!(left.is_empty(), "{s} still has {} deleted keys", left.len());
    }
    Ok(())
}

/// The deletes stream of the lost-invalidation test.
struct Stream {
    keys: Vec<String>,
    next: usize,
    acked: usize,
}

impl Stream {
    /// Send the next `n` deletes through `router`, one at a time; every one must be
    /// acknowledged (DELETED or NOT_FOUND): a failed delete would be the client's to retry,
    /// and the asynclog exists so that it never has to.
    fn run(&mut self, router: SocketAddr, n: usize) -> Result<()> {
        let mut c = Client::connect(router)?;
        for _ in 0..n {
            let k = &self.keys[self.next];
            let r = c.call(&format!("delete {k}\r\n"))?;
            if r != "DELETED\r\n" && r != "NOT_FOUND\r\n" {
                bail!("delete {k} was not acknowledged: {r:?}");
            }
            self.next += 1;
            self.acked += 1;
        }
        Ok(())
    }
}

#[test]
fn no_invalidation_is_lost_across_kills_hangs_and_a_router_restart() -> Result<()> {
    let mut servers: Vec<OurServer> = (0..4).map(|_| cache_server()).collect::<Result<_>>()?;
    let a: Vec<SocketAddr> = servers.iter().map(|s| s.addr()).collect();
    let config = example(
        "replicated_pool.json",
        &[
            ("127.0.0.1:5001", a[0]),
            ("127.0.0.1:5002", a[1]),
            ("127.0.0.1:5003", a[2]),
            ("127.0.0.1:5004", a[3]),
        ],
    )?;
    let spool = TempDir::new("asynclog")?;
    let spool_dir = spool.path().display().to_string();
    let args = [
        "--async-dir",
        spool_dir.as_str(),
        "--server-timeout",
        "200",
        "--timeouts-until-tko",
        "2",
    ];
    let mut router = Router::start(&config, &args)?;

    let n = 2000;
    let keys: Vec<String> = (0..n).map(|i| format!("inval:{i}")).collect();
    {
        let mut c = router.client()?;
        for k in &keys {
            assert_eq!(c.set(k, "value")?, "STORED\r\n");
        }
    }
    for s in &a {
        assert!(!readable(*s, &keys)?.is_empty(), "{s} got no keys");
    }

    let mut stream = Stream {
        keys: keys.clone(),
        next: 0,
        acked: 0,
    };
    stream.run(router.addr(), 400)?;
    // Replica B's first server hangs; its second dies.
    servers[2].signal(libc::SIGSTOP);
    stream.run(router.addr(), 400)?;
    servers[3].signal(libc::SIGKILL);
    servers[3].wait_exit(Duration::from_secs(5));
    stream.run(router.addr(), 400)?;

    // The router itself dies (kill -9) during the outage and a new one starts on the
    // same spool.
    let spooled_before = stat(&mut router.client()?, "asynclog_spooled")?;
    assert!(
        spooled_before > 0,
        "nothing was spooled while replicas were down"
    );
    router.server.signal(libc::SIGKILL);
    router
        .server
        .wait_exit(Duration::from_secs(5))
        .ok_or_else(|| anyhow!("the router did not die"))?;
    let router = Router::start(&config, &args)?;
    let backlog_at_restart = stat(&mut router.client()?, "asynclog_backlog")?;
    assert!(
        backlog_at_restart > 0,
        "the restarted router found no spooled deletes"
    );
    stream.run(router.addr(), 400)?;

    // The replicas come back: one resumes, the other restarts empty on its port.
    servers[2].signal(libc::SIGCONT);
    servers[3] = cache_server_on(a[3])?;
    stream.run(router.addr(), n - stream.next)?;
    assert_eq!(stream.acked, n);

    let mut c = router.client()?;
    let drained = wait_until(Duration::from_secs(30), || {
        stat(&mut c, "asynclog_backlog").is_ok_and(|b| b == 0)
    });
    let st = c.stats()?;
    let replayed: u64 = st["asynclog_replayed"].parse()?;
    let spooled_after: u64 = st["asynclog_spooled"].parse()?;
    let mut lost = 0;
    for s in &a {
        let left = readable(*s, &keys)?;
        lost += left.len();
        if !left.is_empty() {
            eprintln!(
                "{s} still has {} deleted keys, e.g. {:?}",
                left.len(),
                &left[..1]
            );
        }
    }
    eprintln!(
        "lost invalidations: {n} deletes sent and acknowledged; spooled {} (router 1) + {} (router 2); \
         backlog at restart {backlog_at_restart}; replayed by router 2 {replayed}; lost {lost}",
        spooled_before, spooled_after
    );
    assert!(drained, "the asynclog backlog did not drain: {st:?}");
    assert!(
        replayed >= backlog_at_restart,
        "replayed {replayed} < {backlog_at_restart}"
    );
    assert_eq!(lost, 0, "deleted keys are readable");
    let spool_file = spool.path().join("mcrouter.asynclog");
    assert_eq!(
        std::fs::metadata(&spool_file)?.len(),
        0,
        "the drained spool was not truncated"
    );
    Ok(())
}

/// `mcrouter_destination_writes_total` per destination, from a scrape.
fn writes_per_destination(metrics: SocketAddr) -> Result<HashMap<String, f64>> {
    let (status, body) = http_get(metrics, "/metrics")?;
    if status != 200 {
        bail!("metrics: HTTP {status}");
    }
    let mut out = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("mcrouter_destination_writes_total{destination=\"") {
            if let Some((dest, tail)) = rest.split_once("\"}") {
                out.insert(dest.to_string(), tail.trim().parse()?);
            }
        }
        if line.starts_with("mcrouter_destination_requests_total{") {
            let v: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
            *out.entry("requests".into()).or_default() += v;
        }
        if let Some(v) = line.strip_prefix("mcrouter_intake_batches_total ") {
            out.insert("batches".into(), v.trim().parse()?);
        }
    }
    Ok(out)
}

/// Read from `s` until `buf` ends with `end` (or fail after 10 s).
fn read_until(s: &mut TcpStream, end: &[u8]) -> Result<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while !buf.ends_with(end) {
        let n = s.read(&mut chunk).context("read intake reply")?;
        if n == 0 {
            bail!("intake closed; got {:?}", String::from_utf8_lossy(&buf));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

#[test]
fn intake_batches_reach_each_destination_in_one_write() -> Result<()> {
    let servers: Vec<OurServer> = (0..3).map(|_| cache_server()).collect::<Result<_>>()?;
    let a: Vec<SocketAddr> = servers.iter().map(|s| s.addr()).collect();
    let list: Vec<String> = a.iter().map(|s| format!("\"{s}\"")).collect();
    let config = format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [{}]}}}}, \"route\": \"PoolRoute|A\"}}",
        list.join(", ")
    );
    let router = Router::start(
        &config,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--invalidation-listen",
            "127.0.0.1:0",
        ],
    )?;
    let mut metrics = None;
    let mut intake = None;
    for _ in 0..2 {
        let line = router
            .server
            .next_line(Duration::from_secs(10))
            .ok_or_else(|| anyhow!("router printed no metrics/intake line"))?;
        if let Some(u) = line.strip_prefix("metrics on http://") {
            metrics = Some(u.trim_end_matches("/metrics").parse::<SocketAddr>()?);
        } else if let Some(i) = line.strip_prefix("invalidation intake on ") {
            intake = Some(i.parse::<SocketAddr>()?);
        }
    }
    let (metrics, intake) = (
        metrics.ok_or_else(|| anyhow!("no metrics line"))?,
        intake.ok_or_else(|| anyhow!("no intake line"))?,
    );

    let n = 1500;
    let keys: Vec<String> = (0..n).map(|i| format!("tailer:{i}")).collect();
    let mut c = router.client()?;
    for k in keys.iter().step_by(2) {
        assert_eq!(c.set(k, "x")?, "STORED\r\n");
    }

    // Metrics are copied once a second: wait until they include the sets above.
    let mut before = HashMap::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            before = writes_per_destination(metrics).unwrap_or_default();
            before.get("requests").copied().unwrap_or(0.0) >= (n / 2) as f64
        }),
        "the sets never showed in the metrics"
    );

    // One batch: every key, a repeated key, a noreply delete, a non-delete, then `mn`.
    let mut batch = String::new();
    for k in &keys {
        batch.push_str(&format!("delete {k}\r\n"));
    }
    batch.push_str("delete tailer:0\r\ndelete tailer:2 noreply\r\nget tailer:4\r\nmn\r\n");
    let mut s = TcpStream::connect(intake)?;
    s.write_all(batch.as_bytes())?;
    let reply = String::from_utf8(read_until(&mut s, b"MN\r\n")?)?;
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(
        lines.len(),
        n + 3,
        "replies: {:?}",
        &lines[lines.len().saturating_sub(4)..]
    );
    for (i, l) in lines[..n].iter().enumerate() {
        let want = if i % 2 == 0 { "DELETED" } else { "NOT_FOUND" };
        assert_eq!(*l, want, "reply {i}");
    }
    // The repeated key shares the first delete's reply; noreply sends nothing.
    assert_eq!(lines[n], "DELETED");
    assert!(lines[n + 1].starts_with("CLIENT_ERROR"), "{}", lines[n + 1]);
    assert_eq!(lines[n + 2], "MN");
    for srv in &a {
        assert!(readable(*srv, &keys)?.is_empty(), "{srv} kept deleted keys");
    }

    // Metrics are copied once a second: wait until the batch shows, then compare writes.
    let mut after = HashMap::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            after = writes_per_destination(metrics).unwrap_or_default();
            after.get("batches").copied().unwrap_or(0.0) >= 1.0
        }),
        "the intake batch never showed in the metrics"
    );
    for srv in &a {
        let k = srv.to_string();
        let delta = after.get(&k).copied().unwrap_or(0.0) - before.get(&k).copied().unwrap_or(0.0);
        eprintln!(
            "intake batch of {} deletes: {k} got {delta} write(s)",
            n + 2
        );
        assert_eq!(delta, 1.0, "{k}: {delta} writes for one batch");
    }

    // Without `mn`, a quiet connection still gets its replies.
    s.write_all(b"delete tailer:1\r\ndelete nothere\r\n")?;
    let reply = read_until(&mut s, b"NOT_FOUND\r\nNOT_FOUND\r\n")?;
    assert_eq!(reply, b"NOT_FOUND\r\nNOT_FOUND\r\n");
    Ok(())
}

#[test]
fn remote_markers_give_read_your_writes_in_a_non_master_region() -> Result<()> {
    let (_servers, a, map) = two_regions()?;
    // The west is the master region; the east router uses remote markers.
    let west = Router::start(&example("two_regions_west.json", &map)?, &[])?;
    let east = Router::start(
        &example("remote_markers.json", &map)?,
        &["--invalidation-listen", "127.0.0.1:0"],
    )?;
    let intake: SocketAddr = east
        .server
        .next_line(Duration::from_secs(10))
        .and_then(|l| {
            l.strip_prefix("invalidation intake on ")
                .map(str::to_string)
        })
        .ok_or_else(|| anyhow!("no intake line"))?
        .parse()?;
    let (mut w, mut e) = (west.client()?, east.client()?);
    let east_servers = [a[2], a[3]];

    for i in 0..50 {
        let key = format!("profile:{i}");
        // v1 written in the master region replicates to the east.
        assert_eq!(w.set(&key, "v1")?, "STORED\r\n");
        assert!(
            wait_until(Duration::from_secs(5), || e
                .get(&key)
                .is_ok_and(|v| v.as_deref() == Some("v1"))),
            "{key}: v1 never reached the east"
        );
        // A client in the east writes v2: it goes to the master, and the east copy is
        // invalidated, so the east region has nothing for the key...
        assert_eq!(e.set(&key, "v2")?, "STORED\r\n");
        assert_eq!(w.get(&key)?.as_deref(), Some("v2"));
        for s in east_servers {
            assert!(readable(s, std::slice::from_ref(&key))?.is_empty());
        }
        // ...but the marker sends the east's read to the master: the client reads its
        // own write, not a miss and not the stale v1.
        assert_eq!(
            e.get(&key)?.as_deref(),
            Some("v2"),
            "{key}: read-your-writes"
        );
        let marker = format!("__rm__:{key}");
        let marked: usize = east_servers
            .iter()
            .map(|s| readable(*s, std::slice::from_ref(&marker)).map(|v| v.len()))
            .sum::<Result<usize>>()?;
        assert_eq!(marked, 1, "{marker} is not in the east pool");

        // The database tailer's invalidation (through the intake) clears the marker: the
        // east now misses and refills from the database.
        let mut t = TcpStream::connect(intake)?;
        t.write_all(format!("delete {key}\r\nmn\r\n").as_bytes())?;
        let r = read_until(&mut t, b"MN\r\n")?;
        assert!(r.starts_with(b"NOT_FOUND\r\n") || r.starts_with(b"DELETED\r\n"));
        for s in east_servers {
            assert!(
                readable(s, std::slice::from_ref(&marker))?.is_empty(),
                "marker left"
            );
        }
        assert_eq!(
            e.get(&key)?,
            None,
            "{key}: no marker, so the east miss stands"
        );
    }
    Ok(())
}
