//! A connection paused at the output high-water mark must come back for input that was
//! already in its socket, even when its replies then leave in one batched send (no
//! writable event follows) and no new input arrives (no readable event either).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e_tests::bins::OurServer;
use socket2::{Domain, Socket, Type};

/// The server's first read on a connection takes this many bytes (cache-server's
/// `READ_CHUNK`); its output high-water mark is 256 KiB.
const FIRST_READ: usize = 16 * 1024;
const VALUE: usize = 300 * 1024;

fn connect_with_big_receive_buffer(addr: std::net::SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // Room for every reply at once, so the server's send completes in one go.
    s.set_recv_buffer_size(8 << 20).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while !out.ends_with(end) {
        match s.read(&mut buf) {
            Ok(0) => panic!("closed after {} bytes", out.len()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no {:?} after {} bytes: {e}",
                String::from_utf8_lossy(end),
                out.len()
            ),
        }
    }
    out
}

#[test]
fn input_behind_a_paused_connection_is_read_once_its_replies_are_sent() {
    let server = OurServer::start("cache-server", &["-p", "0", "-U", "0", "-t", "1"])
        .expect("start cache-server");
    let mut setter = TcpStream::connect(server.addr()).unwrap();
    setter
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut set = format!("set big 0 0 {VALUE}\r\n").into_bytes();
    set.extend(std::iter::repeat_n(b'v', VALUE));
    set.extend_from_slice(b"\r\n");
    setter.write_all(&set).unwrap();
    assert_eq!(read_until(&mut setter, b"\r\n"), b"STORED\r\n");

    for round in 0..5 {
        // Misses to fill the first read exactly, its last request the one whose reply
        // crosses the high-water mark; then `mn`, already in the socket but not read.
        let last = b"get big\r\n";
        let mut input = Vec::new();
        let mut misses = 0;
        loop {
            // A miss line is its key plus 6 bytes; never leave 1..=6 bytes over.
            let room = FIRST_READ - last.len() - input.len();
            let key_len = match room {
                0 => break,
                7..=206 => room - 6,
                207..=212 => room - 13,
                _ => 200,
            };
            input.extend_from_slice(b"get ");
            input.extend(std::iter::repeat_n(b'm', key_len));
            input.extend_from_slice(b"\r\n");
            misses += 1;
        }
        input.extend_from_slice(last);
        assert_eq!(input.len(), FIRST_READ);
        input.extend_from_slice(b"mn\r\n");
        let mut c = connect_with_big_receive_buffer(server.addr());
        c.write_all(&input).unwrap();
        let got = read_until(&mut c, b"MN\r\n");
        let want_len = misses * b"END\r\n".len()
            + format!("VALUE big 0 {VALUE}\r\n").len()
            + VALUE
            + b"\r\nEND\r\nMN\r\n".len();
        assert_eq!(got.len(), want_len, "round {round}");
    }
}
