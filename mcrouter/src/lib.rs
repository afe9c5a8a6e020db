//! mcrouter-compatible routing proxy.
//!
//! # Layout
//!
//! ```text
//!  clients ──TCP──> acceptor ──> worker threads (--num-proxies; one current-thread runtime each)
//!                                 │ client task: read, protocol::parse_request, Req
//!                                 │   local: version, verbosity, mn, quit, stats, admin gets
//!                                 │   multi-key get: split by destination, one get per server
//!                                 │   else: config.root.route(req) ──> route tree
//!                                 │ replies reassembled in request order, batched writes
//!                                 └ per-worker destination connections (pipelined, batched)
//!  config file ──notify──> reload: build a new tree, swap it (arc-swap); old one drains
//! ```
//!
//! Modules:
//! - [`hash`]: the hash functions a pool uses to pick a destination for a key
//!   (`Ch3`/furc, `Crc32`, `WeightedCh3`, libmemcached/twemproxy `Ketama`), and the
//!   mcrouter routing-key rules (`/region/cluster/` prefix, `|#|` hash stop).
//! - [`config`]: mcrouter's JSON config, validation with file/path errors, tree building.
//! - [`route`]: the route handles, one file each, one trait.
//! - [`destination`]: connections to servers, pipelining, timeouts, health (TKO, probes);
//!   each reply reaches its request through a [`local_oneshot`] channel.
//! - [`request`], [`reply`]: what flows through the tree.
//! - [`proxy`]: client connections and the worker threads; [`server`]: start-up, reload.
//! - [`send_batch`]: each worker round's socket writes in one io_uring submission.
//! - [`admin`]: `get __mcrouter__.*`; [`stats`]: the router's own `stats`.

pub mod admin;
pub mod asynclog;
pub mod coalesce;
pub mod config;
pub mod destination;
pub mod hash;
pub mod hostid;
pub mod intake;
pub mod lease;
pub mod local;
pub mod local_oneshot;
pub mod metrics;
pub mod proxy;
pub mod reply;
pub mod request;
pub mod route;
pub mod send_batch;
pub mod server;
pub mod stats;
