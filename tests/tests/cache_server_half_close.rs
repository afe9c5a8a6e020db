//! A client that sends its last request and shuts down its write side at once
//! (`printf 'get k\r\n' | nc -N`) gets its reply and then the server's close. The request
//! and the FIN often arrive before the worker reads, as one readiness event; the server
//! must not take its short read for "nothing more will come" and leave the connection in
//! CLOSE-WAIT forever (memcached does not).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use e2e_tests::bins::OurServer;

#[test]
fn request_then_fin_is_answered_and_closed() {
    let ours = OurServer::start("cache-server", &["-p", "0", "-U", "0", "-t", "2"])
        .expect("start cache-server");
    let mut hung = 0;
    for i in 0..2000 {
        let mut s = TcpStream::connect(ours.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("get k{i}\r\n").as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        match s.read_to_end(&mut reply) {
            Ok(_) => assert_eq!(reply, b"END\r\n", "connection {i}"),
            Err(e) => {
                assert_eq!(reply, b"END\r\n", "connection {i}: {e}");
                hung += 1;
                if hung == 3 {
                    break;
                }
            }
        }
    }
    assert_eq!(hung, 0, "connections never closed by the server");
}
