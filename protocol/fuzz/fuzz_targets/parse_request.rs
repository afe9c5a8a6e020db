//! Invariants of the request parser on arbitrary input:
//! - it never consumes more than it was given (errors included);
//! - a parsed request re-encodes to bytes that parse back to the same request, whole;
//! - giving it more bytes after a complete request does not change that request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{parse_request, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut pos = 0;
    // Walk the input as a pipelined stream, as a server would.
    for _ in 0..64 {
        let buf = &data[pos..];
        match parse_request(buf, &limits) {
            Ok(Some((req, n))) => {
                assert!(n > 0 && n <= buf.len(), "consumed {n} of {}", buf.len());
                let mut wire = Vec::new();
                req.encode(&mut wire);
                let (again, m) = parse_request(&wire, &limits)
                    .expect("re-encoded request must parse")
                    .expect("re-encoded request must be complete");
                assert_eq!(m, wire.len());
                assert_eq!(again, req);
                // The same bytes with a different tail parse to the same request.
                let mut longer = buf[..n].to_vec();
                longer.extend_from_slice(b"get tail\r\n");
                let (same, k) = parse_request(&longer, &limits).unwrap().unwrap();
                assert_eq!((same, k), (req, n));
                pos += n;
            }
            Ok(None) => break,
            Err(e) => {
                assert!(e.consumed <= buf.len(), "error consumed {} of {}", e.consumed, buf.len());
                if e.close || e.consumed == 0 {
                    break;
                }
                pos += e.consumed.min(buf.len());
                pos += e.swallow.min(data.len() - pos);
            }
        }
        if pos >= data.len() {
            break;
        }
    }
});
