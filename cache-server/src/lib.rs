//! `cache-server`: a memcached-compatible cache server (a drop-in for memcached 1.6).
//!
//! # Layout
//!
//! ```text
//!  main.rs ── config::Settings (memcached's flags) ── server::Server::start
//!                                                        │
//!   listener thread ─> worker threads (mio event loop each) ─> conn::Conn
//!                                                   │ protocol::parse_request
//!                                                   v
//!                                   exec::execute ──> storage::Engine (slabs, hash, LRU)
//!                                   stats_reply   ──> `stats` family of replies
//!                                   dump::Dump    ──> `lru_crawler metadump|mgdump`,
//!                                                     streamed by Engine::dump_step
//!   maintenance thread ─> Engine::lru_maintainer_tick / crawler_step / automove_tick
//!   watch thread       ─> writes `watch` log streams (watch.rs) to their connections
//! ```
//!
//! The [`storage`] module is the storage engine: slab-allocated memory, a hash table with
//! incremental resizing and a segmented LRU, with no sockets and no knowledge of the wire
//! protocol; it is testable alone with an injected clock.

mod admin;
pub mod config;
mod conn;
mod dump;
mod exec;
pub mod metrics;
pub mod send_ring;
pub mod server;
pub mod stats;
mod stats_reply;
pub mod storage;
mod udp;
mod verbose;
pub mod watch;

/// The version we report (`version`, `stats`): the memcached release whose behaviour we
/// follow, so clients that gate features on it work, then our own name.
pub const VERSION: &str = "1.6.18-cachetier";
