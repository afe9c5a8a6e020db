//! loadgen: a load generator for memcached-compatible servers (memtier_benchmark's workload
//! model, open-loop with coordinated-omission correction, verification, herd workload, rate
//! scans and side-by-side comparisons).
//!
//! # Layout
//!
//! ```text
//!  main.rs (clap) ─> cli::Args ─> run::RunConfig ──> run::run ──────────────> stats::Report
//!                                      │               │  one thread per --threads   (table, JSON,
//!                                      │               └─> driver::Driver             HdrHistogram logs)
//!                                      │                    event loop over --connections sockets:
//!                                      │                    uring (io_uring) or mio (epoll);
//!                                      │                    workload::KeyDist, verify, herd;
//!                                      │                    protocol encode/parse_response
//!                                      ├─> scan::scan / scan::search (repeated runs) ─> plot (SVG)
//!                                      └─> compare::compare (spawns servers, A B A B runs)
//! ```
//!
//! Threads share nothing while running except two relaxed atomic counters for the progress
//! line; each records into its own HdrHistograms, merged at the end.

pub mod cli;
pub mod compare;
mod driver;
pub mod herd;
pub mod plot;
pub mod run;
pub mod scan;
pub mod stats;
mod uring;
pub mod verify;
pub mod workload;

pub use run::{run, Arrival, ConnOrder, RunConfig, Stop};
pub use stats::Report;
pub use uring::available as io_uring_available;

/// A bad option or combination of options.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{option} {value:?}: expected {expected}")]
    Invalid {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot resolve server {addr:?}: {reason}")]
    Resolve { addr: String, reason: String },
    #[error("client-side sharding: {0}")]
    Hash(#[from] mcrouter::hash::HashError),
}

/// A run that could not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Thread(String),
}

/// Writing an output file failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HdrHistogram log: {0}")]
    Hdr(String),
    #[error("plot {path}: {reason}")]
    Plot { path: String, reason: String },
}
