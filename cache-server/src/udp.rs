//! memcached's UDP protocol (`-U PORT`): every datagram starts with an 8-byte frame header
//! (request id, sequence number, datagram count, reserved; big-endian u16s). A request must fit
//! in one datagram (others are dropped, as memcached does); the reply is split into datagrams of at most [`UDP_MAX_PAYLOAD`] bytes,
//! each with the request id, its sequence number and the total count.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use protocol::parse_request;

use crate::exec::{execute, Outcome};
use crate::server::Shared;
use crate::stats::ThreadStats;

/// Largest datagram memcached sends (header included).
pub const UDP_MAX_PAYLOAD: usize = 1400;
const HEADER: usize = 8;

/// Answer datagrams until shutdown.
pub fn serve(sock: UdpSocket, sh: Arc<Shared>, ts: Arc<ThreadStats>) {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(4096);
    let mut dgram = Vec::with_capacity(UDP_MAX_PAYLOAD);
    while !sh.shutdown.is_set() {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!("udp recv failed: {e}");
                continue;
            }
        };
        if n < HEADER {
            continue; // not even a frame header: nothing to answer to
        }
        ThreadStats::add(&ts.bytes_read, n as u64);
        let request_id = [buf[0], buf[1]];
        out.clear();
        if buf[4..6] != [0, 1] {
            // Multi-datagram requests are not supported; memcached 1.6 drops them unanswered.
            continue;
        }
        answer(&buf[HEADER..n], &sh, &ts, &mut out, sock.as_raw_fd());
        if out.is_empty() {
            continue;
        }
        let chunk = UDP_MAX_PAYLOAD - HEADER;
        let total = out.len().div_ceil(chunk);
        if total > u16::MAX as usize {
            continue; // a reply of over 90 MB cannot be framed; memcached drops it too
        }
        for (seq, part) in out.chunks(chunk).enumerate() {
            dgram.clear();
            dgram.extend_from_slice(&request_id);
            dgram.extend_from_slice(&(seq as u16).to_be_bytes());
            dgram.extend_from_slice(&(total as u16).to_be_bytes());
            dgram.extend_from_slice(&[0, 0]);
            dgram.extend_from_slice(part);
            match sock.send_to(&dgram, peer) {
                Ok(sent) => ThreadStats::add(&ts.bytes_written, sent as u64),
                Err(e) => {
                    tracing::debug!("udp send to {peer} failed: {e}");
                    break;
                }
            }
        }
    }
}

/// Execute every complete request in one datagram's payload.
fn answer(mut payload: &[u8], sh: &Shared, ts: &ThreadStats, out: &mut Vec<u8>, fd: i32) {
    while !payload.is_empty() {
        match parse_request(payload, &sh.limits) {
            Ok(Some((req, n))) => {
                // `watch` sees UDP requests too, with the socket's fd as memcached logs them.
                crate::watch::set_current(sh.watch.flags(), fd);
                if execute(&req, sh, ts, out) == Outcome::Close {
                    return;
                }
                payload = &payload[n..];
            }
            // A request cut off by the end of the datagram cannot be completed.
            Ok(None) => return,
            Err(e) => {
                crate::exec::parse_error_reply(&e, sh, ts, out);
                if e.close {
                    return;
                }
                payload = &payload[(e.consumed + e.swallow).min(payload.len())..];
            }
        }
    }
}
