//! cache-server under real memcached clients: libmemcached's conformance checker
//! (`memccapable`) and command-line tools (`memccp`, `memccat`, `memcstat`, `memcflush`,
//! `memcexist`, `memcrm`, `memctouch`), and pymemcache. Skipped, with a printed reason, only
//! when a tool is missing (CI installs them all).

use std::process::Command;

use e2e_tests::bins::OurServer;
use e2e_tests::external::{find_program, python_has_module, run_python, skip};

fn server() -> OurServer {
    OurServer::start(
        "cache-server",
        &["-p", "0", "-U", "0", "-t", "2", "-m", "32"],
    )
    .expect("start cache-server")
}

fn servers_arg(s: &OurServer) -> String {
    format!("--servers={}", s.addr())
}

fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn memccapable_ascii_conformance() {
    let Some(prog) = find_program("memccapable") else {
        return skip(
            "memccapable_ascii_conformance",
            "memccapable (libmemcached-tools) not installed",
        );
    };
    let s = server();
    let port = s.addr().port().to_string();
    let (ok, stdout, stderr) = run(
        prog.to_str().unwrap(),
        &["-h", "127.0.0.1", "-p", &port, "-a", "-t", "5"],
    );
    assert!(
        ok && stdout.contains("All tests passed"),
        "memccapable failed:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
}

#[test]
fn libmemcached_tools() {
    let needed = [
        "memccp",
        "memccat",
        "memcstat",
        "memcflush",
        "memcexist",
        "memcrm",
        "memctouch",
    ];
    if let Some(missing) = needed.iter().find(|p| find_program(p).is_none()) {
        return skip(
            "libmemcached_tools",
            &format!("{missing} (libmemcached-tools) not installed"),
        );
    }
    let s = server();
    let servers = servers_arg(&s);
    let dir = std::env::temp_dir().join(format!("cachetier-memccp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("greeting.txt");
    let content = "hello from memccp\n".repeat(50);
    std::fs::write(&file, &content).unwrap();

    let (ok, _, err) = run("memccp", &[&servers, file.to_str().unwrap()]);
    assert!(ok, "memccp: {err}");
    let (ok, out, err) = run("memccat", &[&servers, "greeting.txt"]);
    assert!(ok, "memccat: {err}");
    // memccat prints the value followed by a newline.
    assert_eq!(out, format!("{content}\n"));
    let (ok, _, err) = run("memcexist", &[&servers, "greeting.txt"]);
    assert!(ok, "memcexist on a present key: {err}");
    let (ok, _, err) = run("memctouch", &[&servers, "--expire=100", "greeting.txt"]);
    assert!(ok, "memctouch: {err}");

    let (ok, out, err) = run("memcstat", &[&servers]);
    assert!(ok, "memcstat: {err}");
    for field in [
        "pid",
        "uptime",
        "curr_items",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "limit_maxbytes",
        "threads",
    ] {
        assert!(out.contains(field), "memcstat output lacks {field}:\n{out}");
    }

    let (ok, _, err) = run("memcrm", &[&servers, "greeting.txt"]);
    assert!(ok, "memcrm: {err}");
    let (ok, _, _) = run("memcexist", &[&servers, "greeting.txt"]);
    assert!(!ok, "memcexist must fail after memcrm");

    let (ok, _, err) = run("memccp", &[&servers, file.to_str().unwrap()]);
    assert!(ok, "memccp again: {err}");
    let (ok, _, err) = run("memcflush", &[&servers]);
    assert!(ok, "memcflush: {err}");
    let (ok, _, _) = run("memccat", &[&servers, "greeting.txt"]);
    assert!(!ok, "memccat must fail after memcflush");
    let _ = std::fs::remove_dir_all(&dir);
}

const PYMEMCACHE_SCRIPT: &str = r#"
import sys
from pymemcache.client.base import Client
host, port = sys.argv[1], int(sys.argv[2])
c = Client((host, port), default_noreply=False)
assert c.version().startswith(b"1.6."), c.version()
assert c.set("k", b"v1", expire=0, flags=3) is True
assert c.get("k") == b"v1"
assert c.add("k", b"x") is False
assert c.add("k2", b"x") is True
assert c.replace("nope", b"x") is False
assert c.append("k", b"+a") is True and c.prepend("k", b"p+") is True
assert c.get("k") == b"p+v1+a"
value, cas = c.gets("k")
assert value == b"p+v1+a" and cas is not None
assert c.cas("k", b"new", cas) is True
assert c.cas("k", b"newer", cas) is False
assert c.get_many(["k", "k2", "missing"]) == {"k": b"new", "k2": b"x"}
assert c.set("n", b"10")
assert c.incr("n", 5) == 15 and c.decr("n", 100) == 0
assert c.incr("missing", 1) is None
assert c.touch("k", 100) is True and c.touch("missing", 1) is False
assert c.delete("k") is True and c.delete("k") is False
big = b"x" * (1000 * 1000)
assert c.set("big", big) is True and c.get("big") == big
c.set_many({"a%d" % i: b"%d" % i for i in range(100)})
got = c.get_many(["a%d" % i for i in range(100)])
assert len(got) == 100 and got["a42"] == b"42"
stats = c.stats()
assert stats[b"cmd_set"] >= 100, stats
assert stats[b"curr_items"] >= 100
assert isinstance(stats[b"rusage_user"], float)
slabs = c.stats("slabs")
assert b"active_slabs" in slabs
settings = c.stats("settings")
assert settings[b"cas_enabled"] in (True, b"yes"), settings[b"cas_enabled"]
assert c.flush_all() is True
assert c.get("a1") is None
# noreply path: pymemcache's default for storage commands
c2 = Client((host, port))
c2.set("nr", b"1")
assert c2.get("nr") == b"1"
print("OK")
"#;

#[test]
fn pymemcache_client() {
    if !python_has_module("pymemcache") {
        return skip(
            "pymemcache_client",
            "python3 module pymemcache not installed",
        );
    }
    let s = server();
    let out = run_python(
        PYMEMCACHE_SCRIPT,
        &["127.0.0.1", &s.addr().port().to_string()],
    )
    .expect("pymemcache script");
    assert_eq!(out.trim(), "OK");
}
