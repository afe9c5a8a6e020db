use thiserror::Error;

/// Why a request was rejected. Each variant is exactly one of memcached's reply lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ErrorKind {
    /// Unknown command or wrong number of tokens.
    #[error("ERROR")]
    Error,
    #[error("CLIENT_ERROR bad command line format")]
    BadCommandLineFormat,
    #[error("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]")]
    BadDeleteFormat,
    #[error("CLIENT_ERROR bad data chunk")]
    BadDataChunk,
    #[error("CLIENT_ERROR line too long")]
    LineTooLong,
    #[error("CLIENT_ERROR invalid exptime argument")]
    InvalidExptime,
    /// `flush_all <delay>` with a delay that is not a number: the exptime error's reply,
    /// kept apart because a server counts the flush (and checks `-F`) first.
    #[error("CLIENT_ERROR invalid exptime argument")]
    InvalidFlushDelay,
    #[error("CLIENT_ERROR invalid numeric delta argument")]
    InvalidDelta,
    #[error("SERVER_ERROR object too large for cache")]
    TooLarge,
    #[error("CLIENT_ERROR invalid flag")]
    InvalidFlag,
    #[error("CLIENT_ERROR duplicate flag")]
    DuplicateFlag,
    #[error("CLIENT_ERROR options flags are too long")]
    TooManyTokens,
    /// `ms`, `md` and `ma` word it without "are".
    #[error("CLIENT_ERROR options flags too long")]
    TooManyFlags,
    /// `md` and `ma` answer every flag problem with this line.
    #[error("CLIENT_ERROR invalid or duplicate flag")]
    InvalidOrDuplicateFlag,
    #[error("CLIENT_ERROR opaque token too long")]
    OpaqueTooLong,
    #[error("CLIENT_ERROR bad token in command line format")]
    BadToken,
    #[error("CLIENT_ERROR error decoding key")]
    KeyDecode,
    #[error("CLIENT_ERROR invalid mode for ms M token")]
    InvalidSetMode,
    #[error("CLIENT_ERROR invalid mode for ma M token")]
    InvalidArithMode,
    /// A meta `M` token that is not exactly one character.
    #[error("CLIENT_ERROR incorrect length for M token")]
    BadModeLength,
    /// A meta `D` token that is not a number (mg/ms; md/ma answer InvalidOrDuplicateFlag).
    #[error("CLIENT_ERROR invalid numeric delta value")]
    InvalidDeltaValue,
    /// A meta `J` token that is not a number (mg/ms; md/ma answer InvalidOrDuplicateFlag).
    #[error("CLIENT_ERROR invalid numeric initial value")]
    InvalidInitialValue,
    #[error("CLIENT_ERROR usage: stats detail on|off|dump")]
    StatsDetailUsage,
    /// A request line ending in `HTTP/x.y`: memcached closes the connection without a reply.
    #[error("")]
    Http,
}

impl ErrorKind {
    /// The reply line without its `\r\n` (empty for [`ErrorKind::Http`], which gets none).
    pub fn reply(&self) -> &'static str {
        match self {
            ErrorKind::Error => "ERROR",
            ErrorKind::BadCommandLineFormat => "CLIENT_ERROR bad command line format",
            ErrorKind::BadDeleteFormat => {
                "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
            }
            ErrorKind::BadDataChunk => "CLIENT_ERROR bad data chunk",
            ErrorKind::LineTooLong => "CLIENT_ERROR line too long",
            ErrorKind::InvalidExptime | ErrorKind::InvalidFlushDelay => {
                "CLIENT_ERROR invalid exptime argument"
            }
            ErrorKind::InvalidDelta => "CLIENT_ERROR invalid numeric delta argument",
            ErrorKind::TooLarge => "SERVER_ERROR object too large for cache",
            ErrorKind::InvalidFlag => "CLIENT_ERROR invalid flag",
            ErrorKind::DuplicateFlag => "CLIENT_ERROR duplicate flag",
            ErrorKind::TooManyTokens => "CLIENT_ERROR options flags are too long",
            ErrorKind::TooManyFlags => "CLIENT_ERROR options flags too long",
            ErrorKind::InvalidOrDuplicateFlag => "CLIENT_ERROR invalid or duplicate flag",
            ErrorKind::OpaqueTooLong => "CLIENT_ERROR opaque token too long",
            ErrorKind::BadToken => "CLIENT_ERROR bad token in command line format",
            ErrorKind::KeyDecode => "CLIENT_ERROR error decoding key",
            ErrorKind::InvalidSetMode => "CLIENT_ERROR invalid mode for ms M token",
            ErrorKind::InvalidArithMode => "CLIENT_ERROR invalid mode for ma M token",
            ErrorKind::BadModeLength => "CLIENT_ERROR incorrect length for M token",
            ErrorKind::InvalidDeltaValue => "CLIENT_ERROR invalid numeric delta value",
            ErrorKind::InvalidInitialValue => "CLIENT_ERROR invalid numeric initial value",
            ErrorKind::StatsDetailUsage => "CLIENT_ERROR usage: stats detail on|off|dump",
            ErrorKind::Http => "",
        }
    }
}

/// A rejected request: what to answer and how to resynchronise with the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ParseError {
    pub kind: ErrorKind,
    /// Bytes of the input the bad request occupies (always available in the buffer).
    pub consumed: usize,
    /// Further bytes to discard after `consumed` (a rejected data block plus its `\r\n`);
    /// they may not have arrived yet.
    pub swallow: usize,
    /// `noreply` was given: send nothing (memcached suppresses error replies too).
    pub noreply: bool,
    /// The connection must be closed (after sending the reply, if any).
    pub close: bool,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, consumed: usize) -> Self {
        ParseError {
            kind,
            consumed,
            swallow: 0,
            noreply: false,
            close: false,
        }
    }

    pub(crate) fn swallowing(mut self, n: usize) -> Self {
        self.swallow = n;
        self
    }

    pub(crate) fn noreply(mut self, noreply: bool) -> Self {
        self.noreply = noreply;
        self
    }

    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The reply to send (with `\r\n`), or `None` when nothing is sent.
    pub fn reply_line(&self) -> Option<String> {
        if self.noreply || self.kind == ErrorKind::Http {
            None
        } else {
            Some(format!("{}\r\n", self.kind.reply()))
        }
    }
}
