//! `loadgen compare`: side-by-side benchmark of two targets under identical workloads.
//!
//! ```text
//!  pair 1: A = memcached            B = cache-server            (same -m, -t, -U 0)
//!  pair 2: A = nutcracker -> 3 x memcached   B = mcrouter -> 3 x cache-server   (--routers)
//!
//!  for each pair: start both on ephemeral loopback ports, prefill both, then
//!  A B A B ... (--rounds): one loadgen run each, server CPU from /proc/PID/stat
//!  (utime + stime of every process of the target), RSS from /proc/PID/status afterwards.
//! ```
//!
//! memcached-style daemons (`memcached`, `nutcracker`) get a port found by binding
//! 127.0.0.1:0 and releasing it, then are polled with `connect` until they accept; our
//! binaries get `-p 0` and print `listening on ADDR` as their first stdout line.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::run::{run, RunConfig, Stop};
use crate::workload::{KeyPattern, Range, Ratio};
use crate::ReportError;

/// How long a spawned server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Binary of target A (default: `memcached` from PATH).
    #[arg(long)]
    pub a_bin: Option<PathBuf>,
    /// Binary of target B (default: `cache-server` next to this executable).
    #[arg(long)]
    pub b_bin: Option<PathBuf>,
    /// Also compare nutcracker vs mcrouter, each in front of 3 servers.
    #[arg(long)]
    pub routers: bool,
    #[arg(long)]
    pub nutcracker_bin: Option<PathBuf>,
    /// Default: `mcrouter` next to this executable.
    #[arg(long)]
    pub mcrouter_bin: Option<PathBuf>,
    /// Server memory in MB (-m).
    #[arg(long, default_value_t = 64)]
    pub memory: u32,
    /// Server worker threads (-t).
    #[arg(long, default_value_t = 2)]
    pub server_threads: u32,
    /// A B rounds.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Measured time per run (e.g. 5s).
    #[arg(long, default_value = "5s")]
    pub duration: String,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    #[arg(long, default_value = "1:10")]
    pub ratio: String,
    #[arg(long, default_value_t = 10_000)]
    pub key_space: u64,
    #[arg(long, default_value = "uniform")]
    pub key_pattern: String,
    #[arg(long, default_value = "32")]
    pub value_size: String,
    /// Write the comparison as JSON.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Write a ratio chart (SVG).
    #[arg(long)]
    pub svg_out: Option<PathBuf>,
}

/// Why a comparison failed.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{what} not found: {hint}")]
    Missing { what: String, hint: String },
    #[error("start {what}: {reason}")]
    Start { what: String, reason: String },
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    #[error("run against {target}: {source}")]
    Run {
        target: String,
        #[source]
        source: crate::RunError,
    },
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// A spawned process, killed and reaped on drop.
struct Proc {
    name: String,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A system under test: one address, one or more processes.
struct Target {
    name: String,
    addr: SocketAddr,
    procs: Vec<Proc>,
    _dir: Option<TempDir>,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("loadgen-compare-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// utime + stime of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second (for /proc/PID/stat).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as f64
    } else {
        100.0
    }
}

fn free_port() -> Result<u16, CompareError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| CompareError::Start {
        what: "port".into(),
        reason: format!("bind 127.0.0.1:0: {e}"),
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| CompareError::Start {
            what: "port".into(),
            reason: e.to_string(),
        })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain(["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `name` next to the running executable (target/<profile>/ for cargo builds; tests run
/// from target/<profile>/deps/).
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(name), dir.parent()?.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

fn wait_accept(p: &mut Proc, addr: SocketAddr) -> Result<(), CompareError> {
    let deadline = Instant::now() + STARTUP;
    let mut pause = Duration::from_millis(1);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            return Err(CompareError::Start {
                what: p.name.clone(),
                reason: format!("exited with {status} before accepting on {addr}"),
            });
        }
        if Instant::now() >= deadline {
            return Err(CompareError::Start {
                what: p.name.clone(),
                reason: format!("did not accept on {addr} within {STARTUP:?}"),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn is_memcached_style(bin: &Path) -> bool {
    bin.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("memcached") || n.starts_with("nutcracker"))
}

/// Start a memcached-compatible server (memcached's flags).
fn start_server(bin: &Path, memory: u32, threads: u32) -> Result<(Proc, SocketAddr), CompareError> {
    let name = bin.display().to_string();
    let mut base = vec![
        "-l".to_string(),
        "127.0.0.1".into(),
        "-m".into(),
        memory.to_string(),
        "-t".into(),
        threads.to_string(),
        "-U".into(),
        "0".into(),
    ];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 && is_memcached_style(bin) {
        base.extend(["-u".to_string(), "root".to_string()]);
    }
    if is_memcached_style(bin) {
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut args = base.clone();
            args.extend(["-p".to_string(), port.to_string()]);
            let child = Command::new(bin)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| CompareError::Start {
                    what: name.clone(),
                    reason: e.to_string(),
                })?;
            let mut p = Proc {
                name: name.clone(),
                child,
            };
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match wait_accept(&mut p, addr) {
                Ok(()) => return Ok((p, addr)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    } else {
        let mut args = base;
        args.extend(["-p".to_string(), "0".to_string()]);
        start_ours(bin, &args)
    }
}

/// Start one of our binaries with `args` and read `listening on ADDR`.
fn start_ours(bin: &Path, args: &[String]) -> Result<(Proc, SocketAddr), CompareError> {
    let name = bin.display().to_string();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CompareError::Start {
            what: name.clone(),
            reason: e.to_string(),
        })?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let mut sink = [0u8; 4096];
        while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
    });
    let p = Proc {
        name: name.clone(),
        child,
    };
    let line = rx.recv_timeout(STARTUP).map_err(|_| CompareError::Start {
        what: name.clone(),
        reason: "no `listening on ADDR` line".into(),
    })?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| CompareError::Start {
            what: name.clone(),
            reason: format!("unexpected first line {line:?}"),
        })?;
    Ok((p, addr))
}

fn single(name: &str, bin: &Path, a: &CompareArgs) -> Result<Target, CompareError> {
    let (p, addr) = start_server(bin, a.memory, a.server_threads)?;
    Ok(Target {
        name: name.to_string(),
        addr,
        procs: vec![p],
        _dir: None,
    })
}

fn nutcracker(bin: &Path, backend: &Path, a: &CompareArgs) -> Result<Target, CompareError> {
    let mut procs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let (p, addr) = start_server(backend, a.memory, a.server_threads)?;
        procs.push(p);
        servers.push(addr);
    }
    let dir = TempDir::new().map_err(|e| CompareError::Start {
        what: "temp dir".into(),
        reason: e.to_string(),
    })?;
    let port = free_port()?;
    let stats_port = free_port()?;
    let mut yaml = format!(
        "alpha:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  timeout: 2000\n  server_connections: 1\n  auto_eject_hosts: false\n  servers:\n"
    );
    for s in &servers {
        yaml.push_str(&format!("   - {s}:1\n"));
    }
    let conf = dir.0.join("nutcracker.yml");
    std::fs::write(&conf, yaml).map_err(|e| CompareError::Start {
        what: "nutcracker config".into(),
        reason: format!("{}: {e}", conf.display()),
    })?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .args(["-s", &stats_port.to_string(), "-a", "127.0.0.1"])
        .arg("-o")
        .arg(dir.0.join("nutcracker.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CompareError::Start {
            what: bin.display().to_string(),
            reason: e.to_string(),
        })?;
    let mut p = Proc {
        name: bin.display().to_string(),
        child,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_accept(&mut p, addr)?;
    procs.insert(0, p);
    Ok(Target {
        name: "nutcracker+3xA".into(),
        addr,
        procs,
        _dir: Some(dir),
    })
}

fn mcrouter(bin: &Path, backend: &Path, a: &CompareArgs) -> Result<Target, CompareError> {
    let mut procs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let (p, addr) = start_server(backend, a.memory, a.server_threads)?;
        procs.push(p);
        servers.push(format!("\"{addr}\""));
    }
    let dir = TempDir::new().map_err(|e| CompareError::Start {
        what: "temp dir".into(),
        reason: e.to_string(),
    })?;
    let conf = dir.0.join("mcrouter.json");
    let json = format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [{}]}}}}, \"route\": \"PoolRoute|A\"}}\n",
        servers.join(", ")
    );
    std::fs::write(&conf, json).map_err(|e| CompareError::Start {
        what: "mcrouter config".into(),
        reason: format!("{}: {e}", conf.display()),
    })?;
    let (p, addr) = start_ours(
        bin,
        &[
            "--config-file".to_string(),
            conf.display().to_string(),
            "-p".into(),
            "0".into(),
        ],
    )?;
    procs.insert(0, p);
    Ok(Target {
        name: "mcrouter+3xB".into(),
        addr,
        procs,
        _dir: Some(dir),
    })
}

/// One run against one target.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunFigures {
    pub ops_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub cpu_seconds: f64,
    pub ops: u64,
}

/// A target's figures over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct TargetFigures {
    pub name: String,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Server CPU (all processes of the target) per request, microseconds.
    pub cpu_us_per_request: f64,
    pub rss_kib: u64,
    pub runs: Vec<RunFigures>,
}

/// B / A.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratios {
    pub throughput: f64,
    pub p50: f64,
    pub p99: f64,
    pub cpu_per_request: f64,
    pub rss: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub name: String,
    pub a: TargetFigures,
    pub b: TargetFigures,
    /// B divided by A.
    pub ratios: Ratios,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompareResult {
    pub duration_s: f64,
    pub rounds: usize,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub pairs: Vec<PairResult>,
}

fn workload_config(a: &CompareArgs, addr: SocketAddr) -> Result<RunConfig, CompareError> {
    let mut cfg = RunConfig::new(&[addr.to_string()], "Ch3")?;
    cfg.threads = a.threads;
    cfg.connections = a.connections;
    cfg.pipeline = a.pipeline;
    cfg.workload.ratio = a.ratio.parse::<Ratio>()?;
    cfg.workload.key_space = a.key_space;
    cfg.workload.pattern = a.key_pattern.parse::<KeyPattern>()?;
    cfg.workload.value_size = Range::parse("--value-size", &a.value_size)?;
    cfg.stop = Stop::Duration(crate::cli::parse_duration(&a.duration)?);
    cfg.validate()?;
    Ok(cfg)
}

fn prefill(a: &CompareArgs, t: &Target) -> Result<(), CompareError> {
    let mut cfg = workload_config(a, t.addr)?;
    cfg.workload.ratio = Ratio { sets: 1, gets: 0 };
    cfg.workload.pattern = KeyPattern::Sequential;
    cfg.threads = 1;
    cfg.stop = Stop::Requests(a.key_space);
    run(&cfg).map_err(|e| CompareError::Run {
        target: t.name.clone(),
        source: e,
    })?;
    Ok(())
}

fn measure(a: &CompareArgs, t: &Target) -> Result<RunFigures, CompareError> {
    let cfg = workload_config(a, t.addr)?;
    let ticks = |t: &Target| {
        t.procs
            .iter()
            .filter_map(|p| cpu_ticks(p.pid()))
            .sum::<u64>()
    };
    let before = ticks(t);
    let r = run(&cfg).map_err(|e| CompareError::Run {
        target: t.name.clone(),
        source: e,
    })?;
    let after = ticks(t);
    let tot = r.total();
    Ok(RunFigures {
        ops_per_sec: tot.ops_per_sec,
        p50_us: tot.p50_us,
        p99_us: tot.p99_us,
        cpu_seconds: after.saturating_sub(before) as f64 / clk_tck(),
        ops: tot.ops,
    })
}

fn summarize(t: &Target, runs: Vec<RunFigures>) -> TargetFigures {
    let n = runs.len().max(1) as f64;
    let ops: u64 = runs.iter().map(|r| r.ops).sum();
    let cpu: f64 = runs.iter().map(|r| r.cpu_seconds).sum();
    TargetFigures {
        name: t.name.clone(),
        ops_per_sec: runs.iter().map(|r| r.ops_per_sec).sum::<f64>() / n,
        p50_us: runs.iter().map(|r| r.p50_us as f64).sum::<f64>() / n,
        p99_us: runs.iter().map(|r| r.p99_us as f64).sum::<f64>() / n,
        cpu_us_per_request: if ops > 0 { cpu * 1e6 / ops as f64 } else { 0.0 },
        rss_kib: t.procs.iter().filter_map(|p| rss_kib(p.pid())).sum(),
        runs,
    }
}

fn ratio(b: f64, a: f64) -> f64 {
    if a > 0.0 {
        b / a
    } else {
        f64::NAN
    }
}

fn compare_pair(
    a: &CompareArgs,
    name: &str,
    ta: &Target,
    tb: &Target,
    log: &mut dyn FnMut(&str),
) -> Result<PairResult, CompareError> {
    prefill(a, ta)?;
    prefill(a, tb)?;
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for round in 0..a.rounds.max(1) {
        for (t, out) in [(ta, &mut ra), (tb, &mut rb)] {
            let f = measure(a, t)?;
            log(&format!(
                "round {} {:<18} {:>12.0} ops/s  p50 {:>6} us  p99 {:>6} us  cpu {:.2}s",
                round + 1,
                t.name,
                f.ops_per_sec,
                f.p50_us,
                f.p99_us,
                f.cpu_seconds
            ));
            out.push(f);
        }
    }
    let fa = summarize(ta, ra);
    let fb = summarize(tb, rb);
    let ratios = Ratios {
        throughput: ratio(fb.ops_per_sec, fa.ops_per_sec),
        p50: ratio(fb.p50_us, fa.p50_us),
        p99: ratio(fb.p99_us, fa.p99_us),
        cpu_per_request: ratio(fb.cpu_us_per_request, fa.cpu_us_per_request),
        rss: ratio(fb.rss_kib as f64, fa.rss_kib as f64),
    };
    Ok(PairResult {
        name: name.to_string(),
        a: fa,
        b: fb,
        ratios,
    })
}

/// Resolve the binaries, start the targets, run the rounds. `log` gets a line per run.
pub fn compare(a: &CompareArgs, log: &mut dyn FnMut(&str)) -> Result<CompareResult, CompareError> {
    let a_bin = match &a.a_bin {
        Some(p) => p.clone(),
        None => find_program("memcached").ok_or_else(|| CompareError::Missing {
            what: "memcached".into(),
            hint: "install memcached or pass --a-bin".into(),
        })?,
    };
    let b_bin = match &a.b_bin {
        Some(p) => p.clone(),
        None => sibling_binary("cache-server").ok_or_else(|| CompareError::Missing {
            what: "cache-server".into(),
            hint: "build it (cargo build --release -p cache-server) or pass --b-bin".into(),
        })?,
    };
    let mut pairs = Vec::new();
    {
        let ta = single(&name_of(&a_bin), &a_bin, a)?;
        let tb = single(&name_of(&b_bin), &b_bin, a)?;
        let pname = format!("{} vs {}", ta.name, tb.name);
        pairs.push(compare_pair(a, &pname, &ta, &tb, log)?);
    }
    if a.routers {
        let nut = match &a.nutcracker_bin {
            Some(p) => p.clone(),
            None => find_program("nutcracker").ok_or_else(|| CompareError::Missing {
                what: "nutcracker".into(),
                hint: "install nutcracker (twemproxy) or pass --nutcracker-bin".into(),
            })?,
        };
        let mcr = match &a.mcrouter_bin {
            Some(p) => p.clone(),
            None => sibling_binary("mcrouter").ok_or_else(|| CompareError::Missing {
                what: "mcrouter".into(),
                hint: "build it (cargo build --release -p mcrouter) or pass --mcrouter-bin".into(),
            })?,
        };
        let ta = nutcracker(&nut, &a_bin, a)?;
        let tb = mcrouter(&mcr, &b_bin, a)?;
        pairs.push(compare_pair(a, "nutcracker vs mcrouter", &ta, &tb, log)?);
    }
    Ok(CompareResult {
        duration_s: crate::cli::parse_duration(&a.duration)?.as_secs_f64(),
        rounds: a.rounds.max(1),
        connections: a.connections * a.threads,
        threads: a.threads,
        pipeline: a.pipeline,
        pairs,
    })
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

impl CompareResult {
    /// Per pair: A, B and B/A for each figure.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for p in &self.pairs {
            let _ = writeln!(out, "{}  (B/A: >1 means B is higher)", p.name);
            let _ = writeln!(
                out,
                "{:<22}{:>16}{:>16}{:>10}",
                "", p.a.name, p.b.name, "B/A"
            );
            let rows = [
                (
                    "ops/s",
                    p.a.ops_per_sec,
                    p.b.ops_per_sec,
                    p.ratios.throughput,
                ),
                ("p50 (us)", p.a.p50_us, p.b.p50_us, p.ratios.p50),
                ("p99 (us)", p.a.p99_us, p.b.p99_us, p.ratios.p99),
                (
                    "CPU/request (us)",
                    p.a.cpu_us_per_request,
                    p.b.cpu_us_per_request,
                    p.ratios.cpu_per_request,
                ),
                (
                    "RSS (KiB)",
                    p.a.rss_kib as f64,
                    p.b.rss_kib as f64,
                    p.ratios.rss,
                ),
            ];
            for (n, a, b, r) in rows {
                let _ = writeln!(out, "{n:<22}{a:>16.2}{b:>16.2}{r:>10.3}");
            }
            let _ = writeln!(out);
        }
        out
    }

    pub fn write_svg(&self, path: &Path) -> Result<(), ReportError> {
        let metrics = ["ops/s", "p50", "p99", "CPU/request", "RSS"];
        let pairs: Vec<(String, Vec<f64>)> = self
            .pairs
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    vec![
                        p.ratios.throughput,
                        p.ratios.p50,
                        p.ratios.p99,
                        p.ratios.cpu_per_request,
                        p.ratios.rss,
                    ],
                )
            })
            .collect();
        crate::plot::ratio_bars(path, "loadgen compare: B / A", &metrics, &pairs)
    }
}
