//! `mcrouter`: parse flags, start the router, print `listening on ADDR`, wait for a signal.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use mcrouter::config::Config;
use mcrouter::destination::DestOptions;
use mcrouter::server::{Options, Router};

/// mimalloc: glibc's malloc and free were about 5% of the router's CPU under load
/// (`mcrouter/examples/bench/compare_twemproxy.sh`), nearly all of it the per-request
/// buffers, futures and reply channels. Built without its transparent-huge-page
/// `madvise` (`no_thp`): with it, resident memory was 14 MB idle and 35 MB at 256 clients
/// (glibc: 6 and 13); without, 6 and 15, and no measurable change in CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "mcrouter",
    version,
    about = "mcrouter-compatible memcached routing proxy"
)]
struct Args {
    /// Route config file (mcrouter JSON). Without one, runs the local tier.
    #[arg(long = "config-file", short = 'f')]
    config_file: Option<PathBuf>,
    /// Config source, as mcrouter's --config: `file:PATH`, or the JSON itself.
    #[arg(long = "config")]
    config: Option<String>,
    /// The config as JSON text (mcrouter's --config-str; not reloaded).
    #[arg(long = "config-str")]
    config_str: Option<String>,
    /// Check the config (and -R) and exit: 0 when it loads, 3 when not.
    #[arg(long = "validate-config")]
    validate_config: bool,
    /// Default routing prefix `/region/cluster/` (mcrouter's -R): with `routes`, the
    /// alias that serves keys without a prefix; must be one of the config's aliases.
    #[arg(short = 'R', long = "route-prefix")]
    route_prefix: Option<String>,
    /// Send keys whose `/region/cluster/` prefix no alias has to the default route
    /// instead of answering an error.
    #[arg(long = "send-invalid-route-to-default")]
    send_invalid_route_to_default: bool,
    /// Port to listen on (repeatable or comma-separated; 0 picks a free one).
    #[arg(short = 'p', long = "port", value_delimiter = ',')]
    port: Vec<u16>,
    /// Address(es) to listen on (repeatable or comma-separated; mcrouter's
    /// --listen-addresses).
    #[arg(
        long = "listen-address",
        alias = "listen-addresses",
        value_delimiter = ',',
        default_value = "127.0.0.1"
    )]
    listen_address: Vec<IpAddr>,
    /// Worker threads.
    #[arg(long = "num-proxies", default_value_t = Options::DEFAULT_NUM_PROXIES)]
    num_proxies: usize,
    /// Server (reply and connect) timeout in milliseconds.
    #[arg(short = 't', long = "server-timeout", default_value_t = DestOptions::DEFAULT_SERVER_TIMEOUT_MS)]
    server_timeout: u64,
    /// Consecutive failures before a server is marked TKO.
    #[arg(long = "timeouts-until-tko", default_value_t = DestOptions::DEFAULT_TKO_THRESHOLD)]
    timeouts_until_tko: u32,
    /// Requests in flight per client before the router stops reading from it.
    #[arg(long = "max-client-outstanding-reqs", default_value_t = Options::DEFAULT_MAX_CLIENT_OUTSTANDING)]
    max_client_outstanding_reqs: usize,
    /// Requests in flight per server connection before new ones are shed.
    #[arg(long = "target-max-inflight-requests", default_value_t = DestOptions::DEFAULT_MAX_INFLIGHT)]
    target_max_inflight_requests: usize,
    /// Connections per server per worker.
    #[arg(long = "connections-per-server", default_value_t = DestOptions::DEFAULT_CONNS_PER_SERVER)]
    connections_per_server: usize,
    /// Writes per server connection that may wait for replies at once; requests routed
    /// meanwhile queue and leave together in the next write (0: no limit).
    #[arg(long = "max-inflight-batches", default_value_t = DestOptions::DEFAULT_MAX_INFLIGHT_BATCHES)]
    max_inflight_batches: usize,
    /// Serve Prometheus metrics on this address (port 0 picks one). The local tier
    /// (no config file) serves them on 127.0.0.1:9191 unless told otherwise.
    #[arg(long = "metrics-listen")]
    metrics_listen: Option<String>,
    /// Turn off the local tier's default metrics listener.
    #[arg(long = "no-metrics")]
    no_metrics: bool,
    /// Spool directory for deletes that could not reach a destination (asynclog): they
    /// are written and fsynced there before the client is answered, and replayed once
    /// the destination is back, also after a restart. Without it, such deletes are
    /// answered with the error. One router per directory.
    #[arg(short = 'a', long = "async-dir")]
    async_dir: Option<PathBuf>,
    /// Most deletes the asynclog spools (their index is kept in memory, ~150 bytes
    /// each); beyond that, a delete that cannot be delivered is answered with its error.
    #[arg(long = "asynclog-max-backlog", default_value_t = mcrouter::asynclog::DEFAULT_MAX_BACKLOG)]
    asynclog_max_backlog: usize,
    /// Invalidation intake (for a database tailer such as mcsqueal): a listener that takes
    /// pipelined `delete`s, batches them up to each `mn` and fans them out through the
    /// route tree (port 0 picks one; printed as `invalidation intake on ADDR`).
    #[arg(long = "invalidation-listen")]
    invalidation_listen: Option<SocketAddr>,
    /// Write sockets directly instead of batching each worker round's writes into one
    /// io_uring submission.
    #[arg(long = "no-io-uring")]
    no_io_uring: bool,
    /// Never yield the CPU before sleeping. By default a busy worker that runs out of
    /// work yields once first, while that keeps finding new work waiting (less CPU per
    /// request under load; no effect at light load).
    #[arg(long = "no-park-yield")]
    no_park_yield: bool,
    /// Store values longer than this many bytes as chunks of this size under keys of
    /// their own, so values over a server's item size limit fit (mcrouter's option; 0: off).
    #[arg(long = "big-value-split-threshold", default_value_t = 0)]
    big_value_split_threshold: usize,
    /// Chunks of a big value written or read at once (0: all).
    #[arg(long = "big-value-batch-size", default_value_t = mcrouter::route::big_value::BigValueOptions::DEFAULT_BATCH_SIZE)]
    big_value_batch_size: usize,
    /// Clear the big-value flag (0x8000) in the flags of reassembled values.
    #[arg(long = "big-value-hide-reply-flag")]
    big_value_hide_reply_flag: bool,
    /// Most client connections at once; past it a new one gets `ERROR Too many open
    /// connections` and is closed (memcached's -c). 0: no limit; 1: three quarters of
    /// the open-file limit (mcrouter's "derive from RLIMIT_NOFILE").
    #[arg(long = "max-conns", default_value_t = 0)]
    max_conns: usize,
    /// Answer a get whose server failed (down, timeout, error) with a miss, as mcrouter
    /// does by default. Without it the client gets the error (`SERVER_ERROR ...`).
    #[arg(
        long = "miss-on-get-errors",
        overrides_with = "disable_miss_on_get_errors"
    )]
    miss_on_get_errors: bool,
    /// Answer such gets with the error (the default; mcrouter's flag of the same name).
    #[arg(
        long = "disable-miss-on-get-errors",
        overrides_with = "miss_on_get_errors"
    )]
    disable_miss_on_get_errors: bool,
    /// This host's id, which picks `HostIdRoute`'s child and `KeySplitRoute`'s copy
    /// (default: a hash of the first address that is not loopback or link-local).
    #[arg(long = "host-id")]
    host_id: Option<u32>,
    /// Append the log to this file instead of stderr (mcrouter's -L).
    #[arg(short = 'L', long = "log-path")]
    log_path: Option<PathBuf>,
    /// More logging (-v info, -vv debug).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The soft open-file limit (`ulimit -n`).
fn open_file_limit() -> usize {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX).max(4))
        .unwrap_or(1024)
}

/// mcrouter's `-R` form: `/region/cluster/` (a missing first or last `/` is added).
fn routing_prefix_arg(p: &str) -> Result<String> {
    let mut s = p.to_string();
    if !s.starts_with('/') {
        s.insert(0, '/');
    }
    if !s.ends_with('/') {
        s.push('/');
    }
    let parts: Vec<&str> = s[1..s.len() - 1].split('/').collect();
    if parts.len() != 2 || parts.iter().any(|x| x.is_empty()) {
        bail!("--route-prefix {p:?}: expected /region/cluster/");
    }
    Ok(s)
}

/// Where the local tier serves metrics by default (the shipped scrape config's target).
const LOCAL_TIER_METRICS: &str = "127.0.0.1:9191";

fn main() -> Result<()> {
    let args = Args::parse();
    let level = match args.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    match &args.log_path {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("--log-path {}", path.display()))?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init();
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }

    if args.big_value_split_threshold > mcrouter::route::big_value::MAX_THRESHOLD {
        bail!(
            "--big-value-split-threshold {}: at most {} (a chunk is one item on a server)",
            args.big_value_split_threshold,
            mcrouter::route::big_value::MAX_THRESHOLD
        );
    }
    if let Some(id) = args.host_id {
        mcrouter::hostid::set(id);
    }
    let route_prefix = match &args.route_prefix {
        Some(p) => Some(routing_prefix_arg(p)?),
        None => None,
    };
    // mcrouter: --config first, then --config-str, then --config-file.
    let (config_file, config_text) = match (&args.config, &args.config_str, &args.config_file) {
        (Some(c), _, _) => match c.strip_prefix("file:") {
            Some(p) => (Some(PathBuf::from(p)), None),
            None => (None, Some(c.clone())),
        },
        (None, Some(text), _) => (None, Some(text.clone())),
        (None, None, f) => (f.clone(), None),
    };
    if args.validate_config {
        let registry = mcrouter::destination::Registry::default();
        let loaded = match (&config_file, &config_text) {
            (Some(f), _) => Config::load(f, &registry),
            (None, Some(t)) => Config::parse(t, Some("--config-str"), &registry),
            (None, None) => bail!("--validate-config needs a config (--config-file, --config)"),
        }
        .and_then(|c| {
            c.with_route_options(route_prefix.as_deref(), args.send_invalid_route_to_default)
        });
        match loaded {
            Ok(_) => {
                println!("config OK");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("invalid config: {e}");
                std::process::exit(3);
            }
        }
    }
    let ports = if args.port.is_empty() {
        vec![11211]
    } else {
        args.port.clone()
    };
    let opts = Options {
        listen: args
            .listen_address
            .iter()
            .flat_map(|ip| ports.iter().map(|p| SocketAddr::new(*ip, *p)))
            .collect(),
        num_proxies: args.num_proxies.max(1),
        dest: DestOptions {
            server_timeout: Duration::from_millis(args.server_timeout.max(1)),
            tko_threshold: args.timeouts_until_tko.max(1),
            max_inflight: args.target_max_inflight_requests.max(1),
            conns_per_server: args.connections_per_server.max(1),
            max_inflight_batches: args.max_inflight_batches,
            ..DestOptions::default()
        },
        max_client_outstanding: args.max_client_outstanding_reqs.max(1),
        config_file: config_file.clone(),
        async_dir: args.async_dir.clone(),
        intake_listen: args.invalidation_listen,
        asynclog_max_backlog: args.asynclog_max_backlog.max(1),
        io_uring: !args.no_io_uring,
        park_yield: !args.no_park_yield,
        miss_on_get_errors: args.miss_on_get_errors,
        max_conns: match args.max_conns {
            1 => open_file_limit() / 4 * 3,
            n => n,
        },
        route_prefix: route_prefix.clone(),
        send_invalid_route_to_default: args.send_invalid_route_to_default,
        big_value: (args.big_value_split_threshold > 0).then_some(
            mcrouter::route::big_value::BigValueOptions {
                threshold: args.big_value_split_threshold,
                batch_size: args.big_value_batch_size,
                hide_reply_flag: args.big_value_hide_reply_flag,
            },
        ),
    };
    let (router, local) = match (&config_file, &config_text) {
        (Some(_), _) => (
            Router::start_from_file(opts).context("starting mcrouter")?,
            None,
        ),
        (None, Some(text)) => {
            let config = Config::parse(text, Some("--config-str"), &Default::default())
                .context("starting mcrouter")?;
            (
                Router::start(config, opts).context("starting mcrouter")?,
                None,
            )
        }
        (None, None) => {
            let (router, tier) = mcrouter::local::start(opts).context("starting the local tier")?;
            (router, Some(tier))
        }
    };
    let metrics_listen = match (&args.metrics_listen, &local, args.no_metrics) {
        (_, _, true) => None,
        (Some(a), _, false) => Some(a.clone()),
        (None, Some(_), false) => Some(LOCAL_TIER_METRICS.to_string()),
        (None, None, false) => None,
    };
    let metrics_addr = match &metrics_listen {
        Some(a) => {
            let bound = match router.serve_metrics(a) {
                // The local tier's default port is a convenience: if it is taken (another
                // local tier), pick a free one rather than fail; the URL is printed.
                Err(e) if args.metrics_listen.is_none() => {
                    tracing::warn!(error = %e, "metrics on {a} unavailable, picking a free port");
                    router.serve_metrics("127.0.0.1:0")
                }
                r => r,
            }
            .with_context(|| format!("--metrics-listen {a}"))?;
            if let Some(tier) = &local {
                tier.export_metrics().context("local tier metrics")?;
            }
            Some(bound)
        }
        None => None,
    };
    // Install the signal handlers before announcing the address, so a SIGTERM sent as soon
    // as a script has read `listening on` is always a clean drain.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = {
        let _guard = rt.enter();
        (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
        )
    };
    let mut out = std::io::stdout().lock();
    for a in router.local_addrs() {
        writeln!(out, "listening on {a}")?;
    }
    if let Some(tier) = &local {
        writeln!(out, "{}", tier.banner(router.local_addrs()))?;
    }
    // After `listening on` (and the local tier's banner, which scripts read as the
    // second line).
    if let Some(m) = metrics_addr {
        writeln!(out, "metrics on http://{m}/metrics")?;
    }
    if let Some(a) = router.intake_addr() {
        writeln!(out, "invalidation intake on {a}")?;
    }
    out.flush()?;
    drop(out);

    rt.block_on(async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    });
    // Drain: stop accepting, let requests in flight finish, then exit 0.
    if !router.drain(Duration::from_secs(5)) {
        tracing::warn!("exiting with requests still in flight after 5 s");
    }
    if let Some(tier) = local {
        tier.shutdown();
    }
    Ok(())
}
