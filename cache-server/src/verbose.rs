//! `-vv` (or `verbosity 2`): memcached's per-command trace on stderr.
//!
//! ```text
//! <FD new auto-negotiating client connection
//! <FD set foo 0 0 3            every command line, as received
//! >FD STORED                   one-line replies (memcached's `out_string`)
//! >FD NOREPLY DELETED          ... also when `noreply` suppressed them
//! >FD sending key foo          each hit of get/gets/gat/gats, then
//! >FD END
//! <FD connection closed.
//! ```
//!
//! As in memcached 1.6.18, replies that memcached does not build with `out_string` are not
//! traced: meta command results (their errors are), `stats` listings, dumps. The worker
//! reads the verbosity once per batch of requests, so with `-v` or less this costs one
//! relaxed load per wake-up.

use std::io::Write;

use protocol::Request;

/// Whether the trace is on (memcached: `settings.verbose > 1`).
pub fn tracing(verbosity: u8) -> bool {
    verbosity > 1
}

fn emit(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// A new client connection.
pub fn opened(fd: i32) {
    emit(format_args!(
        "<{fd} new auto-negotiating client connection\n"
    ));
}

/// The connection closed.
pub fn closed(fd: i32) {
    emit(format_args!("<{fd} connection closed.\n"));
}

/// The command line of a request (`frame` starts with it; a data block may follow).
pub fn command(fd: i32, frame: &[u8]) {
    let line = frame.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    emit(format_args!("<{fd} {}\n", String::from_utf8_lossy(line)));
}

/// The reply `out` that `req` produced.
pub fn reply(fd: i32, req: &Request<'_>, out: &[u8]) {
    match req {
        Request::Retrieval { .. } => {
            for line in out.split(|&b| b == b'\n') {
                if let Some(rest) = line.strip_prefix(b"VALUE ") {
                    let key = rest.split(|&b| b == b' ').next().unwrap_or_default();
                    emit(format_args!(
                        ">{fd} sending key {}\n",
                        String::from_utf8_lossy(key)
                    ));
                }
            }
            if out.ends_with(b"END\r\n") {
                emit(format_args!(">{fd} END\n"));
            } else {
                one_line(fd, out);
            }
        }
        Request::MetaGet { .. }
        | Request::MetaSet { .. }
        | Request::MetaDelete { .. }
        | Request::MetaArithmetic { .. }
        | Request::MetaDebug { .. } => {
            if out.starts_with(b"CLIENT_ERROR")
                || out.starts_with(b"SERVER_ERROR")
                || out.starts_with(b"ERROR")
            {
                one_line(fd, out);
            }
        }
        Request::Stats { .. } => {
            if out != b"END\r\n" && !out.starts_with(b"STAT ") {
                one_line(fd, out);
            }
        }
        _ => one_line(fd, out),
    }
}

/// `>FD NOREPLY <line>`: the reply `noreply` kept from the client.
pub fn suppressed(fd: i32, out: &[u8]) {
    if let Some(line) = out.strip_suffix(b"\r\n") {
        emit(format_args!(
            ">{fd} NOREPLY {}\n",
            String::from_utf8_lossy(line)
        ));
    }
}

/// `>FD <line>` for a one-line reply; nothing for an empty or multi-line one.
pub fn one_line(fd: i32, out: &[u8]) {
    let Some(line) = out.strip_suffix(b"\r\n") else {
        return;
    };
    if line.contains(&b'\n') {
        return;
    }
    emit(format_args!(">{fd} {}\n", String::from_utf8_lossy(line)));
}
