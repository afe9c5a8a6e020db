//! io_uring for a driver thread: every socket's sends and receives go through one ring, and
//! one event-loop round costs one `io_uring_enter` (submit the round's sends, wait for
//! replies).
//!
//! ```text
//!  dispatch ─> a Send per socket with bytes to go (MSG_WAITALL: one completion per send)
//!  one multishot Recv per socket, armed once ─> the kernel picks a buffer from the thread's
//!      provided-buffer ring, one completion per arrival ─> copied into the socket's rbuf,
//!      the buffer goes straight back to the ring
//!  one Timeout request, re-armed only when it fired or must fire earlier (next send
//!      time, progress tick, end of run): the loop's timer, like a timerfd
//!  io_uring_enter(submit all, wait for the sends' completions + 1) ─> reap
//! ```
//!
//! The ring is created with `SINGLE_ISSUER | DEFER_TASKRUN` (Linux 6.1+, which also has
//! multishot receive and provided-buffer rings): receive work runs in this thread's own
//! `io_uring_enter`, never as an interrupting task-work callback, and a wake-up happens
//! only once enough completions are due. Anything missing (old kernel, seccomp,
//! `io_uring_disabled`) makes [`Uring::new`] fail and the driver use epoll instead.
//!
//! Memory the kernel may touch — the send buffers (owned by the driver's sockets), the
//! provided buffers and their ring (owned here) — must not move or be freed while a request
//! that uses it is in flight. `Uring::in_flight` counts those requests; [`Uring::cancel_all`]
//! cancels them and reaps their last completions, and whatever cannot be confirmed idle is
//! leaked rather than freed.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// Buffer group id of the provided-buffer ring (one ring per io_uring instance).
const BUF_GROUP: u16 = 0;
/// Size of each provided buffer: a reply burst of a few KB fits in one; larger bursts take
/// one completion per buffer.
const BUF_SIZE: usize = 16 * 1024;

/// What a completion is for: the top byte of `user_data`; the socket index is below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Send = 1,
    Recv = 2,
    Cancel = 3,
    /// The loop's timer (a `Timeout` request).
    Timer = 4,
    /// Moving the timer earlier (posts a completion only when it fails).
    TimerUpdate = 5,
}

const OP_SHIFT: u32 = 56;

fn user_data(op: Op, sock: usize) -> u64 {
    ((op as u64) << OP_SHIFT) | sock as u64
}

/// One reaped completion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub op: Op,
    pub sock: usize,
    pub res: i32,
    flags: u32,
}

impl Completion {
    fn new(cqe: &cqueue::Entry) -> Option<Self> {
        let ud = cqe.user_data();
        let op = match ud >> OP_SHIFT {
            1 => Op::Send,
            2 => Op::Recv,
            3 => Op::Cancel,
            4 => Op::Timer,
            5 => Op::TimerUpdate,
            _ => return None,
        };
        Some(Completion {
            op,
            sock: (ud & ((1u64 << OP_SHIFT) - 1)) as usize,
            res: cqe.result(),
            flags: cqe.flags(),
        })
    }

    /// A multishot receive stays armed (more completions will follow).
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer holding a receive's data.
    pub fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// The provided buffers and the ring through which the kernel takes them.
struct ProvidedBuffers {
    /// `entries` ring entries (16 bytes each, page aligned); the tail is the last 2 bytes of
    /// the first entry.
    ring: NonNull<types::BufRingEntry>,
    /// `entries` buffers of `BUF_SIZE` bytes.
    mem: NonNull<u8>,
    entries: u16,
    tail: u16,
    /// Set when the kernel may still use the memory: it is then leaked, not freed.
    leak: bool,
}

impl ProvidedBuffers {
    fn ring_layout(entries: u16) -> Layout {
        let size = entries as usize * std::mem::size_of::<types::BufRingEntry>();
        Layout::from_size_align(size, 4096).expect("valid layout")
    }

    fn mem_layout(entries: u16) -> Layout {
        Layout::from_size_align(entries as usize * BUF_SIZE, 64).expect("valid layout")
    }

    fn new(entries: u16) -> io::Result<Self> {
        assert!(entries.is_power_of_two());
        // SAFETY: both layouts have a non-zero size; the results are checked for null.
        let ring = unsafe { alloc::alloc_zeroed(Self::ring_layout(entries)) };
        let ring: NonNull<types::BufRingEntry> =
            NonNull::new(ring.cast()).ok_or(io::ErrorKind::OutOfMemory)?;
        // SAFETY: as above.
        let mem = unsafe { alloc::alloc(Self::mem_layout(entries)) };
        let Some(mem) = NonNull::new(mem) else {
            // SAFETY: allocated just above with this layout.
            unsafe { alloc::dealloc(ring.as_ptr().cast(), Self::ring_layout(entries)) };
            return Err(io::ErrorKind::OutOfMemory.into());
        };
        let mut bufs = ProvidedBuffers {
            ring,
            mem,
            entries,
            tail: 0,
            leak: false,
        };
        for bid in 0..entries {
            bufs.put(bid);
        }
        Ok(bufs)
    }

    /// Hand buffer `bid` (back) to the kernel.
    fn put(&mut self, bid: u16) {
        let idx = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: idx < entries, inside the ring allocation. The kernel reads an entry only
        // between the (old) head and the published tail, and this slot is beyond the tail
        // until the store below publishes it: no concurrent access.
        let entry = unsafe { &mut *self.ring.as_ptr().add(idx) };
        // SAFETY: bid < entries, so the buffer lies inside `mem`.
        entry.set_addr(unsafe { self.mem.as_ptr().add(bid as usize * BUF_SIZE) } as u64);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field is the `resv` u16 of the first entry: valid, aligned, and
        // only ever written by us (the kernel reads it); the release store orders the entry
        // writes above before the kernel can see them.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    /// Buffer `bid`'s first `len` bytes.
    ///
    /// # Safety
    /// The kernel must have handed `bid` over (a completion carried it) and it must not have
    /// been put back since.
    unsafe fn get(&self, bid: u16, len: usize) -> &[u8] {
        let bid = (bid as usize).min(self.entries as usize - 1);
        let len = len.min(BUF_SIZE);
        // SAFETY: inside `mem` (bid and len clamped); the caller guarantees the kernel is not
        // writing to this buffer.
        unsafe { std::slice::from_raw_parts(self.mem.as_ptr().add(bid * BUF_SIZE), len) }
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: allocated in `new` with these layouts; `leak` is false only when no request
        // that could select a buffer is in flight and the ring is unregistered (or closed).
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), Self::ring_layout(self.entries));
            alloc::dealloc(self.mem.as_ptr(), Self::mem_layout(self.entries));
        }
    }
}

/// One driver thread's ring.
pub(crate) struct Uring {
    /// Declared before `bufs`: the ring is closed before the buffers are freed.
    ring: IoUring,
    bufs: ProvidedBuffers,
    /// Requests whose final completion has not been reaped (sends, armed receives).
    in_flight: usize,
    /// Sends submitted since the last reap: on a socket with room each completes during
    /// the submission itself, so a wait asks for that many completions plus one.
    sends_unreaped: usize,
    /// When the armed `Timeout` request fires (None: none armed). It stays armed across
    /// waits, like a timerfd, so a wait that ends with a reply does not set up and cancel a
    /// kernel timer each time (on a VM each costs a trap to the hypervisor).
    timer_at: Option<Instant>,
    /// The timer's timespec: the kernel reads it when the request is submitted.
    timer_ts: Box<types::Timespec>,
}

impl Uring {
    /// A ring for `socks` sockets, or an error if the kernel does not allow it.
    pub(crate) fn new(socks: usize) -> io::Result<Uring> {
        let sq = (socks * 2 + 8).next_power_of_two().clamp(64, 4096) as u32;
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_submit_all()
            .setup_cqsize((sq * 4).max(1024))
            .build(sq)?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let entries = (socks * 4).next_power_of_two().clamp(64, 1024) as u16;
        let bufs = ProvidedBuffers::new(entries)?;
        // SAFETY: the ring memory holds `entries` entries and stays allocated until the
        // ring is unregistered or closed (`Uring::drop` unregisters it before `bufs` is
        // freed, and leaks it if that fails).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.ring.as_ptr() as u64,
                entries,
                BUF_GROUP,
                0,
            )?;
        }
        Ok(Uring {
            ring,
            bufs,
            in_flight: 0,
            sends_unreaped: 0,
            timer_at: None,
            timer_ts: Box::default(),
        })
    }

    /// Queue an SQE (submitted with the next wait, or now if the queue is full).
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry built in this module points only at memory whose owner
            // keeps it in place until the request's final completion is reaped (see the
            // callers of `push`).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Send `len` bytes at `buf` on `fd` (for socket `sock`), all of them (MSG_WAITALL)
    /// unless the connection fails.
    ///
    /// # Safety
    /// The bytes must stay valid and unmodified (not written, moved or freed) until this
    /// send's completion has been reaped.
    pub(crate) unsafe fn send(
        &mut self,
        fd: i32,
        buf: *const u8,
        len: usize,
        sock: usize,
    ) -> io::Result<()> {
        let entry = opcode::Send::new(types::Fd(fd), buf, len.min(u32::MAX as usize) as u32)
            .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(Op::Send, sock));
        self.push(&entry)?;
        self.in_flight += 1;
        self.sends_unreaped += 1;
        Ok(())
    }

    /// Arm a multishot receive on `fd` (socket `sock`) into the provided buffers.
    pub(crate) fn arm_recv(&mut self, fd: i32, sock: usize) -> io::Result<()> {
        // Writes only into provided buffers, which live as long as the ring.
        let entry = opcode::RecvMulti::new(types::Fd(fd), BUF_GROUP)
            .build()
            .user_data(user_data(Op::Recv, sock));
        self.push(&entry)?;
        self.in_flight += 1;
        Ok(())
    }

    /// Cancel every request on `fd` (a dead connection); their final completions follow.
    pub(crate) fn cancel_fd(&mut self, fd: i32, sock: usize) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
            .build()
            .user_data(user_data(Op::Cancel, sock));
        self.push(&entry)
    }

    /// Submit what is queued and wait, until `deadline` at the latest, for the queued sends'
    /// completions plus at least one more (a reply, or the timer): one `io_uring_enter`.
    /// A deadline already past only runs the pending receive work (busy-polling).
    pub(crate) fn submit_and_wait(&mut self, deadline: Instant) -> io::Result<()> {
        let now = Instant::now();
        if deadline <= now {
            return self.poll_now();
        }
        self.arm_timer(deadline, now)?;
        let want = self.sends_unreaped + 1;
        ok_if_transient(self.ring.submitter().submit_and_wait(want))
    }

    /// Submit what is queued and run the pending receive work, without waiting (a zero
    /// timeout would still go through a timer and the scheduler).
    fn poll_now(&mut self) -> io::Result<()> {
        let queued = self.ring.submission().len() as u32;
        // SAFETY: no argument pointer; `queued` SQEs are in the queue.
        let r = unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                queued,
                0,
                io_uring::EnterFlags::GETEVENTS.bits(),
                None,
            )
        };
        ok_if_transient(r)
    }

    /// Make sure the timer fires by `at`: arm it, or move it earlier. A timer due earlier
    /// stays (the loop wakes, finds nothing due and re-arms).
    fn arm_timer(&mut self, at: Instant, now: Instant) -> io::Result<()> {
        if self.timer_at.is_some_and(|t| t <= at) {
            return Ok(());
        }
        *self.timer_ts = types::Timespec::from(at - now);
        let ts: *const types::Timespec = &*self.timer_ts;
        let entry = if self.timer_at.is_some() {
            opcode::TimeoutUpdate::new(user_data(Op::Timer, 0), ts)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(user_data(Op::TimerUpdate, 0))
        } else {
            opcode::Timeout::new(ts)
                .build()
                .user_data(user_data(Op::Timer, 0))
        };
        // The timespec is boxed, lives as long as the ring and is only rewritten here, after
        // the previous timer request was submitted (every caller submits right away).
        self.push(&entry)?;
        self.timer_at = Some(at);
        Ok(())
    }

    /// Submit what is queued and wait up to `timeout` for one completion (shutdown only).
    fn wait_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        ok_if_transient(self.ring.submitter().submit_with_args(1, &args))
    }

    /// Move every completion into `out`.
    pub(crate) fn reap(&mut self, out: &mut Vec<Completion>) {
        self.sends_unreaped = 0;
        for cqe in self.ring.completion() {
            let Some(c) = Completion::new(&cqe) else {
                continue;
            };
            match c.op {
                Op::Send => self.in_flight -= 1,
                Op::Recv if !c.more() => self.in_flight -= 1,
                // Fired (or cancelled).
                Op::Timer => self.timer_at = None,
                // The timer had already fired (its own completion clears `timer_at`), or
                // the update failed otherwise: then re-arm to be safe.
                Op::TimerUpdate if c.res != -libc::ENOENT => self.timer_at = None,
                _ => {}
            }
            out.push(c);
        }
    }

    /// The data of a receive completion.
    ///
    /// # Safety
    /// `bid` must come from a completion reaped since the buffer was last given back with
    /// [`Uring::recycle`].
    pub(crate) unsafe fn data(&self, bid: u16, len: usize) -> &[u8] {
        // SAFETY: forwarded from the caller.
        unsafe { self.bufs.get(bid, len) }
    }

    /// Give a receive's buffer back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.bufs.put(bid);
    }

    /// Cancel everything in flight and reap the final completions (up to 2 s). Returns
    /// whether nothing is in flight any more (else the caller must leak what the requests
    /// point at).
    pub(crate) fn cancel_all(&mut self) -> bool {
        if self.in_flight == 0 {
            return true;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let sync = self.ring.submitter().register_sync_cancel(
            Some(types::Timespec::from(Duration::from_secs(1))),
            types::CancelBuilder::any(),
        );
        if sync.is_err() {
            let entry = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(user_data(Op::Cancel, 0));
            let _ = self.push(&entry);
        }
        let mut scratch = Vec::new();
        while self.in_flight > 0 && Instant::now() < deadline {
            self.sends_unreaped = 0;
            if self.wait_timeout(Duration::from_millis(10)).is_err() {
                break;
            }
            scratch.clear();
            self.reap(&mut scratch);
            for c in &scratch {
                if let Some(bid) = c.buffer() {
                    self.recycle(bid);
                }
            }
        }
        self.in_flight == 0
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        if !self.cancel_all()
            || self
                .ring
                .submitter()
                .unregister_buf_ring(BUF_GROUP)
                .is_err()
        {
            // The kernel may still select (and write into) a provided buffer.
            self.bufs.leak = true;
        }
    }
}

/// Interrupted waits, timeouts and a completion queue that is still being flushed are not
/// errors: the loop reaps what there is and goes round again.
fn ok_if_transient(r: io::Result<usize>) -> io::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Whether this process may use the io_uring receive/send path (the same set-up a driver
/// thread does).
pub fn available() -> bool {
    Uring::new(1).is_ok()
}
