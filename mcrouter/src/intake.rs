//! The invalidation intake (`--invalidation-listen ADDR`): where a database tailer (the
//! NSDI'13 paper's mcsqueal) sends the deletes it derives from committed transactions.
//!
//! It speaks the text protocol, restricted to `delete <key> [noreply]`, `md <key>
//! [flags]`, `mn`, `version` and `quit`; anything else is answered with `CLIENT_ERROR`.
//! Deletes are collected into a **batch** that ends at each `mn` (the tailer's natural
//! "end of transaction batch" marker), at [`MAX_BATCH`] deletes, or when no more bytes
//! arrive for [`IDLE_FLUSH`] (a tailer that never sends `mn` still gets its replies).
//! A batch is routed through the route tree all at once, so it reaches each destination
//! as **one** write (deletes for the same key within a batch are sent once); replies come
//! back in request order, and `mn` is answered `MN` after every delete before it.
//!
//! Deletes from the intake are marked ([`Req::invalidation`]): routes that treat client
//! writes specially (the remote-marker route) know this one is the authoritative
//! invalidation, and the asynclog applies to them as to any delete.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protocol::{Frame, Framer, Limits, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::reply::Reply;
use crate::request::{Classified, LocalCmd, Req};
use crate::route::{join_all, Ctx, RouteFuture, RouteRef};
use crate::server::Shared;
use crate::stats::Stats;

/// Most deletes in one batch.
pub const MAX_BATCH: usize = 10_000;

/// A batch not closed by `mn` is flushed when the connection has been quiet this long.
pub const IDLE_FLUSH: Duration = Duration::from_millis(2);

/// What one parsed intake command becomes.
enum Slot {
    /// A delete: its index among the batch's distinct keys, and whether to reply.
    Delete { unique: usize, noreply: bool },
    /// A reply the intake makes itself (`MN`, `VERSION`, errors).
    Local(Bytes),
}

/// A batch being collected.
#[derive(Default)]
struct Batch {
    slots: Vec<Slot>,
    /// Distinct deletes in arrival order, and where each key is in that list.
    unique: Vec<Req>,
    index: HashMap<Vec<u8>, usize>,
    deletes: usize,
}

impl Batch {
    fn push_delete(&mut self, req: Req) {
        let noreply = req.noreply();
        self.deletes += 1;
        let key = req.key().to_vec();
        let unique = match self.index.get(&key) {
            // A repeated key: answered like the first (a plain delete and an `md` with
            // different flags are kept apart by the wire key's command).
            Some(&i) if self.unique[i].op() == req.op() => i,
            _ => {
                self.unique.push(req.into_invalidation());
                self.index.insert(key, self.unique.len() - 1);
                self.unique.len() - 1
            }
        };
        self.slots.push(Slot::Delete { unique, noreply });
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Route every distinct delete now (so each destination gets one write), then wait
    /// for the replies and lay them out in request order.
    fn flush(self, root: &RouteRef, ctx: &Rc<Ctx>, shared: &Shared) -> RouteFuture {
        if self.deletes > 0 {
            Stats::inc(&shared.stats.intake_batches);
        }
        shared
            .stats
            .intake_deletes
            .fetch_add(self.deletes as u64, Ordering::Relaxed);
        let futs: Vec<RouteFuture> = self
            .unique
            .into_iter()
            .map(|r| root.route(r, ctx))
            .collect();
        let slots = self.slots;
        Box::pin(async move {
            let replies = join_all(futs).await;
            let mut out = BytesMut::new();
            for s in slots {
                match s {
                    Slot::Delete { noreply: true, .. } => {}
                    Slot::Delete { unique, .. } => out.extend_from_slice(&replies[unique].bytes),
                    Slot::Local(b) => out.extend_from_slice(&b),
                }
            }
            Reply {
                kind: crate::reply::ReplyKind::Ok,
                bytes: out.freeze(),
            }
        })
    }
}

/// Serve one intake connection.
pub async fn client(mut stream: TcpStream, shared: Arc<Shared>, ctx: Rc<Ctx>) {
    if let Err(e) = serve(&mut stream, &shared, &ctx).await {
        tracing::debug!(error = %e, "intake connection ended");
    }
}

const ONLY_DELETES: &[u8] =
    b"CLIENT_ERROR invalidation intake accepts delete, md, mn, version and quit\r\n";

async fn serve(stream: &mut TcpStream, shared: &Arc<Shared>, ctx: &Rc<Ctx>) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.split();
    let limits = Limits::default();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut batch = Batch::default();
    let mut framer = Framer::new();
    let mut closing = false;
    loop {
        // Parse everything complete; flush at each `mn` and at the size cap.
        let chunk = rbuf.split().freeze();
        let mut off = 0usize;
        while off < chunk.len() && !closing {
            match framer.next(&chunk[off..], &limits) {
                Frame::Skip(n) => off += n,
                Frame::More => break,
                Frame::Request(parsed, consumed) => {
                    let raw = &chunk[off..off + consumed];
                    let is_mn = matches!(parsed, Request::MetaNoop);
                    let classified =
                        Req::classify(&parsed, raw, consumed, || chunk.slice(off..off + consumed));
                    off += consumed;
                    match classified {
                        Classified::Routed(req) if req.op().is_delete() => batch.push_delete(req),
                        Classified::Local(LocalCmd::MetaNoop) => {
                            batch.slots.push(Slot::Local(Bytes::from_static(b"MN\r\n")))
                        }
                        Classified::Local(LocalCmd::Version) => batch.slots.push(Slot::Local(
                            Bytes::from(format!("VERSION {}\r\n", crate::stats::VERSION)),
                        )),
                        Classified::Local(LocalCmd::Quit) => closing = true,
                        _ => batch
                            .slots
                            .push(Slot::Local(Bytes::from_static(ONLY_DELETES))),
                    }
                    if is_mn || batch.deletes >= MAX_BATCH {
                        let root: RouteRef = shared.config.load().root.clone();
                        let r = std::mem::take(&mut batch).flush(&root, ctx, shared).await;
                        wr.write_all(&r.bytes).await?;
                    }
                }
                Frame::Error(e) => {
                    if let Some(line) = e.reply_line() {
                        batch
                            .slots
                            .push(Slot::Local(Bytes::from(line.into_bytes())));
                    }
                    off += e.consumed;
                    if e.close {
                        closing = true;
                    }
                }
            }
        }
        if off < chunk.len() && !closing {
            rbuf.extend_from_slice(&chunk[off..]);
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(64 * 1024);
        }
        let n = if closing {
            0
        } else if batch.is_empty() {
            rd.read_buf(&mut rbuf).await?
        } else {
            match tokio::time::timeout(IDLE_FLUSH, rd.read_buf(&mut rbuf)).await {
                Ok(r) => r?,
                Err(_) => {
                    // Quiet: flush what we have.
                    let root: RouteRef = shared.config.load().root.clone();
                    let r = std::mem::take(&mut batch).flush(&root, ctx, shared).await;
                    wr.write_all(&r.bytes).await?;
                    continue;
                }
            }
        };
        if n == 0 {
            if !batch.is_empty() {
                let root: RouteRef = shared.config.load().root.clone();
                let r = std::mem::take(&mut batch).flush(&root, ctx, shared).await;
                wr.write_all(&r.bytes).await?;
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Op;

    #[test]
    fn repeated_keys_share_one_delete() {
        let mut b = Batch::default();
        for raw in ["delete a\r\n", "delete b\r\n", "delete a noreply\r\n"] {
            b.push_delete(Req::from_wire(raw.as_bytes()).unwrap());
        }
        assert_eq!(b.unique.len(), 2);
        assert_eq!(b.deletes, 3);
        assert!(b.unique.iter().all(|r| r.invalidation()));
        assert!(matches!(
            b.slots[2],
            Slot::Delete {
                unique: 0,
                noreply: true
            }
        ));
    }

    #[test]
    fn op_is_checked_for_deletes_only() {
        assert!(Req::from_wire(b"md k q\r\n").unwrap().op().is_delete());
        assert!(!Req::from_wire(b"get k\r\n").unwrap().op().is_delete());
        assert_eq!(Req::from_wire(b"delete k\r\n").unwrap().op(), Op::Delete);
    }
}
