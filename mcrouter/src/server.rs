//! Start-up: options, listeners, worker threads, and config hot reload.
//!
//! [`Router::start`] binds the listeners, starts `num_proxies` worker threads and one
//! acceptor thread per listener (which hands connections to the workers round-robin),
//! and, with a config file, a watcher that reloads it on change: a new route tree is
//! built and swapped in atomically ([`arc_swap`]); requests in flight finish on the old
//! one; destinations are shared by address so unchanged servers keep their connections;
//! an invalid new config keeps the old one (counted in `stats` and logged).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::asynclog::{AsyncLog, AsyncLogError};
use crate::config::{Config, ConfigError};
use crate::destination::{DestOptions, Registry};
use crate::stats::{unix_now, Stats};

/// Router options (the command line).
#[derive(Debug, Clone)]
pub struct Options {
    /// Addresses to listen on (`--listen-address` x `-p`).
    pub listen: Vec<SocketAddr>,
    /// Worker threads (`--num-proxies`).
    pub num_proxies: usize,
    pub dest: DestOptions,
    /// Requests in flight per client connection before the router stops reading from it.
    pub max_client_outstanding: usize,
    pub config_file: Option<PathBuf>,
    /// Spool directory for deletes that could not be delivered (`--async-dir`); the
    /// asynclog is off without one.
    pub async_dir: Option<PathBuf>,
    /// Invalidation intake listener (`--invalidation-listen`).
    pub intake_listen: Option<SocketAddr>,
    /// Most deletes the asynclog holds (`--asynclog-max-backlog`).
    pub asynclog_max_backlog: usize,
    /// Batch each worker round's socket writes into one io_uring submission (off with
    /// `--no-io-uring`; also off where io_uring is unavailable). See
    /// [`crate::send_batch`].
    pub io_uring: bool,
    /// Yield the CPU once before sleeping, while that keeps finding work waiting (off
    /// with `--no-park-yield`). See `proxy::park_yield`.
    pub park_yield: bool,
    /// Most client connections at once (`--max-conns`; 0: no limit). Past it a new
    /// connection gets `ERROR Too many open connections` and is closed, as memcached's
    /// `-c` does.
    pub max_conns: usize,
    /// Answer a get whose backend failed with a miss, as mcrouter does by default
    /// (`--miss-on-get-errors`; off by default: the client gets the error, as from
    /// twemproxy).
    pub miss_on_get_errors: bool,
    /// `-R /region/cluster/`: the default route (see `RootRoute::with_options`).
    pub route_prefix: Option<String>,
    /// `--send-invalid-route-to-default`.
    pub send_invalid_route_to_default: bool,
    /// Split values over a threshold into chunks (`--big-value-split-threshold`).
    pub big_value: Option<crate::route::big_value::BigValueOptions>,
}

impl Options {
    pub const DEFAULT_NUM_PROXIES: usize = 1;
    pub const DEFAULT_MAX_CLIENT_OUTSTANDING: usize = 1024;

    /// A loaded config with the router-wide options applied: `-R`, and big values on top.
    pub fn finish(&self, config: Config) -> Result<Config, ConfigError> {
        Ok(config
            .with_route_options(
                self.route_prefix.as_deref(),
                self.send_invalid_route_to_default,
            )?
            .with_big_values(self.big_value))
    }

    /// `name value` lines (admin `__mcrouter__.options`).
    pub fn describe(&self) -> String {
        let listen: Vec<String> = self.listen.iter().map(|a| a.to_string()).collect();
        format!(
            "listen {}\nnum_proxies {}\nserver_timeout_ms {}\ntimeouts_until_tko {}\nmax_client_outstanding_reqs {}\ntarget_max_inflight_requests {}\nconnections_per_server {}\nmax_inflight_batches {}\nconfig_file {}\nasync_dir {}\ninvalidation_listen {}\nio_uring {}\npark_yield {}\nbig_value_split_threshold {}\nbig_value_batch_size {}\nbig_value_hide_reply_flag {}\nmiss_on_get_errors {}\nmax_conns {}\nroute_prefix {}\nsend_invalid_route_to_default {}",
            listen.join(","),
            self.num_proxies,
            self.dest.server_timeout.as_millis(),
            self.dest.tko_threshold,
            self.max_client_outstanding,
            self.dest.max_inflight,
            self.dest.conns_per_server,
            self.dest.max_inflight_batches,
            self.config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.async_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.intake_listen
                .map(|a| a.to_string())
                .unwrap_or_default(),
            self.io_uring,
            self.park_yield,
            self.big_value.map_or(0, |b| b.threshold),
            self.big_value.map_or(
                crate::route::big_value::BigValueOptions::DEFAULT_BATCH_SIZE,
                |b| b.batch_size
            ),
            self.big_value.is_some_and(|b| b.hide_reply_flag),
            self.miss_on_get_errors,
            self.max_conns,
            self.route_prefix.as_deref().unwrap_or(""),
            self.send_invalid_route_to_default,
        )
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 11211))],
            num_proxies: Self::DEFAULT_NUM_PROXIES,
            dest: DestOptions::default(),
            max_client_outstanding: Self::DEFAULT_MAX_CLIENT_OUTSTANDING,
            config_file: None,
            async_dir: None,
            intake_listen: None,
            asynclog_max_backlog: crate::asynclog::DEFAULT_MAX_BACKLOG,
            io_uring: true,
            park_yield: true,
            big_value: None,
            miss_on_get_errors: false,
            max_conns: 0,
            route_prefix: None,
            send_invalid_route_to_default: false,
        }
    }
}

/// Errors starting the router.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start thread {name}: {source}")]
    Thread {
        name: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    AsyncLog(#[from] AsyncLogError),
    #[error("cannot watch config file {path}: {msg}")]
    Watch { path: String, msg: String },
}

/// Which listener a connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// A memcached client.
    Client,
    /// The invalidation intake (see [`crate::intake`]).
    Intake,
}

/// State shared by every worker.
pub struct Shared {
    pub config: ArcSwap<Config>,
    pub registry: Registry,
    pub stats: Stats,
    pub opts: Options,
    /// The delete spool (`--async-dir`).
    pub asynclog: Option<Arc<AsyncLog>>,
    /// The text of the last config file that failed to load (not retried until it changes).
    last_failed: parking_lot::Mutex<String>,
}

impl Shared {
    /// The `stats` reply.
    pub fn stats_reply(&self) -> Vec<u8> {
        let cfg = self.config.load();
        let servers = crate::route::all_destinations(&(cfg.root.clone() as crate::route::RouteRef));
        let tko = servers.iter().filter(|d| d.health.is_tko()).count();
        let (spooled, replayed, backlog, spool_errors) = match &self.asynclog {
            Some(l) => (
                l.spooled.load(Ordering::Relaxed),
                l.replayed.load(Ordering::Relaxed),
                l.backlog() as u64,
                l.spool_errors.load(Ordering::Relaxed),
            ),
            None => (0, 0, 0, 0),
        };
        self.stats.render(&[
            ("asynclog_spooled", spooled.to_string()),
            ("asynclog_replayed", replayed.to_string()),
            ("asynclog_backlog", backlog.to_string()),
            ("asynclog_spool_errors", spool_errors.to_string()),
            ("num_servers", servers.len().to_string()),
            ("num_servers_tko", tko.to_string()),
            ("num_proxies", self.opts.num_proxies.to_string()),
            ("hostid", crate::hostid::get().to_string()),
            (
                "config_age",
                cfg.loaded_at
                    .elapsed()
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
                    .to_string(),
            ),
        ])
    }

    /// The `stats servers` reply: one line per destination of the current config,
    /// `STAT <host:port> state:<up|tko> requests:<n> errors:<n> writes:<n> joined:<n>`
    /// (`joined`: single-key gets sent as part of another's `get` line).
    pub fn servers_reply(&self) -> Vec<u8> {
        let cfg = self.config.load();
        let mut out = Vec::new();
        for d in crate::route::all_destinations(&(cfg.root.clone() as crate::route::RouteRef)) {
            let h = &d.health;
            out.extend_from_slice(
                format!(
                    "STAT {} state:{} requests:{} errors:{} writes:{} joined:{}\r\n",
                    d.addr,
                    if h.is_tko() { "tko" } else { "up" },
                    h.requests.load(Ordering::Relaxed),
                    h.errors.load(Ordering::Relaxed),
                    h.writes.load(Ordering::Relaxed),
                    h.joined.load(Ordering::Relaxed),
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(b"END\r\n");
        out
    }

    /// Reload the config file; keeps the old config on error.
    pub fn reload(&self) -> Result<bool, ConfigError> {
        let Some(path) = &self.opts.config_file else {
            return Ok(false);
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text == self.config.load().text || *self.last_failed.lock() == text {
            return Ok(false);
        }
        let loaded = Config::load(path, &self.registry).and_then(|c| self.opts.finish(c));
        match loaded {
            Ok(c) => {
                self.config.store(Arc::new(c));
                Stats::inc(&self.stats.config_reloads);
                self.stats
                    .config_last_success
                    .store(unix_now(), Ordering::Relaxed);
                tracing::info!(file = %path.display(), "config reloaded");
                Ok(true)
            }
            Err(e) => {
                *self.last_failed.lock() = text;
                Stats::inc(&self.stats.config_failures);
                tracing::error!(error = %e, "config reload failed; keeping the old config");
                Err(e)
            }
        }
    }
}

/// A running router.
pub struct Router {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    intake_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
}

impl Router {
    /// Start with `config` (built by the caller, e.g. [`Config::load`]) and `opts`.
    pub fn start(config: Config, opts: Options) -> Result<Router, StartError> {
        Self::start_with_registry(config, opts, Registry::default())
    }

    /// Start from the config file in `opts.config_file`.
    pub fn start_from_file(opts: Options) -> Result<Router, StartError> {
        let registry = Registry::default();
        let path = opts.config_file.clone().ok_or_else(|| {
            ConfigError::at(String::new(), "no config file given (--config-file PATH)")
        })?;
        let config = Config::load(&path, &registry)?;
        Self::start_with_registry(config, opts, registry)
    }

    pub fn start_with_registry(
        config: Config,
        opts: Options,
        registry: Registry,
    ) -> Result<Router, StartError> {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        let bind = |addr: &SocketAddr| -> Result<(TcpListener, SocketAddr), StartError> {
            let err = |source| StartError::Listen {
                addr: *addr,
                source,
            };
            let l = TcpListener::bind(addr).map_err(err)?;
            let bound = l.local_addr().map_err(err)?;
            Ok((l, bound))
        };
        for addr in &opts.listen {
            let (l, bound) = bind(addr)?;
            addrs.push(bound);
            listeners.push((l, Listener::Client));
        }
        let intake_addr = match &opts.intake_listen {
            Some(addr) => {
                let (l, bound) = bind(addr)?;
                listeners.push((l, Listener::Intake));
                Some(bound)
            }
            None => None,
        };
        let asynclog = match &opts.async_dir {
            Some(dir) => Some(Arc::new(AsyncLog::open_with_cap(
                dir.join(crate::asynclog::SPOOL_FILE),
                opts.asynclog_max_backlog,
            )?)),
            None => None,
        };
        let shared = Arc::new(Shared {
            asynclog,
            config: ArcSwap::from_pointee(opts.finish(config)?),
            registry,
            stats: Stats::default(),
            opts,
            last_failed: parking_lot::Mutex::new(String::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        for i in 0..shared.opts.num_proxies.max(1) {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let sh = shared.clone();
            spawn(format!("mcrouter-proxy-{i}"), move || {
                crate::proxy::run_worker(sh, rx)
            })?;
            senders.push(tx);
        }
        for (i, (l, kind)) in listeners.into_iter().enumerate() {
            let senders = senders.clone();
            let stop = stop.clone();
            let sh = shared.clone();
            spawn(format!("mcrouter-accept-{i}"), move || {
                let mut next = 0usize;
                let stats = &sh.stats;
                for conn in l.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match conn {
                        Ok(mut s) => {
                            if kind == Listener::Client {
                                let max = sh.opts.max_conns;
                                if max > 0
                                    && stats.curr_connections.load(Ordering::Relaxed) >= max as u64
                                {
                                    Stats::inc(&stats.rejected_connections);
                                    let _ = s.set_nonblocking(true);
                                    let _ = std::io::Write::write(
                                        &mut s,
                                        b"ERROR Too many open connections\r\n",
                                    );
                                    continue;
                                }
                                Stats::inc(&stats.curr_connections);
                                Stats::inc(&stats.total_connections);
                            }
                            if let Err(e) = senders[next % senders.len()].send((s, kind)) {
                                if kind == Listener::Client {
                                    stats.curr_connections.fetch_sub(1, Ordering::Relaxed);
                                }
                                drop(e);
                            }
                            next = next.wrapping_add(1);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?;
        }
        if let Some(path) = shared.opts.config_file.clone() {
            watch(shared.clone(), path, stop.clone())?;
        }
        if let Some(log) = shared.asynclog.clone() {
            crate::asynclog::spawn_replayer(shared.clone(), log, stop.clone()).map_err(
                |source| StartError::Thread {
                    name: "mcrouter-asynclog".into(),
                    source,
                },
            )?;
        }
        Ok(Router {
            shared,
            addrs,
            intake_addr,
            stop,
        })
    }

    /// The bound listen addresses (ports resolved when `-p 0`).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The invalidation intake's bound address (`--invalidation-listen`).
    pub fn intake_addr(&self) -> Option<SocketAddr> {
        self.intake_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serve Prometheus metrics on `addr` (`--metrics-listen`; port 0 picks one) and
    /// start copying the router's counters into them. Returns the bound address.
    pub fn serve_metrics(&self, addr: &str) -> std::io::Result<SocketAddr> {
        let bound = crate::metrics::serve(addr)?;
        crate::metrics::spawn_collector(self.shared.clone(), self.stop.clone())?;
        Ok(bound)
    }

    /// Stop accepting, then wait (up to `timeout`) until no request is in flight.
    /// Returns whether everything drained.
    pub fn drain(&self, timeout: Duration) -> bool {
        self.stop();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.shared.stats.in_flight.load(Ordering::Relaxed) <= 0 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop accepting new connections and watching the config.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for a in self.addrs.iter().chain(self.intake_addr.iter()) {
            // Wake the blocking accept loop.
            let _ = std::net::TcpStream::connect_timeout(a, Duration::from_millis(100));
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), StartError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map(|_| ())
        .map_err(|source| StartError::Thread { name, source })
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watch `path` (file-system events, plus a once-a-second stat as a fallback) and reload.
fn watch(shared: Arc<Shared>, path: PathBuf, stop: Arc<AtomicBool>) -> Result<(), StartError> {
    use notify::Watcher;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watched = path.clone();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let ours = ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name);
            if ours {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| StartError::Watch {
        path: watched.display().to_string(),
        msg: e.to_string(),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| StartError::Watch {
            path: dir.display().to_string(),
            msg: e.to_string(),
        })?;
    spawn("mcrouter-config-watch".into(), move || {
        let _keep = watcher;
        let mut stamp = file_stamp(&path);
        while !stop.load(Ordering::Relaxed) {
            let event = rx.recv_timeout(Duration::from_secs(1)).is_ok();
            let now = file_stamp(&path);
            if !event && now == stamp {
                continue;
            }
            // Let a burst of writes settle (editors write, truncate, rename).
            std::thread::sleep(Duration::from_millis(20));
            while rx.try_recv().is_ok() {}
            stamp = file_stamp(&path);
            let _ = shared.reload();
        }
    })
}
