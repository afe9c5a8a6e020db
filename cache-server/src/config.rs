//! memcached-compatible command-line settings.
//!
//! `cache-server` takes memcached's flags with memcached's meanings and defaults, so it can
//! replace `memcached` in scripts, with two deliberate differences: the default listen address
//! is `127.0.0.1` (memcached listens on every interface), and `-t` defaults to the number of
//! cores (memcached: 4). A repeated flag takes its last value, as in memcached, except `-l`:
//! memcached listens on every address given, we listen on one and refuse two different ones.
//! `-p 0` picks a free port; the bound address is printed as the first
//! stdout line `listening on ADDR`.

use std::path::PathBuf;

use clap::{ArgAction, Parser};
use thiserror::Error;

use crate::storage::{self, EngineConfig};

/// Default TCP port (`-p`).
pub const DEFAULT_PORT: u16 = 11211;
/// Default listen address (`-l`): loopback, a safer default than memcached's any-address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1";
/// Default memory limit in MiB (`-m`).
pub const DEFAULT_MEMORY_MB: usize = 64;
/// Default connection limit (`-c`).
pub const DEFAULT_MAX_CONNS: usize = 1024;
/// Default listen backlog (`-b`).
pub const DEFAULT_BACKLOG: i32 = 1024;
/// Default lease window in seconds (`-o lease_ttl=`), used by `lease-get`.
pub const DEFAULT_LEASE_TTL: u32 = 10;
/// Default seconds a deleted value is kept as stale for `lease-get` hot misses
/// (`-o lease_stale_ttl=`, 0 = off).
pub const DEFAULT_LEASE_STALE_TTL: u32 = 10;

/// A bad flag or option value.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("Illegal suboption \"{0}\"")]
    IllegalSuboption(String),
    #[error("invalid value {value:?} for {option}: {expected}")]
    Value {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("Number of threads must be greater than 0")]
    Threads,
    #[error("Maximum connections must be greater than 0")]
    MaxConns,
    #[error("Item max size cannot be less than 1024 bytes.")]
    ItemSizeTooSmall,
    #[error("Cannot set item size limit higher than 1/2 of memory max.")]
    ItemSizeTooLarge,
    #[error("Factor must be greater than 1")]
    Factor,
    #[error("slab_automove must be between 0 and 2")]
    Automove,
    /// memcached listens on every `-l` address given; we listen on one.
    #[error("cache-server listens on one address; -l given more than once ({0})")]
    ManyListenAddresses(String),
    #[error("{0}")]
    Engine(#[from] storage::ConfigError),
}

impl ConfigError {
    /// The exit status memcached 1.6.18 uses for this error: 64 (`EX_USAGE`) for the `-I`
    /// item-size checks, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::ItemSizeTooSmall | ConfigError::ItemSizeTooLarge => 64,
            _ => 1,
        }
    }
}

/// Settings of one cache server (all of memcached's that we implement).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub port: u16,
    pub udp_port: u16,
    pub listen: String,
    pub memory_limit_mb: usize,
    pub max_conns: usize,
    pub threads: usize,
    pub max_item_size: usize,
    pub growth_factor: f64,
    pub min_space: usize,
    /// `-M`: return an error instead of evicting.
    pub no_evict: bool,
    /// `-C`: no CAS.
    pub no_cas: bool,
    pub verbosity: u8,
    /// `-A`: allow the `shutdown` command.
    pub enable_shutdown: bool,
    /// `-F`: refuse `flush_all`.
    pub disable_flush: bool,
    /// `lru_crawler metadump`/`mgdump` allowed (`-X` turns them off).
    pub dump_enabled: bool,
    pub backlog: i32,
    pub reqs_per_event: usize,
    pub pidfile: Option<PathBuf>,
    pub slab_reassign: bool,
    pub slab_automove: u8,
    pub slab_automove_ratio: f64,
    pub lru_crawler: bool,
    pub lru_crawler_sleep: u64,
    pub lru_crawler_tocrawl: u64,
    pub lru_maintainer: bool,
    pub hashpower: u8,
    /// Close connections idle for this many seconds (0 = never).
    pub idle_timeout: u64,
    pub hot_lru_pct: u8,
    pub warm_lru_pct: u8,
    /// `-o lru_segmented` (default) / `-o no_lru_segmented` (memcached's flat LRU).
    pub lru_segmented: bool,
    /// `-o temp_lru`, `-o temporary_ttl=N` (reported; there is no TEMP LRU).
    pub temp_lru: bool,
    pub temporary_ttl: i64,
    /// `-o maxconns_fast` (default) / `-o no_maxconns_fast` (reported in `stats settings`).
    pub maxconns_fast: bool,
    /// `-D <char>`: the key prefix delimiter of `stats detail` (default `:`).
    pub prefix_delimiter: u8,
    pub hot_max_factor: f64,
    pub warm_max_factor: f64,
    pub track_sizes: bool,
    pub lease_ttl: u32,
    /// Seconds a deleted value stays available to `lease-get` as stale (0 = off).
    pub lease_stale_ttl: u32,
    /// Prometheus exporter address (`--metrics-listen`), off by default.
    pub metrics_listen: Option<String>,
    /// Workers send each round's replies in one io_uring batch (`-o no_io_uring`: one
    /// `send` per connection, as memcached does). Falls back by itself where io_uring is
    /// unavailable.
    pub io_uring: bool,
    /// Under load, a worker whose last wait for events was short yields the CPU for up to
    /// this many microseconds before it sleeps in epoll (`-o worker_spin_us=N`, 0 = never;
    /// see server.rs `wait_for_events`).
    pub worker_spin_us: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            port: DEFAULT_PORT,
            udp_port: 0,
            listen: DEFAULT_LISTEN.to_string(),
            memory_limit_mb: DEFAULT_MEMORY_MB,
            max_conns: DEFAULT_MAX_CONNS,
            threads: default_threads(),
            max_item_size: storage::DEFAULT_MAX_ITEM_SIZE,
            growth_factor: storage::DEFAULT_GROWTH_FACTOR,
            min_space: storage::DEFAULT_MIN_SPACE,
            no_evict: false,
            no_cas: false,
            verbosity: 0,
            enable_shutdown: false,
            disable_flush: false,
            dump_enabled: true,
            backlog: DEFAULT_BACKLOG,
            reqs_per_event: 20,
            pidfile: None,
            slab_reassign: true,
            slab_automove: 1,
            slab_automove_ratio: 0.8,
            lru_crawler: true,
            lru_crawler_sleep: 100,
            lru_crawler_tocrawl: 0,
            lru_maintainer: true,
            hashpower: storage::DEFAULT_HASHPOWER,
            idle_timeout: 0,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            lru_segmented: true,
            temp_lru: false,
            temporary_ttl: crate::admin::DEFAULT_TEMPORARY_TTL,
            prefix_delimiter: b':',
            maxconns_fast: true,
            hot_max_factor: 0.2,
            warm_max_factor: 2.0,
            track_sizes: false,
            lease_ttl: DEFAULT_LEASE_TTL,
            lease_stale_ttl: DEFAULT_LEASE_STALE_TTL,
            metrics_listen: None,
            io_uring: true,
            worker_spin_us: 20,
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(4)
}

/// The command line, memcached style.
#[derive(Parser, Debug)]
#[command(
    name = "cache-server",
    version = crate::VERSION,
    about = "A memcached-compatible cache server (drop-in for memcached 1.6)",
    disable_help_flag = true,
    // memcached takes the last of a repeated option (`-m 64 -m 128` is 128 MiB).
    // Accumulating options (`-o`, `-v`, `-l`) are not affected.
    args_override_self = true
)]
struct Cli {
    /// TCP port to listen on (0 = pick a free one; printed as `listening on ADDR`)
    #[arg(short = 'p', long = "port", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// UDP port (0 = off, the default)
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    udp_port: u16,
    /// Interface to listen on (default 127.0.0.1; memcached's default is every interface)
    // Collected rather than overridden: memcached listens on every `-l` given.
    #[arg(short = 'l', long = "listen", action = ArgAction::Append)]
    listen: Vec<String>,
    /// Item memory in megabytes
    #[arg(short = 'm', long = "memory-limit", default_value_t = DEFAULT_MEMORY_MB)]
    memory_limit: usize,
    /// Return an error on memory exhausted instead of evicting
    #[arg(short = 'M', long = "disable-evictions")]
    disable_evictions: bool,
    /// Max simultaneous connections
    #[arg(short = 'c', long = "conn-limit", default_value_t = DEFAULT_MAX_CONNS)]
    conn_limit: usize,
    /// Verbose (repeat for more)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,
    /// Number of worker threads (default: number of cores)
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// Max item size (bytes, or with k/m suffix), default 1m
    #[arg(short = 'I', long = "max-item-size", value_parser = parse_size)]
    max_item_size: Option<usize>,
    /// Chunk size growth factor
    #[arg(short = 'f', long = "slab-growth-factor", default_value_t = storage::DEFAULT_GROWTH_FACTOR)]
    factor: f64,
    /// Minimum space allocated for key+value+flags
    #[arg(short = 'n', long = "slab-min-size", default_value_t = storage::DEFAULT_MIN_SPACE)]
    min_space: usize,
    /// Delimiter between key prefixes and ids in `stats detail` (default ':')
    #[arg(short = 'D')]
    delimiter: Option<String>,
    /// Disable use of CAS
    #[arg(short = 'C', long = "disable-cas")]
    disable_cas: bool,
    /// Enable the ascii "shutdown" command
    #[arg(short = 'A', long = "enable-shutdown")]
    enable_shutdown: bool,
    /// Disable flush_all
    #[arg(short = 'F', long = "disable-flush-all")]
    disable_flush_all: bool,
    /// Disable `lru_crawler metadump` and `lru_crawler mgdump`
    #[arg(short = 'X', long = "disable-dumping")]
    disable_dumping: bool,
    /// Assume the identity of USER (accepted for compatibility; ignored)
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Listen backlog
    #[arg(short = 'b', long = "listen-backlog", default_value_t = DEFAULT_BACKLOG)]
    backlog: i32,
    /// Max requests per event (accepted for compatibility)
    #[arg(short = 'R', long = "max-reqs-per-event", default_value_t = 20)]
    reqs_per_event: usize,
    /// Save the PID in FILE
    #[arg(short = 'P', long = "pidfile")]
    pidfile: Option<PathBuf>,
    /// Protocol (accepted for compatibility: auto, ascii)
    #[arg(short = 'B', long = "protocol")]
    protocol: Option<String>,
    /// Try to use large memory pages (accepted; ignored)
    #[arg(short = 'L', long = "enable-largepages")]
    large_pages: bool,
    /// Comma-separated extended options (slab_reassign, slab_automove=N, lru_crawler,
    /// hashpower=N, idle_timeout=N, modern, relaxed_privileges, lease_ttl=N, ...)
    #[arg(short = 'o', long = "extended", action = ArgAction::Append)]
    extended: Vec<String>,
    /// Serve Prometheus metrics over HTTP on this address (e.g. 127.0.0.1:9150)
    #[arg(long = "metrics-listen")]
    metrics_listen: Option<String>,
    /// Print help
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
}

/// `1048576`, `1024k`, `1m` (memcached's -I syntax).
fn parse_size(s: &str) -> Result<usize, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("expected a size like 1048576, 1024k or 1m, got {s:?}"))
}

fn num<T: std::str::FromStr>(
    option: &'static str,
    v: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    v.parse().map_err(|_| ConfigError::Value {
        option,
        value: v.to_string(),
        expected,
    })
}

impl Settings {
    /// Parse memcached-style arguments (without the program name). Errors from clap (unknown
    /// flags, `--help`) are returned as `Err(Ok(clap::Error))` so the caller can print them.
    pub fn from_args<I, S>(args: I) -> Result<Settings, Result<clap::Error, ConfigError>>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("cache-server"))
            .chain(args.into_iter().map(Into::into));
        let cli = Cli::try_parse_from(argv).map_err(Ok)?;
        Self::from_cli(cli).map_err(Err)
    }

    fn from_cli(cli: Cli) -> Result<Settings, ConfigError> {
        let _ = (cli.user, cli.protocol, cli.large_pages, cli.help);
        // The same address twice is one address (memcached skips it too).
        let mut listen: Vec<String> = Vec::new();
        for l in cli.listen {
            if !listen.contains(&l) {
                listen.push(l);
            }
        }
        if listen.len() > 1 {
            return Err(ConfigError::ManyListenAddresses(listen.join(" ")));
        }
        let mut s = Settings {
            port: cli.port,
            udp_port: cli.udp_port,
            listen: listen.pop().unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            memory_limit_mb: cli.memory_limit,
            max_conns: cli.conn_limit,
            threads: cli.threads.unwrap_or_else(default_threads),
            max_item_size: cli.max_item_size.unwrap_or(storage::DEFAULT_MAX_ITEM_SIZE),
            growth_factor: cli.factor,
            min_space: cli.min_space,
            no_evict: cli.disable_evictions,
            no_cas: cli.disable_cas,
            verbosity: cli.verbose,
            enable_shutdown: cli.enable_shutdown,
            disable_flush: cli.disable_flush_all,
            dump_enabled: !cli.disable_dumping,
            backlog: cli.backlog,
            reqs_per_event: cli.reqs_per_event,
            pidfile: cli.pidfile,
            metrics_listen: cli.metrics_listen,
            // memcached takes the first character of the argument.
            prefix_delimiter: match cli.delimiter.as_deref().map(str::as_bytes) {
                Some([c, ..]) => *c,
                _ => b':',
            },
            ..Settings::default()
        };
        for group in &cli.extended {
            for opt in group.split(',').filter(|o| !o.is_empty()) {
                s.apply_extended(opt)?;
            }
        }
        s.validate()?;
        Ok(s)
    }

    /// One `-o` suboption.
    pub fn apply_extended(&mut self, opt: &str) -> Result<(), ConfigError> {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let need = |option: &'static str| {
            value.ok_or(ConfigError::Value {
                option,
                value: String::new(),
                expected: "a value (name=value)",
            })
        };
        match name {
            "slab_reassign" => self.slab_reassign = true,
            "no_slab_reassign" => self.slab_reassign = false,
            "slab_automove" => {
                let v: u8 = match value {
                    Some(v) => num("slab_automove", v, "0, 1 or 2")?,
                    None => 1,
                };
                if v > 2 {
                    return Err(ConfigError::Automove);
                }
                self.slab_automove = v;
            }
            "slab_automove_ratio" => {
                self.slab_automove_ratio = num(
                    "slab_automove_ratio",
                    need("slab_automove_ratio")?,
                    "a number between 0 and 1",
                )?
            }
            "lru_crawler" => self.lru_crawler = true,
            "no_lru_crawler" => self.lru_crawler = false,
            "lru_crawler_sleep" => {
                self.lru_crawler_sleep = num(
                    "lru_crawler_sleep",
                    need("lru_crawler_sleep")?,
                    "microseconds",
                )?
            }
            "lru_crawler_tocrawl" => {
                self.lru_crawler_tocrawl = num(
                    "lru_crawler_tocrawl",
                    need("lru_crawler_tocrawl")?,
                    "a number of items",
                )?
            }
            "lru_maintainer" => self.lru_maintainer = true,
            "no_lru_maintainer" => self.lru_maintainer = false,
            "hashpower" => {
                let v: u8 = num(
                    "hashpower",
                    need("hashpower")?,
                    "a number between 12 and 32",
                )?;
                if !(12..=32).contains(&v) {
                    return Err(ConfigError::Value {
                        option: "hashpower",
                        value: v.to_string(),
                        expected: "a number between 12 and 32",
                    });
                }
                self.hashpower = v;
            }
            "idle_timeout" => {
                self.idle_timeout = num("idle_timeout", need("idle_timeout")?, "seconds")?
            }
            "hot_lru_pct" => {
                self.hot_lru_pct = num("hot_lru_pct", need("hot_lru_pct")?, "a percentage")?
            }
            "warm_lru_pct" => {
                self.warm_lru_pct = num("warm_lru_pct", need("warm_lru_pct")?, "a percentage")?
            }
            "hot_max_factor" => {
                self.hot_max_factor = num("hot_max_factor", need("hot_max_factor")?, "a number")?
            }
            "warm_max_factor" => {
                self.warm_max_factor = num("warm_max_factor", need("warm_max_factor")?, "a number")?
            }
            "track_sizes" => self.track_sizes = true,
            "no_io_uring" => self.io_uring = false,
            "worker_spin_us" => {
                self.worker_spin_us =
                    num("worker_spin_us", need("worker_spin_us")?, "microseconds")?
            }
            "lease_ttl" => self.lease_ttl = num("lease_ttl", need("lease_ttl")?, "seconds")?,
            "lease_stale_ttl" => {
                self.lease_stale_ttl = num("lease_stale_ttl", need("lease_stale_ttl")?, "seconds")?
            }
            // Accepted for compatibility: modern is the default behaviour of 1.6, and the
            // privilege options concern memcached's seccomp sandbox.
            "modern"
            | "no_modern"
            | "relaxed_privileges"
            | "drop_privileges"
            | "no_drop_privileges"
            | "no_hashexpand"
            | "tail_repair_time"
            | "slab_chunk_max"
            | "no_inline_ascii_resp"
            | "inline_ascii_resp"
            | "watcher_logbuf_size"
            | "worker_logbuf_size"
            | "read_buf_mem_limit" => {}
            "maxconns_fast" => self.maxconns_fast = true,
            "no_maxconns_fast" => self.maxconns_fast = false,
            "temp_lru" => self.temp_lru = true,
            "lru_segmented" => self.lru_segmented = true,
            "no_lru_segmented" => self.lru_segmented = false,
            "temporary_ttl" => {
                self.temporary_ttl = num("temporary_ttl", need("temporary_ttl")?, "seconds")?
            }
            _ => return Err(ConfigError::IllegalSuboption(opt.to_string())),
        }
        Ok(())
    }

    /// memcached's start-up checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.threads == 0 {
            return Err(ConfigError::Threads);
        }
        if self.max_conns == 0 {
            return Err(ConfigError::MaxConns);
        }
        if self.max_item_size < 1024 {
            return Err(ConfigError::ItemSizeTooSmall);
        }
        if self.max_item_size > self.memory_limit_mb.max(1) * 1024 * 1024 / 2 {
            return Err(ConfigError::ItemSizeTooLarge);
        }
        if self.growth_factor.is_nan() || self.growth_factor <= 1.0 {
            return Err(ConfigError::Factor);
        }
        self.engine_config().validate()?;
        Ok(())
    }

    /// The storage engine's configuration for these settings.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            memory_limit: self.memory_limit_mb * 1024 * 1024,
            growth_factor: self.growth_factor,
            min_space: self.min_space,
            max_item_size: self.max_item_size,
            cas_enabled: !self.no_cas,
            evict: !self.no_evict,
            slab_reassign: self.slab_reassign,
            slab_automove: self.slab_automove,
            slab_automove_ratio: self.slab_automove_ratio,
            lru_crawler: self.lru_crawler,
            hashpower_init: self.hashpower,
            hot_lru_pct: self.hot_lru_pct,
            warm_lru_pct: self.warm_lru_pct,
            hot_max_factor: self.hot_max_factor,
            warm_max_factor: self.warm_max_factor,
            ..EngineConfig::default()
        }
    }

    /// Protocol limits for these settings.
    pub fn limits(&self) -> protocol::Limits {
        protocol::Limits::with_max_value_size(self.max_item_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        Settings::from_args(args.iter().copied()).map_err(|e| match e {
            Ok(clap) => clap.to_string(),
            Err(c) => c.to_string(),
        })
    }

    #[test]
    fn memcached_flags_and_defaults() {
        let s = parse(&[]).unwrap();
        assert_eq!(
            (s.port, s.udp_port, s.listen.as_str()),
            (11211, 0, "127.0.0.1")
        );
        assert_eq!(
            (s.memory_limit_mb, s.max_conns, s.max_item_size),
            (64, 1024, 1024 * 1024)
        );
        assert!(s.threads >= 1);
        let s = parse(&[
            "-p",
            "0",
            "-U",
            "0",
            "-l",
            "0.0.0.0",
            "-m",
            "128",
            "-c",
            "10",
            "-t",
            "2",
            "-I",
            "2m",
            "-f",
            "1.5",
            "-n",
            "64",
            "-M",
            "-C",
            "-vv",
            "-A",
            "-F",
            "-X",
            "-u",
            "nobody",
            "-o",
            "slab_reassign,slab_automove=2",
            "-o",
            "hashpower=20,idle_timeout=5,modern,relaxed_privileges,lru_crawler,lease_ttl=3",
        ])
        .unwrap();
        assert_eq!(
            (
                s.port,
                s.listen.as_str(),
                s.memory_limit_mb,
                s.max_conns,
                s.threads
            ),
            (0, "0.0.0.0", 128, 10, 2)
        );
        assert_eq!(
            (s.max_item_size, s.growth_factor, s.min_space),
            (2 * 1024 * 1024, 1.5, 64)
        );
        assert!(s.no_evict && s.no_cas && s.enable_shutdown && s.disable_flush);
        assert!(!s.dump_enabled && Settings::default().dump_enabled);
        assert_eq!(
            (
                s.verbosity,
                s.slab_automove,
                s.hashpower,
                s.idle_timeout,
                s.lease_ttl
            ),
            (2, 2, 20, 5, 3)
        );
        let e = s.engine_config();
        assert!(!e.cas_enabled && !e.evict);
        assert_eq!(e.memory_limit, 128 * 1024 * 1024);
    }

    #[test]
    fn errors_are_memcacheds() {
        assert_eq!(
            parse(&["-o", "foo"]).unwrap_err(),
            "Illegal suboption \"foo\""
        );
        assert_eq!(
            parse(&["-o", "slab_automove=5"]).unwrap_err(),
            "slab_automove must be between 0 and 2"
        );
        assert_eq!(
            parse(&["-t", "0"]).unwrap_err(),
            "Number of threads must be greater than 0"
        );
        assert_eq!(
            parse(&["-I", "5"]).unwrap_err(),
            "Item max size cannot be less than 1024 bytes."
        );
        assert_eq!(
            parse(&["-I", "2000m"]).unwrap_err(),
            "Cannot set item size limit higher than 1/2 of memory max."
        );
        assert_eq!(
            parse(&["-f", "0.5"]).unwrap_err(),
            "Factor must be greater than 1"
        );
        assert!(parse(&["-p", "99999"]).unwrap_err().contains("99999"));
        assert!(parse(&["-o", "hashpower=abc"])
            .unwrap_err()
            .contains("hashpower"));
        assert!(parse(&["-Z"]).is_err());
    }
}
