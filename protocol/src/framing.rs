//! Splitting a client's byte stream into requests: [`parse_request`] plus the state a
//! connection keeps between reads, as memcached does: the rest of a rejected request's data
//! block still to skip (it may arrive over several reads), and whether an error closed the
//! stream.

use crate::{parse_request, Limits, ParseError, Request};

/// One step of [`Framer::next`]; the caller consumes the bytes it names.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A complete request occupying the first `.1` bytes.
    Request(Request<'a>, usize),
    /// A rejected request occupying `e.consumed` bytes: answer `e.reply_line()`, and close
    /// the connection after it if `e.close`. The rest of its data block is skipped by the
    /// framer (as [`Frame::Skip`]).
    Error(ParseError),
    /// Bytes of a rejected request's data block, skipped.
    Skip(usize),
    /// Nothing to consume: the buffer is empty or holds part of a request (read more), or
    /// an error closed the stream.
    More,
}

/// Per-connection framing state.
#[derive(Debug, Default, Clone)]
pub struct Framer {
    swallow: usize,
    closed: bool,
}

impl Framer {
    pub fn new() -> Self {
        Framer::default()
    }

    /// The next frame at the start of `buf`.
    pub fn next<'a>(&mut self, buf: &'a [u8], limits: &Limits) -> Frame<'a> {
        if self.closed || buf.is_empty() {
            return Frame::More;
        }
        if self.swallow > 0 {
            let n = self.swallow.min(buf.len());
            self.swallow -= n;
            return Frame::Skip(n);
        }
        match parse_request(buf, limits) {
            Ok(Some((req, n))) => Frame::Request(req, n),
            Ok(None) => Frame::More,
            Err(e) => {
                self.swallow = e.swallow;
                self.closed = e.close;
                Frame::Error(e)
            }
        }
    }

    /// Bytes of a rejected data block still to skip once they arrive.
    pub fn swallowing(&self) -> usize {
        self.swallow
    }

    /// An error closed the stream: nothing more is framed.
    pub fn closed(&self) -> bool {
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer, mut buf: &[u8]) -> Vec<String> {
        let limits = Limits::default();
        let mut out = Vec::new();
        loop {
            let (label, n) = match framer.next(buf, &limits) {
                Frame::Request(r, n) => (format!("req {r:?}"), n),
                Frame::Error(e) => (format!("err {:?}", e.reply_line()), e.consumed),
                Frame::Skip(n) => (format!("skip {n}"), n),
                Frame::More => break,
            };
            out.push(
                label
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            buf = &buf[n..];
        }
        out
    }

    #[test]
    fn a_rejected_data_block_is_skipped_across_reads() {
        let mut f = Framer::new();
        let limits = Limits::default();
        // A value over the item size limit: the line is rejected, its block swallowed.
        let line = format!("set k 0 0 {}\r\n", limits.max_value_size + 1);
        let got = frames(&mut f, format!("{line}abc").as_bytes());
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("err"), "{got:?}");
        assert_eq!(got[1], "skip 3");
        let left = limits.max_value_size + 1 + 2 - 3;
        assert_eq!(f.swallowing(), left);
        // The rest arrives with the next request behind it.
        let mut next = vec![b'x'; left];
        next.extend_from_slice(b"get k\r\n");
        let got = frames(&mut f, &next);
        assert_eq!(got[0], format!("skip {left}"));
        assert!(got[1].starts_with("req Retrieval"), "{got:?}");
        assert_eq!(f.swallowing(), 0);
    }

    #[test]
    fn incomplete_input_consumes_nothing_and_a_closing_error_stops_the_stream() {
        let mut f = Framer::new();
        assert!(frames(&mut f, b"get k").is_empty());
        assert!(frames(&mut f, b"").is_empty());
        let long = vec![b'a'; 4096];
        let got = frames(&mut f, &long);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(f.closed());
        assert!(
            frames(&mut f, b"get k\r\n").is_empty(),
            "closed: nothing more"
        );
    }
}
