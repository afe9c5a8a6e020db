//! Command-line options (memtier_benchmark's names where they exist).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::herd::HerdConfig;
use crate::run::{Arrival, RunConfig, Stop};
use crate::scan::{ScanSpec, SearchSpec};
use crate::workload::{KeyPattern, Proto, Range, Ratio, Workload};
use crate::ConfigError;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for memcached-compatible servers",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Side-by-side benchmark: memcached vs cache-server (and, with --routers, nutcracker
    /// vs mcrouter in front of 3 of each), identical workloads run alternately.
    Compare(crate::compare::CompareArgs),
}

/// Options of one benchmark run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server HOST:PORT; repeat to shard client-side (see --hash).
    #[arg(short = 's', long = "server", default_value = "127.0.0.1:11211")]
    pub servers: Vec<String>,
    /// Hash function for several servers (mcrouter's names: Ch3, Crc32, Ketama, KetamaMd5).
    #[arg(long, default_value = "Ch3")]
    pub hash: String,
    /// Driver threads (each runs one event loop).
    #[arg(short = 't', long, default_value_t = 4)]
    pub threads: usize,
    /// Connections per thread (per server).
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,
    /// Outstanding requests per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// SET:GET ratio.
    #[arg(long, default_value = "1:10")]
    pub ratio: String,
    /// uniform, sequential, gaussian or zipf:S.
    #[arg(long, default_value = "uniform")]
    pub key_pattern: String,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub key_space: u64,
    #[arg(long, default_value = "memtier-")]
    pub key_prefix: String,
    /// Value size in bytes: N or MIN-MAX (uniform).
    #[arg(long, default_value = "32")]
    pub value_size: String,
    /// Keys per get.
    #[arg(long, default_value_t = 1)]
    pub multiget: u32,
    /// text or meta.
    #[arg(long, default_value = "text")]
    pub protocol: String,
    /// Measured duration (e.g. 10, 10s, 500ms). Default 10 s unless --requests.
    #[arg(long)]
    pub duration: Option<String>,
    /// Total requests over all threads (instead of --duration).
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Run this long before measuring (e.g. 2s).
    #[arg(long, default_value = "0")]
    pub warmup: String,
    /// TTL of sets in seconds: N or MIN-MAX.
    #[arg(long, default_value = "0")]
    pub expiry_range: String,
    /// Open loop: offered requests per second over all threads.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open-loop arrivals: fixed or poisson.
    #[arg(long, default_value = "fixed")]
    pub arrival: String,
    /// Check every get against the last value written for its key.
    #[arg(long)]
    pub verify: bool,
    /// standard or herd.
    #[arg(long, default_value = "standard")]
    pub workload: String,
    /// Herd: simulated backing-store latency.
    #[arg(long, default_value = "50ms")]
    pub backing_latency: String,
    /// Herd: invalidate the hot keys this often.
    #[arg(long, default_value = "1s")]
    pub invalidate_every: String,
    /// Herd: use lease-get / lease-set.
    #[arg(long)]
    pub leases: bool,
    /// Herd: wait before retrying a lease hot miss.
    #[arg(long, default_value = "10ms")]
    pub lease_retry: String,
    /// Sweep the offered rate: FROM:TO:STEP (one --duration run each).
    #[arg(long, conflicts_with = "rate")]
    pub scan: Option<String>,
    /// Find the highest rate keeping a quantile under a bound, e.g. p99:1ms.
    #[arg(long, conflicts_with_all = ["rate", "scan"])]
    pub search: Option<String>,
    /// Binary-search steps of --search.
    #[arg(long, default_value_t = 7)]
    pub search_steps: usize,
    /// SVG latency-vs-throughput chart of --scan / --search.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Write HdrHistogram files PREFIX_{SETS,GETS,FULL}.hgrm and PREFIX_FULL.hlog.
    #[arg(long)]
    pub hdr_out: Option<String>,
    /// Random seed.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Never show the progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Use epoll and one send()/recv() per request instead of io_uring (one
    /// io_uring_enter per event-loop round, used by default when the kernel allows it).
    #[arg(long)]
    pub no_io_uring: bool,
    /// Closed loop: keep the driver threads SCHED_OTHER instead of SCHED_BATCH (with
    /// SCHED_BATCH a reply does not preempt a server thread sharing the CPU).
    #[arg(long)]
    pub no_sched_batch: bool,
    /// The order the threads open their connections in: `interleave` (thread 0's first,
    /// thread 1's first, ..., then everyone's second, ...) or `block` (all of thread 0's,
    /// then thread 1's, ...). Against a server that deals connections round-robin to as
    /// many workers as there are threads, `interleave` puts each thread's connections on
    /// one worker and `block` spreads them over all.
    #[arg(long, default_value = "interleave")]
    pub conn_order: String,
}

/// `10`, `2.5`, `10s`, `500ms`, `250us`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let bad = || ConfigError::Invalid {
        option: "duration",
        value: s.to_string(),
        expected: "a number with an optional unit: us, ms, s, m",
    };
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// What `main` should do with a [`RunArgs`].
#[derive(Debug, Clone)]
pub enum Mode {
    Single,
    Scan(ScanSpec),
    Search(SearchSpec, usize),
}

impl RunArgs {
    /// Build the run configuration and the mode.
    pub fn to_config(&self) -> Result<(RunConfig, Mode), ConfigError> {
        let mut cfg = RunConfig::new(&self.servers, &self.hash)?;
        cfg.threads = self.threads;
        cfg.connections = self.connections;
        cfg.pipeline = self.pipeline;
        cfg.workload = Workload {
            ratio: self.ratio.parse::<Ratio>()?,
            pattern: self.key_pattern.parse::<KeyPattern>()?,
            key_space: self.key_space,
            key_prefix: self.key_prefix.clone(),
            value_size: Range::parse("--value-size", &self.value_size)?,
            multiget: self.multiget,
            protocol: self.protocol.parse::<Proto>()?,
            expiry: Range::parse("--expiry-range", &self.expiry_range)?,
        };
        cfg.stop = match (self.requests, &self.duration) {
            (Some(n), _) => Stop::Requests(n),
            (None, Some(d)) => Stop::Duration(parse_duration(d)?),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        };
        cfg.warmup = parse_duration(&self.warmup)?;
        cfg.rate = self.rate;
        cfg.arrival = match self.arrival.as_str() {
            "fixed" | "uniform" => Arrival::Fixed,
            "poisson" | "exponential" => Arrival::Poisson,
            other => {
                return Err(ConfigError::Invalid {
                    option: "--arrival",
                    value: other.to_string(),
                    expected: "fixed or poisson",
                })
            }
        };
        cfg.verify = self.verify;
        cfg.herd = match self.workload.as_str() {
            "standard" | "default" => None,
            "herd" => Some(HerdConfig {
                backing_latency: parse_duration(&self.backing_latency)?,
                invalidate_every: parse_duration(&self.invalidate_every)?,
                leases: self.leases,
                retry: parse_duration(&self.lease_retry)?,
            }),
            other => {
                return Err(ConfigError::Invalid {
                    option: "--workload",
                    value: other.to_string(),
                    expected: "standard or herd",
                })
            }
        };
        if cfg.herd.is_some() && self.key_space == 100_000 {
            // A herd is about a few hot keys; the default key space would be no herd at all.
            cfg.workload.key_space = 4;
        }
        cfg.seed = self.seed;
        cfg.io_uring = !self.no_io_uring;
        cfg.sched_batch = !self.no_sched_batch;
        cfg.conn_order = self.conn_order.parse()?;
        cfg.validate()?;
        let mode = match (&self.scan, &self.search) {
            (Some(s), _) => Mode::Scan(s.parse()?),
            (None, Some(s)) => Mode::Search(s.parse()?, self.search_steps),
            (None, None) => Mode::Single,
        };
        Ok((cfg, mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn builds_a_config() {
        let cli = Cli::parse_from([
            "loadgen",
            "-s",
            "127.0.0.1:1",
            "-s",
            "127.0.0.1:2",
            "--threads",
            "2",
            "--ratio",
            "1:1",
            "--key-pattern",
            "zipf:0.9",
            "--value-size",
            "10-20",
            "--protocol",
            "meta",
            "--requests",
            "1000",
            "--search",
            "p99:2ms",
        ]);
        let (cfg, mode) = cli.run.to_config().unwrap();
        assert_eq!(cfg.servers.len(), 2);
        assert!(cfg.selector.is_some());
        assert_eq!(cfg.stop, Stop::Requests(1000));
        assert_eq!(cfg.workload.pattern, KeyPattern::Zipf(0.9));
        assert!(matches!(mode, Mode::Search(s, 7) if s.bound == Duration::from_millis(2)));
    }
}
