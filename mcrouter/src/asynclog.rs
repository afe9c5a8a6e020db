//! Asynclog: deletes that could not reach a destination are spooled to disk, fsynced
//! *before* the client is answered, and replayed once the destination is healthy again, so
//! no invalidation is ever lost (NSDI'13 section 4.2). The spool survives restarts.
//!
//! # In the router
//!
//! - On with `--async-dir DIR`: the spool is `DIR/mcrouter.asynclog`, locked (`DIR/
//!   mcrouter.lock`) so two routers never share one. Pools (and `DestinationRoute`s) take
//!   `"asynclog": false` to opt out, as in mcrouter.
//! - A `delete` (or `md`) a destination leaf cannot deliver (connect error, timeout, TKO,
//!   shed, `SERVER_ERROR`) is appended and fsynced, then answered `NOT_FOUND` / `NF`, as
//!   mcrouter answers an asynclogged delete. Concurrent appends share fsyncs (group
//!   commit). If the spool cannot be written, the client gets the original error.
//! - The replayer thread ([`spawn_replayer`]) re-sends spooled deletes over its own
//!   connections once a destination is no longer TKO: per destination, the oldest delete
//!   first, then pipelined batches of [`REPLAY_BATCH`]; passes back off from 100 ms to 2 s
//!   while destinations stay down. A delete leaves the spool only when the destination
//!   answers `DELETED`/`NOT_FOUND` (`HD`/`NF`).
//! - At most `--asynclog-max-backlog` deletes (default [`DEFAULT_MAX_BACKLOG`]) are held:
//!   the index of pending deletes lives in memory, so beyond the cap a failed delete gets
//!   its error (the client knows it was not done) rather than growing the router.
//! - `stats` shows `asynclog_spooled`, `asynclog_replayed`, `asynclog_backlog` and
//!   `asynclog_spool_errors`; the same are Prometheus metrics.
//!
//! A spooled delete replayed after a newer `set` of the same key removes that newer value:
//! a spurious miss, never stale data (the same trade mcrouter makes).
//!
//! # Spool format
//!
//! One JSON object per line, appended only:
//!
//! ```text
//! {"seq":17,"time":1795305427,"destination":"10.0.0.5:11211","key":"user:42"}
//! {"seq":18,"time":1795305427,"destination":"10.0.0.5:11211","key_b64":"AAEC/w=="}
//! {"ack":17}
//! ```
//!
//! - `seq`: increasing record number; `time`: Unix seconds when spooled; `destination`:
//!   `host:port` as in the pool config; `key` when the key is UTF-8, else `key_b64`.
//! - `{"ack":N}` records that delete N was acknowledged (`DELETED` or `NOT_FOUND`) and is done.
//! - A torn last line (a crash in the middle of a write) is ignored and cut off on open.
//! - When nothing is pending the file is truncated; when acks outnumber pending records it is
//!   rewritten (temp file, fsync, rename), so the spool stays proportional to the backlog.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::destination::WorkerDests;
use crate::reply::{ErrorClass, Reply, ReplyKind};
use crate::request::Req;
use crate::server::Shared;

/// Spool errors, with the file they concern.
#[derive(Debug, Error)]
pub enum AsyncLogError {
    #[error("asynclog {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("asynclog {path}: in use by another process (give each router its own --async-dir)")]
    Locked { path: PathBuf },
    #[error("asynclog {path}: backlog full ({max} deletes spooled; see --asynclog-max-backlog)")]
    Full { path: PathBuf, max: usize },
    #[error("asynclog {path}: line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// One spooled delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub time: u64,
    pub destination: String,
    pub key: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_b64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ack: Option<u64>,
}

struct Inner {
    file: File,
    pending: BTreeMap<u64, Entry>,
    next_seq: u64,
    /// Ack records in the file since it was last rewritten or truncated.
    acks_in_file: usize,
}

/// The spool of one router.
pub struct AsyncLog {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Held while fsyncing; with `synced` it makes concurrent appends share one fsync
    /// (group commit).
    sync_lock: Mutex<()>,
    /// Highest seq known to be on disk.
    synced: AtomicU64,
    /// Exclusive lock on `<spool>.lock`: one router per spool.
    _lock: File,
    /// Woken when a delete is spooled (the replayer sleeps on it when idle).
    pub wake: tokio::sync::Notify,
    /// Deletes spooled since start.
    pub spooled: AtomicU64,
    /// Spooled deletes acknowledged by their destination since start.
    pub replayed: AtomicU64,
    /// Deletes that could not be spooled (disk errors, backlog full): their clients got
    /// the error.
    pub spool_errors: AtomicU64,
    /// Most deletes held (their index lives in memory); beyond, failed deletes are answered
    /// with their error instead of being spooled.
    max_backlog: usize,
}

/// Default cap of spooled deletes (about 150 MB of index in memory at the cap).
pub const DEFAULT_MAX_BACKLOG: usize = 1_000_000;

/// What one replay pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Deletes acknowledged and removed from the spool.
    pub replayed: u64,
    /// Deletes tried and failed (they stay spooled).
    pub failed: u64,
    /// Deletes not tried because their destination was not healthy.
    pub skipped: u64,
}

/// Where replayed deletes go (the router's destinations, or a mock in tests).
pub trait DeleteSink {
    /// Whether `destination` is worth trying now (not TKO).
    fn healthy(&self, destination: &str) -> bool;
    /// Send `delete <key>`; `Ok` when the destination answered `DELETED` or `NOT_FOUND`.
    fn delete(&self, destination: &str, key: &[u8]) -> impl Future<Output = Result<(), String>>;
}

/// The JSON line (without newline) of a spooled delete.
fn record_line(seq: u64, time: u64, destination: &str, key: &[u8]) -> Vec<u8> {
    let (key_s, key_b64) = match std::str::from_utf8(key) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(key)),
        ),
    };
    serde_json::to_vec(&Record {
        seq: Some(seq),
        time: Some(time),
        destination: Some(destination.to_string()),
        key: key_s,
        key_b64,
        ack: None,
    })
    .expect("records serialize")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AsyncLog {
    /// Open (or create) the spool at `path`, loading the deletes still pending, with the
    /// default backlog cap.
    pub fn open(path: impl AsRef<Path>) -> Result<AsyncLog, AsyncLogError> {
        Self::open_with_cap(path, DEFAULT_MAX_BACKLOG)
    }

    /// Open with at most `max_backlog` pending deletes (a spool found bigger at start is
    /// kept whole; only new appends are refused until it drains below the cap).
    pub fn open_with_cap(
        path: impl AsRef<Path>,
        max_backlog: usize,
    ) -> Result<AsyncLog, AsyncLogError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| AsyncLogError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AsyncLogError::Locked { path: path.clone() })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err)?;
        let mut pending = BTreeMap::new();
        let mut next_seq = 1;
        let mut acks_in_file = 0;
        let mut good_len = 0u64;
        {
            let mut reader = BufReader::new(&file);
            let mut line = String::new();
            let mut n = 0;
            loop {
                line.clear();
                let read = reader.read_line(&mut line).map_err(io_err)?;
                if read == 0 {
                    break;
                }
                n += 1;
                if !line.ends_with('\n') {
                    // A torn final write: drop it.
                    tracing::warn!("asynclog {}: ignoring a torn last line", path.display());
                    break;
                }
                let rec: Record =
                    serde_json::from_str(line.trim_end()).map_err(|e| AsyncLogError::Corrupt {
                        path: path.clone(),
                        line: n,
                        reason: e.to_string(),
                    })?;
                good_len += read as u64;
                if let Some(seq) = rec.ack {
                    pending.remove(&seq);
                    acks_in_file += 1;
                    continue;
                }
                let corrupt = |reason: &str| AsyncLogError::Corrupt {
                    path: path.clone(),
                    line: n,
                    reason: reason.to_string(),
                };
                let seq = rec
                    .seq
                    .ok_or_else(|| corrupt("record without seq or ack"))?;
                let destination = rec
                    .destination
                    .ok_or_else(|| corrupt("record without destination"))?;
                let key = match (rec.key, rec.key_b64) {
                    (Some(k), None) => k.into_bytes(),
                    (None, Some(b)) => base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| corrupt(&format!("bad key_b64: {e}")))?,
                    _ => return Err(corrupt("record needs exactly one of key and key_b64")),
                };
                next_seq = next_seq.max(seq + 1);
                pending.insert(
                    seq,
                    Entry {
                        seq,
                        time: rec.time.unwrap_or(0),
                        destination,
                        key,
                    },
                );
            }
        }
        if good_len < file.metadata().map_err(io_err)?.len() {
            file.set_len(good_len).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err)?;
        Ok(AsyncLog {
            path,
            synced: AtomicU64::new(next_seq - 1),
            inner: Mutex::new(Inner {
                file,
                pending,
                next_seq,
                acks_in_file,
            }),
            sync_lock: Mutex::new(()),
            _lock: lock,
            wake: tokio::sync::Notify::new(),
            spooled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            spool_errors: AtomicU64::new(0),
            max_backlog: max_backlog.max(1),
        })
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: io::Error) -> AsyncLogError {
        AsyncLogError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Spool a delete for `destination` and fsync it; only then may the client be answered.
    /// Concurrent appends share fsyncs (group commit): each waits until an fsync that
    /// started after its write has finished.
    pub fn append(&self, destination: &str, key: &[u8]) -> Result<u64, AsyncLogError> {
        let r = self.append_inner(destination, key);
        match &r {
            Ok(_) => {
                self.spooled.fetch_add(1, Ordering::Relaxed);
                self.wake.notify_one();
            }
            Err(_) => {
                self.spool_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    fn append_inner(&self, destination: &str, key: &[u8]) -> Result<u64, AsyncLogError> {
        let seq = {
            let mut g = self.inner.lock();
            if g.pending.len() >= self.max_backlog {
                return Err(AsyncLogError::Full {
                    path: self.path.clone(),
                    max: self.max_backlog,
                });
            }
            let seq = g.next_seq;
            let time = now_unix();
            let mut line = record_line(seq, time, destination, key);
            line.push(b'\n');
            g.file.write_all(&line).map_err(|e| self.io(e))?;
            g.next_seq += 1;
            g.pending.insert(
                seq,
                Entry {
                    seq,
                    time,
                    destination: destination.to_string(),
                    key: key.to_vec(),
                },
            );
            seq
        };
        let _s = self.sync_lock.lock();
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(seq);
        }
        let (file, upto) = {
            let g = self.inner.lock();
            (g.file.try_clone().map_err(|e| self.io(e))?, g.next_seq - 1)
        };
        file.sync_data().map_err(|e| self.io(e))?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(seq)
    }

    /// Mark delete `seq` as acknowledged. Losing an ack in a crash only replays an idempotent
    /// delete once more, so acks are not fsynced one by one.
    pub fn ack(&self, seq: u64) -> Result<(), AsyncLogError> {
        let mut g = self.inner.lock();
        if g.pending.remove(&seq).is_none() {
            return Ok(());
        }
        if g.pending.is_empty() {
            // Nothing left: start the file over.
            g.file.set_len(0).map_err(|e| self.io(e))?;
            g.file.sync_all().map_err(|e| self.io(e))?;
            g.acks_in_file = 0;
            return Ok(());
        }
        let mut line = serde_json::to_vec(&Record {
            seq: None,
            time: None,
            destination: None,
            key: None,
            key_b64: None,
            ack: Some(seq),
        })
        .expect("records serialize");
        line.push(b'\n');
        g.file.write_all(&line).map_err(|e| self.io(e))?;
        g.acks_in_file += 1;
        if g.acks_in_file > 1024 && g.acks_in_file > 4 * g.pending.len() {
            self.rewrite(&mut g)?;
        }
        Ok(())
    }

    /// Rewrite the spool with only the pending records (temp file, fsync, rename).
    fn rewrite(&self, g: &mut Inner) -> Result<(), AsyncLogError> {
        let tmp = self.path.with_extension("compact");
        let mut f = File::create(&tmp).map_err(|e| self.io(e))?;
        for e in g.pending.values() {
            let mut line = record_line(e.seq, e.time, &e.destination, &e.key);
            line.push(b'\n');
            f.write_all(&line).map_err(|e| self.io(e))?;
        }
        f.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        g.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        g.acks_in_file = 0;
        Ok(())
    }

    /// Deletes still to replay, oldest first.
    pub fn pending(&self) -> Vec<Entry> {
        self.inner.lock().pending.values().cloned().collect()
    }

    /// How many deletes are spooled.
    pub fn backlog(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// One replay pass: for each destination with pending deletes (oldest first), if it
    /// is healthy, send its oldest delete alone; if that is acknowledged, send the rest in
    /// pipelined batches of [`REPLAY_BATCH`]. Acknowledged deletes are acked in the spool;
    /// a destination's first failure ends its turn in this pass (it is probably down again).
    pub async fn replay_once<S: DeleteSink>(
        &self,
        sink: &S,
    ) -> Result<ReplayReport, AsyncLogError> {
        let mut report = ReplayReport::default();
        let mut by_dest: Vec<(String, Vec<Entry>)> = Vec::new();
        for e in self.pending() {
            match by_dest.iter_mut().find(|(d, _)| *d == e.destination) {
                Some((_, list)) => list.push(e),
                None => by_dest.push((e.destination.clone(), vec![e])),
            }
        }
        for (dest, entries) in by_dest {
            if !sink.healthy(&dest) {
                report.skipped += entries.len() as u64;
                continue;
            }
            let mut done = 0usize;
            let mut batch = 1usize;
            while done < entries.len() {
                let chunk = &entries[done..(done + batch).min(entries.len())];
                let results = futures_util::future::join_all(
                    chunk.iter().map(|e| sink.delete(&e.destination, &e.key)),
                )
                .await;
                let mut failed = false;
                for (e, r) in chunk.iter().zip(results) {
                    match r {
                        Ok(()) => {
                            self.ack(e.seq)?;
                            self.replayed.fetch_add(1, Ordering::Relaxed);
                            report.replayed += 1;
                        }
                        Err(why) => {
                            tracing::debug!(
                                "asynclog replay of seq {} to {} failed: {why}",
                                e.seq,
                                e.destination
                            );
                            report.failed += 1;
                            failed = true;
                        }
                    }
                }
                done += chunk.len();
                if failed {
                    report.skipped += (entries.len() - done) as u64;
                    break;
                }
                batch = REPLAY_BATCH;
            }
        }
        Ok(report)
    }
}

/// Deletes replayed to one destination at a time (pipelined on one connection).
pub const REPLAY_BATCH: usize = 256;

/// Backoff between replay passes after failures: doubles from `min` up to `max`, back to
/// `min` after a pass with no failure.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            current: min,
        }
    }

    /// The wait before the next pass, given how the last one went.
    pub fn next(&mut self, last: &ReplayReport) -> Duration {
        if last.failed == 0 && last.skipped == 0 {
            self.current = self.min;
        } else {
            self.current = (self.current * 2).min(self.max);
        }
        self.current
    }
}

// ---------------------------------------------------------------------------------------
// Router integration: spooling in the destination leaves, and the replayer thread.
// ---------------------------------------------------------------------------------------

/// The spool file inside `--async-dir`.
pub const SPOOL_FILE: &str = "mcrouter.asynclog";

/// Whether a failed delete is worth spooling: everything except the backend saying the
/// request itself is bad (`CLIENT_ERROR`, `ERROR`), which a replay would not fix.
pub fn should_spool(reply: &Reply) -> bool {
    match reply.error_class() {
        None | Some(ErrorClass::ClientError) => false,
        Some(_) => true,
    }
}

/// Wrap a delete sent to `dest`: if it fails, spool it (fsynced) and answer as mcrouter
/// does for an asynclogged delete (`NOT_FOUND` / `NF`). If the spool itself fails, the
/// client gets the original error, so nothing is acknowledged that could be lost.
pub fn spool_on_failure(
    log: Arc<AsyncLog>,
    dest: &str,
    req: &Req,
    fut: crate::route::RouteFuture,
) -> crate::route::RouteFuture {
    let dest = dest.to_string();
    let key = req.routing_key().to_vec();
    let spooled_reply = Reply::default_for(req);
    Box::pin(async move {
        let r = fut.await;
        if !should_spool(&r) {
            return r;
        }
        match tokio::task::spawn_blocking(move || log.append(&dest, &key)).await {
            Ok(Ok(_)) => spooled_reply,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot spool a failed delete; answering the error");
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "spool task failed; answering the error");
                r
            }
        }
    })
}

/// The request a replay sends: `delete <key>`, or `md <base64> b` for a key that is not
/// a valid text-protocol key.
pub fn replay_request(key: &[u8]) -> Vec<u8> {
    let text_ok = !key.is_empty()
        && key.len() <= protocol::Limits::DEFAULT_MAX_KEY_LEN
        && key.iter().all(|&b| b > b' ' && b != 0x7f);
    if text_ok {
        let mut v = Vec::with_capacity(key.len() + 9);
        v.extend_from_slice(b"delete ");
        v.extend_from_slice(key);
        v.extend_from_slice(b"\r\n");
        v
    } else {
        format!(
            "md {} b\r\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
        .into_bytes()
    }
}

/// Replays to the router's destinations over the replayer's own connections.
struct RouterSink {
    shared: Arc<Shared>,
    dests: WorkerDests,
}

impl DeleteSink for RouterSink {
    fn healthy(&self, destination: &str) -> bool {
        !self
            .shared
            .registry
            .get_or_insert(destination)
            .health
            .is_tko()
    }

    async fn delete(&self, destination: &str, key: &[u8]) -> Result<(), String> {
        let d = self.shared.registry.get_or_insert(destination);
        let r = self
            .dests
            .send(&d, &replay_request(key), crate::destination::ReplyEnd::One)
            .await;
        match r.kind {
            ReplyKind::Ok | ReplyKind::NotFound => Ok(()),
            _ => Err(String::from_utf8_lossy(&r.bytes).trim_end().to_string()),
        }
    }
}

/// Start the replayer thread: it re-sends spooled deletes once their destination is
/// healthy (passes back off from 100 ms to 2 s while destinations stay down) and sleeps
/// while the spool is empty. Stops when `stop` is set.
pub fn spawn_replayer(
    shared: Arc<Shared>,
    log: Arc<AsyncLog>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("mcrouter-asynclog".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the asynclog replayer");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let sink = RouterSink {
                    dests: WorkerDests::new(shared.opts.dest),
                    shared,
                };
                let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
                while !stop.load(Ordering::Relaxed) {
                    if log.backlog() == 0 {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), log.wake.notified()).await;
                        continue;
                    }
                    match log.replay_once(&sink).await {
                        Ok(report) => {
                            let wait = backoff.next(&report);
                            if report.failed > 0 || report.skipped > 0 {
                                tokio::time::sleep(wait).await;
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "asynclog replay failed");
                            tokio::time::sleep(backoff.max).await;
                        }
                    }
                }
            });
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashSet;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("asynclog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("spool.jsonl")
    }

    struct Mock {
        down: HashSet<String>,
        failing: HashSet<String>,
        sent: RefCell<Vec<(String, Vec<u8>)>>,
    }

    impl DeleteSink for Mock {
        fn healthy(&self, d: &str) -> bool {
            !self.down.contains(d)
        }
        async fn delete(&self, d: &str, key: &[u8]) -> Result<(), String> {
            self.sent.borrow_mut().push((d.to_string(), key.to_vec()));
            if self.failing.contains(d) {
                Err("timeout".into())
            } else {
                Ok(())
            }
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn spooled_deletes_survive_a_restart_and_acks_too() {
        let p = temp("restart");
        {
            let log = AsyncLog::open(&p).unwrap();
            assert_eq!(log.append("a:1", b"k1").unwrap(), 1);
            assert_eq!(log.append("b:2", b"k2").unwrap(), 2);
            assert_eq!(log.append("a:1", &[0, 1, 0xff]).unwrap(), 3);
            log.ack(2).unwrap();
        }
        let log = AsyncLog::open(&p).unwrap();
        let pending = log.pending();
        assert_eq!(pending.len(), 2);
        assert_eq!((pending[0].seq, pending[0].key.as_slice()), (1, &b"k1"[..]));
        assert_eq!(
            (pending[1].seq, pending[1].key.as_slice()),
            (3, &[0u8, 1, 0xff][..])
        );
        assert_eq!(pending[1].destination, "a:1");
        // Sequence numbers continue after the restart.
        assert_eq!(log.append("c:3", b"k4").unwrap(), 4);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(r#""key_b64":"AAH/""#), "{text}");
        assert!(text.contains(r#"{"ack":2}"#), "{text}");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_other_damage_is_an_error() {
        let p = temp("torn");
        {
            let log = AsyncLog::open(&p).unwrap();
            log.append("a:1", b"k1").unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"seq":2,"time":1,"dest"#).unwrap();
        drop(f);
        let log = AsyncLog::open(&p).unwrap();
        assert_eq!(log.backlog(), 1);
        assert_eq!(log.append("a:1", b"k2").unwrap(), 2);
        drop(log);
        assert_eq!(AsyncLog::open(&p).unwrap().backlog(), 2);

        std::fs::write(&p, "{\"seq\":1}\nnot json\n").unwrap();
        let err = AsyncLog::open(&p).err().expect("corrupt spool");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn the_file_is_truncated_when_nothing_is_pending_and_compacted_when_acks_dominate() {
        let p = temp("compact");
        let log = AsyncLog::open(&p).unwrap();
        for i in 0..3 {
            log.append("a:1", format!("k{i}").as_bytes()).unwrap();
        }
        for s in 1..=3 {
            log.ack(s).unwrap();
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        // One long-pending delete and many short-lived ones.
        let keep = log.append("a:1", b"keep").unwrap();
        for i in 0..2000 {
            let s = log.append("b:2", format!("x{i}").as_bytes()).unwrap();
            log.ack(s).unwrap();
        }
        // Without compaction: 1 + 2 * 2000 lines. With it, at most a record and an ack per
        // delete since the last rewrite (which happens past 1024 acks).
        let lines = std::fs::read_to_string(&p).unwrap().lines().count();
        assert!(lines < 2100, "{lines} lines: the spool was not compacted");
        drop(log);
        let log = AsyncLog::open(&p).unwrap();
        assert_eq!(
            log.pending().iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![keep]
        );
    }

    #[test]
    fn replay_acks_what_healthy_destinations_acknowledge() {
        let p = temp("replay");
        let log = AsyncLog::open(&p).unwrap();
        log.append("up:1", b"a").unwrap();
        log.append("down:2", b"b").unwrap();
        log.append("flaky:3", b"c").unwrap();
        log.append("flaky:3", b"d").unwrap();
        log.append("up:1", b"e").unwrap();
        let sink = Mock {
            down: ["down:2".to_string()].into(),
            failing: ["flaky:3".to_string()].into(),
            sent: RefCell::new(Vec::new()),
        };
        let r = block_on(log.replay_once(&sink)).unwrap();
        assert_eq!(
            r,
            ReplayReport {
                replayed: 2,
                failed: 1,
                skipped: 2
            }
        );
        // The flaky destination was tried once, then skipped for the rest of the pass.
        let sent = sink.sent.borrow();
        assert_eq!(sent.iter().filter(|(d, _)| d == "flaky:3").count(), 1);
        assert!(!sent.iter().any(|(d, _)| d == "down:2"));
        let left: Vec<Vec<u8>> = log.pending().into_iter().map(|e| e.key).collect();
        assert_eq!(left, vec![b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        drop(sent);
        // Once everything recovers, the backlog drains and the spool is empty.
        let healthy = Mock {
            down: HashSet::new(),
            failing: HashSet::new(),
            sent: RefCell::new(Vec::new()),
        };
        let r = block_on(log.replay_once(&healthy)).unwrap();
        assert_eq!(r.replayed, 3);
        assert_eq!(log.backlog(), 0);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }

    #[test]
    fn concurrent_appends_share_fsyncs_and_all_land() {
        let p = temp("group");
        let log = Arc::new(AsyncLog::open(&p).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .map(|i| log.append("a:1", format!("k{t}-{i}").as_bytes()).unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=800).collect::<Vec<u64>>());
        assert_eq!(log.spooled.load(Ordering::Relaxed), 800);
        drop(log);
        assert_eq!(AsyncLog::open(&p).unwrap().backlog(), 800);
    }

    #[test]
    fn a_full_backlog_refuses_new_deletes_until_it_drains() {
        let p = temp("full");
        let log = AsyncLog::open_with_cap(&p, 3).unwrap();
        for k in ["a", "b", "c"] {
            log.append("d:1", k.as_bytes()).unwrap();
        }
        let err = log.append("d:1", b"x").expect_err("full");
        assert!(matches!(err, AsyncLogError::Full { max: 3, .. }), "{err}");
        assert_eq!(log.spool_errors.load(Ordering::Relaxed), 1);
        log.ack(1).unwrap();
        assert_eq!(log.append("d:1", b"x").unwrap(), 4);
    }

    #[test]
    fn a_second_router_cannot_open_the_same_spool() {
        let p = temp("lock");
        let _first = AsyncLog::open(&p).unwrap();
        let err = AsyncLog::open(&p).err().expect("locked");
        assert!(matches!(err, AsyncLogError::Locked { .. }), "{err}");
        drop(_first);
        assert!(AsyncLog::open(&p).is_ok());
    }

    #[test]
    fn what_is_spooled_and_how_it_is_replayed() {
        use crate::reply::ErrorClass as C;
        assert!(should_spool(&Reply::error(C::Timeout, "t")));
        assert!(should_spool(&Reply::error(C::Tko, "t")));
        assert!(should_spool(&Reply::error(C::ConnectError, "t")));
        assert!(should_spool(&Reply::error(C::Busy, "t")));
        assert!(should_spool(&Reply::error_static(
            C::RemoteError,
            b"SERVER_ERROR out of memory\r\n"
        )));
        assert!(!should_spool(&Reply::error_static(
            C::ClientError,
            b"CLIENT_ERROR bad command line format\r\n"
        )));
        assert!(!should_spool(&Reply::default_for(
            &Req::from_wire(b"delete k\r\n").unwrap()
        )));
        assert_eq!(replay_request(b"user:1"), b"delete user:1\r\n".to_vec());
        assert_eq!(replay_request(&[0, 0xff]), b"md AP8= b\r\n".to_vec());
        assert_eq!(replay_request(b"a b"), b"md YSBi b\r\n".to_vec());
    }

    #[test]
    fn backoff_doubles_on_failure_and_resets_on_success() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let bad = ReplayReport {
            failed: 1,
            ..Default::default()
        };
        assert_eq!(b.next(&bad), Duration::from_millis(20));
        assert_eq!(b.next(&bad), Duration::from_millis(40));
        assert_eq!(b.next(&bad), Duration::from_millis(50));
        assert_eq!(b.next(&ReplayReport::default()), Duration::from_millis(10));
    }
}
