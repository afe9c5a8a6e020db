//! A tiny in-memory memcached for tests, with knobs to misbehave: corrupt values, answer
//! with another key's value, stall for a while. Thread per connection, blocking I/O, the
//! workspace's protocol crate for parsing and encoding.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{parse_request, Limits, MetaCode, Request, Response};

#[derive(Debug, Clone, Default)]
pub struct Misbehave {
    /// Flip one byte of every Nth value returned.
    pub corrupt_every: Option<u64>,
    /// Return another key's value (under the asked key) every Nth hit.
    pub wrong_key_every: Option<u64>,
    /// Stop answering from `.0` after start for `.1`.
    pub stall: Option<(Duration, Duration)>,
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub gets: AtomicU64,
    pub sets: AtomicU64,
    pub deletes: AtomicU64,
}

struct State {
    data: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    leases: Mutex<HashMap<Vec<u8>, u64>>,
    next_token: AtomicU64,
    hits: AtomicU64,
    misbehave: Misbehave,
    start: Instant,
    counters: Arc<Counters>,
    keys_seen: Mutex<Vec<Vec<u8>>>,
    record_keys: bool,
    /// With `record_keys`: the keys asked for on each connection, in accept order.
    conn_keys: Mutex<Vec<Vec<Vec<u8>>>>,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    state: Arc<State>,
}

impl FakeServer {
    pub fn start(misbehave: Misbehave) -> FakeServer {
        Self::start_with(misbehave, false)
    }

    /// `record_keys`: remember every key asked for (for sharding tests).
    pub fn start_with(misbehave: Misbehave, record_keys: bool) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State {
            data: Mutex::default(),
            leases: Mutex::default(),
            next_token: AtomicU64::new(2),
            hits: AtomicU64::new(0),
            misbehave,
            start: Instant::now(),
            counters: counters.clone(),
            keys_seen: Mutex::default(),
            record_keys,
            conn_keys: Mutex::default(),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let st = st.clone();
                let idx = {
                    let mut ck = st.conn_keys.lock().unwrap();
                    ck.push(Vec::new());
                    ck.len() - 1
                };
                std::thread::spawn(move || serve(conn, st, idx));
            }
        });
        FakeServer {
            addr,
            counters,
            state,
        }
    }

    pub fn keys_seen(&self) -> Vec<Vec<u8>> {
        self.state.keys_seen.lock().unwrap().clone()
    }

    /// Keys asked for per connection, in the order the connections were accepted.
    pub fn keys_per_connection(&self) -> Vec<Vec<Vec<u8>>> {
        self.state.conn_keys.lock().unwrap().clone()
    }
}

fn serve(mut conn: TcpStream, st: Arc<State>, idx: usize) {
    let _ = conn.set_nodelay(true);
    let limits = Limits::default();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match conn.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        end += n;
        loop {
            match parse_request(&buf[start..end], &limits) {
                Ok(Some((req, used))) => {
                    handle(&st, req, &mut out, idx);
                    start += used;
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if start == end {
            start = 0;
            end = 0;
        }
        if let Some((after, len)) = st.misbehave.stall {
            let from = st.start + after;
            let until = from + len;
            let now = Instant::now();
            if now >= from && now < until {
                std::thread::sleep(until - now);
            }
        }
        if conn.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn handle(st: &State, req: Request<'_>, out: &mut Vec<u8>, conn: usize) {
    st.counters.requests.fetch_add(1, Ordering::Relaxed);
    if st.record_keys {
        if let Some(k) = req.key() {
            st.keys_seen.lock().unwrap().push(k.to_vec());
            st.conn_keys.lock().unwrap()[conn].push(k.to_vec());
        }
        if let Request::Retrieval { keys, .. } = &req {
            st.keys_seen
                .lock()
                .unwrap()
                .extend(keys.iter().map(|k| k.to_vec()));
            st.conn_keys.lock().unwrap()[conn].extend(keys.iter().map(|k| k.to_vec()));
        }
    }
    let value_for = |key: &[u8]| -> Option<Vec<u8>> {
        let data = st.data.lock().unwrap();
        let mut v = data.get(key)?.clone();
        let n = st.hits.fetch_add(1, Ordering::Relaxed) + 1;
        if st
            .misbehave
            .corrupt_every
            .is_some_and(|e| n.is_multiple_of(e))
            && !v.is_empty()
        {
            let i = v.len() / 2;
            v[i] ^= 0x20;
        }
        if st.misbehave.wrong_key_every.is_some_and(|e| n % e == 1 % e) {
            if let Some((_, other)) = data.iter().find(|(k, _)| k.as_slice() != key) {
                v = other.clone();
            }
        }
        Some(v)
    };
    match req {
        Request::Storage { key, data, .. } => {
            st.counters.sets.fetch_add(1, Ordering::Relaxed);
            st.data.lock().unwrap().insert(key.to_vec(), data.to_vec());
            Response::Stored.encode(out);
        }
        Request::Retrieval { keys, .. } => {
            st.counters.gets.fetch_add(1, Ordering::Relaxed);
            for key in keys.iter() {
                if let Some(v) = value_for(key) {
                    Response::Value {
                        key,
                        flags: 0,
                        cas: None,
                        data: &v,
                    }
                    .encode(out);
                }
            }
            Response::End.encode(out);
        }
        Request::Delete { key, .. } => {
            st.counters.deletes.fetch_add(1, Ordering::Relaxed);
            // A delete also voids an outstanding lease, as in mcrouter.
            st.leases.lock().unwrap().remove(key);
            let r = if st.data.lock().unwrap().remove(key).is_some() {
                Response::Deleted
            } else {
                Response::NotFound
            };
            r.encode(out);
        }
        Request::MetaGet { key, .. } => {
            st.counters.gets.fetch_add(1, Ordering::Relaxed);
            match value_for(key) {
                Some(v) => {
                    let mut flags = b"k".to_vec();
                    flags.extend_from_slice(key);
                    Response::Meta {
                        code: MetaCode::Va,
                        flags: &flags,
                        data: Some(&v),
                    }
                    .encode(out)
                }
                None => Response::Meta {
                    code: MetaCode::En,
                    flags: b"",
                    data: None,
                }
                .encode(out),
            }
        }
        Request::MetaSet { key, data, .. } => {
            st.counters.sets.fetch_add(1, Ordering::Relaxed);
            st.data.lock().unwrap().insert(key.to_vec(), data.to_vec());
            Response::Meta {
                code: MetaCode::Hd,
                flags: b"",
                data: None,
            }
            .encode(out);
        }
        Request::LeaseGet { key } => {
            st.counters.gets.fetch_add(1, Ordering::Relaxed);
            if let Some(v) = value_for(key) {
                Response::Value {
                    key,
                    flags: 0,
                    cas: None,
                    data: &v,
                }
                .encode(out);
            } else {
                let mut leases = st.leases.lock().unwrap();
                let token = if leases.contains_key(key) {
                    1
                } else {
                    let t = st.next_token.fetch_add(1, Ordering::Relaxed);
                    leases.insert(key.to_vec(), t);
                    t
                };
                Response::LeaseValue {
                    key,
                    token,
                    flags: 0,
                    data: b"",
                }
                .encode(out);
            }
            Response::End.encode(out);
        }
        Request::LeaseSet {
            key, token, data, ..
        } => {
            st.counters.sets.fetch_add(1, Ordering::Relaxed);
            let mut leases = st.leases.lock().unwrap();
            if leases.get(key) == Some(&token) {
                leases.remove(key);
                st.data.lock().unwrap().insert(key.to_vec(), data.to_vec());
                Response::Stored.encode(out);
            } else {
                Response::NotStored.encode(out);
            }
        }
        _ => Response::Error(b"").encode(out),
    }
}
