//! The local tier: without a config file the router starts three in-process cache
//! servers (the `cache-server` library) on free loopback ports and routes across them
//! with Ch3. This is the one-command way to run the whole stack:
//!
//! ```text
//! cargo run --release -p mcrouter          # router on 127.0.0.1:11211, 3 cache servers behind it
//! ```
//!
//! It serves Prometheus metrics for the router and its cache servers (labelled
//! `server="ADDR"`) on 127.0.0.1:9191 (`--metrics-listen` to move it, `--no-metrics` to
//! turn it off); `dashboards/prometheus.yml` scrapes that.

use std::net::SocketAddr;

use cache_server::config::Settings;
use cache_server::server::{Server, ServerHandle};

use crate::config::Config;
use crate::destination::Registry;
use crate::server::{Options, Router, StartError};

/// Number of cache servers in the local tier.
pub const LOCAL_SERVERS: usize = 3;

/// The cache servers of a running local tier.
pub struct LocalTier {
    servers: Vec<ServerHandle>,
}

impl LocalTier {
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.local_addr()).collect()
    }

    /// What to print after `listening on`: the tier and how to connect.
    pub fn banner(&self, router: &[SocketAddr]) -> String {
        let servers: Vec<String> = self.servers().iter().map(|a| a.to_string()).collect();
        let r = router.first().map(|a| a.to_string()).unwrap_or_default();
        let (host, port) = r.rsplit_once(':').unwrap_or((&r, ""));
        format!(
            "local tier: {} in-process cache servers ({}) behind the router, hashed with Ch3\n\
             connect with any memcached client, e.g.:\n  \
             printf 'set greeting 0 0 5\\r\\nhello\\r\\nget greeting\\r\\nquit\\r\\n' | nc {host} {port}\n  \
             memcstat --servers={r}\n  \
             python3 -c 'from pymemcache.client.base import Client; c = Client((\"{host}\", {port})); c.set(\"k\", \"v\"); print(c.get(\"k\"))'",
            self.servers.len(),
            servers.join(", "),
        )
    }

    /// Export the cache servers' metrics through this process's metrics endpoint, each
    /// series labelled `server="ADDR"`.
    pub fn export_metrics(&self) -> std::io::Result<()> {
        for s in &self.servers {
            let label = metrics::Label::new("server", s.local_addr().to_string());
            s.export_metrics(vec![label])?;
        }
        Ok(())
    }

    /// Stop the cache servers and wait for them.
    pub fn shutdown(self) {
        for s in &self.servers {
            s.shutdown();
        }
        for s in self.servers {
            let _ = s.join();
        }
    }
}

/// The config the local tier routes with.
pub fn local_config(servers: &[SocketAddr]) -> String {
    let list: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "{{\"pools\": {{\"local\": {{\"servers\": [{}]}}}}, \"route\": \"PoolRoute|local\"}}",
        list.join(", ")
    )
}

/// Start the local tier and a router in front of it.
pub fn start(opts: Options) -> Result<(Router, LocalTier), StartError> {
    let mut tier = LocalTier {
        servers: Vec::new(),
    };
    for _ in 0..LOCAL_SERVERS {
        let settings = Settings {
            port: 0,
            listen: "127.0.0.1".into(),
            threads: 1,
            ..Default::default()
        };
        let handle = Server::start(settings).map_err(|source| StartError::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        tier.servers.push(handle);
    }
    let registry = Registry::default();
    let config = Config::parse(
        &local_config(&tier.servers()),
        Some("<local tier>"),
        &registry,
    )?;
    let router = Router::start_with_registry(config, opts, registry)?;
    Ok((router, tier))
}
