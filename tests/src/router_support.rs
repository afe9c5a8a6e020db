//! Helpers for the mcrouter end-to-end tests: a blocking text-protocol client, config
//! files in a private temporary directory, the router binary started on an ephemeral
//! port, polling with a deadline, and a tiny in-test memcached ("mock backend") that
//! counts the requests it receives.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use protocol::{Limits, Request, Response};

use crate::bins::OurServer;

/// Poll `cond` every few milliseconds until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A private temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "mcrouter-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Write `text` to `name` atomically (write a temporary file, then rename).
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let p = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("rename to {}", p.display()))?;
        Ok(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts mcrouter on `config` (written to a temporary `bad.json`), which it must refuse:
/// returns the file's path and what mcrouter printed on stderr.
pub fn refused_config(config: &str) -> Result<(String, String)> {
    let dir = TempDir::new("refused-config")?;
    let path = dir.write("bad.json", config)?;
    let out = std::process::Command::new(crate::bins::bin_path("mcrouter")?)
        .args(["--config", &format!("file:{}", path.display()), "-p", "0"])
        .stdin(std::process::Stdio::null())
        .output()?;
    if out.status.success() {
        bail!("mcrouter accepted {config}");
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    Ok((path.display().to_string(), err))
}

/// A config with one pool `A` of `servers` and `PoolRoute|A`.
pub fn pool_config(servers: &[String]) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [{}]}}}}, \"route\": \"PoolRoute|A\"}}",
        list.join(", ")
    )
}

/// The router binary with `config` written to a temp dir; both dropped together.
pub struct Router {
    pub server: OurServer,
    pub dir: TempDir,
    pub config_path: PathBuf,
}

impl Router {
    pub fn start(config: &str, extra: &[&str]) -> Result<Router> {
        let dir = TempDir::new("router")?;
        let config_path = dir.write("router.json", config)?;
        let path = config_path.display().to_string();
        let mut args = vec!["--config-file", path.as_str(), "-p", "0"];
        args.extend_from_slice(extra);
        let server = OurServer::start("mcrouter", &args)?;
        Ok(Router {
            server,
            dir,
            config_path,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn client(&self) -> Result<Client> {
        Client::connect(self.addr())
    }

    /// Replace the config file (atomically).
    pub fn rewrite_config(&self, config: &str) -> Result<()> {
        self.dir.write("router.json", config).map(|_| ())
    }
}

/// A blocking text-protocol client that reads whole replies.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, raw: &str) -> Result<()> {
        self.stream.write_all(raw.as_bytes()).context("write")?;
        Ok(())
    }

    /// Read one complete reply (a get's values up to `END`, stats up to `END`).
    pub fn read_reply(&mut self) -> Result<String> {
        let mut pos = 0;
        loop {
            loop {
                match protocol::parse_response(&self.buf[pos..]) {
                    Ok(Some((r, n))) => {
                        pos += n;
                        let more = matches!(r, Response::Value { .. } | Response::Stat { .. });
                        if !more {
                            let out = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                            self.buf.drain(..pos);
                            return Ok(out);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => bail!("bad reply {:?}: {e}", String::from_utf8_lossy(&self.buf)),
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).context("read reply")?;
            if n == 0 {
                bail!(
                    "connection closed; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Send one request and read its reply.
    pub fn call(&mut self, raw: &str) -> Result<String> {
        self.send(raw)?;
        self.read_reply()
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<String> {
        self.call(&format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()))
    }

    /// The value of `key`, `None` on a miss; an error reply is an `Err`.
    pub fn get(&mut self, key: &str) -> Result<Option<String>> {
        let r = self.call(&format!("get {key}\r\n"))?;
        if r == "END\r\n" {
            return Ok(None);
        }
        if let Ok(Some((Response::Value { data, .. }, _))) = protocol::parse_response(r.as_bytes())
        {
            return Ok(Some(String::from_utf8_lossy(data).into_owned()));
        }
        bail!("get {key}: {r:?}")
    }

    /// The `name:N` counter of `stats servers`, summed over the router's servers.
    pub fn server_counter(&mut self, name: &str) -> Result<u64> {
        let r = self.call("stats servers\r\n")?;
        let prefix = format!("{name}:");
        let mut sum = 0;
        for f in r.split_whitespace() {
            if let Some(n) = f.strip_prefix(&prefix) {
                sum += n.parse::<u64>().with_context(|| format!("{f} in {r:?}"))?;
            }
        }
        Ok(sum)
    }

    /// `STAT name value` pairs of `stats`.
    pub fn stats(&mut self) -> Result<HashMap<String, String>> {
        let r = self.call("stats\r\n")?;
        Ok(r.lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// A minimal memcached in a thread: `get`/`gets` (many keys), `set`, `delete`,
/// `version`, `flush_all`; counts every request it parses (per command name).
pub struct MockBackend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub requests: Arc<AtomicU64>,
    pub get_requests: Arc<AtomicU64>,
}

impl MockBackend {
    pub fn start() -> Result<MockBackend> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind mock")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let get_requests = Arc::new(AtomicU64::new(0));
        let data: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
        let (s, r, g) = (stop.clone(), requests.clone(), get_requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, g, d) = (r.clone(), g.clone(), data.clone());
                std::thread::spawn(move || serve_mock(conn, r, g, d));
            }
        });
        Ok(MockBackend {
            addr,
            stop,
            requests,
            get_requests,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MockBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

fn serve_mock(
    mut conn: TcpStream,
    requests: Arc<AtomicU64>,
    gets: Arc<AtomicU64>,
    data: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
) {
    let limits = Limits::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        let mut pos = 0;
        while let Ok(Some((req, used))) = protocol::parse_request(&buf[pos..], &limits) {
            requests.fetch_add(1, Ordering::Relaxed);
            let mut d = data.lock().expect("lock");
            match req {
                Request::Retrieval { keys, .. } => {
                    gets.fetch_add(1, Ordering::Relaxed);
                    for k in keys.iter() {
                        if let Some(v) = d.get(k) {
                            protocol::encode_value_header(&mut out, k, 0, v.len(), None);
                            out.extend_from_slice(v);
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                    out.extend_from_slice(b"END\r\n");
                }
                Request::Storage { key, data: v, .. } => {
                    d.insert(key.to_vec(), v.to_vec());
                    out.extend_from_slice(b"STORED\r\n");
                }
                Request::Delete { key, .. } => {
                    let found = d.remove(key).is_some();
                    out.extend_from_slice(if found {
                        b"DELETED\r\n"
                    } else {
                        b"NOT_FOUND\r\n"
                    });
                }
                Request::FlushAll { .. } => {
                    d.clear();
                    out.extend_from_slice(b"OK\r\n");
                }
                Request::Version => out.extend_from_slice(b"VERSION mock\r\n"),
                _ => out.extend_from_slice(b"ERROR\r\n"),
            }
            pos += used;
        }
        buf.drain(..pos);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}
