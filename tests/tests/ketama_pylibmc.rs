//! Ketama placement checked against real clients.
//!
//! Three (or four) real `memcached` servers are started; a real client stores keys
//! through its own ketama implementation; then each server is asked directly which
//! keys it holds, and our [`Ketama`] must name the same server for every key.
//!
//! - pylibmc `behaviors={"ketama": True}` -> `Ketama` (libmemcached unweighted:
//!   one-at-a-time key hash, 100 points per server), with non-default ports and with
//!   a server on the default port 11211 (whose continuum name drops the port).
//! - pylibmc `behaviors={"ketama_weighted": True}` -> `KetamaMd5`.
//! - twemproxy (`nutcracker`) `distribution: ketama`, `hash: md5`, uneven weights
//!   -> `KetamaMd5` with the same weights.
//! - the system libmemcached (Debian's 1.1.x, while pylibmc's wheel bundles 1.0.x),
//!   called through ctypes: `memcached_generate_hash` with `KETAMA` and with
//!   `KETAMA_WEIGHTED` (uneven weights) -> `Ketama` / `KetamaMd5`.
//!
//! Each test skips with a printed reason when a tool it needs (memcached, pylibmc,
//! nutcracker, libmemcached) is missing; CI installs all of them.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::external::{
    find_program, free_loopback_addr, free_port, memcached_path, python_has_module, run_python,
    skip, Daemon, Memcached, STARTUP_TIMEOUT,
};
use mcrouter::hash::{Ketama, KetamaVariant};

const NUM_KEYS: usize = 300;

/// Stores the keys (hex-encoded in the JSON argument) with pylibmc.
const PYLIBMC_SET: &str = r#"
import json, sys
import pylibmc
cfg = json.loads(sys.argv[1])
client = pylibmc.Client(cfg["servers"], behaviors=cfg["behaviors"])
for h in cfg["keys"]:
    key = bytes.fromhex(h)
    if not client.set(key, b"1"):
        sys.exit("pylibmc set failed for %r" % key)
print("ok")
"#;

/// Test keys: plain ASCII, UTF-8 (bytes >= 0x80 exercise libhashkit's signed-char
/// one-at-a-time), punctuation, and one 250-byte key (memcached's maximum).
fn test_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..NUM_KEYS - 51)
        .map(|i| format!("ketama:{i}").into_bytes())
        .collect();
    keys.extend((0..40).map(|i| format!("ключ-{i}-é").into_bytes()));
    keys.extend((0..10).map(|i| format!("user:{i}|#|tail/{i}").into_bytes()));
    keys.push(vec![b'k'; 250]);
    assert_eq!(keys.len(), NUM_KEYS);
    keys
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which server index holds each key; fails if a key is on none or several.
fn observed_placement(servers: &[Memcached], keys: &[Vec<u8>]) -> Result<Vec<usize>> {
    let mut owner: Vec<Option<usize>> = vec![None; keys.len()];
    for (index, server) in servers.iter().enumerate() {
        for key in server.present_keys(keys)? {
            let k = keys
                .iter()
                .position(|x| *x == key)
                .with_context(|| format!("server returned unknown key {key:?}"))?;
            if let Some(other) = owner[k] {
                bail!(
                    "key {:?} is on servers {other} and {index}",
                    String::from_utf8_lossy(&key)
                );
            }
            owner[k] = Some(index);
        }
    }
    owner
        .iter()
        .zip(keys)
        .map(|(o, k)| {
            o.with_context(|| format!("key {:?} is on no server", String::from_utf8_lossy(k)))
        })
        .collect()
}

/// Asserts our continuum places every key where the client did, and that the keys
/// were actually spread (so agreement is not trivial).
fn assert_same_placement(
    what: &str,
    ours: &Ketama,
    keys: &[Vec<u8>],
    observed: &[usize],
) -> Result<()> {
    let mut per_server = vec![0usize; ours.len()];
    let mut mismatches = Vec::new();
    for (key, &seen) in keys.iter().zip(observed) {
        per_server[seen] += 1;
        let pick = ours.pick(key);
        if pick != seen {
            mismatches.push(format!(
                "{:?}: client {seen}, ours {pick}",
                String::from_utf8_lossy(key)
            ));
        }
    }
    ensure!(
        mismatches.is_empty(),
        "{what}: {} of {} keys placed differently, e.g. {:?}",
        mismatches.len(),
        keys.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    ensure!(
        per_server
            .iter()
            .all(|&c| c >= keys.len() / (10 * ours.len())),
        "{what}: keys not spread over the servers: {per_server:?}"
    );
    eprintln!(
        "{what}: all {} keys agree; per server {per_server:?}",
        keys.len()
    );
    Ok(())
}

/// Share of keys on which `other` disagrees with the observed placement.
fn disagreement(other: &Ketama, keys: &[Vec<u8>], observed: &[usize]) -> f64 {
    let differ = keys
        .iter()
        .zip(observed)
        .filter(|(k, &o)| other.pick(k) != o)
        .count();
    differ as f64 / keys.len() as f64
}

fn pylibmc_available(test: &str) -> bool {
    if memcached_path().is_none() {
        skip(
            test,
            "memcached is not installed (Debian package `memcached`)",
        );
        return false;
    }
    if !python_has_module("pylibmc") {
        skip(
            test,
            "python3 module pylibmc is not installed (`pip install pylibmc`)",
        );
        return false;
    }
    true
}

fn set_with_pylibmc(servers: &[Memcached], behaviors: &str, keys: &[Vec<u8>]) -> Result<()> {
    let cfg = serde_json::json!({
        "servers": servers.iter().map(Memcached::server_string).collect::<Vec<_>>(),
        "behaviors": serde_json::from_str::<serde_json::Value>(behaviors)?,
        "keys": keys.iter().map(|k| hex(k)).collect::<Vec<_>>(),
    });
    let out = run_python(PYLIBMC_SET, &[&cfg.to_string()])?;
    ensure!(out.trim() == "ok", "pylibmc script said {out:?}");
    Ok(())
}

fn start_servers(n: usize) -> Result<Vec<Memcached>> {
    (0..n).map(|_| Memcached::start()).collect()
}

#[test]
fn pylibmc_ketama_matches_ketama() -> Result<()> {
    let test = "pylibmc_ketama_matches_ketama";
    if !pylibmc_available(test) {
        return Ok(());
    }
    let servers = start_servers(3)?;
    let keys = test_keys();
    set_with_pylibmc(&servers, r#"{"ketama": true}"#, &keys)?;
    let observed = observed_placement(&servers, &keys)?;

    let names: Vec<String> = servers.iter().map(Memcached::server_string).collect();
    let ours = Ketama::new(KetamaVariant::Libmemcached, &names)?;
    assert_same_placement("pylibmc ketama", &ours, &keys, &observed)?;

    // pylibmc's "ketama" is not the MD5 flavour: that one disagrees on many keys.
    let md5 = Ketama::new(KetamaVariant::Md5, &names)?;
    let d = disagreement(&md5, &keys, &observed);
    ensure!(
        d > 0.2,
        "MD5 ketama unexpectedly agrees with pylibmc ketama ({d:.2})"
    );
    Ok(())
}

#[test]
fn pylibmc_ketama_default_port_is_left_out_of_the_name() -> Result<()> {
    let test = "pylibmc_ketama_default_port_is_left_out_of_the_name";
    if !pylibmc_available(test) {
        return Ok(());
    }
    let default_port_addr = match free_loopback_addr(11211) {
        Ok(addr) => addr,
        Err(e) => {
            skip(
                test,
                &format!("cannot get a loopback address with port 11211: {e}"),
            );
            return Ok(());
        }
    };
    let servers = vec![
        Memcached::start()?,
        Memcached::start_on(default_port_addr)?,
        Memcached::start()?,
    ];
    let keys = test_keys();
    set_with_pylibmc(&servers, r#"{"ketama": true}"#, &keys)?;
    let observed = observed_placement(&servers, &keys)?;

    let names: Vec<String> = servers.iter().map(Memcached::server_string).collect();
    let ours = Ketama::new(KetamaVariant::Libmemcached, &names)?;
    assert_same_placement(
        "pylibmc ketama, one server on 11211",
        &ours,
        &keys,
        &observed,
    )?;
    Ok(())
}

#[test]
fn pylibmc_ketama_weighted_matches_ketama_md5() -> Result<()> {
    let test = "pylibmc_ketama_weighted_matches_ketama_md5";
    if !pylibmc_available(test) {
        return Ok(());
    }
    let servers = start_servers(3)?;
    let keys = test_keys();
    set_with_pylibmc(&servers, r#"{"ketama_weighted": true}"#, &keys)?;
    let observed = observed_placement(&servers, &keys)?;

    let names: Vec<String> = servers.iter().map(Memcached::server_string).collect();
    let ours = Ketama::new(KetamaVariant::Md5, &names)?;
    assert_same_placement("pylibmc ketama_weighted", &ours, &keys, &observed)?;
    Ok(())
}

/// Stores every key through a twemproxy listening on `addr`.
fn set_through_proxy(addr: SocketAddr, keys: &[Vec<u8>]) -> Result<()> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    for key in keys {
        let mut req = b"set ".to_vec();
        req.extend_from_slice(key);
        req.extend_from_slice(b" 0 0 1\r\n1\r\n");
        writer.write_all(&req)?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        ensure!(
            line == "STORED\r\n",
            "twemproxy replied {line:?} to set {:?}",
            String::from_utf8_lossy(key)
        );
    }
    Ok(())
}

#[test]
fn twemproxy_ketama_md5_matches_ketama_md5() -> Result<()> {
    let test = "twemproxy_ketama_md5_matches_ketama_md5";
    if memcached_path().is_none() {
        skip(
            test,
            "memcached is not installed (Debian package `memcached`)",
        );
        return Ok(());
    }
    let Some(nutcracker) = find_program("nutcracker") else {
        skip(
            test,
            "nutcracker (twemproxy) is not installed (Debian package `nutcracker`)",
        );
        return Ok(());
    };
    let servers = start_servers(3)?;
    let weights = [1u32, 2, 3];
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let dir = std::env::temp_dir().join(format!(
        "ketama-twemproxy-{}-{}",
        std::process::id(),
        listen.port()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let conf = dir.join("nutcracker.yml");
    let mut yaml = format!(
        "pool:\n  listen: {listen}\n  hash: md5\n  distribution: ketama\n  auto_eject_hosts: false\n  timeout: 5000\n  servers:\n"
    );
    for (s, w) in servers.iter().zip(weights) {
        yaml.push_str(&format!("    - {}:{w}\n", s.server_string()));
    }
    std::fs::write(&conf, yaml).with_context(|| format!("write {}", conf.display()))?;
    let args = vec![
        "-c".to_string(),
        conf.display().to_string(),
        "-s".to_string(),
        free_port()?.to_string(),
        "-a".to_string(),
        "127.0.0.1".to_string(),
        "-o".to_string(),
        dir.join("nutcracker.log").display().to_string(),
    ];
    let mut proxy = Daemon::spawn(&nutcracker, &args)?;
    proxy.wait_for_accept(listen, STARTUP_TIMEOUT)?;

    let keys = test_keys();
    set_through_proxy(listen, &keys)?;
    let observed = observed_placement(&servers, &keys)?;
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);

    let names: Vec<String> = servers.iter().map(Memcached::server_string).collect();
    let ours = Ketama::md5_weighted(&names, &weights)?;
    assert_same_placement(
        "twemproxy ketama md5, weights 1/2/3",
        &ours,
        &keys,
        &observed,
    )?;
    Ok(())
}

/// Asks the system libmemcached (Debian's libmemcached11, 1.1.x; pylibmc's wheel
/// bundles its own 1.0.x) for `memcached_generate_hash` of every key, through
/// ctypes. No server is contacted: the continuum is built from the names alone.
/// Prints `NOLIB` when the library is not installed.
const LIBMEMCACHED_HASH: &str = r#"
import ctypes, ctypes.util, json, sys
cfg = json.loads(sys.argv[1])
name = ctypes.util.find_library("memcached")
if name is None:
    print("NOLIB")
    sys.exit(0)
lib = ctypes.CDLL(name)
lib.memcached_create.restype = ctypes.c_void_p
lib.memcached_create.argtypes = [ctypes.c_void_p]
lib.memcached_free.argtypes = [ctypes.c_void_p]
lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
lib.memcached_server_add_with_weight.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint32]
lib.memcached_generate_hash.restype = ctypes.c_uint32
lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
memc = lib.memcached_create(None)
if lib.memcached_behavior_set(memc, cfg["behavior"], 1) != 0:
    sys.exit("memcached_behavior_set failed")
for host, port, weight in cfg["servers"]:
    if lib.memcached_server_add_with_weight(memc, host.encode(), port, weight) != 0:
        sys.exit("memcached_server_add_with_weight failed for %s:%d" % (host, port))
out = []
for h in cfg["keys"]:
    key = bytes.fromhex(h)
    out.append(lib.memcached_generate_hash(memc, key, len(key)))
lib.memcached_free(memc)
print(json.dumps(out))
"#;

/// `MEMCACHED_BEHAVIOR_KETAMA` and `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED` in
/// `libmemcached-1.0/types/behavior.h` (the enum is part of the soname-11 ABI).
const BEHAVIOR_KETAMA: u32 = 3;
const BEHAVIOR_KETAMA_WEIGHTED: u32 = 16;

/// Runs [`LIBMEMCACHED_HASH`]; `None` when the library is missing.
fn libmemcached_hashes(
    behavior: u32,
    servers: &[(&str, u16, u32)],
    keys: &[Vec<u8>],
) -> Result<Option<Vec<usize>>> {
    let cfg = serde_json::json!({
        "behavior": behavior,
        "servers": servers,
        "keys": keys.iter().map(|k| hex(k)).collect::<Vec<_>>(),
    });
    let out = run_python(LIBMEMCACHED_HASH, &[&cfg.to_string()])?;
    if out.trim() == "NOLIB" {
        return Ok(None);
    }
    Ok(Some(
        serde_json::from_str(out.trim()).with_context(|| format!("parse {out:?}"))?,
    ))
}

#[test]
fn system_libmemcached_generate_hash_matches() -> Result<()> {
    let test = "system_libmemcached_generate_hash_matches";
    if find_program("python3").is_none() {
        skip(test, "python3 is not installed");
        return Ok(());
    }
    let keys = test_keys();

    // Unweighted ketama (weight 1: libmemcached switches to weighted ketama by itself
    // when a server is added with a weight above 1).
    let plain = [
        ("10.0.0.1", 11211, 1),
        ("10.0.0.2", 11212, 1),
        ("10.0.0.3", 11211, 1),
        ("cache-4.example", 5000, 1),
    ];
    let Some(observed) = libmemcached_hashes(BEHAVIOR_KETAMA, &plain, &keys)? else {
        skip(
            test,
            "libmemcached is not installed (Debian package `libmemcached11`)",
        );
        return Ok(());
    };
    let names: Vec<String> = plain.iter().map(|(h, p, _)| format!("{h}:{p}")).collect();
    let ours = Ketama::new(KetamaVariant::Libmemcached, &names)?;
    assert_same_placement("system libmemcached KETAMA", &ours, &keys, &observed)?;

    // Weighted MD5 ketama with uneven weights.
    let weighted = [
        ("10.0.1.1", 11211, 600),
        ("10.0.1.2", 11211, 300),
        ("10.0.1.3", 22122, 200),
        ("10.0.1.4", 11211, 350),
        ("10.0.1.5", 11211, 1000),
    ];
    let observed = libmemcached_hashes(BEHAVIOR_KETAMA_WEIGHTED, &weighted, &keys)?
        .context("libmemcached disappeared between two runs")?;
    let names: Vec<String> = weighted
        .iter()
        .map(|(h, p, _)| format!("{h}:{p}"))
        .collect();
    let weights: Vec<u32> = weighted.iter().map(|&(_, _, w)| w).collect();
    let ours = Ketama::md5_weighted(&names, &weights)?;
    assert_same_placement(
        "system libmemcached KETAMA_WEIGHTED",
        &ours,
        &keys,
        &observed,
    )?;
    Ok(())
}
