//! Helpers for tests that drive third-party programs: real `memcached` servers,
//! `nutcracker` (twemproxy), and Python snippets using client libraries such as
//! pylibmc or pymemcache.
//!
//! - [`free_port`] / [`free_loopback_addr`]: an address nobody listens on yet.
//! - [`Daemon`]: a spawned process that is killed (and reaped) on drop.
//! - [`Memcached::start`]: a `memcached` on an ephemeral loopback port, ready to
//!   accept connections when it returns (polls `connect`, never sleeps blindly).
//! - [`python_has_module`] / [`run_python`]: `python3 -c SNIPPET args...`.
//! - [`skip`]: prints why a test did not run, so a skip is never silent.
//!
//! Tests skip (with [`skip`]) only when a tool is missing; CI installs every tool.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// How long a spawned server may take to start accepting connections.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Prints a skip notice to stderr: `SKIP <test>: <reason>`.
///
/// Written to the stderr handle directly rather than with `eprintln!`, which the
/// test harness captures (and hides) for passing tests.
pub fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
}

/// A loopback port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

/// A free `ip:port` on some 127.x.y.z address for a *fixed* port (for example the
/// default 11211), trying a few addresses of the 127/8 loopback range.
pub fn free_loopback_addr(port: u16) -> Result<SocketAddr> {
    let seed = std::process::id();
    for attempt in 0..64u32 {
        let n = seed
            .wrapping_mul(2_654_435_761)
            .wrapping_add(attempt * 7919);
        let ip = Ipv4Addr::new(
            127,
            100 + (n % 100) as u8,
            (n >> 8) as u8,
            2 + (n >> 16) as u8 % 250,
        );
        let addr = SocketAddr::from((ip, port));
        if TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    bail!("no free loopback address for port {port}")
}

/// Finds an executable by name in `PATH`, then in the usual system directories
/// (`nutcracker` lives in `/usr/sbin`, which is not always in a user's `PATH`).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let system = ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from);
    path_dirs
        .into_iter()
        .chain(system)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A child process that is killed and reaped when dropped.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
}

impl Daemon {
    /// Spawns `program args...` with stdin closed and stdout/stderr discarded.
    pub fn spawn(program: &Path, args: &[String]) -> Result<Self> {
        Self::spawn_with_stderr(program, args, Stdio::null())
    }

    /// [`Daemon::spawn`] with stderr sent to `stderr`.
    pub fn spawn_with_stderr(program: &Path, args: &[String], stderr: Stdio) -> Result<Self> {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawn {} {}", program.display(), args.join(" ")))?;
        Ok(Daemon {
            name: program.display().to_string(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `connect(addr)` until it succeeds; fails early if the process exits.
    pub fn wait_for_accept(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().context("try_wait")? {
                bail!(
                    "{} exited with {status} before accepting on {addr}",
                    self.name
                );
            }
            if Instant::now() >= deadline {
                bail!("{} did not accept on {addr} within {timeout:?}", self.name);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Already exited is fine; the process is ours, killed by pid, then reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of the `memcached` binary, if installed.
pub fn memcached_path() -> Option<PathBuf> {
    find_program("memcached")
}

/// `n` fresh memcached processes, or `None` (with a printed skip for `test`) when
/// memcached is not installed.
pub fn memcacheds(test: &str, n: usize) -> Option<Vec<Memcached>> {
    if memcached_path().is_none() {
        skip(test, "memcached is not installed");
        return None;
    }
    Some(
        (0..n)
            .map(|_| Memcached::start().expect("start memcached"))
            .collect(),
    )
}

/// A real `memcached` listening on a loopback address; killed on drop.
#[derive(Debug)]
pub struct Memcached {
    daemon: Daemon,
    addr: SocketAddr,
}

impl Memcached {
    /// Starts `memcached -l 127.0.0.1 -p PORT -U 0` on a free port and waits until
    /// it accepts connections. Retries with a new port if another process grabbed
    /// the chosen one in between.
    pub fn start() -> Result<Self> {
        let mut last_err = anyhow!("not started");
        for _ in 0..5 {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
            match Self::start_on(addr) {
                Ok(m) => return Ok(m),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// Like [`Memcached::start`], with extra flags (e.g. `["-m", "64", "-t", "2"]`).
    pub fn start_with(extra: &[&str]) -> Result<Self> {
        let mut last_err = anyhow!("not started");
        for _ in 0..5 {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
            match Self::start_on_with(addr, extra) {
                Ok(m) => return Ok(m),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// Starts memcached on exactly `addr` (for example `127.x.y.z:11211`).
    pub fn start_on(addr: SocketAddr) -> Result<Self> {
        Self::start_on_with(addr, &[])
    }

    fn start_on_with(addr: SocketAddr, extra: &[&str]) -> Result<Self> {
        let bin = memcached_path().ok_or_else(|| anyhow!("memcached is not installed"))?;
        let mut args = vec![
            "-l".to_string(),
            addr.ip().to_string(),
            "-p".to_string(),
            addr.port().to_string(),
            "-U".to_string(),
            "0".to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        // memcached refuses to run as root unless told which user to be.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            args.extend(["-u".to_string(), "root".to_string()]);
        }
        let mut daemon = Daemon::spawn(&bin, &args)?;
        daemon
            .wait_for_accept(addr, STARTUP_TIMEOUT)
            .with_context(|| format!("memcached on {addr}"))?;
        Ok(Memcached { daemon, addr })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, as clients are configured.
    pub fn server_string(&self) -> String {
        self.addr.to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Which of `keys` this server holds, with a text-protocol multi-get
    /// (in batches, to keep request lines short).
    pub fn present_keys(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let stream =
            TcpStream::connect(self.addr).with_context(|| format!("connect {}", self.addr))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut found = Vec::new();
        for batch in keys.chunks(50) {
            let mut req = b"get".to_vec();
            for k in batch {
                req.push(b' ');
                req.extend_from_slice(k);
            }
            req.extend_from_slice(b"\r\n");
            writer
                .write_all(&req)
                .with_context(|| format!("write to {}", self.addr))?;
            found.extend(
                read_get_reply(&mut reader).with_context(|| format!("get from {}", self.addr))?,
            );
        }
        Ok(found)
    }
}

/// Reads `VALUE <key> <flags> <bytes>\r\n<data>\r\n`... `END\r\n`; returns the keys.
fn read_get_reply(reader: &mut impl BufRead) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    loop {
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            bail!("connection closed in the middle of a get reply");
        }
        if line == b"END\r\n" {
            return Ok(keys);
        }
        let text = line.strip_suffix(b"\r\n").unwrap_or(&line);
        let mut parts = text.split(|&b| b == b' ');
        if parts.next() != Some(b"VALUE") {
            bail!("unexpected reply line {:?}", String::from_utf8_lossy(&line));
        }
        let key = parts
            .next()
            .ok_or_else(|| anyhow!("VALUE without key"))?
            .to_vec();
        let _flags = parts.next();
        let bytes: usize = parts
            .next()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| anyhow!("VALUE without byte count"))?;
        let mut data = vec![0u8; bytes + 2];
        reader.read_exact(&mut data)?;
        keys.push(key);
    }
}

/// Path of `python3`, if installed.
pub fn python3() -> Option<PathBuf> {
    find_program("python3")
}

/// Whether `python3 -c "import NAME"` succeeds.
pub fn python_has_module(name: &str) -> bool {
    let Some(py) = python3() else { return false };
    Command::new(py)
        .args(["-c", &format!("import {name}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `python3 -c SNIPPET ARGS...`, returns stdout; fails with stderr on a
/// non-zero exit.
pub fn run_python(snippet: &str, args: &[&str]) -> Result<String> {
    let py = python3().ok_or_else(|| anyhow!("python3 is not installed"))?;
    let out = Command::new(py)
        .arg("-c")
        .arg(snippet)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run python3")?;
    if !out.status.success() {
        bail!(
            "python3 exited with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn parses_get_replies() {
        let reply = b"VALUE a 0 3\r\nxyz\r\nVALUE b\xff 5 0\r\n\r\nEND\r\n";
        let keys = read_get_reply(&mut &reply[..]).unwrap();
        assert_eq!(keys, vec![b"a".to_vec(), b"b\xff".to_vec()]);
        assert!(read_get_reply(&mut &b"ERROR\r\n"[..]).is_err());
        assert!(read_get_reply(&mut &b"VALUE a 0 3\r\nxy"[..]).is_err());
    }

    #[test]
    fn finds_sh() {
        assert!(find_program("sh").is_some());
        assert!(find_program("surely-not-a-program-name").is_none());
    }
}
