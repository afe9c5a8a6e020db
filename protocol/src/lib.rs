//! memcached text and meta protocol, plus mcrouter's `lease-get`/`lease-set`: incremental
//! parsing and encoding of requests and replies. Pure: no sockets, no threads, no clocks.
//!
//! # Layout
//!
//! ```text
//!  bytes from a socket ──> parse_request(&buf, &limits) ──> Ok(Some((Request<'_>, consumed)))
//!                                                      ├─> Ok(None)   incomplete: read more, consume nothing
//!                                                      └─> Err(ParseError) reply + bytes to skip + close?
//!  Request<'_> ──> encode(&mut Vec<u8>)                 (router and load generator send requests)
//!  bytes from a server ──> parse_response(&buf, ..)  ──> Response<'_> (router and load generator)
//!  Response<'_> ──> encode(&mut Vec<u8>)                (server and router send replies)
//! ```
//!
//! Requests and responses borrow from the input buffer: keys and values are slices of it, and
//! multi-key gets hand out a [`Keys`] iterator over the request line instead of a vector, so
//! parsing allocates nothing on the hot path.
//!
//! Errors ([`ParseError`]) carry memcached's exact reply string ([`ErrorKind::reply`]), how
//! many bytes of input the bad request occupies, how many more bytes must be swallowed (the
//! data block of a rejected storage command, which may not have arrived yet), whether the
//! reply is suppressed by `noreply`, and whether the connection must be closed.

mod error;
mod framing;
mod limits;
pub mod meta;
mod number;
mod request;
mod response;

pub use error::{ErrorKind, ParseError};
pub use framing::{Frame, Framer};
pub use limits::Limits;
pub use meta::{MetaFlags, MetaMode};
pub use request::{
    parse_request, watch, ArithKind, Keys, LruCrawlerCommand, Request, RetrievalKind, SlabsCommand,
    StorageKind,
};
pub use response::{encode_value_header, parse_response, MetaCode, Response, ResponseError};

/// Find the end of the first line in `buf`: returns `(line_without_eol, bytes_including_eol)`.
/// A line ends in `\n`; one `\r` before it is stripped, as memcached does.
#[inline]
pub(crate) fn split_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let nl = memchr::memchr(b'\n', buf)?;
    let mut end = nl;
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    Some((&buf[..end], nl + 1))
}

/// Iterate over the space-separated tokens of a line (memcached splits on ' ' only).
#[inline]
pub(crate) fn tokens(line: &[u8]) -> Tokens<'_> {
    Tokens { rest: line }
}

/// Space-separated tokens, found with `memchr`.
#[derive(Clone)]
pub(crate) struct Tokens<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest;
        let start = s.iter().position(|&b| b != b' ')?;
        let s = &s[start..];
        match memchr::memchr(b' ', s) {
            Some(i) => {
                self.rest = &s[i + 1..];
                Some(&s[..i])
            }
            None => {
                self.rest = &[];
                Some(s)
            }
        }
    }
}

/// A key is 1..=max_key_len bytes without spaces or line ends (memcached's rule: it splits
/// on spaces only) and, with [`Limits::strict_keys`], without control characters. Callers
/// pass tokens, which cannot contain spaces or line ends.
#[inline]
pub fn valid_key(key: &[u8], limits: &Limits) -> bool {
    if key.is_empty() || key.len() > limits.max_key_len {
        return false;
    }
    // A token never holds a space or a line end, so outside strict mode the length is all
    // there is to check.
    !limits.strict_keys
        || key
            .iter()
            .fold(true, |ok, &b| ok & (b > b' ') & (b != 0x7f))
}
