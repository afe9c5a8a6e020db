//! Our own binaries (`cache-server`, `mcrouter`, `loadgen`) started for a test.
//!
//! [`OurServer::start`] runs a binary built by cargo with `-p 0` (or whatever the test
//! passes), reads its first stdout line `listening on ADDR` to learn the ephemeral port,
//! and kills it on drop. No fixed ports, no sleeps.
//!
//! The binaries are found next to the test executable (`target/<profile>/`): `cargo test
//! --workspace` builds them because their packages have integration tests.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Path of one of the workspace's binaries for the profile the tests were built with.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    // target/<profile>/deps/<test>-hash -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not built: run the tests with `cargo test --workspace` so cargo builds it",
            path.display()
        );
    }
    Ok(path)
}

/// A running binary of ours, killed on drop.
pub struct OurServer {
    child: Child,
    addr: SocketAddr,
    /// Lines printed after `listening on`, collected in the background.
    stdout_rx: mpsc::Receiver<String>,
}

impl OurServer {
    /// Start `name` with `args` and wait (up to 20 s) for `listening on ADDR`.
    pub fn start(name: &str, args: &[&str]) -> Result<Self> {
        Self::start_with_stderr(name, args, Stdio::inherit())
    }

    /// [`OurServer::start`] with stderr sent to `stderr` (a file, say).
    pub fn start_with_stderr(name: &str, args: &[&str], stderr: Stdio) -> Result<Self> {
        let path = bin_path(name)?;
        let mut child = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawn {}", path.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || forward_lines(stdout, tx));
        let first = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                bail!("{name} {args:?} printed no `listening on` line (exit: {status:?})");
            }
        };
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| anyhow!("{name}: unexpected first line {first:?}"))?;
        Ok(OurServer {
            child,
            addr,
            stdout_rx: rx,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, waiting up to `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.stdout_rx.recv_timeout(timeout).ok()
    }

    /// Send a signal (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Wait for the process to exit, up to `timeout`; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.child.id(), "VmRSS:")
    }

    /// Peak resident set size in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.child.id(), "VmHWM:")
    }

    /// User + system CPU time in clock ticks, from /proc/PID/stat.
    pub fn cpu_ticks(&self) -> Result<u64> {
        cpu_ticks(self.child.id())
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(line.trim_end().to_string()).is_err() {
                    // Nobody listens any more: keep draining so the child never blocks.
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink);
                    return;
                }
            }
        }
    }
}

/// A `VmRSS:`-style field of /proc/PID/status in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// utime + stime of a process in clock ticks (/proc/PID/stat fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14 -> index 11.
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}
