//! Asynclog: deletes that could not reach a destination are spooled to disk, fsynced
//! *before* the client is answered, and replayed once the destination is healthy again, so
//! no invalidation is ever lost (NSDI'13 section 4.2). The spool survives restarts.
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Spool errors, with the file they concern.
#[derive(Debug, Error)]
pub enum AsyncLogError {
    #[error("asynclog {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
}

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

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AsyncLog {
    /// Open (or create) the spool at `path`, loading the deletes still pending.
    pub fn open(path: impl AsRef<Path>) -> Result<AsyncLog, AsyncLogError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| AsyncLogError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
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
            inner: Mutex::new(Inner {
                file,
                pending,
                next_seq,
                acks_in_file,
            }),
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
    pub fn append(&self, destination: &str, key: &[u8]) -> Result<u64, AsyncLogError> {
        let mut g = self.inner.lock();
        let seq = g.next_seq;
        let time = now_unix();
        let (key_s, key_b64) = match std::str::from_utf8(key) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(key)),
            ),
        };
        let rec = Record {
            seq: Some(seq),
            time: Some(time),
            destination: Some(destination.to_string()),
            key: key_s,
            key_b64,
            ack: None,
        };
        let mut line = serde_json::to_vec(&rec).expect("records serialize");
        line.push(b'\n');
        g.file.write_all(&line).map_err(|e| self.io(e))?;
        g.file.sync_data().map_err(|e| self.io(e))?;
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
            let (key, key_b64) = match std::str::from_utf8(&e.key) {
                Ok(s) => (Some(s.to_string()), None),
                Err(_) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(&e.key)),
                ),
            };
            let mut line = serde_json::to_vec(&Record {
                seq: Some(e.seq),
                time: Some(e.time),
                destination: Some(e.destination.clone()),
                key,
                key_b64,
                ack: None,
            })
            .expect("records serialize");
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

    /// One replay pass: try every pending delete whose destination is healthy, in spool
    /// order, and ack those the destination acknowledged. Stops trying a destination after its
    /// first failure in this pass (it is probably down again).
    pub async fn replay_once<S: DeleteSink>(
        &self,
        sink: &S,
    ) -> Result<ReplayReport, AsyncLogError> {
        let mut report = ReplayReport::default();
        let mut failed_dests: Vec<String> = Vec::new();
        for e in self.pending() {
            if failed_dests.contains(&e.destination) || !sink.healthy(&e.destination) {
                report.skipped += 1;
                continue;
            }
            match sink.delete(&e.destination, &e.key).await {
                Ok(()) => {
                    self.ack(e.seq)?;
                    report.replayed += 1;
                }
                Err(why) => {
                    tracing::debug!(
                        "asynclog replay of seq {} to {} failed: {why}",
                        e.seq,
                        e.destination
                    );
                    report.failed += 1;
                    failed_dests.push(e.destination.clone());
                }
            }
        }
        Ok(report)
    }
}

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
