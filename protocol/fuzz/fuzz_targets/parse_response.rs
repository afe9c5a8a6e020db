//! Invariants of the reply parser: never over-consumes; a parsed reply re-encodes to bytes
//! that parse back to the same reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::parse_response;

fuzz_target!(|data: &[u8]| {
    match parse_response(data) {
        Ok(Some((resp, n))) => {
            assert!(n > 0 && n <= data.len());
            let mut wire = Vec::new();
            resp.encode(&mut wire);
            let (again, m) = parse_response(&wire).unwrap().unwrap();
            assert_eq!(m, wire.len());
            assert_eq!(again, resp);
        }
        Ok(None) => {}
        Err(e) => assert!(e.consumed <= data.len()),
    }
});
