//! Batched replies: a worker hands every connection's pending output of one event-loop
//! round to the kernel in a single `io_uring_enter`, instead of one `send` per connection.
//!
//! ```text
//!  epoll round: drive each ready connection (read, execute, queue replies; no write)
//!  end of round: one Send per connection with output ─> io_uring_enter(submit n, wait n)
//!                ─> per connection: all sent / part sent (wait for writable) / error
//! ```
//!
//! Why it pays: a reply usually wakes the client, and a woken client on a busy machine
//! preempts the sender as soon as the sender returns to user space. With one `send` per
//! connection that is up to one context switch per reply; with the round's replies in one
//! system call the clients find all their replies at once. Measured with memcaslap in
//! `cache-server/bench/cpu_vs_memcached.sh`.
//!
//! Every Send carries `MSG_DONTWAIT`, so the kernel never parks it waiting for socket
//! space: it completes during the submission (a full socket answers `EAGAIN`, like a
//! non-blocking `send`). [`SendRing::send_all`] waits for every completion before it
//! returns, so the borrowed reply buffers outlive the kernel's use of them and the API is
//! safe. The ring is created with `SINGLE_ISSUER | DEFER_TASKRUN` (Linux 6.1+) in the worker
//! thread that uses it; where io_uring is missing (old kernel, seccomp,
//! `io_uring_disabled`), [`SendRing::new`] fails and the worker writes directly.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring};

/// Submission queue size: a round with more connections to answer is sent in several
/// submissions of this many.
const ENTRIES: u32 = 256;

pub struct SendRing {
    ring: IoUring,
    /// `(connection index, result)` of the last [`SendRing::send_all`]: bytes sent or
    /// `-errno`.
    results: Vec<(usize, i32)>,
}

impl SendRing {
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(ENTRIES)?;
        Ok(SendRing {
            ring,
            results: Vec::new(),
        })
    }

    /// Send each `(index, fd, bytes)` with one `send(fd, bytes, MSG_DONTWAIT)` per item,
    /// batched into as few `io_uring_enter` calls as the queue size allows, and return
    /// `(index, result)` per item in completion order.
    pub fn send_all<'a>(
        &mut self,
        items: impl IntoIterator<Item = (usize, RawFd, &'a [u8])>,
    ) -> &[(usize, i32)] {
        self.results.clear();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let mut queued = 0usize;
            {
                let mut sq = self.ring.submission();
                while !sq.is_full() {
                    let Some((idx, fd, bytes)) = items.next() else {
                        break;
                    };
                    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    let sqe = opcode::Send::new(types::Fd(fd), bytes.as_ptr(), len)
                        .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                        .build()
                        .user_data(idx as u64);
                    // SAFETY: `bytes` is borrowed for the whole call, and this function
                    // does not return before the kernel has completed every request pushed
                    // here (`complete` below waits for all of them), so the buffer stays
                    // valid and unmodified while the kernel reads it.
                    unsafe { sq.push(&sqe).expect("queue has room") };
                    queued += 1;
                }
            }
            self.complete(queued);
        }
        &self.results
    }

    /// Submit what is queued and wait until `n` completions have been reaped.
    fn complete(&mut self, n: usize) {
        let mut done = 0usize;
        while done < n {
            match self.ring.submit_and_wait(n - done) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) => {}
                Err(e) => {
                    // The kernel may hold pointers into buffers the caller is about to
                    // reuse: returning is unsound, and this cannot be recovered from.
                    eprintln!("io_uring_enter failed with sends in flight: {e}");
                    std::process::abort();
                }
            }
            for cqe in self.ring.completion() {
                self.results.push((cqe.user_data() as usize, cqe.result()));
                done += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn sends_to_many_sockets_in_one_batch_and_reports_full_ones() {
        let Ok(mut ring) = SendRing::new() else {
            eprintln!("io_uring unavailable here; nothing to test");
            return;
        };
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut pairs = Vec::new();
        for _ in 0..300 {
            let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (b, _) = l.accept().unwrap();
            a.set_nonblocking(true).unwrap();
            pairs.push((a, b));
        }
        let msgs: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("reply {i}\r\n").into_bytes())
            .collect();
        let res = ring
            .send_all(
                pairs
                    .iter()
                    .zip(&msgs)
                    .enumerate()
                    .map(|(i, ((a, _), m))| (i, a.as_raw_fd(), m.as_slice())),
            )
            .to_vec();
        assert_eq!(
            res.len(),
            300,
            "more items than the queue holds all complete"
        );
        for (i, r) in res {
            assert_eq!(r, msgs[i].len() as i32, "socket {i}");
        }
        for (i, (_, b)) in pairs.iter_mut().enumerate() {
            let mut buf = vec![0u8; msgs[i].len()];
            b.read_exact(&mut buf).unwrap();
            assert_eq!(buf, msgs[i]);
        }
        // A socket whose peer never reads fills up: the send reports a short count or
        // EAGAIN instead of waiting.
        let big = vec![7u8; 64 << 20];
        let (a, _b) = &pairs[0];
        let mut total = 0usize;
        loop {
            let r = ring.send_all([(0, a.as_raw_fd(), &big[..])])[0].1;
            if r == -libc::EAGAIN {
                break;
            }
            assert!(r > 0, "unexpected result {r}");
            total += r as usize;
            assert!(total < big.len() * 4, "the socket never filled up");
        }
        // A closed peer: an error, not a crash (MSG_NOSIGNAL: no SIGPIPE).
        let (a, b) = pairs.pop().unwrap();
        drop(b);
        let mut saw_error = false;
        for _ in 0..10 {
            let r = ring.send_all([(0, a.as_raw_fd(), &b"x"[..])])[0].1;
            if r < 0 {
                assert!(r == -libc::EPIPE || r == -libc::ECONNRESET, "result {r}");
                saw_error = true;
                break;
            }
        }
        assert!(saw_error, "sending to a closed peer never failed");
    }
}
