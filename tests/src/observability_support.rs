//! Helpers for the observability tests: start our binaries with `--metrics-listen`,
//! scrape and check the Prometheus text format, read the shipped dashboards and rules,
//! and talk to a real Prometheus over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::bins::OurServer;

/// The workspace's `dashboards/` directory.
pub fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("dashboards")
}

/// One of our binaries serving metrics.
pub struct MetricsServer {
    pub server: OurServer,
    pub metrics: SocketAddr,
}

impl MetricsServer {
    /// Start `name` with `args` plus `--metrics-listen 127.0.0.1:0` and read the
    /// `metrics on http://ADDR/metrics` line printed after `listening on`.
    pub fn start(name: &str, args: &[&str]) -> Result<Self> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--metrics-listen", "127.0.0.1:0"]);
        let server = OurServer::start(name, &all)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = server
                .next_line(left)
                .ok_or_else(|| anyhow!("{name}: no `metrics on` line"))?;
            if let Some(rest) = line.strip_prefix("metrics on http://") {
                let addr = rest
                    .strip_suffix("/metrics")
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| anyhow!("{name}: bad metrics line {line:?}"))?;
                return Ok(MetricsServer {
                    server,
                    metrics: addr,
                });
            }
        }
    }

    pub fn scrape(&self) -> Result<Exposition> {
        let (status, body) = http_get(self.metrics, "/metrics")?;
        if status != 200 {
            bail!("scrape {}: HTTP {status}", self.metrics);
        }
        Exposition::parse(&body)
    }
}

/// `GET path` over HTTP/1.0 (no chunked replies); returns the status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("read {addr}{path}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{addr}{path}: no HTTP header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{addr}{path}: bad status line {head:?}"))?;
    Ok((status, body.to_string()))
}

/// Percent-encode a query-string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One metric family as scraped.
#[derive(Debug, Default)]
pub struct Family {
    pub helps: usize,
    pub types: Vec<String>,
    pub samples: usize,
}

/// A parsed scrape: families by name, and every series name seen (with `_bucket` etc.).
#[derive(Debug, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
    pub series_names: BTreeSet<String>,
    /// Sum of the sample values of each series name (over all label sets).
    pub totals: BTreeMap<String, f64>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Self> {
        let mut e = Exposition::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                e.families.entry(name.into()).or_default().helps += 1;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                let name = it.next().unwrap_or_default();
                let ty = it.next().unwrap_or_default();
                e.families
                    .entry(name.into())
                    .or_default()
                    .types
                    .push(ty.into());
            } else if line.starts_with('#') {
                continue;
            } else {
                let name: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                e.series_names.insert(name.clone());
                let value: f64 = line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
                *e.totals.entry(name.clone()).or_default() += value;
                let fam = e.family_of(&name);
                e.families.entry(fam).or_default().samples += 1;
            }
        }
        Ok(e)
    }

    /// The summed value of a series name (0 when absent).
    pub fn total(&self, series: &str) -> f64 {
        self.totals.get(series).copied().unwrap_or(0.0)
    }

    /// The family a series belongs to (`x_bucket` -> `x` for a histogram `x`).
    fn family_of(&self, series: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = series.strip_suffix(suffix) {
                if self
                    .families
                    .get(base)
                    .is_some_and(|f| f.types.iter().any(|t| t == "histogram" || t == "summary"))
                {
                    return base.to_string();
                }
            }
        }
        series.to_string()
    }

    /// Naming and description rules: every family with samples has exactly one HELP and
    /// one TYPE, carries `prefix`, counters end in `_total`, histograms have buckets.
    pub fn check(&self, prefixes: &[&str]) -> Result<()> {
        let mut problems = Vec::new();
        for (name, f) in &self.families {
            if f.helps != 1 {
                problems.push(format!("{name}: {} HELP lines", f.helps));
            }
            if f.types.len() != 1 {
                problems.push(format!("{name}: {} TYPE lines", f.types.len()));
            }
            if f.samples == 0 {
                problems.push(format!("{name}: described but no samples"));
            }
            if !prefixes.iter().any(|p| name.starts_with(p)) {
                problems.push(format!("{name}: prefix is none of {prefixes:?}"));
            }
            match f.types.first().map(String::as_str) {
                Some("counter") if !name.ends_with("_total") => {
                    problems.push(format!("{name}: counter without _total"))
                }
                Some("histogram") => {
                    if !self.series_names.contains(&format!("{name}_bucket")) {
                        problems.push(format!("{name}: histogram without buckets"));
                    }
                    if !name.ends_with("_seconds") && !name.ends_with("_bytes") {
                        problems.push(format!("{name}: histogram not in base units"));
                    }
                }
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("metric problems:\n  {}", problems.join("\n  "))
        }
    }
}

/// Names of our metrics (`cache_server_*`, `mcrouter_*`) that a dashboard or rule file uses.
pub fn metric_names_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["cache_server_", "mcrouter_"] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(prefix) {
            let start = from + pos;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = start
                + text[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(text.len() - start);
            if boundary && end > start + prefix.len() {
                out.insert(text[start..end].to_string());
            }
            from = end;
        }
    }
    out
}

/// Send `n` sets and `2n` gets (half of them misses) to a memcached-protocol server.
pub fn drive_load(addr: SocketAddr, n: usize) -> Result<()> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = String::new();
    for i in 0..n {
        req.push_str(&format!(
            "set obs:{i} 0 0 5\r\nvalue\r\nget obs:{i}\r\nget nope:{i}\r\n"
        ));
    }
    req.push_str("version\r\n");
    s.write_all(req.as_bytes())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while !got.ends_with(b"\r\n") || !String::from_utf8_lossy(&got).contains("VERSION ") {
        let k = s.read(&mut buf)?;
        if k == 0 {
            bail!("{addr} closed the connection");
        }
        got.extend_from_slice(&buf[..k]);
    }
    Ok(())
}

/// Poll `f` until it returns `Some` or `timeout` passes (short back-off, no fixed sleep).
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    let mut last_err = None;
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_err {
                Some(e) => e.context(format!("still failing after {timeout:?}")),
                None => anyhow!("condition not met within {timeout:?}"),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
